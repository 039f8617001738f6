// The pressure responder's planner: thresholds, ranking and the ladders (see pressure.hpp).
#include "core/pressure.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>
#include <tuple>
#include <unordered_set>

namespace resmgr::core {
namespace {

using nlohmann::json;
using Rules = Policy::PressureResponse;

// A victim ranks by its size 10 s from now at its current growth rate, so a group that grows fast
// goes before a slightly larger one that does not.
constexpr double kGrowthHorizonSeconds = 10;
// memory.high is never lowered under this: below it a group thrashes without freeing much.
constexpr double kMinMemoryHighBytes = 16.0 * 1024 * 1024;
// The smallest cpu.max cap (cores) and the kernel's default cpu.weight.
constexpr double kMinCpuMaxCores = 0.01;
constexpr double kDefaultCpuWeight = 100;

// The active groups' summed memory growth in bytes/s; a shrinking group gives no credit.
double summed_memory_growth(const std::vector<PressureGroup>& groups) {
    double growth = 0;
    for (const auto& g : groups)
        if (g.status == AllocationStatus::active) growth += std::max(0.0, g.memory_growth_bytes_per_s);
    return growth;
}

// memory_available as a percent of the bound's total, one lookahead ahead at `growth` bytes/s
// (never under 0); nullopt without the figures.
std::optional<double> projected_available_percent(const PressureSample& sample, double growth) {
    const auto& total = sample.memory_total_bytes;
    if (!sample.memory_available_bytes || !total || *total == 0) return std::nullopt;
    const double ahead = static_cast<double>(*sample.memory_available_bytes) - growth * std::chrono::duration<double>(sample.memory_lookahead).count();
    return 100.0 * std::max(0.0, ahead) / static_cast<double>(*total);
}

// The CPU rungs slow every victim a little and stop none, so they reach all victims in one pass.
// The others go one victim a pass: a freeze or a kill is one workflow's, and so is memory.high
// under a group's use (anonymous memory with no swap cannot be reclaimed, so the group waits at
// it: a pause). Squeezing every victim at once would pause them all, and workflows that together
// do not fit would then wait for each other for good; one at a time, the rest finish and give
// their memory back.
bool reaches_every_victim(PressureAction a) { return a == PressureAction::cpu_weight || a == PressureAction::cpu_max; }

json opt(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }
json opt_time(const std::optional<TimePoint>& t) { return t ? json(format_timestamp(*t)) : json(nullptr); }

// Readers for from_json: a missing or mistyped field is std::invalid_argument naming it.
[[noreturn]] void bad_field(const std::string& key) { throw std::invalid_argument("field '" + key + "' is missing or malformed"); }
const json& field(const json& j, const std::string& key) {
    if (!j.is_object() || !j.contains(key)) bad_field(key);
    return j[key];
}
std::optional<double> read_opt(const json& j, const std::string& key) {
    const json& v = field(j, key);
    if (v.is_null()) return std::nullopt;
    if (!v.is_number()) bad_field(key);
    return v.get<double>();
}
TimePoint read_time(const json& v, const std::string& key) {
    if (!v.is_string()) bad_field(key);
    auto t = parse_timestamp(v.get<std::string>());
    if (!t) bad_field(key);
    return *t;
}
std::optional<TimePoint> read_opt_time(const json& j, const std::string& key) {
    const json& v = field(j, key);
    if (v.is_null()) return std::nullopt;
    return read_time(v, key);
}
template <class T>
T read_as(const json& j, const std::string& key, json::value_t type) {
    const json& v = field(j, key);
    bool ok = v.type() == type || (type == json::value_t::number_unsigned && v.is_number_integer() && v.get<long long>() >= 0) ||
              (type == json::value_t::number_integer && v.is_number_integer());
    if (!ok) bad_field(key);
    return v.get<T>();
}

// How far past its threshold a raised signal is, in percentage points (for choosing the driver).
double excess(const Rules::Signal& rule, double value) { return rule.falling ? rule.threshold - value : value - rule.threshold; }

struct Driver {
    std::string signal;
    std::optional<double> seen;
    double threshold = 0;
};

class Planner {
public:
    Planner(const PressureSample& sample, const std::vector<PressureGroup>& groups, const Rules& policy, const PressureState& state,
            TimePoint now)
        : sample_(sample), groups_(groups), policy_(policy), now_(now), floor_(under_memory_floor(sample, policy) && summed_memory_growth(groups) > 0) {
        plan_.state = state;
    }

