// The pressure responder's planner (the seed's "Resource Exhaustion Management"). Pure: a node
// sample, the policy's pressure_response, the allocations' groups, the responder's state and the
// time come in; a plan (steps to take or give back, and the next state) goes out. The caller
// (the lifecycle) records each step before it takes it; nothing here touches a kernel.
//
// Three parts kept apart, as in the kubelet's eviction manager:
//   thresholds - observe_signal: a signal is raised once past its threshold for `hold`, cleared
//                once on the good side of its clear level for `clear_hold` (hysteresis);
//   ranking    - rank_victims: the bands the policy lets it touch (never critical), lowest
//                priority first, then the largest (memory: after 10 s at its growth rate; CPU:
//                cores used), then the allocation id;
//   actions    - plan_pressure walks each resource's ladder, mildest first: the CPU rungs
//                (cpu_weight, cpu_max) reach every victim in one pass; memory_high, freeze and kill
//                one victim a pass (a memory freeze only a group that still grows); kill only while
//                memory available is under the hard floor and some group still grows (where the
//                ladder also stops waiting escalate_after between passes). Once every signal of a
//                resource has cleared, its rungs are given back in reverse, highest priority first,
//                one rung each undo_interval. Frozen processes keep their memory: a freeze stops
//                growth, memory_high (with memory.reclaim where the kernel has it) frees it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/policy.hpp"

