// agent/core owns the decisions: the policy (what is allowed), the ledger (what is promised to
// whom) and the mapping of an allocation to kernel limits. Pure: values in, decisions out; no
// I/O, no clock of its own, so every rule is unit-tested without a kernel.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "resmgr/model.hpp"

namespace resmgr::core {

// The seed's "Default Resource Policies", plus the few knobs resmgr adds (marked).
struct Policy {
    // allocation_limits, per workflow (summed over the workflow's allocations)
    double max_cpu_per_workflow = 6;
    double max_memory_gb_per_workflow = 12;
    int max_agents_per_workflow = 15;
    Seconds max_duration = std::chrono::hours(6);
    // resmgr: auto_release.grace_period (SIGTERM to SIGKILL) at most this.
    Seconds max_grace_period = std::chrono::hours(1);
    // priority_weights: scale cpu.weight/io.weight between bands
    std::map<PriorityBand, double> priority_weights{
        {PriorityBand::critical, 1.0}, {PriorityBand::high, 0.8}, {PriorityBand::medium, 0.6}, {PriorityBand::low, 0.4}};
    // optimization_targets and monitoring_intervals are kept verbatim for the parts that use them.
    nlohmann::json optimization_targets{
        {"efficiency_threshold", 80.0}, {"response_time_target", "1.0s"}, {"utilization_target", 75.0}, {"conflict_tolerance", 0.1}};
    nlohmann::json monitoring_intervals{
        {"resource_check", "30s"}, {"performance_sample", "5m"}, {"capacity_analysis", "1h"}, {"trend_analysis", "24h"}};
    // resmgr: capacity held back for the system itself (sshd, journald, the daemon).
    double system_reserve_cpu = 0.5;
    double system_reserve_memory_gb = 1.0;
    // resmgr: the seed's agent_pool.max_agents, node-wide.
    int max_agents = 20;
    // resmgr: memory.high as a fraction of memory.max, so reclaim starts before the OOM killer.
    double memory_high_ratio = 0.9;
    // resmgr: priority preemption (the seed's priority_preemption / graceful_degradation).
    // Requests at or above min_priority may take room from lower bands: "pause" freezes victims
    // (frees their CPU; frozen processes keep their memory), "degrade" shrinks their CPU to
    // degrade_ratio of what they had, "kill" ends them; "none" never preempts.
    std::string preemption_mode = "pause";
    int preemption_min_priority = 90;
    double degrade_ratio = 0.25;

    // resmgr: a priority is a claim on other users' work (critical preempts), so it is a privilege.
    // Root and the users and groups listed may ask for any priority and take files with
    // resolve-conflicts priority_based; everyone else is capped at max_priority.
    struct PriorityPrivileges {
        int max_priority = 89; // the top of "high", below preemption.min_priority
        std::vector<std::string> users;  // user names or uids
        std::vector<std::string> groups; // group names or gids
        nlohmann::json to_json() const;
    };
    PriorityPrivileges priority_privileges;

    // resmgr: what one local user may hold, so no user can use up the node's bookkeeping for the
    // others (root is exempt unless include_root). A request past one is refused naming it.
    struct Limits {
        int allocations_per_user = 1000; // live: active, paused, expired-but-running
        int queued_per_user = 100;
        int reservations_per_user = 100;
        int files_per_allocation = 64;
        int active_conflicts = 1000;     // node-wide: past it, new conflicts fold into existing records
        int connections_per_user = 64;
        Seconds idle_connection_timeout = std::chrono::minutes(10);
        bool include_root = false;
        nlohmann::json to_json() const;
    };
    Limits limits;

    // resmgr: the seed's threshold monitor. Raised when a metric reaches `threshold` percent,
    // cleared once it falls below threshold - clear_margin, repeated at most every repeat_interval.
    struct Threshold {
        double threshold = 0;
        std::string severity = "warning";
    };
    std::map<std::string, Threshold> thresholds{
        {"cpu", {80.0, "warning"}}, {"memory", {85.0, "warning"}}, {"agent_pool", {90.0, "critical"}}};
    double threshold_clear_margin = 5.0;
    Seconds threshold_repeat_interval = std::chrono::minutes(5);
    // resmgr: an agent with no CPU use for this long counts as idle.
    Seconds agent_idle_after = std::chrono::seconds(60);
    // resmgr: monitoring/usage_history.jsonl is rotated past this size or age.
    std::uint64_t history_max_bytes = 16u << 20;
    Seconds history_max_age = std::chrono::hours(24 * 7);

