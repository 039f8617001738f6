// Baseline comparison of run durations (see degradation.hpp).
#include "analytics/degradation.hpp"

#include <algorithm>

namespace resmgr::analytics {

namespace {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

} // namespace

nlohmann::json DegradationVerdict::to_json() const {
    nlohmann::json j{{"workflow_type", workflow_type}, {"method", kDegradationMethod}, {"runs", runs},
                     {"runs_needed", runs_needed},     {"threshold_percent", threshold_percent}, {"degraded", degraded}};
    j["baseline_seconds"] = baseline_seconds ? nlohmann::json(*baseline_seconds) : nlohmann::json(nullptr);
    j["recent_seconds"] = recent_seconds ? nlohmann::json(*recent_seconds) : nlohmann::json(nullptr);
    j["slowdown_percent"] = slowdown_percent ? nlohmann::json(*slowdown_percent) : nlohmann::json(nullptr);
    if (!reason.empty()) j["reason"] = reason;
    return j;
}

DegradationVerdict judge_degradation(const std::string& workflow_type, const std::vector<RunRecord>& runs, double threshold_percent) {
    DegradationVerdict v;
    v.workflow_type = workflow_type;
    v.threshold_percent = threshold_percent;
    v.runs_needed = kBaselineRuns + kRecentRuns;
    std::vector<const RunRecord*> done;
    for (const auto& r : runs)
        if (r.outcome == RunOutcome::completed && r.duration_seconds() >= 0) done.push_back(&r);
    std::sort(done.begin(), done.end(), [](const RunRecord* a, const RunRecord* b) { return a->ended_at < b->ended_at; });
    v.runs = done.size();
    if (v.runs < v.runs_needed) {
        v.reason = std::to_string(v.runs) + " completed run(s) of type '" + workflow_type + "'; " + std::to_string(v.runs_needed) +
                   " are needed (a baseline of " + std::to_string(kBaselineRuns) + " and the newest " + std::to_string(kRecentRuns) + ")";
        return v;
    }
    std::vector<double> before, recent;
    for (std::size_t i = 0; i < done.size(); ++i) (i + kRecentRuns < done.size() ? before : recent).push_back(done[i]->duration_seconds());
    v.baseline_seconds = median(before);
    v.recent_seconds = median(recent);
    if (*v.baseline_seconds > 0) v.slowdown_percent = (*v.recent_seconds / *v.baseline_seconds - 1) * 100;
    // A zero baseline (sub-second runs recorded as 0 s) says nothing about a slowdown.
    v.degraded = *v.baseline_seconds > 0 && *v.recent_seconds >= *v.baseline_seconds * (1 + threshold_percent / 100);
    return v;
}

} // namespace resmgr::analytics
