// Performance degradation (the seed's recovery_procedures.performance_degradation, detection
// method "baseline_comparison"): whether a workflow type's newest runs take markedly longer than
// its runs before them. Pure: run records in, a verdict per type out; no I/O.
//
// Method (named in every answer as kDegradationMethod): the completed runs of one type in the
// order they ended; recent = the median duration of the newest kRecentRuns, baseline = the median
// of the runs before them (at least kBaselineRuns); degraded when recent >= baseline x (1 +
// threshold / 100). Failed, OOM-killed, expired and released runs say nothing about speed and are
// left out. Medians, so one slow run neither raises nor hides an alarm.
// May call: run_record.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analytics/run_record.hpp"

namespace resmgr::analytics {

inline constexpr const char* kDegradationMethod =
    "baseline_comparison: median duration of the newest 3 completed runs against the median of the completed runs before them";

struct DegradationVerdict {
    std::string workflow_type;
    std::size_t runs = 0;        // completed runs considered
    std::size_t runs_needed = 0; // kBaselineRuns + kRecentRuns
    std::optional<double> baseline_seconds, recent_seconds; // nullopt: too few runs
    std::optional<double> slowdown_percent;                  // (recent / baseline - 1) x 100
    double threshold_percent = 0;
    bool degraded = false;
    std::string reason; // why there is no verdict, when there is none
    nlohmann::json to_json() const;
};

inline constexpr std::size_t kRecentRuns = 3;
inline constexpr std::size_t kBaselineRuns = 5;

// `runs` of one workflow type, any order.
DegradationVerdict judge_degradation(const std::string& workflow_type, const std::vector<RunRecord>& runs, double threshold_percent);

} // namespace resmgr::analytics