    // The seed's conflict_resolution.file_conflicts, as the fanotify guard enforces it: strategy
    // file_locking (outside writers get EPERM) or queue_and_serialize (they wait for the holder, up
    // to timeout); resmgr adds enforcement (strict: outside readers refused too; exclusive_writes:
    // reads allowed, the seed's read_only_operations exception; advisory: nothing refused, every
    // conflicting open reported) and exceptions (cgroup subtrees and command names let through).
    struct FileConflicts {
        std::string strategy = "queue_and_serialize";
        Seconds timeout = std::chrono::minutes(10);
        std::string enforcement = "exclusive_writes";
        std::vector<std::string> exempt_cgroups;
        std::vector<std::string> exempt_commands;
        // hold_any_file: users and groups (names or ids) who, like root, may hold any regular file,
        // not only those they could open for writing themselves.
        std::vector<std::string> hold_any_users, hold_any_groups;
        // queue_limits: at most this many openers wait for held files per uid, and in all; the
        // next one is refused (EPERM) at once. Each waiting opener costs resmgrd an fd.
        int max_queued_per_user = 64;
        int max_queued_total = 1024;
        nlohmann::json to_json() const;
    };
    FileConflicts file_conflicts;

    // resmgr: the pressure responder (the seed's "Resource Exhaustion Management"; the planner is
    // core/pressure.hpp). Each signal is raised once its value has stayed past `threshold` for
    // `hold` and cleared once it has stayed on the good side of `clear` for `clear_hold`
    // (hysteresis). Signals whose name ends in _available / _free are raised by falling values.
    // Values are percentages: PSI stall share (avg10, or the trigger's window), MemAvailable, free
    // swap and free storage of their totals, agent slots in use.
    struct PressureResponse {
        struct Signal {
            std::string resource; // memory, cpu, agents or storage (fixed per signal)
            bool falling = false; // raised by values at or below the threshold
            double threshold = 0;
            double clear = 0;
            Millis hold{0};
            Millis clear_hold{0};
            bool enabled = true;
        };
        // off | advisory (plans, reports, touches nothing) | enforce. Enforce by default: it never
        // touches critical or high work, squeezes one workflow at a time so the others finish,
        // freezes only what still grows, kills only at the hard floor with memory still growing,
        // and gives everything back once the signal clears (core/pressure.hpp).
        std::string mode = "enforce";
        std::map<std::string, Signal> signals{
            {"memory_some", {"memory", false, 20, 5, Millis(1000), Millis(10000)}},
            {"memory_full", {"memory", false, 5, 1, Millis(1000), Millis(10000)}},
            // No hold: the level is read one pass ahead at the groups' growth (core/pressure
            // signal_values), and under it a slice's OOM killer is a second or two away.
            {"memory_available", {"memory", true, 10, 15, Millis(0), Millis(10000)}},
            {"swap_free", {"memory", true, 10, 20, Millis(5000), Millis(10000)}},
            // CPU PSI some of the protected groups (the bands the responder may not touch): the
            // groups it throttles stall by design, so their pressure must not count. No hold:
            // the first rung, cpu.weight, takes nothing while the protected group is idle (the
            // kernel shares by weight only between groups that want the CPU), and escalate_after
            // still spaces the rungs that do take.
            {"cpu_protected", {"cpu", false, 20, 5, Millis(0), Millis(10000)}},
            {"agent_pool", {"agents", false, 90, 80, Millis(0), Millis(10000)}},
            {"storage_free", {"storage", true, 10, 15, Millis(0), Millis(60000)}}};
        // Actions per resource, mildest first. memory: memory_high, freeze, kill; cpu: cpu_weight,
        // cpu_max, freeze. kill runs only under memory_available_floor_percent.
        std::map<std::string, std::vector<std::string>> ladder{{"memory", {"memory_high", "freeze", "kill"}},
                                                              {"cpu", {"cpu_weight", "cpu_max", "freeze"}}};
        double memory_available_floor_percent = 3; // the hard floor (earlyoom SIGKILLs at 5 %)
        std::vector<PriorityBand> bands{PriorityBand::low, PriorityBand::medium}; // may be touched; never critical
        Millis escalate_after{2000}; // a resource still under pressure this long after a step gets the next one
        Millis undo_interval{1000};  // between giving back one rung and the next
        double memory_high_ratio = 0.8; // memory.high lowered to this share of the group's use
        // cpu.weight lowered to this share. 0.05: a low group at 67 goes to 3, so a protected step
        // at 167 sharing a CPU with three spinners gets 95 % of it (0.25 left it 78 %, and its
        // stall under the threshold, so no further rung came); an idle protected group takes
        // nothing, so a deep first rung costs the low work nothing then.
        double cpu_weight_ratio = 0.05;
        double cpu_max_ratio = 0.5;     // cpu.max capped at this share of the cores it uses
        Millis trigger_window{1000};    // PSI trigger window; the stall is threshold % of it
        // memory_available looks this many sampling intervals ahead at the groups' growth. Two:
        // a step taken in a pass shows in the next pass's growth figures, and only then can the
        // next victim be taken, so the projection must reach the pass after next. With one, the
        // VM scenario (BENCHMARKS.md) paused its third hog too late to save it in 3 of 10 trials.
        int memory_lookahead_passes = 2;
        nlohmann::json to_json() const;
    };
    PressureResponse pressure_response;

