// agent/metrics owns what resmgrd exports to Prometheus: the figures a sampling pass, the event
// stream and the answers to allocate requests yield (this file: plain data, and the pure function
// that turns them into metric families), the thread-safe store a scrape reads (metrics.hpp), and
// the two ways out, the /metrics HTTP endpoint and node_exporter's textfile (exposition.hpp).
// It only reads: the ledger, the sampler's snapshot, the conflict registry and the events it is
// handed, always on the daemon's loop thread; scrapes (on the HTTP server's threads) read copies.
// May call: core, monitor, events, conflicts (reading), model, and prometheus-cpp. Never the
// lifecycle's writers or the server; main.cpp wires it to the loop, the event bus and the router.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/metric_family.h>

#include "core/ledger.hpp"
#include "monitor/sampler.hpp"

namespace resmgr::metrics {

// One allocation that holds capacity, as the last pass saw it. Usage figures are empty where
// the host does not provide them (no cpu controller, accounting backend, group not sampled yet).
struct AllocationFigures {
    std::string id, workflow, priority, status; // priority: its band (critical, high, medium, low)
    double cpu_limit_cores = 0;                  // 0: no CPU cap
    std::uint64_t memory_limit_bytes = 0;        // 0: no memory cap
    std::optional<double> cpu_cores;             // mean cores used since the previous pass
    std::optional<double> cpu_usage_seconds;     // cpu.stat usage_usec
    std::optional<double> throttled_seconds;     // cpu.stat throttled_usec
    std::optional<std::uint64_t> throttled_periods; // cpu.stat nr_throttled
    std::optional<std::uint64_t> memory_bytes;   // memory.current
    std::optional<std::uint64_t> oom_kills;      // memory.events oom_kill
    std::optional<std::uint64_t> pids;           // pids.current
};

struct PressureFigures {
    std::string resource; // cpu, memory, io
    std::string kind;     // some, full
    double avg10_ratio = 0;
    double stalled_seconds = 0;
};

struct NodeFigures {
    std::optional<double> sample_time_seconds; // Unix time of the pass; empty before the first
    std::optional<double> cpu_busy_ratio;
    std::optional<std::uint64_t> memory_total_bytes, memory_available_bytes;
    std::vector<PressureFigures> pressure;
    // The ledger: what admission may give and what it has given.
    double cpu_capacity_cores = 0, cpu_allocated_cores = 0;
    std::uint64_t memory_capacity_bytes = 0, memory_allocated_bytes = 0;
    std::size_t queue_length = 0;
    std::map<std::string, std::size_t> allocations_by_status;
    std::size_t active_conflicts = 0;
};

struct PassFigures {
    NodeFigures node;
    std::vector<AllocationFigures> allocations; // by id
};

// What the figures of one pass are: the ledger now, the snapshot (null before the first pass or
// without monitoring) and how many file conflicts are active.
PassFigures figures_of(const core::Ledger& ledger, const monitor::Snapshot* snapshot, std::size_t active_conflicts);

// A fixed-bucket histogram, as Prometheus wants it (cumulative counts per upper bound).
class Histogram {
public:
    explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {}
    void observe(double value);
    const std::vector<double>& bounds() const { return bounds_; }
    const std::vector<std::uint64_t>& counts() const { return counts_; } // not cumulative
    std::uint64_t count() const { return count_; }
    double sum() const { return sum_; }

private:
    std::vector<double> bounds_;
    std::vector<std::uint64_t> counts_;
    std::uint64_t count_ = 0;
    double sum_ = 0;
};

// Counted since resmgrd started, from events and the answers to allocate requests.
struct Counts {
    // Admission latency buckets: 100 µs to 2.5 s (an allocate with a group to make and an
    // fdatasync'd journal record takes milliseconds; a preemption or a slow disk, more).
    static std::vector<double> latency_bounds();

    std::map<std::pair<std::string, std::string>, std::uint64_t> admissions; // (priority band, outcome)
    std::map<std::string, Histogram> admission_latency;                      // by outcome class: allocated, queued, refused
    std::map<std::string, std::uint64_t> conflicts;                          // by source: guard, admission
    std::map<std::string, std::uint64_t> guard_decisions;                    // by the guard report's kind
    std::uint64_t oom_kill_events = 0;
    std::uint64_t preemptions = 0;
    std::uint64_t sampling_passes = 0;
};

// Every family, with its HELP text; a figure that is empty leaves its series out, and so does
// every allocation in `ended`.
std::vector<prometheus::MetricFamily> families(const PassFigures& pass, const Counts& counts, const std::set<std::string>& ended = {});

} // namespace resmgr::metrics
