#include "server/service.hpp"

#include <spdlog/spdlog.h>

#include "lifecycle/users.hpp"

namespace resmgr::server {

using nlohmann::json;

Service::Service(core::Ledger& ledger, cgroup::CgroupBackend& backend, state::StateStore& store, ClockFn clock, json host_report,
                 json daemon_info)
    : events_(clock),
      files_(ledger, backend, store.dir(), host_report.value("cgroup2_mount", std::string()), clock, events_),
      lifecycle_(ledger, backend, store, clock, events_, files_),
      context_{lifecycle_, files_, lending_, tuner_, pressure_, agent_starts_, leaks_, events_, clock, std::move(host_report), std::move(daemon_info),
               [](long pid) { return monitor::read_process_identity(pid); }, lifecycle::lookup_user, nullptr, nullptr},
      router_(context_) {
    files_.set_user_lookup(lifecycle::lookup_user);
    register_allocation_operations(router_);
    register_conflict_operations(router_);
    register_monitoring_operations(router_);
    register_node_operations(router_);
    register_history_operations(router_);
    register_analytics_operations(router_);
    register_planning_operations(router_);
    register_cluster_operations(router_);
}

void Service::set_history(history::History* history) {
    context_.history = history;
    lifecycle_.set_observers(context_.monitoring, history);
    if (context_.monitoring) context_.monitoring->set_history(history);
}

void Service::set_user_lookup(Context::LookupUserFn lookup) {
    context_.lookup_user = lookup;
    files_.set_user_lookup(std::move(lookup));
}

void Service::on_sample() {
    files_.save_if_changed();
    try {
        leaks_.on_tick();
    } catch (const std::exception& e) {
        spdlog::error("leak detection pass failed: {}", e.what());
    }
    auto* monitoring = context_.monitoring;
    if (!monitoring) return;
    try {
        monitoring->sample(context_.clock());
    } catch (const std::exception& e) {
        spdlog::error("sampling pass failed: {}", e.what());
    }
    try {
        pressure_.on_sample(*monitoring);
    } catch (const std::exception& e) {
        spdlog::error("pressure responder pass failed: {}", e.what());
    }
    try {
        lifecycle_.on_storage_pass();
    } catch (const std::exception& e) {
        spdlog::error("temporary directories pass failed: {}", e.what());
    }
    try {
        lending_.on_sample(monitoring->latest() ? &*monitoring->latest() : nullptr);
        tuner_.on_sample(&monitoring->probes());
    } catch (const std::exception& e) {
        spdlog::error("balance/tune pass failed: {}", e.what());
    }
}

} // namespace resmgr::server
