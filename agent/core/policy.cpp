// Policy file parsing and validation.
#include "core/policy.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "resmgr/protocol.hpp"

namespace resmgr::core {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& field, const std::string& why) {
    throw ApiError(ErrorCode::INVALID_REQUEST, "invalid policy field '" + field + "'", why, {field});
}

const json& section(const json& parent, const char* key, const std::string& path) {
    static const json empty = json::object();
    auto it = parent.find(key);
    if (it == parent.end()) return empty;
    if (!it->is_object()) bad(path + key, "expected an object");
    return *it;
}

void only_keys(const json& obj, const std::string& path, std::initializer_list<const char*> keys) {
    for (auto& [key, _] : obj.items()) {
        bool known = false;
        for (auto* k : keys) known = known || key == k;
        if (!known) bad(path + key, "unknown key");
    }
}

void read_number(const json& obj, const char* key, const std::string& path, double& out, double min, double max) {
    auto it = obj.find(key);
    if (it == obj.end()) return;
    if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < min || it->get<double>() > max)
        bad(path + key, "expected a number in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + it->dump());
    out = it->get<double>();
}

void read_int(const json& obj, const char* key, const std::string& path, int& out, int min, int max) {
    auto it = obj.find(key);
    if (it == obj.end()) return;
    if (!it->is_number_integer() || it->get<long long>() < min || it->get<long long>() > max)
        bad(path + key, "expected a whole number in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + it->dump());
    out = it->get<int>();
}

// "users" and "groups" of `obj`: lists of names or ids, each kept as text.
void read_users_and_groups(const json& obj, const std::string& path, std::vector<std::string>& users, std::vector<std::string>& groups) {
    for (auto [key, out] : {std::pair{"users", &users}, std::pair{"groups", &groups}}) {
        auto it = obj.find(key);
        if (it == obj.end()) continue;
        if (!it->is_array()) bad(path + key, "expected a list of names or ids");
        out->clear();
        for (const auto& item : *it) {
            if (item.is_number_unsigned()) out->push_back(std::to_string(item.get<std::uint32_t>()));
            else if (item.is_string() && !item.get<std::string>().empty()) out->push_back(item.get<std::string>());
            else bad(path + key, "expected names or ids, got " + item.dump());
        }
    }
}

Millis read_millis(const json& obj, const char* key, const std::string& path, Millis current, Millis min, Millis max = Millis::max()) {
    auto it = obj.find(key);
    if (it == obj.end()) return current;
    auto d = it->is_string() ? parse_duration(it->get<std::string>()) : std::nullopt;
    if (!d || *d < min || *d > max)
        bad(path + key, "expected a duration of at least " + format_duration(min) +
                            (max != Millis::max() ? " and at most " + format_duration(max) : std::string()) +
                            " such as \"30s\", got " + it->dump());
    return *d;
}

Seconds read_seconds(const json& obj, const char* key, const std::string& path, Seconds current, Seconds min) {
    return std::chrono::duration_cast<Seconds>(read_millis(obj, key, path, current, min));
}

void read_bool(const json& obj, const char* key, const std::string& path, bool& out) {
    auto it = obj.find(key);
    if (it == obj.end()) return;
    if (!it->is_boolean()) bad(path + key, "expected true or false, got " + it->dump());
    out = it->get<bool>();
}

void read_duration_strings(const json& obj, const std::string& path) {
    for (auto& [key, value] : obj.items())
        if (!value.is_string() || !parse_duration(value.get<std::string>()))
            bad(path + key, "expected a duration such as \"30s\" or \"5m\", got " + value.dump());
}

} // namespace

