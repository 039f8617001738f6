// Threshold hysteresis and repeat suppression.
#include "monitor/threshold.hpp"

namespace resmgr::monitor {

std::vector<ThresholdRule> threshold_rules(const core::Policy& policy) {
    std::vector<ThresholdRule> rules;
    for (const auto& [metric, t] : policy.thresholds)
        rules.push_back({metric, t.threshold, policy.threshold_clear_margin, policy.threshold_repeat_interval, t.severity});
    return rules;
}

ThresholdMonitor::ThresholdMonitor(std::vector<ThresholdRule> rules) {
    for (auto& rule : rules) {
        State state;
        state.rule = rule;
        states_[rule.metric] = std::move(state);
    }
}

std::optional<ThresholdChange> ThresholdMonitor::observe(const std::string& metric, double value, TimePoint now) {
    auto it = states_.find(metric);
    if (it == states_.end()) return std::nullopt;
    State& s = it->second;
    s.last_value = value;
    if (!s.raised) {
        if (value < s.rule.threshold) return std::nullopt;
        s.raised = true;
        s.last_reported = now;
        return ThresholdChange{ThresholdChange::Kind::raised, s.rule, value};
    }
    if (value < s.rule.threshold - s.rule.clear_margin) {
        s.raised = false;
        s.last_reported = now;
        return ThresholdChange{ThresholdChange::Kind::cleared, s.rule, value};
    }
    // Still raised (or inside the hysteresis band): remind, but not more often than asked.
    if (value >= s.rule.threshold && now - s.last_reported >= s.rule.repeat_interval) {
        s.last_reported = now;
        return ThresholdChange{ThresholdChange::Kind::repeated, s.rule, value};
    }
    return std::nullopt;
}

bool ThresholdMonitor::raised(const std::string& metric) const {
    auto it = states_.find(metric);
    return it != states_.end() && it->second.raised;
}

nlohmann::json ThresholdMonitor::to_json() const {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [metric, s] : states_)
        out[metric] = {{"threshold", s.rule.threshold},
                       {"clear_below", s.rule.threshold - s.rule.clear_margin},
                       {"severity", s.rule.severity},
                       {"raised", s.raised},
                       {"last_value", s.last_value ? nlohmann::json(*s.last_value) : nlohmann::json(nullptr)}};
    return out;
}

} // namespace resmgr::monitor
