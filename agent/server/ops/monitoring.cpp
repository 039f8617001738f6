// The monitoring operations in the seed's shapes: monitor system, status <type>, usage,
// capacity. Measured values only: null with a reason where the host gives none.
#include <algorithm>
#include <cmath>
#include <set>

#include "monitor/monitoring.hpp"
#include "server/router.hpp"

namespace resmgr::server {
namespace {

using nlohmann::json;

constexpr double kGiB = 1024.0 * 1024 * 1024;

double round3(double v) { return std::round(v * 1000) / 1000; }
double gib(std::uint64_t bytes) { return round3(static_cast<double>(bytes) / kGiB); }
json or_null(const std::optional<double>& v) { return v ? json(round3(*v)) : json(nullptr); }

// used / allocated, or null when nothing was allocated (no cap means no efficiency to speak of).
json efficiency(const std::optional<double>& used, double allocated) {
    if (!used || allocated <= 0) return nullptr;
    return round3(*used / allocated * 100);
}

json agent_pool(const monitor::Monitoring& m) {
    int active = 0, idle = 0, failed = 0, slots = 0;
    for (const auto& [_, agent] : m.agents().agents()) {
        active += agent.state == monitor::Agent::State::active;
        idle += agent.state == monitor::Agent::State::idle;
        failed += agent.state == monitor::Agent::State::failed;
    }
    for (const auto& [_, a] : m.ledger().allocations())
        if (core::holds_capacity(a)) slots += a.resources.agents;
    // Reserved: slots allocations hold that no live agent fills yet.
    int reserved = std::max(0, slots - active - idle);
    return {{"max_agents", m.ledger().policy().max_agents}, {"active_agents", active}, {"idle_agents", idle},
            {"reserved_agents", reserved}, {"failed_agents", failed}};
}

json compute(const monitor::Monitoring& m) {
    auto avail = m.ledger().admission().availability();
    const monitor::NodeSample* node = m.latest() ? &m.latest()->node : nullptr;
    json memory_used = nullptr, memory_available = nullptr;
    if (node && node->memory) {
        memory_used = round3(node->memory->used_percent());
        memory_available = gib(node->memory->available_bytes);
    }
    return {{"cpu_cores", {{"total", avail.cpu_total}, {"available", round3(avail.cpu_available)},
                           {"allocated", round3(avail.cpu_allocated)}, {"reserved", avail.cpu_reserved},
                           {"utilization_percent", node ? or_null(node->cpu_utilization_percent) : json(nullptr)}}},
            {"memory", {{"total_gb", gib(avail.memory_total)}, {"available_gb", gib(avail.memory_available)},
                        {"allocated_gb", gib(avail.memory_allocated)}, {"buffer_gb", gib(avail.memory_reserved)},
                        {"measured_available_gb", memory_available}, {"utilization_percent", memory_used}}}};
}

json storage(const monitor::Monitoring& m) {
    json filesystems = json::array();
    json primary = nullptr;
    if (m.latest()) {
        for (const auto& d : m.latest()->node.disks) {
            json f{{"path", d.path}, {"total_gb", gib(d.total_bytes)}, {"available_gb", gib(d.available_bytes)},
                   {"used_gb", gib(d.used_bytes)}, {"utilization_percent", round3(d.utilization_percent)}};
            if (primary.is_null()) primary = f;
            filesystems.push_back(f);
        }
    }
    if (primary.is_null()) primary = json::object();
    primary["filesystems"] = filesystems;
    return primary;
}

json system_resources(const monitor::Monitoring& m) {
    std::set<std::string> active, queued, paused;
    for (const auto& [_, a] : m.ledger().allocations()) {
        if (a.status == AllocationStatus::active) active.insert(a.workflow_id);
        if (a.status == AllocationStatus::queued) queued.insert(a.workflow_id);
        if (a.status == AllocationStatus::paused) paused.insert(a.workflow_id);
    }
    json compute_part = compute(m);
    compute_part["storage"] = storage(m);
    json out{{"system_resources",
              {{"compute", compute_part},
               {"workflow_resources",
                {{"agent_pool", agent_pool(m)},
                 {"concurrent_workflows", {{"active_workflows", active.size()}, {"queued_workflows", queued.size()},
                                           {"paused_workflows", paused.size()}}},
                 // Running now, by class, from the eBPF probes' exec/exit events; null without them.
                 {"tool_instances", m.probes().tool_instances()}}}}},
             {"ebpf", m.probes().status()},
             {"thresholds", m.thresholds().to_json()},
             {"sampled_at", m.latest() ? json(format_timestamp(m.latest()->time)) : json(nullptr)},
             {"sample_interval", format_duration(m.interval())}};
    if (m.latest()) {
        const auto& node = m.latest()->node;
        out["pressure"] = {{"cpu", monitor::detail::json_or_null(node.cpu_pressure)},
                           {"memory", monitor::detail::json_or_null(node.memory_pressure)},
                           {"io", monitor::detail::json_or_null(node.io_pressure)}};
        out["unavailable"] = node.unavailable;
    } else {
        out["unavailable"] = json::array({"no sample taken yet"});
    }
    return out;
}

json allocation_usage(const monitor::Monitoring& m, const Allocation& a) {
    const monitor::GroupUsage* usage = nullptr;
    if (m.latest())
        if (auto it = m.latest()->groups.find(a.allocation_id); it != m.latest()->groups.end()) usage = &it->second;
    json used = nullptr, throttling = nullptr, oom = nullptr, io = nullptr;
    json eff{{"cpu_percent", nullptr}, {"memory_percent", nullptr}};
    std::vector<std::string> unavailable;
    if (!usage || !usage->sample.dir) {
        unavailable.push_back(m.backend().group_path(a.allocation_id).empty() ? "no cgroup on this backend" : "not sampled yet");
    } else {
        const auto& s = usage->sample;
        // memory.stat and io.stat are read now, not at every sampling pass.
        const monitor::GroupSample detail = monitor::read_group(*usage->sample.dir, monitor::GroupFiles::detail);
        std::optional<double> memory;
        if (s.memory_current_bytes) memory = static_cast<double>(*s.memory_current_bytes);
        used = {{"cpu_cores", or_null(usage->cpu_cores)},
                {"memory_bytes", s.memory_current_bytes ? json(*s.memory_current_bytes) : json(nullptr)},
                {"memory", detail.memory_stat ? detail.memory_stat->to_json() : json(nullptr)},
                {"pids", s.pids_current ? json(*s.pids_current) : json(nullptr)},
                {"cpu_usage_usec", s.cpu_stat && s.cpu_stat->usage_usec ? json(*s.cpu_stat->usage_usec) : json(nullptr)}};
        if (s.cpu_stat && s.cpu_stat->nr_throttled)
            throttling = {{"nr_periods", monitor::detail::json_or_null(s.cpu_stat->nr_periods)},
                          {"nr_throttled", *s.cpu_stat->nr_throttled},
                          {"throttled_usec", monitor::detail::json_or_null(s.cpu_stat->throttled_usec)}};
        if (s.memory_events) oom = s.memory_events->to_json();
        if (detail.io_stat) io = detail.io_stat->to_json();
        eff = {{"cpu_percent", efficiency(usage->cpu_cores, a.resources.cpu_cores)},
               {"memory_percent", efficiency(memory, static_cast<double>(a.resources.memory_bytes))}};
        unavailable = s.reasons();
        unavailable.insert(unavailable.end(), detail.reasons().begin(), detail.reasons().end());
    }
    json agents = json::array();
    for (const auto& [_, agent] : m.agents().agents())
        if (agent.allocation_id == a.allocation_id) agents.push_back(agent.to_json());
    return {{"allocation_id", a.allocation_id}, {"status", to_string(a.status)},
            {"allocated", {{"cpu_cores", a.resources.cpu_cores}, {"memory_bytes", a.resources.memory_bytes}, {"agents", a.resources.agents}}},
            {"used", used}, {"throttling", throttling}, {"memory_events", oom}, {"io", io}, {"efficiency", eff},
            {"agents", agents}, {"kernel_probes", m.probes().figures(a.allocation_id)}, {"unavailable", unavailable}};
}

json usage(const monitor::Monitoring& m, const std::string& workflow_id, const json& ended, const json& runs) {
    json allocations = json::array();
    // A total is known only when every part of it is: one unsampled allocation makes it null.
    // A running sum that stays known only while every part is (plain fields: GCC 12 warns on
    // optional<double> arithmetic here).
    struct Total {
        double sum = 0;
        bool known = true;
        void add(const json& part) {
            if (known && part.is_number()) sum += part.get<double>();
            else known = false;
        }
        std::optional<double> value() const { return known ? std::optional<double>(sum) : std::nullopt; }
    } cpu_total, memory_total;
    double cpu_allocated = 0, memory_allocated = 0;
    std::set<std::string> not_measured;
    for (const auto& [_, a] : m.ledger().allocations()) {
        if (a.workflow_id != workflow_id) continue;
        json u = allocation_usage(m, a);
        const json& used = u["used"];
        cpu_total.add(used.is_object() ? used["cpu_cores"] : json());
        memory_total.add(used.is_object() ? used["memory_bytes"] : json());
        for (const auto& why : u["unavailable"]) not_measured.insert(why.get<std::string>());
        cpu_allocated += a.resources.cpu_cores;
        memory_allocated += static_cast<double>(a.resources.memory_bytes);
        allocations.push_back(std::move(u));
    }
    if (allocations.empty() && ended.empty() && runs.empty())
        throw ApiError(ErrorCode::NOT_FOUND, "Workflow '" + workflow_id + "' holds no allocation and has no recorded run", {},
                       {"workflow_id"}, {"List live allocations with `resmgr status`"});
    if (allocations.empty()) cpu_total.known = memory_total.known = false; // nothing live to add up
    const std::optional<double> cpu_used = cpu_total.value(), memory_used = memory_total.value();
    return {{"workflow_id", workflow_id},
            {"allocations", allocations},
            {"ended_allocations", ended},
            {"runs", runs},
            {"totals", {{"cpu_cores_allocated", cpu_allocated}, {"cpu_cores_used", or_null(cpu_used)},
                        {"memory_bytes_allocated", memory_allocated}, {"memory_bytes_used", or_null(memory_used)}}},
            {"efficiency", {{"cpu_percent", efficiency(cpu_used, cpu_allocated)}, {"memory_percent", efficiency(memory_used, memory_allocated)}}},
            {"not_measured", not_measured},
            {"sampled_at", m.latest() ? json(format_timestamp(m.latest()->time)) : json(nullptr)}};
}

json capacity(const monitor::Monitoring& m) {
    auto avail = m.ledger().admission().availability();
    json st = storage(m);
    json analysis = nullptr;
    if (m.latest())
        analysis = {{"since", format_timestamp(m.peaks().since)},
                    {"samples", m.peaks().samples},
                    {"peak_cpu_usage", round3(m.peaks().cpu_peak)},
                    {"peak_memory_usage", round3(m.peaks().memory_peak)},
                    {"peak_agent_usage", m.peaks().agents_peak},
                    {"average_cpu_usage", round3(m.peaks().cpu_sum / static_cast<double>(m.peaks().samples))}};
    return {{"current_capacity", {{"cpu_cores", avail.cpu_total}, {"memory_gb", gib(avail.memory_total)},
                                  {"max_agents", avail.agents_max}, {"storage_gb", st.value("total_gb", json(nullptr))}}},
            {"allocatable", {{"cpu_cores", avail.cpu_total - avail.cpu_reserved}, {"memory_gb", gib(avail.memory_total - avail.memory_reserved)}}},
            {"allocated", {{"cpu_cores", round3(avail.cpu_allocated)}, {"memory_gb", gib(avail.memory_allocated)},
                           {"agents", avail.agents_allocated}}},
            {"available", {{"cpu_cores", round3(avail.cpu_available)}, {"memory_gb", gib(avail.memory_available)},
                           {"agents", avail.agents_available}}},
            {"utilization_analysis", analysis}};
}

json status_of(const monitor::Monitoring& m, const std::string& type) {
    if (type == "agents") {
        json list = json::array();
        for (const auto& [_, agent] : m.agents().agents()) list.push_back(agent.to_json());
        return {{"agent_pool", agent_pool(m)}, {"agents", list}};
    }
    if (type == "cpu" || type == "memory") {
        json out = compute(m)[type == "cpu" ? "cpu_cores" : "memory"];
        json groups = json::object();
        if (m.latest()) {
            const auto& p = type == "cpu" ? m.latest()->node.cpu_pressure : m.latest()->node.memory_pressure;
            out["pressure"] = monitor::detail::json_or_null(p);
            for (const auto& [key, usage] : m.latest()->groups)
                groups[key] = type == "cpu" ? or_null(usage.cpu_cores)
                                            : monitor::detail::json_or_null(usage.sample.memory_current_bytes);
        }
        out[type == "cpu" ? "cpu_cores_used" : "memory_bytes_used"] = groups;
        out["threshold"] = m.thresholds().to_json()[type];
        return {{type, out}};
    }
    if (type == "storage") return {{"storage", storage(m)}};
    if (type == "workflows") {
        std::map<std::string, json> by_workflow;
        for (const auto& [id, a] : m.ledger().allocations()) {
            json& w = by_workflow[a.workflow_id];
            if (w.is_null()) w = {{"workflow_id", a.workflow_id}, {"allocations", json::array()}, {"cpu_cores", 0.0},
                                  {"memory_gb", 0.0}, {"agents", 0}, {"live_agents", 0}};
            w["allocations"].push_back({{"allocation_id", id}, {"status", to_string(a.status)}});
            if (core::holds_capacity(a)) {
                w["cpu_cores"] = w["cpu_cores"].get<double>() + a.resources.cpu_cores;
                w["memory_gb"] = round3(w["memory_gb"].get<double>() + a.resources.memory_gb());
                w["agents"] = w["agents"].get<int>() + a.resources.agents;
            }
            w["live_agents"] = w["live_agents"].get<int>() + m.agents().live(id);
        }
        json list = json::array();
        for (auto& [_, w] : by_workflow) list.push_back(std::move(w));
        return {{"workflows", list}};
    }
    throw ApiError(ErrorCode::INVALID_REQUEST, "Unknown status type '" + type + "'", "expected agents, workflows, cpu, memory or storage",
                   {"resource_type"});
}

SuccessBody monitor_system(const Call& call) {
    if (!call.request.resource_type.empty() && call.request.resource_type != "system")
        throw ApiError(ErrorCode::INVALID_REQUEST, "Unknown monitor target '" + call.request.resource_type + "'", "expected: system",
                       {"resource_type"});
    SuccessBody body;
    body.result = system_resources(call.ctx.require_monitoring());
    return body;
}

constexpr std::size_t kRunsShown = 100;

SuccessBody workflow_usage(const Call& call) {
    const std::string workflow = call.request.resource_type.empty() ? param_string(call.params(), "workflow_id") : call.request.resource_type;
    if (workflow.empty()) throw ApiError(ErrorCode::INVALID_REQUEST, "missing required field 'workflow_id'", {}, {"workflow_id"});
    json ended = json::array();
    for (const auto& e : call.ctx.lifecycle.ended())
        if (e.workflow_id == workflow) {
            const json record = e.record();
            ended.push_back({{"allocation_id", e.allocation_id}, {"ended_at", record.value("ended_at", json(nullptr))},
                             {"reason", record.value("reason", "")}, {"final", record.value("final", json::object())}});
        }
    // Every recorded run of the workflow (the caller's own, or anyone's for root), newest first;
    // kept in the history database, so also after a restart.
    json runs = json::array();
    std::optional<std::string> history_off;
    if (call.ctx.history && call.ctx.history->store()) {
        history::RunQuery query;
        if (call.peer.uid != 0) query.owner_uid = call.peer.uid;
        query.workflow_id = workflow;
        query.limit = kRunsShown;
        try {
            for (const auto& run : call.ctx.history->store()->runs(query)) runs.push_back(history::to_json(run));
        } catch (const history::HistoryError& e) {
            history_off = e.what();
        }
    } else if (call.ctx.history) {
        history_off = call.ctx.history->problem(); // configured, but its database is off
    }
    SuccessBody body;
    body.result = usage(call.ctx.require_monitoring(), workflow, ended, runs);
    if (history_off) body.recommendations.push_back("Runs not shown: " + *history_off);
    if (auto& missing = body.result["not_measured"]; !missing.empty())
        body.recommendations.push_back("Not measured: " + missing.dump() + " (see `resmgr doctor`)");
    return body;
}

SuccessBody node_capacity(const Call& call) {
    SuccessBody body;
    body.result = capacity(call.ctx.require_monitoring());
    return body;
}

SuccessBody status_of_resource(const Call& call) {
    SuccessBody body;
    body.result = status_of(call.ctx.require_monitoring(), call.request.resource_type);
    if (call.request.resource_type == "agents") body.result["agent_starts"] = call.ctx.agent_starts.to_json();
    return body;
}

// The pressure responder's state; without monitoring it says that no signal is read.
SuccessBody pressure_status(const Call& call) {
    SuccessBody body;
    body.result = call.ctx.pressure.to_json(call.ctx.monitoring);
    body.result["agent_starts"] = call.ctx.agent_starts.to_json();
    const std::string& source = body.result["signal_source"].get_ref<const std::string&>();
    if (source.rfind("polling", 0) == 0)
        body.recommendations.push_back("Signals are read once per sampling pass (monitoring_intervals.resource_check); a kernel that "
                                       "takes PSI triggers reacts to memory pressure within its trigger_window instead");
    return body;
}

} // namespace

void register_monitoring_operations(Router& router) {
    router.add("status", "pressure", pressure_status);
    router.add("monitor", "", monitor_system);
    router.add("usage", "", workflow_usage);
    router.add("capacity", "", node_capacity);
    router.add("status", "*", status_of_resource);
}

} // namespace resmgr::server