Policy parse_policy(const json& j) {
    if (!j.is_object()) bad("", "policy must be a JSON object");
    only_keys(j, "", {"resource_policies", "cluster"});
    const json& root = section(j, "resource_policies", "");
    const std::string base = "resource_policies.";
    only_keys(root, base, {"allocation_limits", "priority_weights", "optimization_targets", "monitoring_intervals",
                           "system_reserve", "agent_pool", "memory_high_ratio", "preemption", "thresholds",
                           "usage_history", "tool_classes", "file_conflicts", "priority_privileges", "limits",
                           "pressure_response", "resource_leak_detection", "performance_degradation"});
    Policy p = Policy::defaults();

    const json& limits = section(root, "allocation_limits", base);
    const std::string lp = base + "allocation_limits.";
    only_keys(limits, lp, {"max_cpu_per_workflow", "max_memory_per_workflow", "max_agents_per_workflow", "max_duration", "max_grace_period"});
    p.max_grace_period = read_seconds(limits, "max_grace_period", lp, p.max_grace_period, Seconds(0));
    read_number(limits, "max_cpu_per_workflow", lp, p.max_cpu_per_workflow, 0.01, 4096);
    read_number(limits, "max_memory_per_workflow", lp, p.max_memory_gb_per_workflow, 0.001, 1 << 20);
    read_int(limits, "max_agents_per_workflow", lp, p.max_agents_per_workflow, 0, 100000);
    if (auto it = limits.find("max_duration"); it != limits.end()) {
        auto d = it->is_string() ? parse_duration(it->get<std::string>()) : std::nullopt;
        if (!d || d->count() < 1000) bad(lp + "max_duration", "expected a duration of at least 1s such as \"6h\", got " + it->dump());
        p.max_duration = std::chrono::duration_cast<Seconds>(*d);
    }

    const json& weights = section(root, "priority_weights", base);
    const std::string wp = base + "priority_weights.";
    only_keys(weights, wp, {"critical", "high", "medium", "low"});
    for (auto band : {PriorityBand::critical, PriorityBand::high, PriorityBand::medium, PriorityBand::low})
        read_number(weights, band_name(band).c_str(), wp, p.priority_weights[band], 0.01, 100);
    if (!(p.priority_weights[PriorityBand::critical] >= p.priority_weights[PriorityBand::high] &&
          p.priority_weights[PriorityBand::high] >= p.priority_weights[PriorityBand::medium] &&
          p.priority_weights[PriorityBand::medium] >= p.priority_weights[PriorityBand::low]))
        bad(wp.substr(0, wp.size() - 1), "weights must not increase as priority falls (critical >= high >= medium >= low)");

    if (auto it = root.find("optimization_targets"); it != root.end()) {
        if (!it->is_object()) bad(base + "optimization_targets", "expected an object");
        p.optimization_targets.update(*it);
    }
    if (auto it = root.find("monitoring_intervals"); it != root.end()) {
        if (!it->is_object()) bad(base + "monitoring_intervals", "expected an object");
        read_duration_strings(*it, base + "monitoring_intervals.");
        read_seconds(*it, "resource_check", base + "monitoring_intervals.", Seconds(30), Seconds(1));
        p.monitoring_intervals.update(*it);
    }

    const json& thresholds = section(root, "thresholds", base);
    const std::string tp = base + "thresholds.";
    only_keys(thresholds, tp, {"cpu", "memory", "agent_pool", "clear_margin", "repeat_interval"});
    for (auto& [metric, rule] : p.thresholds) {
        const json& t = section(thresholds, metric.c_str(), tp);
        only_keys(t, tp + metric + ".", {"threshold", "severity"});
        read_number(t, "threshold", tp + metric + ".", rule.threshold, 0.1, 100);
        if (auto it = t.find("severity"); it != t.end()) {
            static const std::set<std::string> severities{"info", "warning", "critical"};
            if (!it->is_string() || !severities.count(it->get<std::string>()))
                bad(tp + metric + ".severity", "expected info, warning or critical, got " + it->dump());
            rule.severity = it->get<std::string>();
        }
    }
    read_number(thresholds, "clear_margin", tp, p.threshold_clear_margin, 0, 50);
    p.threshold_repeat_interval = read_seconds(thresholds, "repeat_interval", tp, p.threshold_repeat_interval, Seconds(1));

    if (auto it = root.find("tool_classes"); it != root.end() && !it->is_null()) {
        if (!it->is_object()) bad(base + "tool_classes", "expected an object of command lists, e.g. {\"bash_shells\": [\"bash\"]}");
        p.tool_classes = *it;
    }

    if (auto it = root.find("file_conflicts"); it != root.end())
        p.file_conflicts = parse_file_conflicts(*it, base + "file_conflicts", p.file_conflicts);

    const json& limits_section = section(root, "limits", base);
    const std::string limp = base + "limits.";
    only_keys(limits_section, limp, {"allocations_per_user", "queued_per_user", "reservations_per_user", "files_per_allocation",
                                     "active_conflicts", "connections_per_user", "idle_connection_timeout", "include_root"});
    read_int(limits_section, "allocations_per_user", limp, p.limits.allocations_per_user, 1, 1000000);
    read_int(limits_section, "queued_per_user", limp, p.limits.queued_per_user, 0, 1000000);
    read_int(limits_section, "reservations_per_user", limp, p.limits.reservations_per_user, 0, 1000000);
    read_int(limits_section, "files_per_allocation", limp, p.limits.files_per_allocation, 0, 100000);
    read_int(limits_section, "active_conflicts", limp, p.limits.active_conflicts, 1, 1000000);
    read_int(limits_section, "connections_per_user", limp, p.limits.connections_per_user, 1, 100000);
    p.limits.idle_connection_timeout = read_seconds(limits_section, "idle_connection_timeout", limp, p.limits.idle_connection_timeout, Seconds(1));
    read_bool(limits_section, "include_root", limp, p.limits.include_root);

    const json& privileges = section(root, "priority_privileges", base);
    const std::string pvp = base + "priority_privileges.";
    only_keys(privileges, pvp, {"max_priority", "users", "groups"});
    if (auto it = privileges.find("max_priority"); it != privileges.end()) {
        // A band name caps at the top of that band ("high": 89); a number at itself.
        static const std::map<std::string, int> band_top{{"low", 39}, {"medium", 69}, {"high", 89}, {"critical", 100}};
        if (it->is_string() && band_top.count(it->get<std::string>())) p.priority_privileges.max_priority = band_top.at(it->get<std::string>());
        else if (it->is_number_integer() && it->get<long long>() >= 0 && it->get<long long>() <= 100) p.priority_privileges.max_priority = it->get<int>();
        else bad(pvp + "max_priority", "expected low, medium, high, critical or 0-100, got " + it->dump());
    }
    read_users_and_groups(privileges, pvp, p.priority_privileges.users, p.priority_privileges.groups);

    const json& history = section(root, "usage_history", base);
    only_keys(history, base + "usage_history.", {"max_size_mb", "max_age"});
    double history_mb = static_cast<double>(p.history_max_bytes) / (1 << 20);
    read_number(history, "max_size_mb", base + "usage_history.", history_mb, 0.01, 1 << 20);
    p.history_max_bytes = static_cast<std::uint64_t>(history_mb * (1 << 20));
    p.history_max_age = read_seconds(history, "max_age", base + "usage_history.", p.history_max_age, Seconds(60));

    const json& reserve = section(root, "system_reserve", base);
    only_keys(reserve, base + "system_reserve.", {"cpu_cores", "memory_gb"});
    read_number(reserve, "cpu_cores", base + "system_reserve.", p.system_reserve_cpu, 0, 4096);
    read_number(reserve, "memory_gb", base + "system_reserve.", p.system_reserve_memory_gb, 0, 1 << 20);

    const json& pool = section(root, "agent_pool", base);
    only_keys(pool, base + "agent_pool.", {"max_agents", "idle_after"});
    read_int(pool, "max_agents", base + "agent_pool.", p.max_agents, 0, 100000);
    p.agent_idle_after = read_seconds(pool, "idle_after", base + "agent_pool.", p.agent_idle_after, Seconds(1));

    read_number(root, "memory_high_ratio", base, p.memory_high_ratio, 0.5, 1.0);

    const json& pre = section(root, "preemption", base);
    const std::string pp = base + "preemption.";
    only_keys(pre, pp, {"mode", "min_priority", "degrade_ratio"});
    if (auto it = pre.find("mode"); it != pre.end()) {
        static const std::set<std::string> modes{"pause", "degrade", "kill", "none"};
        if (!it->is_string() || !modes.count(it->get<std::string>())) bad(pp + "mode", "expected pause, degrade, kill or none, got " + it->dump());
        p.preemption_mode = it->get<std::string>();
    }
    // Low-priority work (0-39) never preempts anyone.
    read_int(pre, "min_priority", pp, p.preemption_min_priority, 40, 100);
    read_number(pre, "degrade_ratio", pp, p.degrade_ratio, 0.01, 0.99);

    if (auto it = root.find("pressure_response"); it != root.end())
        p.pressure_response = parse_pressure_response(*it, base + "pressure_response", p.pressure_response);

    const json& leaks = section(root, "resource_leak_detection", base);
    const std::string rp = base + "resource_leak_detection.";
    only_keys(leaks, rp, {"monitoring_interval", "leak_threshold", "auto_cleanup", "escalation_timeout"});
    auto& ld = p.resource_leak_detection;
    ld.monitoring_interval = read_seconds(leaks, "monitoring_interval", rp, ld.monitoring_interval, Seconds(1));
    read_number(leaks, "leak_threshold", rp, ld.leak_threshold, 0, 100);
    read_bool(leaks, "auto_cleanup", rp, ld.auto_cleanup);
    ld.escalation_timeout = read_seconds(leaks, "escalation_timeout", rp, ld.escalation_timeout, Seconds(0));

    const json& slow = section(root, "performance_degradation", base);
    const std::string dp = base + "performance_degradation.";
    only_keys(slow, dp, {"detection_method", "degradation_threshold", "auto_optimization", "manual_intervention"});
    auto& pd = p.performance_degradation;
    if (auto it = slow.find("detection_method"); it != slow.end()) {
        if (!it->is_string() || it->get<std::string>() != "baseline_comparison")
            bad(dp + "detection_method", "expected \"baseline_comparison\" (the only method), got " + it->dump());
        pd.detection_method = it->get<std::string>();
    }
    read_number(slow, "degradation_threshold", dp, pd.degradation_threshold, 1, 1000);
    read_bool(slow, "auto_optimization", dp, pd.auto_optimization);
    read_bool(slow, "manual_intervention", dp, pd.manual_intervention);
    if (auto it = j.find("cluster"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) bad("cluster", "expected an object: {\"etcd\": [URL, ...], \"node_name\": ..., \"lease_ttl\": \"10s\"}");
        p.cluster = *it;
    }
    return p;
}

