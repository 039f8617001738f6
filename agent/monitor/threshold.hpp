// The threshold monitor: turns a stream of measured percentages into raise / repeat / clear
// decisions with hysteresis (raised at the threshold, cleared only below threshold - margin, so
// a metric hovering at the line does not flap) and a minimum interval between repeats. Pure:
// values and the time come in, decisions go out; the caller turns them into events.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/policy.hpp"

namespace resmgr::monitor {

struct ThresholdRule {
    std::string metric;
    double threshold = 0;        // percent
    double clear_margin = 0;     // percentage points below the threshold to clear
    Seconds repeat_interval{300};
    std::string severity = "warning";
};

std::vector<ThresholdRule> threshold_rules(const core::Policy& policy);

struct ThresholdChange {
    enum class Kind { raised, repeated, cleared };
    Kind kind = Kind::raised;
    ThresholdRule rule;
    double value = 0;
};

class ThresholdMonitor {
public:
    explicit ThresholdMonitor(std::vector<ThresholdRule> rules);

    // One measurement of `metric` (unknown metrics are ignored). At most one change comes back.
    std::optional<ThresholdChange> observe(const std::string& metric, double value, TimePoint now);
    bool raised(const std::string& metric) const;
    // {"cpu": {"threshold": 80, "severity": "warning", "raised": false, "last_value": 12.5}, ...}
    nlohmann::json to_json() const;

private:
    struct State {
        ThresholdRule rule;
        bool raised = false;
        TimePoint last_reported{};
        std::optional<double> last_value;
    };
    std::map<std::string, State> states_;
};

} // namespace resmgr::monitor