    PressurePlan run() {
        if (policy_.mode == "off") {
            give_back_everything();
            return std::move(plan_);
        }
        forget_vanished();
        values_ = signal_values(sample_, groups_, policy_, plan_.state);
        for (auto& [name, rule] : policy_.signals) {
            auto previous = plan_.state.signals.find(name);
            plan_.state.signals[name] =
                observe_signal(rule, values_[name], previous == plan_.state.signals.end() ? SignalState{} : previous->second, now_);
        }
        for (const std::string resource : {"memory", "cpu"}) {
            if (auto driver = driving_signal(resource)) escalate(resource, *driver);
            else if (resource == "cpu" && !values_["cpu_protected"]) give_back_everything_of("cpu", "cpu_protected");
            else if (!any_raised(resource)) give_back_one_rung(resource);
            // else raised, but back on the good side of its threshold: keep what is taken, take no more.
        }
        node_wide("agents", "agent_pool", PressureAction::queue_agents);
        node_wide("storage", "storage_free", PressureAction::refuse_storage);
        return std::move(plan_);
    }

private:
    // The raised signal of `resource` furthest past its threshold, counting only those still past
    // it now (one between its clear level and its threshold, or clearing, climbs no further);
    // memory under the hard floor counts even before any signal has held long enough.
    std::optional<Driver> driving_signal(const std::string& resource) {
        std::optional<Driver> best;
        double best_excess = -1;
        for (auto& [name, rule] : policy_.signals) {
            const SignalState& state = plan_.state.signals[name];
            if (rule.resource != resource || !state.raised || !state.past_threshold_since) continue;
            auto value = values_[name];
            double e = value ? excess(rule, *value) : 0;
            if (!best || e > best_excess) {
                best = Driver{name, value, rule.threshold};
                best_excess = e;
            }
        }
        if (!best && resource == "memory" && floor_) return floor_driver();
        return best;
    }

    bool any_raised(const std::string& resource) {
        return std::any_of(policy_.signals.begin(), policy_.signals.end(), [&](const auto& named) {
            return named.second.resource == resource && plan_.state.signals[named.first].raised;
        });
    }

    // No group left to protect (every critical or untouchable one ended or stopped using the CPU):
    // the CPU held back from the others protects nothing, so all of it goes back now, not one rung
    // a second after clear_hold; the signal starts afresh.
    void give_back_everything_of(const std::string& resource, const std::string& signal) {
        if (!held(resource)) return;
        while (give_back_top_rung(resource)) {}
        plan_.state.signals[signal] = SignalState{};
    }

    Driver floor_driver() { return {"memory_available", values_["memory_available"], policy_.memory_available_floor_percent}; }

    bool held(const std::string& resource) const {
        return std::any_of(plan_.state.held.begin(), plan_.state.held.end(), [&](const PressureStep& s) { return s.resource == resource; });
    }

    // `resource` (any resource when empty) holds `action` on `g`. From an index of the held steps
    // (index_held at the start of each escalation, kept by take): escalating a thousand groups
    // would otherwise scan every held step for every victim and rung.
    bool has(const PressureGroup& g, PressureAction action, const std::string& resource) const {
        if (!resource.empty()) return held_index_.count({g.allocation_id, action, resource}) > 0;
        return held_index_.count({g.allocation_id, action, "memory"}) > 0 || held_index_.count({g.allocation_id, action, "cpu"}) > 0;
    }
    // A victim other than `g` that holds no memory pause (memory_high, or a freeze for any resource).
    bool another_goes_on(const PressureGroup& g, const std::vector<const PressureGroup*>& victims) const {
        return std::any_of(victims.begin(), victims.end(), [&](const PressureGroup* v) {
            return v->allocation_id != g.allocation_id && !has(*v, PressureAction::memory_high, "memory") && !has(*v, PressureAction::freeze, "");
        });
    }
    void index_held() {
        held_index_.clear();
        for (const auto& s : plan_.state.held) held_index_.insert({s.allocation_id, s.action, s.resource});
    }