Policy::PressureResponse parse_pressure_response(const json& j, const std::string& path, Policy::PressureResponse r) {
    if (!j.is_object()) bad(path, "expected an object");
    const std::string pp = path + ".";
    only_keys(j, pp, {"mode", "signals", "ladder", "hard_floors", "bands", "escalate_after", "undo_interval",
                      "memory_high_ratio", "cpu_weight_ratio", "cpu_max_ratio", "trigger_window", "memory_lookahead_passes"});
    if (auto it = j.find("mode"); it != j.end()) {
        static const std::set<std::string> modes{"off", "advisory", "enforce"};
        if (!it->is_string() || !modes.count(it->get<std::string>())) bad(pp + "mode", "expected off, advisory or enforce, got " + it->dump());
        r.mode = it->get<std::string>();
    }
    const json& signals = section(j, "signals", pp);
    for (auto& [name, _] : signals.items())
        if (!r.signals.count(name)) bad(pp + "signals." + name, "unknown signal (memory_some, memory_full, memory_available, swap_free, cpu_protected, agent_pool, storage_free)");
    for (auto& [name, signal] : r.signals) {
        const std::string sp = pp + "signals." + name + ".";
        const json& s = section(signals, name.c_str(), pp + "signals.");
        only_keys(s, sp, {"threshold", "clear", "hold", "clear_hold", "enabled"});
        read_number(s, "threshold", sp, signal.threshold, 0, 100);
        read_number(s, "clear", sp, signal.clear, 0, 100);
        signal.hold = read_millis(s, "hold", sp, signal.hold, Millis(0), std::chrono::hours(1));
        signal.clear_hold = read_millis(s, "clear_hold", sp, signal.clear_hold, Millis(0), std::chrono::hours(1));
        read_bool(s, "enabled", sp, signal.enabled);
        // Hysteresis: the clear level sits on the good side of the threshold.
        if (signal.falling ? !(signal.clear > signal.threshold) : !(signal.clear < signal.threshold))
            bad(sp + "clear", std::string("must be ") + (signal.falling ? "above" : "below") + " the threshold (" +
                                  std::to_string(signal.threshold) + "), so the signal cannot flap at one value");
    }
    if (auto it = j.find("ladder"); it != j.end()) {
        if (!it->is_object()) bad(pp + "ladder", "expected {\"memory\": [...], \"cpu\": [...]}");
        only_keys(*it, pp + "ladder.", {"memory", "cpu"});
        static const std::map<std::string, std::vector<std::string>> allowed{{"memory", {"memory_high", "freeze", "kill"}},
                                                                            {"cpu", {"cpu_weight", "cpu_max", "freeze"}}};
        for (auto& [resource, steps] : it->items()) {
            const auto& order = allowed.at(resource);
            if (!steps.is_array()) bad(pp + "ladder." + resource, "expected a list of actions");
            std::vector<std::string> ladder;
            size_t last = 0;
            for (auto& step : steps) {
                auto at = step.is_string() ? std::find(order.begin(), order.end(), step.get<std::string>()) : order.end();
                if (at == order.end()) bad(pp + "ladder." + resource, "unknown action " + step.dump() + " for " + resource);
                size_t index = static_cast<size_t>(at - order.begin()) + 1;
                if (index <= last) bad(pp + "ladder." + resource, "actions must be listed once each, mildest first (" + order.front() + " before " + order.back() + ")");
                last = index;
                ladder.push_back(*at);
            }
            r.ladder[resource] = ladder;
        }
    }
    const json& floors = section(j, "hard_floors", pp);
    only_keys(floors, pp + "hard_floors.", {"memory_available_percent"});
    read_number(floors, "memory_available_percent", pp + "hard_floors.", r.memory_available_floor_percent, 0, 50);
    if (r.memory_available_floor_percent >= r.signals.at("memory_available").threshold)
        bad(pp + "hard_floors.memory_available_percent", "the floor must lie below signals.memory_available.threshold, or nothing milder would run first");
    if (auto it = j.find("bands"); it != j.end()) {
        if (!it->is_array()) bad(pp + "bands", "expected a list of low, medium, high");
        r.bands.clear();
        for (auto& item : *it) {
            if (item == "critical") bad(pp + "bands", "critical allocations are never touched by the pressure responder");
            auto band = item.is_string() ? Priority::parse(item.get<std::string>()) : std::nullopt;
            if (!band || item.get<std::string>() != band->band_name()) bad(pp + "bands", "expected low, medium or high, got " + item.dump());
            if (std::find(r.bands.begin(), r.bands.end(), band->band()) == r.bands.end()) r.bands.push_back(band->band());
        }
    }
    r.escalate_after = read_millis(j, "escalate_after", pp, r.escalate_after, Millis(100), std::chrono::hours(1));
    r.undo_interval = read_millis(j, "undo_interval", pp, r.undo_interval, Millis(0), std::chrono::hours(1));
    read_number(j, "memory_high_ratio", pp, r.memory_high_ratio, 0.1, 0.99);
    read_number(j, "cpu_weight_ratio", pp, r.cpu_weight_ratio, 0.01, 0.99);
    read_number(j, "cpu_max_ratio", pp, r.cpu_max_ratio, 0.01, 0.99);
    // The kernel takes PSI trigger windows of 500 ms to 10 s.
    r.trigger_window = read_millis(j, "trigger_window", pp, r.trigger_window, Millis(500), Millis(10000));
    read_int(j, "memory_lookahead_passes", pp, r.memory_lookahead_passes, 0, 10);
    return r;
}

