// Sampling passes, thresholds, the agent pool and the monitoring operations.
#include "server/monitoring.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include <spdlog/spdlog.h>

#include "monitor/proc.hpp"
#include "resmgr/protocol.hpp"

namespace resmgr::server {
namespace {

using nlohmann::json;

constexpr double kGiB = 1024.0 * 1024 * 1024;

double round3(double v) { return std::round(v * 1000) / 1000; }
double gib(std::uint64_t bytes) { return round3(static_cast<double>(bytes) / kGiB); }

json or_null(const std::optional<double>& v) { return v ? json(round3(*v)) : json(nullptr); }

int syslog_priority(const std::string& severity) {
    if (severity == "critical") return LOG_CRIT;
    if (severity == "warning") return LOG_WARNING;
    return LOG_NOTICE;
}

// used / allocated, or null when nothing was allocated (no cap means no efficiency to speak of).
json efficiency(std::optional<double> used, double allocated) {
    if (!used || allocated <= 0) return nullptr;
    return round3(*used / allocated * 100);
}

} // namespace

std::string to_string(Agent::State state) {
    switch (state) {
    case Agent::State::active: return "active";
    case Agent::State::idle: return "idle";
    case Agent::State::exited: return "exited";
    case Agent::State::failed: return "failed";
    }
    return "unknown";
}

json Agent::to_json() const {
    return {{"allocation_id", allocation_id}, {"workflow_id", workflow_id}, {"name", name}, {"pid", pid},
            {"state", to_string(state)}, {"started", format_timestamp(started)}, {"last_active", format_timestamp(last_active)},
            {"cpu_cores_used", round3(cpu_cores)}, {"exit_status", exit_status ? json(*exit_status) : json(nullptr)},
            {"reason", reason.empty() ? json(nullptr) : json(reason)}, {"cgroup_path", cgroup_dir}};
}

Monitoring::Monitoring(const core::Ledger& ledger, cgroup::CgroupBackend& backend, Options options, EmitFn emit)
    : ledger_(ledger), backend_(backend), options_(std::move(options)), emit_(std::move(emit)), sampler_(options_.sources),
      thresholds_(monitor::threshold_rules(ledger.policy())) {
    const auto& p = ledger.policy();
    if (!options_.history_path.empty()) history_.emplace(options_.history_path, p.history_max_bytes, p.history_max_age);
}

void Monitoring::set_probes(bpf::Probes* probes, std::string status, bpf::ToolClasses classes) {
    probes_ = probes;
    probes_status_ = std::move(status);
    tally_ = bpf::ToolTally(std::move(classes));
}

void Monitoring::consume_process_events() {
    if (!probes_) return;
    probes_->consume([this](const bpf::ProcessEvent& e) {
        if (e.kind == bpf::EventKind::exec) {
            tally_.record_exec(e.cgroup_id, e.comm);
            running_tools_[e.tgid] = {e.cgroup_id, tally_.classes().classify(e.comm).value_or("")};
        } else if (e.kind == bpf::EventKind::exit) {
            running_tools_.erase(e.tgid);
        }
    });
}

void Monitoring::sync_probe_watches(const std::vector<monitor::GroupProbe>& allocation_groups, bool force) {
    if (!probes_) return;
    std::vector<std::string> dirs_now;
    for (const auto& group : allocation_groups) dirs_now.push_back(group.dir);
    if (!force && dirs_now == watched_groups_) return;
    watched_groups_ = std::move(dirs_now);
    std::map<std::uint64_t, std::string> wanted;
    for (const auto& group : allocation_groups) {
        // Processes live in the leaves (main, agent-*), and the probes key on a task's own group.
        std::vector<std::string> dirs{group.dir};
        std::error_code ec;
        for (const auto& entry : std::filesystem::directory_iterator(group.dir, ec))
            if (entry.is_directory(ec)) dirs.push_back(entry.path().string());
        for (const auto& dir : dirs)
            if (auto id = bpf::cgroup_id_of(dir)) wanted[*id] = group.key;
    }
    for (auto it = watched_.begin(); it != watched_.end();) {
        if (wanted.count(it->first)) {
            ++it;
            continue;
        }
        probes_->unwatch(it->first);
        tally_.forget(it->first);
        std::erase_if(running_tools_, [&](const auto& entry) { return entry.second.cgroup_id == it->first; });
        it = watched_.erase(it);
    }
    for (const auto& [id, key] : wanted)
        if (!watched_.count(id) && probes_->watch(id)) watched_[id] = key;
}

json Monitoring::tool_instances() const {
    if (!probes_) return nullptr;
    json running = json::object(), started = json::object();
    for (const auto& category : tally_.classes().categories()) running[category] = 0, started[category] = 0;
    for (const auto& [_, tool] : running_tools_)
        if (!tool.category.empty()) running[tool.category] = running[tool.category].get<int>() + 1;
    for (const auto& [id, _] : watched_)
        for (const auto& [category, n] : tally_.counts(id).by_category) started[category] = started[category].get<std::uint64_t>() + n;
    json out = running;
    out["started"] = started; // execs since each allocation began, by category
    out["source"] = "ebpf exec/exit events in allocation groups";
    return out;
}

json Monitoring::probe_figures(const std::string& allocation_id) const {
    if (!probes_) return {{"unavailable", probes_status_}};
    bpf::Counters total;
    bpf::RunqLatency runq;
    bpf::ToolCounts tools;
    for (const auto& [id, key] : watched_) {
        if (key != allocation_id) continue;
        if (auto c = probes_->counters(id)) {
            total.execs += c->execs;
            total.forks += c->forks;
            total.exits += c->exits;
            total.oom_kills += c->oom_kills;
        }
        if (auto h = probes_->runq_latency(id)) {
            for (size_t i = 0; i < h->buckets.size(); ++i) runq.buckets[i] += h->buckets[i];
            runq.count += h->count;
            runq.total_us += h->total_us;
        }
        auto t = tally_.counts(id);
        for (const auto& [category, n] : t.by_category) tools.by_category[category] += n;
        tools.unclassified += t.unclassified;
    }
    json latency = nullptr;
    if (runq.count > 0)
        latency = {{"samples", runq.count}, {"mean_us", round3(static_cast<double>(runq.total_us) / static_cast<double>(runq.count))},
                   {"p50_us", round3(runq.p50_us())}, {"p99_us", round3(runq.p99_us())}};
    return {{"processes", {{"execs", total.execs}, {"forks", total.forks}, {"exits", total.exits}}},
            {"tool_instances_started", tools.to_json()},
            {"runq_latency", latency}};
}

std::vector<monitor::GroupProbe> Monitoring::allocation_groups() const {
    std::vector<monitor::GroupProbe> groups;
    for (const auto& [id, a] : ledger_.allocations()) {
        if (!core::Ledger::holds_capacity(a)) continue;
        if (auto dir = backend_.group_path(id); !dir.empty()) groups.push_back({id, dir});
    }
    return groups;
}

void Monitoring::sample(TimePoint now) {
    auto probes = allocation_groups();
    sync_probe_watches(probes);
    for (const auto& [key, agent] : agents_)
        if (agent.live() && !agent.cgroup_dir.empty()) probes.push_back({key, agent.cgroup_dir});
    auto snap = sampler_.sample(probes, now);
    if (peaks_.samples == 0) peaks_.since = now;

    update_agents(snap, now);
    report_oom_kills(snap, now);
    const auto& node = snap.node;
    std::optional<double> memory_percent;
    if (node.memory) memory_percent = node.memory->used_percent();
    int max_agents = ledger_.policy().max_agents;
    int live = 0;
    for (const auto& [_, agent] : agents_) live += agent.live();
    std::optional<double> agent_percent;
    if (max_agents > 0) agent_percent = 100.0 * live / max_agents;
    observe_threshold("cpu", node.cpu_utilization_percent, now);
    observe_threshold("memory", memory_percent, now);
    observe_threshold("agent_pool", agent_percent, now);

    if (node.cpu_utilization_percent) {
        peaks_.cpu_peak = std::max(peaks_.cpu_peak, *node.cpu_utilization_percent);
        peaks_.cpu_sum += *node.cpu_utilization_percent;
        ++peaks_.samples;
    }
    if (memory_percent) peaks_.memory_peak = std::max(peaks_.memory_peak, *memory_percent);
    peaks_.agents_peak = std::max(peaks_.agents_peak, live);
    if (peaks_.samples == 0) peaks_.samples = 1; // the first pass has no CPU rate yet, but it started the clock
    append_history(snap);
    latest_ = std::move(snap);
}

void Monitoring::observe_threshold(const std::string& metric, std::optional<double> value, TimePoint now) {
    if (!value) return;
    auto change = thresholds_.observe(metric, *value, now);
    if (!change) return;
    using Kind = monitor::ThresholdChange::Kind;
    bool cleared = change->kind == Kind::cleared;
    char text[160];
    std::snprintf(text, sizeof text, cleared ? "%s utilization %.1f%% is back below %.1f%%" : "%s utilization %.1f%% is at or above %.1f%%",
                  metric.c_str(), *value, cleared ? change->rule.threshold - change->rule.clear_margin : change->rule.threshold);
    auto e = events::Event::make(cleared ? events::EventType::threshold_cleared : events::EventType::threshold_raised, text);
    e.time = now;
    e.priority = cleared ? LOG_INFO : syslog_priority(change->rule.severity);
    e.metric = metric;
    e.value = round3(*value);
    e.threshold = change->rule.threshold;
    e.details = {{"severity", change->rule.severity}, {"repeat", change->kind == Kind::repeated}};
    emit_(std::move(e));
}

void Monitoring::update_agents(const monitor::Snapshot& snap, TimePoint now) {
    const auto idle_after = ledger_.policy().agent_idle_after;
    for (auto& [key, agent] : agents_) {
        if (!agent.live()) continue;
        auto it = snap.groups.find(key);
        if (it == snap.groups.end()) {
            // No group to watch (accounting backend): only the wrapper's report ends the agent.
            continue;
        }
        const auto& sample = it->second.sample;
        agent.cpu_cores = it->second.cpu_cores.value_or(0);
        // 1 ms of CPU per second: a shell waiting on input uses far less, a working agent far more.
        if (agent.cpu_cores > 0.001) agent.last_active = now;
        if (sample.memory_events && sample.memory_events->oom_kill > 0) {
            agent.state = Agent::State::failed;
            agent.reason = "oom_kill";
            continue;
        }
        if (sample.cgroup_events && !sample.cgroup_events->populated) {
            // Gone without a report from its resmgr-run: exited, status unknown.
            agent.state = Agent::State::exited;
            agent.reason = "group emptied without an exit report";
            continue;
        }
        agent.state = now - agent.last_active >= idle_after ? Agent::State::idle : Agent::State::active;
    }
}

void Monitoring::report_oom_kills(const monitor::Snapshot& snap, TimePoint now) {
    for (const auto& [id, a] : ledger_.allocations()) {
        auto it = snap.groups.find(id);
        if (it == snap.groups.end() || !it->second.sample.memory_events) continue;
        std::uint64_t kills = it->second.sample.memory_events->oom_kill;
        std::uint64_t& reported = oom_reported_[id];
        if (kills <= reported) continue;
        auto e = events::Event::make(events::EventType::oom_kill,
                                     "the OOM killer killed " + std::to_string(kills - reported) + " process(es) in " + id,
                                     a.workflow_id, id);
        e.time = now;
        e.details = {{"memory_events", it->second.sample.memory_events->to_json()}};
        reported = kills;
        emit_(std::move(e));
    }
}

std::uint64_t Monitoring::oom_kills_reported(const std::string& allocation_id) const {
    auto it = oom_reported_.find(allocation_id);
    return it == oom_reported_.end() ? 0 : it->second;
}

void Monitoring::append_history(const monitor::Snapshot& snap) {
    if (!history_) return;
    json allocations = json::object();
    for (const auto& [key, usage] : snap.groups) {
        const auto& s = usage.sample;
        allocations[key] = {{"cpu_cores_used", or_null(usage.cpu_cores)},
                            {"memory_bytes", s.memory_current_bytes ? json(*s.memory_current_bytes) : json(nullptr)},
                            {"pids", s.pids_current ? json(*s.pids_current) : json(nullptr)}};
    }
    const auto& node = snap.node;
    json record{{"time", format_timestamp(snap.time)},
                {"cpu_percent", or_null(node.cpu_utilization_percent)},
                {"memory_percent", node.memory ? json(round3(node.memory->used_percent())) : json(nullptr)},
                {"cpu_pressure_avg10", node.cpu_pressure ? json(node.cpu_pressure->some.avg10) : json(nullptr)},
                {"memory_pressure_avg10", node.memory_pressure ? json(node.memory_pressure->some.avg10) : json(nullptr)},
                {"io_pressure_avg10", node.io_pressure ? json(node.io_pressure->some.avg10) : json(nullptr)},
                {"live_agents", live_agents("")},
                {"groups", allocations}};
    try {
        history_->append(record);
    } catch (const std::exception& e) {
        spdlog::warn("usage history not recorded: {}", e.what());
    }
}

void Monitoring::check_agent_slot(const Allocation& a, const std::string& name) const {
    if (auto it = agents_.find(a.allocation_id + "/" + name); it != agents_.end() && it->second.live())
        throw ApiError(ErrorCode::CONFLICT, "Agent '" + name + "' is already running in allocation '" + a.allocation_id + "'",
                       "pid " + std::to_string(it->second.pid), {"agent"}, {"Pick another agent name"});
    int live = live_agents(a.allocation_id);
    if (live >= a.resources.agents)
        throw ApiError(ErrorCode::RESOURCE_EXHAUSTED, "Allocation '" + a.allocation_id + "' has no free agent slot",
                       std::to_string(live) + " of " + std::to_string(a.resources.agents) + " agent slot(s) in use", {"agents"},
                       {"Reallocate with more agents (resmgr reallocate ... '{\"resources\":{\"agents\":N}}')",
                        "Wait for an agent of the allocation to finish"});
}

void Monitoring::agent_started(const Allocation& a, const std::string& name, pid_t pid, TimePoint now) {
    Agent agent;
    agent.allocation_id = a.allocation_id;
    agent.workflow_id = a.workflow_id;
    agent.name = name;
    agent.pid = pid;
    agent.started = agent.last_active = now;
    if (!options_.cgroup_mount.empty() && !backend_.group_path(a.allocation_id).empty()) {
        try {
            auto path = monitor::parse_proc_cgroup_v2(monitor::read_text_file("/proc/" + std::to_string(pid) + "/cgroup"));
            agent.cgroup_dir = options_.cgroup_mount + path;
        } catch (const std::exception& e) {
            spdlog::warn("agent {} of {}: its group cannot be watched: {}", name, a.allocation_id, e.what());
        }
    }
    agents_[a.allocation_id + "/" + name] = std::move(agent);
}

bool Monitoring::agent_exited(const std::string& allocation_id, const std::string& name, std::optional<int> exit_status, TimePoint) {
    auto it = agents_.find(allocation_id + "/" + name);
    if (it == agents_.end()) return false;
    Agent& agent = it->second;
    agent.exit_status = exit_status;
    if (agent.state == Agent::State::failed) return true; // the OOM kill seen by sampling stays the reason
    if (exit_status && *exit_status != 0) {
        agent.state = Agent::State::failed;
        agent.reason = *exit_status > 128 ? "killed by signal " + std::to_string(*exit_status - 128)
                                          : "exited with status " + std::to_string(*exit_status);
    } else {
        agent.state = Agent::State::exited;
        agent.reason.clear();
    }
    return true;
}

int Monitoring::live_agents(const std::string& allocation_id) const {
    int n = 0;
    for (const auto& [_, agent] : agents_) n += agent.live() && (allocation_id.empty() || agent.allocation_id == allocation_id);
    return n;
}

void Monitoring::allocation_started(const std::string& allocation_id, TimePoint now) {
    if (started_.count(allocation_id)) return;
    GroupStart start{now, std::nullopt, ""};
    const std::string dir = backend_.group_path(allocation_id);
    if (dir.empty()) {
        start.unavailable = "no cgroup on this backend";
    } else {
        const auto sample = monitor::read_group(dir, monitor::GroupFiles::periodic);
        if (sample.cpu_stat && sample.cpu_stat->usage_usec) start.cpu_usage_usec = *sample.cpu_stat->usage_usec;
        else start.unavailable = "cpu.stat unreadable at the start: " + (sample.unavailable.empty() ? std::string("no usage_usec") : sample.unavailable.front());
    }
    started_[allocation_id] = std::move(start);
}

json Monitoring::final_usage(const std::string& allocation_id, TimePoint now) const {
    json out{{"cpu_usage_usec", nullptr}, {"cpu_cores_mean", nullptr}, {"wall_seconds", nullptr}, {"memory_peak_bytes", nullptr}};
    json unavailable = json::array();
    const std::string dir = backend_.group_path(allocation_id);
    if (dir.empty()) {
        out["unavailable"] = json::array({"no cgroup on this backend"});
        return out;
    }
    const auto sample = monitor::read_group(dir, monitor::GroupFiles::periodic);
    const auto start = started_.find(allocation_id);
    std::optional<std::uint64_t> used_now;
    if (sample.cpu_stat && sample.cpu_stat->usage_usec) used_now = *sample.cpu_stat->usage_usec;
    if (used_now) out["cpu_usage_usec"] = *used_now;
    if (start == started_.end()) {
        unavailable.push_back("cpu_cores_mean: the group's start was not observed");
    } else if (!start->second.cpu_usage_usec || !used_now) {
        unavailable.push_back("cpu_cores_mean: " + (start->second.unavailable.empty() ? std::string("cpu.stat unreadable at the end")
                                                                                      : start->second.unavailable));
    } else {
        const double wall = std::chrono::duration<double>(now - start->second.time).count();
        out["wall_seconds"] = round3(wall);
        // A counter that went back (a group re-made under the same name) gives no figure.
        if (wall > 0 && *used_now >= *start->second.cpu_usage_usec)
            out["cpu_cores_mean"] = round3(static_cast<double>(*used_now - *start->second.cpu_usage_usec) / 1e6 / wall);
    }
    // memory.peak (Linux 5.19+, with the memory controller): the high-water mark over the group's life.
    try {
        out["memory_peak_bytes"] = monitor::parse_single_value(monitor::read_text_file(dir + "/memory.peak"), "memory.peak");
    } catch (const monitor::ParseError& e) {
        unavailable.push_back(std::string("memory_peak_bytes: ") + e.what());
    }
    for (const auto& why : sample.unavailable) unavailable.push_back(why);
    out["unavailable"] = unavailable;
    return out;
}

void Monitoring::forget_allocation(const std::string& allocation_id) {
    started_.erase(allocation_id);
    oom_reported_.erase(allocation_id);
    sampler_.forget(allocation_id);
    for (auto& [_, agent] : agents_) {
        if (agent.allocation_id != allocation_id || !agent.live()) continue;
        agent.state = Agent::State::exited;
        agent.reason = "allocation ended";
    }
    std::vector<std::pair<TimePoint, std::string>> ended;
    for (const auto& [key, agent] : agents_)
        if (!agent.live()) ended.emplace_back(agent.started, key);
    if (ended.size() <= kMaxEndedAgents) return;
    std::sort(ended.begin(), ended.end());
    for (size_t i = 0; i + kMaxEndedAgents < ended.size(); ++i) agents_.erase(ended[i].second);
}

json Monitoring::agent_pool() const {
    int active = 0, idle = 0, failed = 0, slots = 0;
    for (const auto& [_, agent] : agents_) {
        active += agent.state == Agent::State::active;
        idle += agent.state == Agent::State::idle;
        failed += agent.state == Agent::State::failed;
    }
    for (const auto& [_, a] : ledger_.allocations())
        if (core::Ledger::holds_capacity(a)) slots += a.resources.agents;
    // Reserved: slots allocations hold that no live agent fills yet.
    int reserved = std::max(0, slots - active - idle);
    return {{"max_agents", ledger_.policy().max_agents}, {"active_agents", active}, {"idle_agents", idle},
            {"reserved_agents", reserved}, {"failed_agents", failed}};
}

json Monitoring::compute() const {
    auto avail = ledger_.availability();
    const monitor::NodeSample* node = latest_ ? &latest_->node : nullptr;
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

json Monitoring::storage() const {
    json filesystems = json::array();
    json primary = nullptr;
    if (latest_) {
        for (const auto& d : latest_->node.disks) {
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

json Monitoring::system_resources() const {
    std::set<std::string> active, queued, paused;
    for (const auto& [_, a] : ledger_.allocations()) {
        if (a.status == AllocationStatus::active) active.insert(a.workflow_id);
        if (a.status == AllocationStatus::queued) queued.insert(a.workflow_id);
        if (a.status == AllocationStatus::paused) paused.insert(a.workflow_id);
    }
    json compute_part = compute();
    compute_part["storage"] = storage();
    json out{{"system_resources",
              {{"compute", compute_part},
               {"workflow_resources",
                {{"agent_pool", agent_pool()},
                 {"concurrent_workflows", {{"active_workflows", active.size()}, {"queued_workflows", queued.size()},
                                           {"paused_workflows", paused.size()}}},
                 // Running now, by class, from the eBPF probes' exec/exit events; null without them.
                 {"tool_instances", tool_instances()}}}}},
             {"ebpf", probes_status_},
             {"thresholds", thresholds_.to_json()},
             {"sampled_at", latest_ ? json(format_timestamp(latest_->time)) : json(nullptr)},
             {"sample_interval", format_duration(interval())}};
    if (latest_) {
        const auto& node = latest_->node;
        out["pressure"] = {{"cpu", monitor::detail::json_or_null(node.cpu_pressure)},
                           {"memory", monitor::detail::json_or_null(node.memory_pressure)},
                           {"io", monitor::detail::json_or_null(node.io_pressure)}};
        out["unavailable"] = node.unavailable;
    } else {
        out["unavailable"] = json::array({"no sample taken yet"});
    }
    return out;
}

json Monitoring::allocation_usage(const Allocation& a) const {
    const monitor::GroupUsage* usage = nullptr;
    if (latest_)
        if (auto it = latest_->groups.find(a.allocation_id); it != latest_->groups.end()) usage = &it->second;
    json used = nullptr, throttling = nullptr, oom = nullptr, io = nullptr;
    json eff{{"cpu_percent", nullptr}, {"memory_percent", nullptr}};
    std::vector<std::string> unavailable;
    if (!usage) {
        unavailable.push_back(backend_.group_path(a.allocation_id).empty() ? "no cgroup on this backend" : "not sampled yet");
    } else {
        const auto& s = usage->sample;
        // memory.stat and io.stat are read now, not at every sampling pass.
        const monitor::GroupSample detail = monitor::read_group(usage->sample.dir, monitor::GroupFiles::detail);
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
        unavailable = s.unavailable;
        unavailable.insert(unavailable.end(), detail.unavailable.begin(), detail.unavailable.end());
    }
    json agents = json::array();
    for (const auto& [_, agent] : agents_)
        if (agent.allocation_id == a.allocation_id) agents.push_back(agent.to_json());
    return {{"allocation_id", a.allocation_id}, {"status", to_string(a.status)},
            {"allocated", {{"cpu_cores", a.resources.cpu_cores}, {"memory_bytes", a.resources.memory_bytes}, {"agents", a.resources.agents}}},
            {"used", used}, {"throttling", throttling}, {"memory_events", oom}, {"io", io}, {"efficiency", eff},
            {"agents", agents}, {"kernel_probes", probe_figures(a.allocation_id)}, {"unavailable", unavailable}};
}

json Monitoring::usage(const std::string& workflow_id, const json& ended) const {
    json allocations = json::array();
    // A total is known only when every part of it is: one unsampled allocation makes it null.
    std::optional<double> cpu_used = 0.0, memory_used = 0.0;
    double cpu_allocated = 0, memory_allocated = 0;
    std::set<std::string> not_measured;
    auto add = [](std::optional<double>& total, const json& part) {
        if (total && part.is_number()) *total += part.get<double>();
        else total.reset();
    };
    for (const auto& [_, a] : ledger_.allocations()) {
        if (a.workflow_id != workflow_id) continue;
        json u = allocation_usage(a);
        const json& used = u["used"];
        add(cpu_used, used.is_object() ? used["cpu_cores"] : json());
        add(memory_used, used.is_object() ? used["memory_bytes"] : json());
        for (const auto& why : u["unavailable"]) not_measured.insert(why.get<std::string>());
        cpu_allocated += a.resources.cpu_cores;
        memory_allocated += static_cast<double>(a.resources.memory_bytes);
        allocations.push_back(std::move(u));
    }
    if (allocations.empty() && ended.empty())
        throw ApiError(ErrorCode::NOT_FOUND, "Workflow '" + workflow_id + "' holds no allocation and none ended recently", {},
                       {"workflow_id"}, {"List live allocations with `resmgr status`"});
    if (allocations.empty()) cpu_used.reset(), memory_used.reset(); // nothing live to add up
    return {{"workflow_id", workflow_id},
            {"allocations", allocations},
            {"ended_allocations", ended},
            {"totals", {{"cpu_cores_allocated", cpu_allocated}, {"cpu_cores_used", or_null(cpu_used)},
                        {"memory_bytes_allocated", memory_allocated}, {"memory_bytes_used", or_null(memory_used)}}},
            {"efficiency", {{"cpu_percent", efficiency(cpu_used, cpu_allocated)}, {"memory_percent", efficiency(memory_used, memory_allocated)}}},
            {"not_measured", not_measured},
            {"sampled_at", latest_ ? json(format_timestamp(latest_->time)) : json(nullptr)}};
}

json Monitoring::capacity() const {
    auto avail = ledger_.availability();
    json st = storage();
    json analysis = nullptr;
    if (latest_)
        analysis = {{"since", format_timestamp(peaks_.since)},
                    {"samples", peaks_.samples},
                    {"peak_cpu_usage", round3(peaks_.cpu_peak)},
                    {"peak_memory_usage", round3(peaks_.memory_peak)},
                    {"peak_agent_usage", peaks_.agents_peak},
                    {"average_cpu_usage", round3(peaks_.cpu_sum / static_cast<double>(peaks_.samples))}};
    return {{"current_capacity", {{"cpu_cores", avail.cpu_total}, {"memory_gb", gib(avail.memory_total)},
                                  {"max_agents", avail.agents_max}, {"storage_gb", st.value("total_gb", json(nullptr))}}},
            {"allocatable", {{"cpu_cores", avail.cpu_total - avail.cpu_reserved}, {"memory_gb", gib(avail.memory_total - avail.memory_reserved)}}},
            {"allocated", {{"cpu_cores", round3(avail.cpu_allocated)}, {"memory_gb", gib(avail.memory_allocated)},
                           {"agents", avail.agents_allocated}}},
            {"available", {{"cpu_cores", round3(avail.cpu_available)}, {"memory_gb", gib(avail.memory_available)},
                           {"agents", avail.agents_available}}},
            {"utilization_analysis", analysis}};
}

json Monitoring::status_of(const std::string& type) const {
    if (type == "agents") {
        json list = json::array();
        for (const auto& [_, agent] : agents_) list.push_back(agent.to_json());
        return {{"agent_pool", agent_pool()}, {"agents", list}};
    }
    if (type == "cpu" || type == "memory") {
        json out = compute()[type == "cpu" ? "cpu_cores" : "memory"];
        json groups = json::object();
        if (latest_) {
            const auto& p = type == "cpu" ? latest_->node.cpu_pressure : latest_->node.memory_pressure;
            out["pressure"] = monitor::detail::json_or_null(p);
            for (const auto& [key, usage] : latest_->groups)
                groups[key] = type == "cpu" ? or_null(usage.cpu_cores)
                                            : monitor::detail::json_or_null(usage.sample.memory_current_bytes);
        }
        out[type == "cpu" ? "cpu_cores_used" : "memory_bytes_used"] = groups;
        out["threshold"] = thresholds_.to_json()[type];
        return {{type, out}};
    }
    if (type == "storage") return {{"storage", storage()}};
    if (type == "workflows") {
        std::map<std::string, json> by_workflow;
        for (const auto& [id, a] : ledger_.allocations()) {
            json& w = by_workflow[a.workflow_id];
            if (w.is_null()) w = {{"workflow_id", a.workflow_id}, {"allocations", json::array()}, {"cpu_cores", 0.0},
                                  {"memory_gb", 0.0}, {"agents", 0}, {"live_agents", 0}};
            w["allocations"].push_back({{"allocation_id", id}, {"status", to_string(a.status)}});
            if (core::Ledger::holds_capacity(a)) {
                w["cpu_cores"] = w["cpu_cores"].get<double>() + a.resources.cpu_cores;
                w["memory_gb"] = round3(w["memory_gb"].get<double>() + a.resources.memory_gb());
                w["agents"] = w["agents"].get<int>() + a.resources.agents;
            }
            w["live_agents"] = w["live_agents"].get<int>() + live_agents(id);
        }
        json list = json::array();
        for (auto& [_, w] : by_workflow) list.push_back(std::move(w));
        return {{"workflows", list}};
    }
    throw ApiError(ErrorCode::INVALID_REQUEST, "Unknown status type '" + type + "'", "expected agents, workflows, cpu, memory or storage",
                   {"resource_type"});
}

} // namespace resmgr::server
