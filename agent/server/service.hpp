// Service assembles one node's daemon from its rooms: the event notifier, the exclusive files,
// the lifecycle (the one writer of ledger, backend and state), the router's context, and the
// router with every operation group registered. main.cpp and the tests build one; the event
// loop and the socket server talk to the parts it hands out. It owns no behaviour of its own
// beyond the sampling pass, which touches two parts.
#pragma once

#include <memory>

#include <nlohmann/json.hpp>

#include "lifecycle/agent_starts.hpp"
#include "lifecycle/completion.hpp"
#include "lifecycle/exclusive_files.hpp"
#include "lifecycle/leak_detector.hpp"
#include "lifecycle/lifecycle.hpp"
#include "lifecycle/pressure_responder.hpp"
#include "server/router.hpp"

namespace resmgr::server {

class Service {
public:
    using ClockFn = std::function<TimePoint()>;

    // `host_report` is the probe's JSON (agent/cgroup/probe), shown by `doctor`.
    Service(core::Ledger& ledger, cgroup::CgroupBackend& backend, state::StateStore& store, ClockFn clock,
            nlohmann::json host_report, nlohmann::json daemon_info);

    Router& router() { return router_; }
    lifecycle::Lifecycle& lifecycle() { return lifecycle_; }
    lifecycle::Completion& completion() { return lifecycle_.completion(); }
    lifecycle::ExclusiveFiles& files() { return files_; }
    events::Notifier& events() { return events_; }
    Context& context() { return context_; }
    lifecycle::PressureResponder& pressure() { return pressure_; }
    lifecycle::LeakDetector& leaks() { return leaks_; }

    // Sampling, thresholds, agents and the monitoring operations; without it those operations
    // answer UNSUPPORTED and agents are not tracked.
    void set_monitoring(monitor::Monitoring* monitoring) {
        context_.monitoring = monitoring;
        lifecycle_.set_observers(monitoring, context_.history);
        if (monitoring) monitoring->set_history(context_.history);
    }
    // Run records, samples and their rollups; without it no history is kept and the history
    // operations answer UNSUPPORTED.
    void set_history(history::History* history);
    // Who a process is / who a uid is (tests give fakes; /proc and the user database otherwise).
    void set_process_identity(Context::IdentifyFn identify) { context_.identify = std::move(identify); }
    void set_user_lookup(Context::LookupUserFn lookup);
    // One sampling pass (the loop calls it every monitoring_intervals.resource_check): conflict
    // repeats are saved, monitoring samples, the pressure responder acts on the sample, the
    // temporary directories are measured and swept (Lifecycle::on_storage_pass), then
    // balance re-plans its CPU loans and tune steps its loops; every
    // resource_leak_detection.monitoring_interval the leak detector passes (also without monitoring).
    void on_sample();

private:
    events::Notifier events_;
    lifecycle::ExclusiveFiles files_;
    lifecycle::Lifecycle lifecycle_;
    lifecycle::CpuLending lending_{lifecycle_};
    lifecycle::Tuner tuner_{lifecycle_};
    lifecycle::PressureResponder pressure_{lifecycle_};
    lifecycle::AgentStarts agent_starts_{lifecycle_, pressure_};
    lifecycle::LeakDetector leaks_{lifecycle_};
    Context context_;
    Router router_;
};

} // namespace resmgr::server
