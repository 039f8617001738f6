// Right-sizing from what runs really used: the CPU and memory a workflow type's next run should
// get, learned from its run records. Pure: runs and `now` in, a recommendation out; no I/O.
//
// Method (named in every answer as kSizingMethod):
//   - each run weighs 0.5^(age / half_life), so the node reacts to change within runs, not days;
//   - CPU: per run, the cores it needed = cpu seconds / wall seconds (a 3 s job counts like a 3 h
//     one), plus, for a run cpu.max throttled, the cores it stood throttled (throttled seconds /
//     wall seconds, at most throttle_bump x what it ran): a throttled run shows only its limit, so
//     without this the size would creep up by the margin per run; the weighted P90, raised to the
//     newest runs' figure, plus the margin;
//   - memory: per run, the peak; the weighted P98, raised to the newest runs' peak, plus the
//     margin. A run the OOM killer hit was capped: its demand is taken as max(peak, its limit)
//     times oom_bump, so each OOM raises the next size at once and repeated OOMs grow it
//     geometrically: never the same size twice, never a loop;
//   - floors fit short jobs: 0.01 cores and 16 MiB, not VPA's 25m / 250 MiB;
//   - confidence is measured, not asserted: a rolling-origin back-test replays the history, sizing
//     each run from the runs before it, and reports the share that fit (coverage) and the share
//     whose memory peak would not have (OOM risk), with how many runs it replayed.
// May call: run_record.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analytics/run_record.hpp"

namespace resmgr::analytics {

inline constexpr const char* kSizingMethod =
    "age-decayed percentile of per-run usage (CPU P90, memory P98) raised to the newest runs, +margin; "
    "throttled runs count as cpu + throttled seconds per wall second (at most x throttle_bump); "
    "OOM-killed runs count as max(peak, limit) x oom_bump; confidence = rolling-origin back-test coverage";

struct SizingOptions {
    std::chrono::seconds half_life{24 * 3600};
    double cpu_percentile = 0.90;
    double memory_percentile = 0.98; // short memory is fatal, short CPU only slow
    double margin = 0.15;
    double oom_bump = 1.5;
    // A throttled run counts as at most this times the cores it ran: throttled time overstates the
    // demand of a group whose threads queue on more CPUs than it needs, and a type that needs more
    // still grows geometrically, run by run, as with oom_bump.
    double throttle_bump = 2.0;
    std::size_t min_runs = 3;    // measured runs needed before a figure is given
    std::size_t recent_runs = 2; // the newest runs' usage is a floor: growth is met in one run
    double min_cpu_cores = 0.01;
    std::uint64_t min_memory_bytes = 16ULL << 20;
    std::size_t max_runs = 200;     // the newest runs considered
    std::size_t backtest_runs = 50; // the newest runs replayed for confidence
};

struct Sizing {
    std::optional<double> cpu_cores;          // nullopt: too few runs with measured CPU
    std::optional<std::uint64_t> memory_bytes; // nullopt: too few runs with a measured peak
    std::size_t cpu_runs = 0, memory_runs = 0; // measured runs it learned from
    std::size_t runs_needed = 0;               // for a figure that is missing
    // Rolling-origin back-test over the newest runs: each sized from the runs before it.
    std::size_t backtested = 0;
    std::optional<double> coverage; // share of replayed runs that fit their recommendation
    std::optional<double> oom_risk; // share whose memory peak exceeded it
    std::string reason;             // why a figure is missing; empty when both are there
};

// `runs` in any order; only those ended by `now` count.
Sizing recommend_size(const std::vector<RunRecord>& runs, std::int64_t now, const SizingOptions& options = {});

// Slack of a limit against what runs used: Σ(limit − used) / Σ limit over the runs that measured
// it (0 when the limit was fully used; used above the limit counts as 0 slack). nullopt: none.
std::optional<double> memory_slack(const std::vector<RunRecord>& runs, std::uint64_t limit_bytes);
std::optional<double> cpu_slack(const std::vector<RunRecord>& runs, double limit_cores);

} // namespace resmgr::analytics
