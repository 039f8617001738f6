// agent/server owns the daemon's front door: Service turns one request (already attributed to
// a kernel-verified peer) into one envelope by driving the ledger, the backend and the state
// store; SocketServer carries lines between Unix-socket clients and Service on sd-event.
#pragma once

#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "cgroup/backend.hpp"
#include "core/ledger.hpp"
#include "resmgr/protocol.hpp"
#include "state/state_store.hpp"

namespace resmgr::server {

class Service {
public:
    using ClockFn = std::function<TimePoint()>;

    // `host_report` is the probe's JSON (agent/cgroup/probe), shown by `doctor`.
    Service(core::Ledger& ledger, cgroup::CgroupBackend& backend, state::StateStore& store, ClockFn clock,
            nlohmann::json host_report, nlohmann::json daemon_info);

    // Never throws: every failure becomes the seed's error envelope.
    nlohmann::json handle_line(std::string_view line, const Owner& peer);
    nlohmann::json handle(const Request& request, const Owner& peer);

    // At start: re-creates (adopts) the group of every stored allocation and removes groups the
    // backend holds that no allocation claims. Returns what it did, for the log.
    nlohmann::json reconcile();

private:
    SuccessBody allocate(const Request& request, const Owner& peer);
    SuccessBody release(const Request& request, const Owner& peer);
    SuccessBody reallocate(const Request& request, const Owner& peer);
    SuccessBody status(const Request& request);
    SuccessBody doctor();
    SuccessBody attach(const Request& request, const Owner& peer);

    nlohmann::json describe(const Allocation& allocation);
    void persist();
    // Reads the group's memory.events before it goes, so a wrapper can tell an OOM kill.
    nlohmann::json final_counters(const std::string& id);

    core::Ledger& ledger_;
    cgroup::CgroupBackend& backend_;
    state::StateStore& store_;
    ClockFn clock_;
    nlohmann::json host_report_;
    nlohmann::json daemon_info_;
    std::map<std::string, cgroup::Enforcement> enforcement_;
};

} // namespace resmgr::server