json Policy::PressureResponse::to_json() const {
    json signal_rules = json::object();
    for (auto& [name, s] : signals)
        signal_rules[name] = {{"threshold", s.threshold}, {"clear", s.clear}, {"hold", format_duration(s.hold)},
                              {"clear_hold", format_duration(s.clear_hold)}, {"enabled", s.enabled}};
    json band_names = json::array();
    for (auto band : bands) band_names.push_back(band_name(band));
    return {{"mode", mode},
            {"signals", signal_rules},
            {"ladder", ladder},
            {"hard_floors", {{"memory_available_percent", memory_available_floor_percent}}},
            {"bands", band_names},
            {"escalate_after", format_duration(escalate_after)},
            {"undo_interval", format_duration(undo_interval)},
            {"memory_high_ratio", memory_high_ratio},
            {"cpu_weight_ratio", cpu_weight_ratio},
            {"cpu_max_ratio", cpu_max_ratio},
            {"trigger_window", format_duration(trigger_window)},
            {"memory_lookahead_passes", memory_lookahead_passes}};
}

json Policy::LeakDetection::to_json() const {
    return {{"monitoring_interval", format_duration(std::chrono::duration_cast<Millis>(monitoring_interval))},
            {"leak_threshold", leak_threshold},
            {"auto_cleanup", auto_cleanup},
            {"escalation_timeout", format_duration(std::chrono::duration_cast<Millis>(escalation_timeout))}};
}

