#include "metrics/families.hpp"

#include <algorithm>
#include <chrono>
#include <limits>

#include "core/holdings.hpp"

namespace resmgr::metrics {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

namespace {

void add_pressure(NodeFigures& node, const std::string& resource, const std::optional<monitor::Pressure>& pressure) {
    if (!pressure) return;
    node.pressure.push_back({resource, "some", pressure->some.avg10 / 100, static_cast<double>(pressure->some.total_usec) / 1e6});
    if (pressure->full)
        node.pressure.push_back({resource, "full", pressure->full->avg10 / 100, static_cast<double>(pressure->full->total_usec) / 1e6});
}

void add_usage(AllocationFigures& f, const monitor::GroupUsage& usage) {
    const monitor::GroupSample& s = usage.sample;
    f.cpu_cores = usage.cpu_cores;
    if (s.cpu_stat) {
        if (s.cpu_stat->usage_usec) f.cpu_usage_seconds = static_cast<double>(*s.cpu_stat->usage_usec) / 1e6;
        if (s.cpu_stat->throttled_usec) f.throttled_seconds = static_cast<double>(*s.cpu_stat->throttled_usec) / 1e6;
        f.throttled_periods = s.cpu_stat->nr_throttled;
    }
    f.memory_bytes = s.memory_current_bytes;
    if (s.memory_events) f.oom_kills = s.memory_events->oom_kill;
    f.pids = s.pids_current;
}

// Builds one family; `add` appends its series.
class FamilyBuilder {
public:
    FamilyBuilder(std::vector<MetricFamily>& out, std::string name, std::string help, MetricType type, size_t series = 1) : out_(out) {
        out_.push_back(MetricFamily{std::move(name), std::move(help), type, {}});
        out_.back().metric.reserve(series);
    }
    ~FamilyBuilder() {
        if (out_.back().metric.empty()) out_.pop_back(); // no series: no family (a bare HELP line says nothing)
    }
    FamilyBuilder(const FamilyBuilder&) = delete;
    FamilyBuilder& operator=(const FamilyBuilder&) = delete;