    // The step `action` would take on `g` now, or nullopt when it would change nothing.
    std::optional<PressureStep> step_for(PressureAction action, const PressureGroup& g) const {
        PressureStep s;
        s.action = action;
        s.allocation_id = g.allocation_id;
        s.priority = g.priority;
        switch (action) {
        case PressureAction::memory_high: {
            if (!g.memory_current || static_cast<double>(*g.memory_current) <= kMinMemoryHighBytes) return std::nullopt;
            double target = std::floor(std::max(kMinMemoryHighBytes, static_cast<double>(*g.memory_current) * policy_.memory_high_ratio));
            if (g.memory_high && static_cast<double>(*g.memory_high) <= target) return std::nullopt;
            s.value = target;
            if (g.memory_high) s.previous = static_cast<double>(*g.memory_high);
            if (sample_.memory_reclaim) s.reclaim_bytes = *g.memory_current - static_cast<std::uint64_t>(target);
            break;
        }
        case PressureAction::cpu_weight: {
            double now_weight = g.cpu_weight.value_or(kDefaultCpuWeight);
            double target = std::max(1.0, std::floor(now_weight * policy_.cpu_weight_ratio));
            if (target >= now_weight) return std::nullopt;
            s.value = target;
            s.previous = g.cpu_weight;
            break;
        }
        case PressureAction::cpu_max: {
            if (!g.cpu_cores_used || *g.cpu_cores_used <= 0) return std::nullopt; // capping an idle group frees nothing
            double target = std::max(kMinCpuMaxCores, *g.cpu_cores_used * policy_.cpu_max_ratio);
            if (g.cpu_max_cores && *g.cpu_max_cores <= target) return std::nullopt;
            s.value = target;
            s.previous = g.cpu_max_cores;
            break;
        }
        case PressureAction::freeze:
        case PressureAction::kill:
            break;
        case PressureAction::queue_agents:
        case PressureAction::refuse_storage:
            return std::nullopt; // node-wide, never per group
        }
        return s;
    }

    void take(PressureStep step, const std::string& resource, const Driver& driver) {
        step.resource = resource;
        step.signal = driver.signal;
        step.seen = driver.seen;
        step.threshold = driver.threshold;
        step.enforced = policy_.mode == "enforce";
        step.at = now_;
        if (auto it = plan_.state.signals.find(driver.signal); it != plan_.state.signals.end())
            step.signal_crossed = it->second.past_threshold_since;
        plan_.steps.push_back(step);
        plan_.state.held.push_back(step);
        held_index_.insert({step.allocation_id, step.action, step.resource});
        plan_.state.last_change[resource] = now_;
    }

    void escalate(const std::string& resource, const Driver& driver) {
        auto last = plan_.state.last_change.find(resource);
        bool waiting = held(resource) && last != plan_.state.last_change.end() && now_ - last->second < policy_.escalate_after;
        // Under the hard floor the ladder does not wait: the kernel's OOM killer would not either.
        if (waiting && !(resource == "memory" && floor_)) return;
        auto victims = rank_victims(groups_, policy_, resource);
        index_held();
        auto ladder = policy_.ladder.find(resource);
        if (ladder == policy_.ladder.end()) return;
        for (const auto& name : ladder->second) {
            auto action = parse_pressure_action(name);
            if (!action) continue; // parse_pressure_response admits only known actions
            if (*action == PressureAction::kill && !floor_) {
                plan_.notes.push_back(resource + ": every rung short of kill is taken; kill waits for MemAvailable under " +
                                      std::to_string(policy_.memory_available_floor_percent) + " %");
                return;
            }
            bool taken = false;
            for (const PressureGroup* g : victims) {
                if (has(*g, *action, resource)) continue;
                // A memory freeze is there to stop growth: a group that does not grow (done
                // growing, or held at its lowered memory.high) would keep its memory frozen and
                // only stop its progress.
                if (*action == PressureAction::freeze && resource == "memory" && g->memory_growth_bytes_per_s <= 0) continue;
                // Nor does a memory pause reach the last victim still going: with all of them
                // paused none finishes to give memory back, and they would wait for each other
                // for good. Past that only the floor's kill frees memory.
                if (resource == "memory" && *action != PressureAction::kill && !another_goes_on(*g, victims)) continue;
                auto step = step_for(*action, *g);
                if (!step) continue;
                // A group the other resource froze already is taken over at no cost (it is thawed
                // with the last freeze given back); otherwise freeze and kill reach one victim a pass.
                bool frozen_already = *action == PressureAction::freeze && has(*g, PressureAction::freeze, "");
                take(*step, resource, *action == PressureAction::kill ? floor_driver() : driver);
                taken = true;
                if (reaches_every_victim(*action) || frozen_already) continue;
                if (resource == "memory" && *action != PressureAction::kill && still_short_after(*g, driver)) continue;
                break;
            }
            if (taken) return;
        }
        plan_.notes.push_back(resource + ": under pressure (" + driver.signal + ") with nothing left to act on" +
                              (victims.empty() ? ": no allocation in the bands the policy lets it touch" : ""));
    }

