// The node operations: doctor (what this host enforces and how to get the rest) and events (the
// newest ones; `--follow` is the socket server's subscribe).
#include <algorithm>
#include <set>

#include <systemd/sd-daemon.h>

#include "cluster/member.hpp"
#include "monitor/monitoring.hpp"
#include "monitor/proc.hpp"
#include "server/ops/doctor.hpp"
#include "server/router.hpp"

namespace resmgr::server {
namespace {

using nlohmann::json;

// The kernel's active LSMs, for the doctor's BPF LSM advice; empty without securityfs.
std::string read_lsm_list() {
    try {
        std::string list = monitor::read_text_file("/sys/kernel/security/lsm");
        while (!list.empty() && (list.back() == '\n' || list.back() == ' ')) list.pop_back();
        return list;
    } catch (const monitor::ParseError&) {
        return {};
    }
}

// systemd's WatchdogSec= for this process, 0 outside it.
std::uint64_t watchdog_usec() {
    std::uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

SuccessBody doctor(const Call& call) {
    Context& ctx = call.ctx;
    auto& backend = ctx.lifecycle.backend();
    conflicts::Guard* guard = ctx.files.guard();
    const monitor::Monitoring* monitoring = ctx.monitoring;
    SuccessBody body;
    json daemon = ctx.daemon_info;
    daemon["backend"] = backend.name();
    daemon["enforces_limits"] = backend.enforces_limits();
    daemon["backend_details"] = backend.describe();
    daemon["capacity"] = ctx.ledger().admission().availability().to_json();
    daemon["file_guard"] = guard ? json{{"available", true}, {"status", guard->status()}, {"file_conflicts", ctx.files.policy().to_json()}}
                                  : json{{"available", false}, {"reason", ctx.files.guard_unavailable()}};
    if (monitoring) {
        daemon["ebpf"] = monitoring->probes().status();
        daemon["sample_interval"] = format_duration(monitoring->interval());
        daemon["pressure_signals"] = monitoring->pressure_signals();
    }
    daemon["recovery"] = ctx.leaks.to_json();
    daemon["history"] = ctx.history ? ctx.history->status() : json{{"available", false}, {"problem", "no history database"}};
    daemon["cluster"] = ctx.cluster ? json{{"configured", true}, {"node_name", ctx.cluster->config().node_name},
                                           {"etcd", ctx.cluster->config().endpoints},
                                           {"problem", ctx.cluster->problem().empty() ? json(nullptr) : json(ctx.cluster->problem())}}
                                     : json{{"configured", false}};
    DoctorFacts facts{ctx.host_report, backend.name(), backend.enforces_limits(), daemon["backend_details"], guard != nullptr,
                      ctx.files.guard_unavailable(), guard ? guard->status().value("bpf_lsm", std::string()) : std::string(),
                      monitoring ? monitoring->probes().status() : std::string(), read_lsm_list(), watchdog_usec(),
                      monitoring ? monitoring->pressure_signals() : std::string()};
    const DoctorVerdict verdict = doctor_verdict(facts);
    body.result = {{"verdict", verdict.verdict}, {"enforced", verdict.enforced}, {"not_enforced", verdict.not_enforced},
                   {"host", ctx.host_report}, {"daemon", daemon}};
    body.recommendations = verdict.recommendations;
    if (ctx.cluster && !ctx.cluster->problem().empty())
        body.recommendations.push_back("etcd (" + cluster::join_endpoints(ctx.cluster->config().endpoints) + ") does not answer: " +
                                       ctx.cluster->problem() + "; local allocations go on; check that the members run and this host reaches them");
    if (ctx.history && !ctx.history->available())
        body.recommendations.push_back("History is off (" + ctx.history->problem() +
                                       "): allocations are still enforced, but no run is recorded; move the file away and restart resmgrd");
    return body;
}

SuccessBody recent_events(const Call& call) {
    std::set<events::EventType> types;
    if (auto it = call.params().find("types"); it != call.params().end() && !it->is_null()) types = events::parse_event_types(*it);
    size_t limit = events::Notifier::kRecentEvents;
    if (auto most = param_integer(call.params(), "limit"))
        limit = static_cast<size_t>(std::min<long long>(*most, static_cast<long long>(events::Notifier::kRecentEvents)));
    json list = json::array();
    for (const auto& e : call.ctx.events.recent())
        if (types.empty() || types.count(e.type)) list.push_back(e.to_json());
    if (list.size() > limit) list.erase(list.begin(), list.end() - static_cast<std::ptrdiff_t>(limit));
    SuccessBody body;
    body.result = {{"events", list}};
    return body;
}

} // namespace

void register_node_operations(Router& router) {
    router.add("doctor", "", doctor);
    router.add("events", "", recent_events);
}

} // namespace resmgr::server