    // The seed's recovery_procedures.resource_leak_detection: every monitoring_interval look for
    // groups no allocation claims, allocations whose group vanished, processes of ended
    // allocations and orphaned temporary directories; with auto_cleanup remove them.
    struct LeakDetection {
        Seconds monitoring_interval = std::chrono::minutes(5);
        double leak_threshold = 15; // percent
        bool auto_cleanup = true;
        Seconds escalation_timeout = std::chrono::minutes(30);
        nlohmann::json to_json() const;
    };
    LeakDetection resource_leak_detection;

    // The seed's recovery_procedures.performance_degradation: a workflow type whose newest runs
    // take degradation_threshold percent longer than its baseline raises PERFORMANCE_DEGRADED
    // (analytics/degradation.hpp; checked at each leak pass). detection_method: only
    // "baseline_comparison". auto_optimization and manual_intervention are kept and reported with
    // the event; resmgrd does not resize on its own (`resmgr optimize` does, when asked).
    struct PerformanceDegradation {
        std::string detection_method = "baseline_comparison";
        double degradation_threshold = 25; // percent slower than the baseline
        bool auto_optimization = true;
        bool manual_intervention = false;
        nlohmann::json to_json() const;
    };
    PerformanceDegradation performance_degradation;

    // resmgr: {"category": ["command", ...]} classifying executed programs into the seed's
    // tool_instances; null keeps the built-in classes (checked by agent/bpf's ToolClasses).
    nlohmann::json tool_classes = nullptr;

    // The config file's top-level "cluster" object (etcd endpoints, node name, lease TTL, shared
    // paths), kept verbatim and checked by agent/cluster's parse_cluster_config; null: one node.
    nlohmann::json cluster = nullptr;

    // monitoring_intervals.resource_check: how often the node and every group are sampled.
    Millis resource_check_interval() const;

    static Policy defaults() { return {}; }
    nlohmann::json to_json() const; // {"resource_policies": {...}}
};

// Who asks, as the user database knows them (for priority_privileges).
struct UserIdentity {
    std::uint32_t uid = 0;
    std::string name;                 // empty when the uid has no passwd entry
    std::vector<std::string> groups;  // group names, the primary group included
    std::vector<std::uint32_t> gids;
};
// True when `who` may use priorities above privileges.max_priority.
bool may_use_any_priority(const Policy::PriorityPrivileges& privileges, const UserIdentity& who);
// True when `who` is in `users` or one of its groups in `groups` (names or ids).
bool is_listed(const std::vector<std::string>& users, const std::vector<std::string>& groups, const UserIdentity& who);
// True when `who` may hold any regular file (root, file_conflicts.hold_any_file).
bool may_hold_any_file(const Policy::FileConflicts& policy, const UserIdentity& who);

// Overlays `j` ({"resource_policies": {...}}, every key optional) on the defaults. Throws
// ApiError(INVALID_REQUEST) naming the first bad field: unknown keys, wrong types, negative or
// inconsistent values (e.g. weights not ordered critical >= high >= medium >= low).
Policy parse_policy(const nlohmann::json& j);
// Overlays a file_conflicts object (every key optional) on `current`; `path` names it in errors.
Policy::FileConflicts parse_file_conflicts(const nlohmann::json& j, const std::string& path, Policy::FileConflicts current);
// Overlays a pressure_response object on `current` (every key optional); `path` names it in errors.
Policy::PressureResponse parse_pressure_response(const nlohmann::json& j, const std::string& path, Policy::PressureResponse current);

} // namespace resmgr::core