    // memory_available looks ahead at the groups' growth, and a victim squeezed or frozen stops
    // growing, so its growth comes out of the projection. True while what the others' growth
    // leaves is still at or under the threshold: the next victim is taken in this pass, not a
    // pass later with the limit that much closer.
    bool still_short_after(const PressureGroup& victim, const Driver& driver) {
        auto rule = policy_.signals.find("memory_available");
        if (driver.signal != "memory_available" || rule == policy_.signals.end()) return false;
        growth_stopped_ += std::max(0.0, victim.memory_growth_bytes_per_s);
        const auto left = projected_available_percent(sample_, std::max(0.0, summed_memory_growth(groups_) - growth_stopped_));
        return left && *left <= rule->second.threshold;
    }

    // The undo of `held`, or nullopt when another step still needs what it holds (a freeze two
    // resources share is given back with the last of them).
    std::optional<PressureStep> undo_of(const PressureStep& held_step) const {
        if (held_step.action == PressureAction::kill) return std::nullopt; // nothing to give back
        if (held_step.action == PressureAction::freeze &&
            std::count_if(plan_.state.held.begin(), plan_.state.held.end(), [&](const PressureStep& s) {
                return s.action == PressureAction::freeze && s.allocation_id == held_step.allocation_id;
            }) > 1)
            return std::nullopt;
        PressureStep u = held_step;
        u.undo = true;
        u.value = held_step.previous;
        u.previous = held_step.value;
        u.reclaim_bytes = 0;
        u.at = now_;
        auto rule = policy_.signals.find(held_step.signal);
        auto value = values_.find(held_step.signal);
        u.seen = value != values_.end() ? value->second : std::nullopt;
        if (rule != policy_.signals.end()) u.threshold = rule->second.clear;
        return u;
    }

    // Gives back the held steps of `resource` (every resource when empty) with the most severe
    // action, highest priority first. Returns false when none were held.
    bool give_back_top_rung(const std::string& resource) {
        auto& held_steps = plan_.state.held;
        std::optional<PressureAction> top;
        for (auto& s : held_steps)
            if ((resource.empty() || s.resource == resource) && (!top || s.action > *top)) top = s.action;
        if (!top) return false;
        std::vector<PressureStep> rung;
        for (auto& s : held_steps)
            if ((resource.empty() || s.resource == resource) && s.action == *top) rung.push_back(s);
        std::stable_sort(rung.begin(), rung.end(), [](const PressureStep& a, const PressureStep& b) {
            return a.priority != b.priority ? a.priority > b.priority : a.allocation_id < b.allocation_id;
        });
        for (auto& s : rung) {
            auto u = undo_of(s);
            auto at = std::find_if(held_steps.begin(), held_steps.end(), [&](const PressureStep& h) {
                return h.action == s.action && h.allocation_id == s.allocation_id && h.resource == s.resource;
            });
            held_steps.erase(at);
            if (u) plan_.steps.push_back(*u);
        }
        plan_.state.last_change[resource] = now_;
        return true;
    }

    void give_back_one_rung(const std::string& resource) {
        if (!held(resource)) return;
        auto last = plan_.state.last_change.find(resource);
        if (last != plan_.state.last_change.end() && now_ - last->second < policy_.undo_interval) return;
        give_back_top_rung(resource);
    }

    void give_back_everything() {
        values_ = signal_values(sample_, groups_, policy_, plan_.state);
        while (give_back_top_rung("")) {}
        plan_.state = PressureState{};
    }

