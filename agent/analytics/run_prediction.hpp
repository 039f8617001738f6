// The next run of a workflow type, predicted from its recorded runs: CPU cores, memory peak and
// duration, each with an interval, and how well such predictions held on its own earlier runs.
// Pure: runs in, prediction out.
//
// Method (kRunPredictionMethod says the same in every answer):
//   - point: the median of the last `window` runs that measured the quantity (drift: below);
//   - interval, with at least 2/α − 1 runs in the window: order statistics of those runs: lower
//     the ⌊(n+1)·α/2⌋-th smallest, upper the ⌈(n+1)·(1−α/2)⌉-th, which hold the next exchangeable
//     run with probability ≥ 1 − α (distribution-free). A window of 50 reaches levels up to 96 %;
//   - interval, with fewer runs (order statistics cannot reach the level): the log-normal
//     prediction interval exp(m ± t(1−α/2, n−1)·s·√(1 + 1/n)), m and s the mean and standard
//     deviation of the logs (exact when the runs are log-normal). Run sizes are positive and
//     skewed. At 90 % (BENCHMARKS, "predict with a log-normal interval"): on the 80 runs it was
//     chosen on, [min, max] held 81-82 % and this 91-96 %; on 48 runs recorded afterwards, [min,
//     max] 61-78 % and this 78-94 % (durations that drift are not exchangeable). Runs with a value
//     ≤ 0, all equal, or so far apart that the bound overflows keep [min, max] and its level
//     (n−1)/(n+1), which is then what the answer states;
//   - drift: runs that grow or shrink from run to run are not exchangeable, and the median of the
//     window lags them (on 48 runs recorded in the VM, durations that crept up 40 % were covered
//     56-67 % at 90 %). When the Theil-Sen slope of the logs over the run index has its
//     kDriftTestLevel interval off 0 (at least kDriftMinRuns runs), the point is that line at the
//     next run and the interval the log-linear regression's prediction interval around it:
//     ŷ ± t(1−α/2, n−2)·s·√(1 + 1/n + (n − x̄)²/Sxx), s the residuals' standard deviation (exact
//     for a straight line of log sizes with normal noise, fitted by least squares; Theil-Sen's
//     line instead, robust to a stray run);
//   - back-test: every run after the first kMinPriorRuns predicted from the runs before it, as it
//     would have been live; the share inside its interval (coverage, against the mean level the
//     intervals claimed), the median absolute percentage error of the point, and the same error
//     of "same as the last run" on the same runs;
//   - growth: Theil-Sen slope of the quantity over the run index, "growing" when its interval
//     lies above 0.
// May call: run_record, trends.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "analytics/run_record.hpp"

namespace resmgr::analytics {

inline constexpr const char* kRunPredictionMethod =
    "median of the last runs; interval from their order statistics (distribution-free) when the window holds enough "
    "runs for the level, else log-normal (Student t on the logs); runs that drift (Theil-Sen slope of the logs off 0 "
    "at 95 %) follow that line, with the log-linear prediction interval; level stated; "
    "back-tested on each earlier run from the runs before it, against 'same as the last run'";
inline constexpr std::size_t kMinPriorRuns = 3;
inline constexpr std::size_t kDriftMinRuns = 6;
inline constexpr double kDriftTestLevel = 0.95; // a slope interval this wide off 0 is drift

enum class IntervalMethod { order_statistics, log_t, log_trend };

const char* to_string(IntervalMethod method);

// One run of the back-test: what came, and what the runs before it predicted.
struct ReplayedRun {
    double actual = 0, point = 0, lower = 0, upper = 0, last_run = 0;
};

struct QuantityPrediction {
    std::string name;       // cpu_cores, memory_gb, duration_seconds
    std::size_t runs = 0;   // runs that measured it (at most the window)
    std::optional<double> point, lower, upper;
    double level = 0;       // the interval's level: the one asked, or (n−1)/(n+1) for [min, max]
    IntervalMethod interval_method = IntervalMethod::order_statistics;
    // Back-test on its own runs.
    std::size_t replayed = 0;
    std::optional<double> coverage, claimed_level; // share inside; mean level the intervals claimed
    std::optional<double> median_ape, last_run_median_ape; // median absolute percentage error, as a fraction
    std::vector<ReplayedRun> replays;                      // oldest first
    // Trend over the runs.
    std::optional<double> slope_per_run, slope_lower, slope_upper;
    std::string reason; // why a figure is missing
};

struct RunPrediction {
    std::vector<QuantityPrediction> quantities; // cpu_cores, memory_gb, duration_seconds
    std::size_t runs = 0, oom_killed = 0, failed = 0;
};

// `runs` in any order (sorted by end time inside); `confidence` in (0, 1); window ≥ kMinPriorRuns.
// follow_drift false: the median alone whatever the runs do (the method before; benchmarks).
RunPrediction predict_next_run(std::vector<RunRecord> runs, double confidence, std::size_t window = 50, bool follow_drift = true);

} // namespace resmgr::analytics
