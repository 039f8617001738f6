// The seed's recovery_procedures, acted on: every resource_leak_detection.monitoring_interval
// (checked at each sampling tick) one pass gathers what core/leaks decides on (the groups the
// backend lists under resmgrd's own parent, the ledger, the recent ends, which suspicious groups
// still hold processes, the temp root's names), and, with auto_cleanup, acts on the findings seen
// in two consecutive passes: an unclaimed group is removed (the backend kills what is left in
// it first), the processes of an ended allocation are sent SIGTERM (SIGKILL once escalated), an
// allocation whose group vanished is ended through the lifecycle's own finish, an orphan
// temporary directory is removed through lifecycle/temp_dirs. One RESOURCE_LEAK event per pass
// with confirmed findings (severity error past leak_threshold or once escalated).
// The same pass checks performance_degradation (analytics/degradation) for each workflow type
// with a run recorded since its last check, and raises PERFORMANCE_DEGRADED for a degraded one.
// May call: lifecycle (as its friend: backend, ledger, finish, temp dirs, history), core,
// analytics, history, events.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analytics/degradation.hpp"
#include "core/leaks.hpp"

namespace resmgr::lifecycle {

class Lifecycle;

class LeakDetector {
public:
    explicit LeakDetector(Lifecycle& life) : life_(life) {}

    // A sampling tick: a pass when monitoring_interval has passed since the last one.
    void on_tick();
    // One pass now (leaks, then degradation).
    void pass();
    // doctor: the last pass (when, findings, what was cleaned or failed) and the degraded types.
    nlohmann::json to_json() const;

private:
    std::vector<core::LeakFinding> find(std::optional<std::vector<std::string>>& groups);
    // Acts on one confirmed finding; returns what was done, throws what failed.
    std::string act(const core::LeakFinding& finding);
    void report(const std::vector<core::LeakFinding>& confirmed, const core::LeakPassSummary& summary, const nlohmann::json& cleaned,
                const nlohmann::json& failed);
    void check_degradation();

    Lifecycle& life_;
    core::LeakTracker tracker_;
    std::optional<TimePoint> last_pass_;
    nlohmann::json last_report_ = nullptr;
    // Per workflow type: the allocation of its newest run at its last check (a count would stop
    // changing once the newest 1,000 runs read are full).
    std::map<std::string, std::string> newest_checked_;
    std::map<std::string, analytics::DegradationVerdict> verdicts_; // per workflow type, the newest
};

} // namespace resmgr::lifecycle