    // Steps on allocations that are gone hold nothing any more.
    void forget_vanished() {
        auto& held_steps = plan_.state.held;
        if (held_steps.empty()) return;
        std::unordered_set<std::string> present;
        for (const auto& g : groups_) present.insert(g.allocation_id);
        auto gone = [&](const PressureStep& s) { return !s.allocation_id.empty() && !present.count(s.allocation_id); };
        for (auto& s : held_steps)
            if (gone(s)) plan_.notes.push_back(s.allocation_id + ": gone; its " + to_string(s.action) + " is dropped");
        held_steps.erase(std::remove_if(held_steps.begin(), held_steps.end(), gone), held_steps.end());
    }

    // agents and storage: one node-wide step while the signal is raised, given back once cleared.
    void node_wide(const std::string& resource, const std::string& signal, PressureAction action) {
        auto rule = policy_.signals.find(signal);
        if (rule == policy_.signals.end()) return;
        bool raised = plan_.state.signals[signal].raised;
        if (raised && !held(resource)) {
            PressureStep s;
            s.action = action;
            take(s, resource, {signal, values_[signal], rule->second.threshold});
        } else if (!raised && held(resource)) {
            give_back_top_rung(resource);
        }
    }

    const PressureSample& sample_;
    const std::vector<PressureGroup>& groups_;
    const Rules& policy_;
    TimePoint now_;
    // Under the hard floor and some group still takes memory. With nothing growing, nothing is
    // about to run out (the kernel's OOM killer too acts only on an allocation that fails): no kill.
    bool floor_;
    std::map<std::string, std::optional<double>> values_;
    double growth_stopped_ = 0; // bytes/s of the victims squeezed or frozen for memory this pass
    std::set<std::tuple<std::string, PressureAction, std::string>> held_index_; // (allocation, action, resource)
    PressurePlan plan_;
};

} // namespace

std::optional<PressureAction> parse_pressure_action(const std::string& name) {
    for (auto a : {PressureAction::memory_high, PressureAction::cpu_weight, PressureAction::cpu_max, PressureAction::freeze,
                   PressureAction::kill, PressureAction::queue_agents, PressureAction::refuse_storage})
        if (to_string(a) == name) return a;
    return std::nullopt;
}

std::string to_string(PressureAction action) {
    switch (action) {
    case PressureAction::memory_high: return "memory_high";
    case PressureAction::cpu_weight: return "cpu_weight";
    case PressureAction::cpu_max: return "cpu_max";
    case PressureAction::freeze: return "freeze";
    case PressureAction::kill: return "kill";
    case PressureAction::queue_agents: return "queue_agents";
    case PressureAction::refuse_storage: return "refuse_storage";
    }
    return "unknown";
}

SignalState observe_signal(const Rules::Signal& rule, std::optional<double> value, const SignalState& previous, TimePoint now) {
    SignalState s = previous;
    s.last = value;
    SignalState fresh;
    fresh.last = value;
    if (!rule.enabled) return fresh;
    bool past = value && (rule.falling ? *value <= rule.threshold : *value >= rule.threshold);
    bool good = !value || (rule.falling ? *value >= rule.clear : *value <= rule.clear);
    if (past) {
        s.clearing_since.reset();
        if (!s.past_threshold_since) s.past_threshold_since = now;
        if (!s.raised && now - *s.past_threshold_since >= rule.hold) {
            s.raised = true;
            s.raised_at = now;
        }
        return s;
    }
    s.past_threshold_since.reset();
    if (!s.raised || !good) { // between clear and threshold: nothing changes
        s.clearing_since.reset();
        return s;
    }
    if (!s.clearing_since) s.clearing_since = now;
    if (now - *s.clearing_since >= rule.clear_hold) s = fresh;
    return s;
}

namespace {
bool near_own_memory_limit(const PressureGroup& group) {
    constexpr double kNearLimit = 0.9;
    if (!group.memory_current) return false;
    const double current = static_cast<double>(*group.memory_current);
    for (const auto& limit : {group.memory_max, group.memory_high})
        if (limit && current >= kNearLimit * static_cast<double>(*limit)) return true;
    return false;
}

std::unordered_set<std::string> squeezed_for_memory(const PressureState& state) {
    std::unordered_set<std::string> ids;
    for (const auto& s : state.held)
        if (s.resource == "memory" && !s.allocation_id.empty()) ids.insert(s.allocation_id);
    return ids;
}
} // namespace

bool self_limited(const PressureGroup& group, const PressureState& state) {
    return near_own_memory_limit(group) || squeezed_for_memory(state).count(group.allocation_id) > 0;
}

namespace {
// The node's memory PSI (some or full), unless the self-limited groups explain it (see signal_values).
std::optional<double> unexplained_memory_stall(std::optional<double> node, const std::vector<PressureGroup>& groups,
                                               const PressureState& state, std::optional<double> PressureGroup::*stall) {
    if (!node) return node;
    const auto squeezed = squeezed_for_memory(state); // once, not per group
    double self_inflicted = 0, others = 0;
    for (const auto& g : groups) {
        if (g.status != AllocationStatus::active || !(g.*stall)) continue;
        if (near_own_memory_limit(g) || squeezed.count(g.allocation_id)) self_inflicted += *(g.*stall);
        else others = std::max(others, *(g.*stall));
    }
    if (self_inflicted <= 0) return node;
    // PSI "some" is the share of time at least one task stalled, so the node's is at most the sum
    // of every group's: what the self-limited groups together leave unexplained is stall of others
    // (two squeezed groups stalling in turn make the node's share their sum, not the larger one).
    return std::max(others, std::max(0.0, *node - self_inflicted));
}
} // namespace

std::map<std::string, std::optional<double>> signal_values(const PressureSample& sample, const std::vector<PressureGroup>& groups,
                                                           const Rules& policy, const PressureState& state) {
    auto share = [](const std::optional<std::uint64_t>& part, const std::optional<std::uint64_t>& total) -> std::optional<double> {
        if (!part || !total || *total == 0) return std::nullopt;
        return 100.0 * static_cast<double>(*part) / static_cast<double>(*total);
    };
    std::optional<double> protected_cpu;
    for (const auto& g : groups) {
        if (may_touch(Priority{g.priority}, policy) || g.status != AllocationStatus::active || !g.cpu_pressure_some) continue;
        protected_cpu = std::max(protected_cpu.value_or(0), *g.cpu_pressure_some);
    }
    return {{"memory_some", unexplained_memory_stall(sample.memory_some, groups, state, &PressureGroup::memory_pressure_some)},
            {"memory_full", unexplained_memory_stall(sample.memory_full, groups, state, &PressureGroup::memory_pressure_full)},
            {"memory_available", projected_available_percent(sample, summed_memory_growth(groups))},
            {"swap_free", share(sample.swap_free_bytes, sample.swap_total_bytes)}, // no swap: no signal
            {"cpu_protected", protected_cpu},
            {"agent_pool", sample.agent_pool_percent},
            {"storage_free", sample.storage_free_percent}};
}

bool may_touch(const Priority& priority, const Rules& policy) {
    const auto band = priority.band();
    return band != PriorityBand::critical && std::find(policy.bands.begin(), policy.bands.end(), band) != policy.bands.end();
}

std::vector<const PressureGroup*> rank_victims(const std::vector<PressureGroup>& groups, const Rules& policy, const std::string& resource) {
    std::vector<const PressureGroup*> victims;
    for (const auto& g : groups)
        if (g.status == AllocationStatus::active && may_touch(Priority{g.priority}, policy)) victims.push_back(&g);
    auto size = [&](const PressureGroup* g) {
        if (resource == "cpu") return g->cpu_cores_used.value_or(0);
        double now = static_cast<double>(g->memory_current.value_or(0));
        return std::max(now, now + g->memory_growth_bytes_per_s * kGrowthHorizonSeconds);
    };
    std::stable_sort(victims.begin(), victims.end(), [&](const PressureGroup* a, const PressureGroup* b) {
        if (a->priority != b->priority) return a->priority < b->priority;
        if (size(a) != size(b)) return size(a) > size(b);
        return a->allocation_id < b->allocation_id;
    });
    return victims;
}

bool under_memory_floor(const PressureSample& sample, const Rules& policy) {
    if (!sample.memory_available_bytes || !sample.memory_total_bytes || *sample.memory_total_bytes == 0) return false;
    return 100.0 * static_cast<double>(*sample.memory_available_bytes) / static_cast<double>(*sample.memory_total_bytes) <=
           policy.memory_available_floor_percent;
}

PressurePlan plan_pressure(const PressureSample& sample, const std::vector<PressureGroup>& groups, const Rules& policy,
                           const PressureState& state, TimePoint now) {
    return Planner(sample, groups, policy, state, now).run();
}

json PressureStep::to_json() const {
    json j{{"action", to_string(action)},
           {"undo", undo},
           {"resource", resource},
           {"allocation_id", allocation_id.empty() ? json(nullptr) : json(allocation_id)},
           {"priority", priority},
           {"value", opt(value)},
           {"previous", opt(previous)},
           {"signal", signal},
           {"seen", opt(seen)},
           {"threshold", threshold},
           {"enforced", enforced},
           {"at", format_timestamp(at)}};
    if (reclaim_bytes) j["reclaim_bytes"] = reclaim_bytes;
    if (!unenforced.empty()) j["unenforced"] = unenforced;
    if (signal_crossed) {
        j["signal_crossed"] = format_timestamp(*signal_crossed);
        j["time_to_act_ms"] = std::chrono::duration_cast<Millis>(at - *signal_crossed).count(); // timestamps are whole seconds
    }
    return j;
}

json SignalState::to_json() const {
    return {{"raised", raised},
            {"value", opt(last)},
            {"past_threshold_since", opt_time(past_threshold_since)},
            {"clearing_since", opt_time(clearing_since)},
            {"raised_at", opt_time(raised_at)}};
}

json PressureState::to_json() const {
    json sig = json::object(), steps = json::array(), changes = json::object();
    for (auto& [name, s] : signals) sig[name] = s.to_json();
    for (auto& s : held) steps.push_back(s.to_json());
    for (auto& [resource, t] : last_change) changes[resource] = format_timestamp(t);
    return {{"signals", sig}, {"held", steps}, {"last_change", changes}};
}

PressureStep PressureStep::from_json(const json& j) {
    PressureStep s;
    auto action = parse_pressure_action(read_as<std::string>(j, "action", json::value_t::string));
    if (!action) bad_field("action");
    s.action = *action;
    s.undo = read_as<bool>(j, "undo", json::value_t::boolean);
    s.resource = read_as<std::string>(j, "resource", json::value_t::string);
    if (!field(j, "allocation_id").is_null()) s.allocation_id = read_as<std::string>(j, "allocation_id", json::value_t::string);
    s.priority = read_as<int>(j, "priority", json::value_t::number_integer);
    s.value = read_opt(j, "value");
    s.previous = read_opt(j, "previous");
    if (j.contains("reclaim_bytes")) s.reclaim_bytes = read_as<std::uint64_t>(j, "reclaim_bytes", json::value_t::number_unsigned);
    s.signal = read_as<std::string>(j, "signal", json::value_t::string);
    s.seen = read_opt(j, "seen");
    s.threshold = read_opt(j, "threshold").value_or(0);
    s.enforced = read_as<bool>(j, "enforced", json::value_t::boolean);
    if (j.contains("unenforced")) s.unenforced = read_as<std::string>(j, "unenforced", json::value_t::string);
    if (j.contains("signal_crossed")) s.signal_crossed = read_time(j["signal_crossed"], "signal_crossed");
    s.at = read_time(field(j, "at"), "at");
    return s;
}

SignalState SignalState::from_json(const json& j) {
    SignalState s;
    s.raised = read_as<bool>(j, "raised", json::value_t::boolean);
    s.last = read_opt(j, "value");
    s.past_threshold_since = read_opt_time(j, "past_threshold_since");
    s.clearing_since = read_opt_time(j, "clearing_since");
    s.raised_at = read_opt_time(j, "raised_at");
    return s;
}

PressureState PressureState::from_json(const json& j) {
    PressureState s;
    const json& signals = field(j, "signals");
    const json& held = field(j, "held");
    const json& changes = field(j, "last_change");
    if (!signals.is_object()) bad_field("signals");
    if (!held.is_array()) bad_field("held");
    if (!changes.is_object()) bad_field("last_change");
    for (auto& [name, sig] : signals.items()) s.signals[name] = SignalState::from_json(sig);
    for (auto& step : held) s.held.push_back(PressureStep::from_json(step));
    for (auto& [resource, t] : changes.items()) s.last_change[resource] = read_time(t, "last_change." + resource);
    return s;
}

} // namespace resmgr::core