json Policy::PerformanceDegradation::to_json() const {
    return {{"detection_method", detection_method},
            {"degradation_threshold", degradation_threshold},
            {"auto_optimization", auto_optimization},
            {"manual_intervention", manual_intervention}};
}

Policy::FileConflicts parse_file_conflicts(const json& j, const std::string& path, Policy::FileConflicts f) {
    if (!j.is_object()) bad(path, "expected an object");
    const std::string fp = path + ".";
    only_keys(j, fp, {"strategy", "methods", "timeout", "enforcement", "exceptions", "hold_any_file", "queue_limits"});
    if (auto it = j.find("strategy"); it != j.end()) {
        static const std::set<std::string> enforced{"file_locking", "queue_and_serialize"};
        static const std::set<std::string> not_enforceable{"copy_on_write", "merge_changes", "priority_override"};
        if (it->is_string() && not_enforceable.count(it->get<std::string>()))
            throw ApiError(ErrorCode::UNSUPPORTED, "File conflict strategy '" + it->get<std::string>() + "' cannot be enforced by resmgrd",
                           "the kernel guard can refuse an open (file_locking) or hold it until the holder lets go (queue_and_serialize)",
                           {fp + "strategy"}, {"Use file_locking or queue_and_serialize"});
        if (!it->is_string() || !enforced.count(it->get<std::string>()))
            bad(fp + "strategy", "expected file_locking or queue_and_serialize, got " + it->dump());
        f.strategy = it->get<std::string>();
    }
    if (auto it = j.find("methods"); it != j.end() && !it->is_array()) bad(fp + "methods", "expected a list");
    f.timeout = read_seconds(j, "timeout", fp, f.timeout, Seconds(1));
    if (auto it = j.find("enforcement"); it != j.end()) {
        static const std::set<std::string> levels{"strict", "exclusive_writes", "advisory"};
        if (!it->is_string() || !levels.count(it->get<std::string>()))
            bad(fp + "enforcement", "expected strict, exclusive_writes or advisory, got " + it->dump());
        f.enforcement = it->get<std::string>();
    }
    if (auto it = j.find("exceptions"); it != j.end()) {
        if (!it->is_object()) bad(fp + "exceptions", "expected {\"cgroups\": [...], \"commands\": [...]}");
        only_keys(*it, fp + "exceptions.", {"cgroups", "commands"});
        auto list = [&](const char* key, std::vector<std::string>& out, bool absolute) {
            auto e = it->find(key);
            if (e == it->end()) return;
            if (!e->is_array()) bad(fp + "exceptions." + key, "expected a list of strings");
            out.clear();
            for (auto& item : *e) {
                if (!item.is_string() || item.get<std::string>().empty() || (absolute && item.get<std::string>()[0] != '/'))
                    bad(fp + "exceptions." + key, absolute ? "expected cgroup paths such as \"/system.slice/backup.service\", got " + item.dump()
                                                           : "expected command names, got " + item.dump());
                out.push_back(item.get<std::string>());
            }
        };
        list("cgroups", f.exempt_cgroups, true);
        list("commands", f.exempt_commands, false);
    }
    if (auto it = j.find("hold_any_file"); it != j.end()) {
        if (!it->is_object()) bad(fp + "hold_any_file", "expected {\"users\": [...], \"groups\": [...]}");
        only_keys(*it, fp + "hold_any_file.", {"users", "groups"});
        read_users_and_groups(*it, fp + "hold_any_file.", f.hold_any_users, f.hold_any_groups);
    }
    if (auto it = j.find("queue_limits"); it != j.end()) {
        if (!it->is_object()) bad(fp + "queue_limits", "expected {\"per_user\": N, \"total\": N}");
        only_keys(*it, fp + "queue_limits.", {"per_user", "total"});
        read_int(*it, "per_user", fp + "queue_limits.", f.max_queued_per_user, 1, 1 << 20);
        read_int(*it, "total", fp + "queue_limits.", f.max_queued_total, 1, 1 << 20);
    }
    return f;
}