    void add(double value, std::vector<ClientMetric::Label> labels = {}) {
        ClientMetric m;
        m.label = std::move(labels);
        if (out_.back().type == MetricType::Counter) m.counter.value = value;
        else m.gauge.value = value;
        out_.back().metric.push_back(std::move(m));
    }
    template <class T>
    void add(const std::optional<T>& value, std::vector<ClientMetric::Label> labels = {}) {
        if (value) add(static_cast<double>(*value), std::move(labels));
    }
    void add_histogram(const Histogram& h, std::vector<ClientMetric::Label> labels) {
        ClientMetric m;
        m.label = std::move(labels);
        m.histogram.sample_count = h.count();
        m.histogram.sample_sum = h.sum();
        std::uint64_t cumulative = 0;
        for (size_t i = 0; i < h.bounds().size(); ++i) {
            cumulative += h.counts()[i];
            m.histogram.bucket.push_back({cumulative, h.bounds()[i]});
        }
        m.histogram.bucket.push_back({h.count(), std::numeric_limits<double>::infinity()});
        out_.back().metric.push_back(std::move(m));
    }

private:
    std::vector<MetricFamily>& out_;
};

void node_families(std::vector<MetricFamily>& out, const NodeFigures& n) {
    using T = MetricType;
    FamilyBuilder(out, "resmgr_last_sample_timestamp_seconds", "Unix time of the last sampling pass", T::Gauge).add(n.sample_time_seconds);
    FamilyBuilder(out, "resmgr_node_cpu_busy_ratio", "Share of the node's CPU time that was busy between the last two passes (/proc/stat)",
                  T::Gauge).add(n.cpu_busy_ratio);
    FamilyBuilder(out, "resmgr_node_memory_total_bytes", "MemTotal (/proc/meminfo)", T::Gauge).add(n.memory_total_bytes);
    FamilyBuilder(out, "resmgr_node_memory_available_bytes", "MemAvailable (/proc/meminfo)", T::Gauge).add(n.memory_available_bytes);
    {
        FamilyBuilder avg(out, "resmgr_node_pressure_avg10_ratio", "Share of wall time stalled over the last 10 s (/proc/pressure/*)", T::Gauge);
        for (const auto& p : n.pressure) avg.add(p.avg10_ratio, {{"resource", p.resource}, {"kind", p.kind}});
    }
    {
        FamilyBuilder total(out, "resmgr_node_pressure_stalled_seconds_total", "Time stalled since boot (/proc/pressure/* total)", T::Counter);
        for (const auto& p : n.pressure) total.add(p.stalled_seconds, {{"resource", p.resource}, {"kind", p.kind}});
    }
    FamilyBuilder(out, "resmgr_capacity_cpu_cores", "CPU cores admission may give: the node's minus the system reserve", T::Gauge)
        .add(n.cpu_capacity_cores);
    FamilyBuilder(out, "resmgr_allocated_cpu_cores", "CPU cores held by allocations (the ledger)", T::Gauge).add(n.cpu_allocated_cores);
    FamilyBuilder(out, "resmgr_capacity_memory_bytes", "Memory admission may give: MemTotal minus the system reserve", T::Gauge)
        .add(static_cast<double>(n.memory_capacity_bytes));
    FamilyBuilder(out, "resmgr_allocated_memory_bytes", "Memory held by allocations (the ledger)", T::Gauge)
        .add(static_cast<double>(n.memory_allocated_bytes));
    FamilyBuilder(out, "resmgr_queue_length", "Requests waiting in the queue", T::Gauge).add(static_cast<double>(n.queue_length));
    {
        FamilyBuilder by_status(out, "resmgr_allocations", "Allocations in the ledger by status", T::Gauge);
        for (const auto& [status, count] : n.allocations_by_status) by_status.add(static_cast<double>(count), {{"status", status}});
    }
    FamilyBuilder(out, "resmgr_conflicts_active", "File conflicts recorded and not resolved", T::Gauge).add(static_cast<double>(n.active_conflicts));
}

void allocation_families(std::vector<MetricFamily>& out, const std::vector<AllocationFigures>& all, const std::set<std::string>& ended) {
    std::vector<const AllocationFigures*> allocations;
    for (const auto& a : all)
        if (!ended.contains(a.id)) allocations.push_back(&a);
    using T = MetricType;
    auto labels = [](const AllocationFigures& a) {
        return std::vector<ClientMetric::Label>{{"allocation", a.id}, {"workflow", a.workflow}, {"priority", a.priority}};
    };
    struct Series {
        const char* name;
        const char* help;
        T type;
        std::optional<double> (*value)(const AllocationFigures&);
    };
    static const Series kSeries[] = {
        {"resmgr_allocation_cpu_limit_cores", "CPU cores the allocation holds (absent: no CPU cap)", T::Gauge,
         [](const AllocationFigures& a) { return a.cpu_limit_cores > 0 ? std::optional<double>(a.cpu_limit_cores) : std::nullopt; }},
        {"resmgr_allocation_memory_limit_bytes", "Memory the allocation holds (absent: no memory cap)", T::Gauge,
         [](const AllocationFigures& a) {
             return a.memory_limit_bytes > 0 ? std::optional<double>(static_cast<double>(a.memory_limit_bytes)) : std::nullopt;
         }},
        {"resmgr_allocation_cpu_cores", "Mean CPU cores used between the last two passes (cpu.stat)", T::Gauge,
         [](const AllocationFigures& a) { return a.cpu_cores; }},
        {"resmgr_allocation_cpu_usage_seconds_total", "CPU time used by the group (cpu.stat usage_usec)", T::Counter,
         [](const AllocationFigures& a) { return a.cpu_usage_seconds; }},
        {"resmgr_allocation_cpu_throttled_seconds_total", "Time the group was throttled at its cpu.max (cpu.stat throttled_usec)", T::Counter,
         [](const AllocationFigures& a) { return a.throttled_seconds; }},
        {"resmgr_allocation_cpu_throttled_periods_total", "Periods in which the group was throttled (cpu.stat nr_throttled)", T::Counter,
         [](const AllocationFigures& a) { return a.throttled_periods ? std::optional<double>(static_cast<double>(*a.throttled_periods)) : std::nullopt; }},
        {"resmgr_allocation_memory_bytes", "Memory used by the group (memory.current)", T::Gauge,
         [](const AllocationFigures& a) { return a.memory_bytes ? std::optional<double>(static_cast<double>(*a.memory_bytes)) : std::nullopt; }},
        {"resmgr_allocation_oom_kills_total", "Processes the OOM killer killed in the group (memory.events oom_kill)", T::Counter,
         [](const AllocationFigures& a) { return a.oom_kills ? std::optional<double>(static_cast<double>(*a.oom_kills)) : std::nullopt; }},
        {"resmgr_allocation_pids", "Tasks in the group (pids.current)", T::Gauge,
         [](const AllocationFigures& a) { return a.pids ? std::optional<double>(static_cast<double>(*a.pids)) : std::nullopt; }},
    };
    {
        FamilyBuilder info(out, "resmgr_allocation_info", "1 for each allocation that holds capacity, with its status", T::Gauge,
                           allocations.size());
        for (const auto* a : allocations) {
            auto l = labels(*a);
            l.push_back({"status", a->status});
            info.add(1, std::move(l));
        }
    }
    for (const auto& s : kSeries) {
        FamilyBuilder family(out, s.name, s.help, s.type, allocations.size());
        for (const auto* a : allocations) family.add(s.value(*a), labels(*a));
    }
}

void count_families(std::vector<MetricFamily>& out, const Counts& c) {
    using T = MetricType;
    {
        FamilyBuilder decisions(out, "resmgr_admission_decisions_total",
                                "Answers to allocate requests: allocated, queued, or the error code of the refusal", T::Counter);
        for (const auto& [key, n] : c.admissions) decisions.add(static_cast<double>(n), {{"priority", key.first}, {"outcome", key.second}});
    }
    {
        FamilyBuilder latency(out, "resmgr_admission_duration_seconds",
                              "Time from an allocate request to its answer (admission, group, journal record)", T::Histogram);
        for (const auto& [outcome, h] : c.admission_latency) latency.add_histogram(h, {{"outcome", outcome}});
    }
    {
        FamilyBuilder conflicts(out, "resmgr_conflicts_total",
                                "Conflicts: opens of held files the guard reported, and allocations refused a held file or workflow", T::Counter);
        for (const auto& [source, n] : c.conflicts) conflicts.add(static_cast<double>(n), {{"source", source}});
    }
    {
        FamilyBuilder guard(out, "resmgr_file_guard_decisions_total",
                            "Opens and changes of held files from outside the holder, by what the guard did (denied, queued, ...)", T::Counter);
        for (const auto& [decision, n] : c.guard_decisions) guard.add(static_cast<double>(n), {{"decision", decision}});
    }
    FamilyBuilder(out, "resmgr_oom_kill_events_total", "OOM kill events reported (each for one or more kills in one allocation)", T::Counter)
        .add(static_cast<double>(c.oom_kill_events));
    FamilyBuilder(out, "resmgr_preemptions_total", "Allocations preempted (paused, degraded or killed) for a higher priority", T::Counter)
        .add(static_cast<double>(c.preemptions));
    FamilyBuilder(out, "resmgr_sampling_passes_total", "Sampling passes since resmgrd started", T::Counter).add(static_cast<double>(c.sampling_passes));
}

} // namespace

PassFigures figures_of(const core::Ledger& ledger, const monitor::Snapshot* snapshot, std::size_t active_conflicts) {
    PassFigures pass;
    NodeFigures& node = pass.node;
    const core::Availability available = ledger.admission().availability();
    node.cpu_capacity_cores = available.cpu_total - available.cpu_reserved;
    node.cpu_allocated_cores = available.cpu_allocated;
    node.memory_capacity_bytes = available.memory_total - available.memory_reserved;
    node.memory_allocated_bytes = available.memory_allocated;
    node.active_conflicts = active_conflicts;
    if (snapshot) {
        node.sample_time_seconds = std::chrono::duration<double>(snapshot->time.time_since_epoch()).count();
        if (snapshot->node.cpu_utilization_percent) node.cpu_busy_ratio = *snapshot->node.cpu_utilization_percent / 100;
        if (snapshot->node.memory) {
            node.memory_total_bytes = snapshot->node.memory->total_bytes;
            node.memory_available_bytes = snapshot->node.memory->available_bytes;
        }
        add_pressure(node, "cpu", snapshot->node.cpu_pressure);
        add_pressure(node, "memory", snapshot->node.memory_pressure);
        add_pressure(node, "io", snapshot->node.io_pressure);
    }
    for (const auto& [id, a] : ledger.allocations()) {
        ++node.allocations_by_status[to_string(a.status)];
        if (a.status == AllocationStatus::queued) ++node.queue_length;
        if (!core::holds_capacity(a)) continue;
        AllocationFigures f;
        f.id = id;
        f.workflow = a.workflow_id;
        f.priority = a.priority.band_name();
        f.status = to_string(a.status);
        f.cpu_limit_cores = a.resources.cpu_cores;
        f.memory_limit_bytes = a.resources.memory_bytes;
        if (snapshot)
            if (auto it = snapshot->groups.find(id); it != snapshot->groups.end()) add_usage(f, it->second);
        pass.allocations.push_back(std::move(f));
    }
    return pass;
}

void Histogram::observe(double value) {
    auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value); // first bound >= value: Prometheus' le
    if (it != bounds_.end()) ++counts_[static_cast<size_t>(it - bounds_.begin())];
    ++count_;
    sum_ += value;
}

std::vector<double> Counts::latency_bounds() {
    return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
}

std::vector<MetricFamily> families(const PassFigures& pass, const Counts& counts, const std::set<std::string>& ended) {
    std::vector<MetricFamily> out;
    out.reserve(32); // every family this file builds
    node_families(out, pass.node);
    allocation_families(out, pass.allocations, ended);
    count_families(out, counts);
    return out;
}

} // namespace resmgr::metrics