namespace resmgr::core {

// What the sampler (or a PSI trigger that just fired) saw. Missing values are unknown: a signal
// with no value counts as on its good side.
struct PressureSample {
    std::optional<double> memory_some;  // memory PSI some, percent (avg10 or the trigger's window)
    std::optional<double> memory_full;  // memory PSI full, percent
    // MemAvailable of MemTotal, or the allocations' headroom under a tighter memory.max above
    // them (monitor/memory_headroom): `memory_bound` names which ("node" or the group).
    std::optional<std::uint64_t> memory_total_bytes, memory_available_bytes;
    std::string memory_bound = "node";
    // memory_available looks this far ahead at the groups' growth: the responder acts once a
    // pass, so what a later pass would find is what it must act on now (the sampling interval
    // times the policy's memory_lookahead_passes).
    Millis memory_lookahead{0};
    std::optional<std::uint64_t> swap_total_bytes, swap_free_bytes;
    std::optional<double> agent_pool_percent;   // agent slots in use
    std::optional<double> storage_free_percent; // the fullest watched filesystem's free share
    bool memory_reclaim = false;                // the kernel has memory.reclaim
};

// One allocation's group as the sampler and the ledger see it.
struct PressureGroup {
    std::string allocation_id;
    int priority = 50;
    AllocationStatus status = AllocationStatus::active; // only active groups are touched
    std::optional<std::uint64_t> memory_current;
    std::optional<std::uint64_t> memory_high; // nullopt: "max"
    double memory_growth_bytes_per_s = 0;
    std::optional<double> cpu_weight;         // nullopt: the kernel's default, 100
    std::optional<double> cpu_max_cores;      // nullopt: "max"
    std::optional<double> cpu_cores_used;
    std::optional<double> cpu_pressure_some;  // the group's cpu.pressure some avg10, percent
    std::optional<std::uint64_t> memory_max;  // nullopt: "max"
    std::optional<double> memory_pressure_some, memory_pressure_full; // the group's memory.pressure avg10, percent
};


enum class PressureAction { memory_high, cpu_weight, cpu_max, freeze, kill, queue_agents, refuse_storage };
std::string to_string(PressureAction action);
std::optional<PressureAction> parse_pressure_action(const std::string& name);

struct PressureStep {
    PressureAction action = PressureAction::freeze;
    bool undo = false;          // give back what an earlier step took
    std::string resource;       // memory, cpu, agents, storage
    std::string allocation_id;  // empty for node-wide steps (queue_agents, refuse_storage)
    int priority = 0;
    std::optional<double> value;    // the new memory.high (bytes), cpu.weight, cpu.max (cores)
    std::optional<double> previous; // what to put back on undo; nullopt: "max" / the default
    std::uint64_t reclaim_bytes = 0; // memory_high: also write this to memory.reclaim
    std::string signal;             // what drove it, and what it was against
    std::optional<double> seen;
    double threshold = 0;
    bool enforced = true;           // false in advisory mode: planned and reported, not taken
    std::string unenforced;         // taken, but the backend could not make it real here: why
    TimePoint at{};
    // When the driving signal first went past its threshold this time (its hold began): at minus
    // this is the responder's time to act, hold included.
    std::optional<TimePoint> signal_crossed;
    nlohmann::json to_json() const;
    // The inverse of to_json (the responder's state file); throws std::invalid_argument naming
    // the field when it is not one of to_json's.
    static PressureStep from_json(const nlohmann::json& j);
};

struct SignalState {
    bool raised = false;
    std::optional<TimePoint> past_threshold_since; // value past the threshold since
    std::optional<TimePoint> clearing_since;       // raised, and on the good side of clear since
    std::optional<TimePoint> raised_at;
    std::optional<double> last;
    nlohmann::json to_json() const;
    static SignalState from_json(const nlohmann::json& j); // throws std::invalid_argument
};

struct PressureState {
    std::map<std::string, SignalState> signals;
    std::vector<PressureStep> held;                 // steps in effect, in the order taken
    std::map<std::string, TimePoint> last_change;   // per resource: the last step taken or given back
    nlohmann::json to_json() const;
    static PressureState from_json(const nlohmann::json& j); // throws std::invalid_argument
};

struct PressurePlan {
    std::vector<PressureStep> steps; // in the order to take them
    PressureState state;             // the state once they are taken
    std::vector<std::string> notes;  // what it could not do, and why
};

// Thresholds: one observation of one signal.
SignalState observe_signal(const Policy::PressureResponse::Signal& rule, std::optional<double> value, const SignalState& previous,
                           TimePoint now);
// A group whose memory stall is its own doing: it is within 10 % of its own memory.max or
// memory.high, or the responder holds a memory step on it. Such a group stalls by design (the
// kernel reclaims it, or OOM-kills it at memory.max: its own limit, working as meant).
bool self_limited(const PressureGroup& group, const PressureState& state);
// Each signal's value in percent from a sample and the groups (cpu_protected: the highest cpu PSI
// some among groups in bands the policy does not let it touch; memory_available: the memory still
// free after memory_lookahead of the groups' summed growth, so three hogs growing 40 MiB/s each
// are met a pass before they reach the limit, not a pass after). The node's memory PSI counts only
// as far as the self-limited groups leave it unexplained: with self-limited groups stalling, the
// value is the larger of the other groups' highest stall and the node's stall minus the sum of the
// self-limited ones'. Otherwise one workflow reaching its own memory.max would look like node
// pressure, and the responder would freeze it on its way to the OOM kill its limit asks for.
std::map<std::string, std::optional<double>> signal_values(const PressureSample& sample, const std::vector<PressureGroup>& groups,
                                                           const Policy::PressureResponse& policy, const PressureState& state);
// Whether the policy lets the responder touch work of this priority (its `bands`, never critical).
bool may_touch(const Priority& priority, const Policy::PressureResponse& policy);
// Ranking: the groups the policy may touch for `resource` (memory or cpu), first victim first.
std::vector<const PressureGroup*> rank_victims(const std::vector<PressureGroup>& groups, const Policy::PressureResponse& policy,
                                               const std::string& resource);
// MemAvailable at or under the hard floor (known values only).
bool under_memory_floor(const PressureSample& sample, const Policy::PressureResponse& policy);

PressurePlan plan_pressure(const PressureSample& sample, const std::vector<PressureGroup>& groups,
                           const Policy::PressureResponse& policy, const PressureState& state, TimePoint now);

} // namespace resmgr::core