json Policy::FileConflicts::to_json() const {
    return {{"strategy", strategy},
            {"methods", {"file_locking", "queue_and_serialize"}},
            {"timeout", format_duration(std::chrono::duration_cast<Millis>(timeout))},
            {"enforcement", enforcement},
            {"exceptions", {{"cgroups", exempt_cgroups}, {"commands", exempt_commands}}},
            {"hold_any_file", {{"users", hold_any_users}, {"groups", hold_any_groups}}},
            {"queue_limits", {{"per_user", max_queued_per_user}, {"total", max_queued_total}}}};
}

json Policy::Limits::to_json() const {
    return {{"allocations_per_user", allocations_per_user}, {"queued_per_user", queued_per_user},
            {"reservations_per_user", reservations_per_user}, {"files_per_allocation", files_per_allocation},
            {"active_conflicts", active_conflicts}, {"connections_per_user", connections_per_user},
            {"idle_connection_timeout", format_duration(std::chrono::duration_cast<Millis>(idle_connection_timeout))},
            {"include_root", include_root}};
}

json Policy::PriorityPrivileges::to_json() const { return {{"max_priority", max_priority}, {"users", users}, {"groups", groups}}; }

bool is_listed(const std::vector<std::string>& users, const std::vector<std::string>& groups, const UserIdentity& who) {
    auto listed = [](const std::vector<std::string>& list, const std::string& name, std::uint32_t id) {
        return std::find_if(list.begin(), list.end(), [&](const std::string& entry) {
                   return (!name.empty() && entry == name) || entry == std::to_string(id);
               }) != list.end();
    };
    if (listed(users, who.name, who.uid)) return true;
    for (size_t i = 0; i < who.gids.size(); ++i)
        if (listed(groups, i < who.groups.size() ? who.groups[i] : std::string(), who.gids[i])) return true;
    return false;
}

bool may_use_any_priority(const Policy::PriorityPrivileges& privileges, const UserIdentity& who) {
    return who.uid == 0 || is_listed(privileges.users, privileges.groups, who);
}

bool may_hold_any_file(const Policy::FileConflicts& policy, const UserIdentity& who) {
    return who.uid == 0 || is_listed(policy.hold_any_users, policy.hold_any_groups, who);
}

Millis Policy::resource_check_interval() const {
    // Validated by parse_policy; the defaults hold "30s".
    return parse_duration(monitoring_intervals.value("resource_check", "30s")).value_or(Millis(30000));
}

json Policy::to_json() const {
    json weights;
    json threshold_rules{{"clear_margin", threshold_clear_margin},
                         {"repeat_interval", format_duration(std::chrono::duration_cast<Millis>(threshold_repeat_interval))}};
    for (auto& [metric, rule] : thresholds) threshold_rules[metric] = {{"threshold", rule.threshold}, {"severity", rule.severity}};
    for (auto& [band, w] : priority_weights) weights[band_name(band)] = w;
    return {{"resource_policies",
             {{"allocation_limits", {{"max_cpu_per_workflow", max_cpu_per_workflow},
                                     {"max_memory_per_workflow", max_memory_gb_per_workflow},
                                     {"max_agents_per_workflow", max_agents_per_workflow},
                                     {"max_duration", format_duration(std::chrono::duration_cast<Millis>(max_duration))},
                                     {"max_grace_period", format_duration(std::chrono::duration_cast<Millis>(max_grace_period))}}},
              {"priority_weights", weights},
              {"optimization_targets", optimization_targets},
              {"monitoring_intervals", monitoring_intervals},
              {"system_reserve", {{"cpu_cores", system_reserve_cpu}, {"memory_gb", system_reserve_memory_gb}}},
              {"agent_pool", {{"max_agents", max_agents},
                              {"idle_after", format_duration(std::chrono::duration_cast<Millis>(agent_idle_after))}}},
              {"thresholds", threshold_rules},
              {"usage_history", {{"max_size_mb", static_cast<double>(history_max_bytes) / (1 << 20)},
                                 {"max_age", format_duration(std::chrono::duration_cast<Millis>(history_max_age))}}},
              {"memory_high_ratio", memory_high_ratio},
              {"tool_classes", tool_classes},
              {"file_conflicts", file_conflicts.to_json()},
              {"priority_privileges", priority_privileges.to_json()},
              {"limits", limits.to_json()},
              {"preemption", {{"mode", preemption_mode}, {"min_priority", preemption_min_priority}, {"degrade_ratio", degrade_ratio}}},
              {"pressure_response", pressure_response.to_json()},
              {"resource_leak_detection", resource_leak_detection.to_json()},
              {"performance_degradation", performance_degradation.to_json()}}}};
}

} // namespace resmgr::core
