// The ledger: what the node can give, what it has promised, and whether a new request fits.
// Capacity = node CPUs/memory minus the policy's system reserve; promised = sum of live
// allocations. Every denial says which resource is short and by how much.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cgroup/backend.hpp"
#include "core/policy.hpp"
#include "resmgr/model.hpp"

namespace resmgr::core {

struct NodeCapacity {
    double cpu_cores = 0;
    std::uint64_t memory_bytes = 0;
};

struct Availability {
    double cpu_total = 0, cpu_reserved = 0, cpu_allocated = 0, cpu_available = 0;
    std::uint64_t memory_total = 0, memory_reserved = 0, memory_allocated = 0, memory_available = 0;
    int agents_max = 0, agents_allocated = 0, agents_available = 0;
    nlohmann::json to_json() const;
};

// One conflict a proposed allocation would meet (the seed's conflict report, minus ids/time).
struct ConflictFinding {
    std::string type;     // resource | time | workflow | file
    std::string severity; // low | medium | high
    std::vector<std::string> affected_workflows;
    nlohmann::json details;
    std::vector<std::string> strategies; // only ones resmgrd can really carry out
};

// Who gives way to a higher-priority request, and how (Policy::preemption_mode).
struct Preemption {
    std::string mode; // pause | degrade | kill
    std::vector<std::string> victims;
};

class Ledger {
public:
    using IdGenerator = std::function<std::string()>;

    Ledger(NodeCapacity capacity, Policy policy, IdGenerator ids = random_allocation_id);

    // Admits `request` or throws ApiError: POLICY_VIOLATION (a workflow limit), RESOURCE_EXHAUSTED
    // (node capacity, now or during a reservation inside the request's window), CONFLICT
    // (conflict_avoidance). With `wait`, capacity and conflicts queue the request instead (status
    // queued); a request the node can never satisfy is still refused. Returns the stored allocation.
    const Allocation& allocate(const AllocationRequest& request, const Owner& owner, TimePoint now, bool wait = false);
    // Books `request` for [start, start + duration): admitted if the node has room during the
    // whole window given everything else booked; status reserved until start.
    const Allocation& reserve(const AllocationRequest& request, const std::string& id, TimePoint start, const Owner& owner,
                              TimePoint now);
    // Removes an allocation. NOT_FOUND / PERMISSION_DENIED (caller neither owner nor root).
    Allocation release(const std::string& id, const Owner& caller);
    // Replaces the resources of a live allocation. Growth must fit capacity and policy;
    // shrinking always succeeds. Returns the updated allocation.
    const Allocation& reallocate(const std::string& id, const Resources& resources, const Owner& caller, TimePoint now);
    // Puts back an allocation loaded from state, without admission (it was admitted before).
    void restore(const Allocation& allocation);
    // Throws NOT_FOUND / PERMISSION_DENIED unless `caller` may act on `id`.
    const Allocation& authorize(const std::string& id, const Owner& caller) const;

    // reserved -> active (it now holds its capacity).
    void activate(const std::string& id);
    // Queued requests that fit now, admitted in priority order, then arrival order. A request
    // that does not fit stops the line, so later smaller ones cannot starve it.
    std::vector<std::string> admit_queued(TimePoint now);
    // For a request that does not fit now: the victims whose pausing, degrading or killing
    // makes room, or nullopt (it fits, the requester may not preempt, or no victims suffice).
    // Victims are of a lower band; fewest first, then lowest priority, then youngest.
    std::optional<Preemption> plan_preemption(const AllocationRequest& request) const;
    // Conflicts `proposed` would meet now and, with `check_future`, from reservations starting
    // within `horizon`. `files` are paths it wants exclusively.
    std::vector<ConflictFinding> find_conflicts(const AllocationRequest& proposed, std::uint32_t uid, TimePoint now, bool check_future,
                                                Seconds horizon) const;
    void pause(const std::string& id);   // frozen: its CPU is free, its memory is not
    void degrade(const std::string& id); // its CPU shrunk to Policy::degrade_ratio
    // Paused and degraded allocations whose room is back, highest priority (then oldest) first;
    // each is returned to active with its full resources.
    std::vector<std::string> restore_preempted();
    static bool holds_capacity(const Allocation& a);
    // SIGTERM went out: the kill is due at now + grace_period.
    void mark_terminating(const std::string& id, TimePoint now);
    // Duration over but on_timeout is false: recorded as expired, left running.
    void mark_expired(const std::string& id);
    // A process is in the group (again): it is no longer idle.
    void mark_populated(const std::string& id);
    // Its group emptied at `since`: it completes at since + grace_period unless a process joins.
    void mark_idle(const std::string& id, TimePoint since);
    // The resmgr-run process that reports the command's exit (0: none, or no longer). A wrapper
    // named here makes the allocation its own (`supervised`): complete as soon as it is empty.
    void set_supervisor(const std::string& id, std::int32_t pid);
    // Replaces the files an allocation holds exclusively (resolve-conflicts: release, priority_based).
    void set_exclusive_files(const std::string& id, std::vector<std::string> files);
    // The running allocation holding `path` exclusively, if any.
    std::optional<std::string> file_holder(const std::string& path) const;
    // The allocation other than `a` that holds one of a's exclusive files now.
    std::optional<std::string> blocking_holder(const Allocation& a) const;

    const Allocation* find(const std::string& id) const;
    const std::map<std::string, Allocation>& allocations() const { return allocations_; }
    Availability availability() const;
    const Policy& policy() const { return policy_; }
    const NodeCapacity& capacity() const { return capacity_; }

    static std::string random_allocation_id();

private:
    // Running sums, kept in integer micro-cores so adding and removing fractional cores never
    // drifts; updated on every change, so a decision costs O(log n), not a scan.
    struct Totals {
        std::int64_t cpu_micro = 0;
        std::uint64_t memory = 0;
        int agents = 0;
        void add(const Resources& r, int sign);
        // What `a` occupies in its status: a paused (frozen) allocation holds no CPU, same memory.
        void add_held(const Allocation& a, int sign);
    };
    void account(const Allocation& a, int sign);
    // Workflow names belong to their owner: uid 1000's "ci" and root's "ci" are two workflows.
    static std::string workflow_key(std::uint32_t uid, const std::string& workflow);
    Totals workflow_totals(const std::string& key) const;
    void check_policy(std::uint32_t uid, const std::string& workflow, const Resources& wanted, const Resources* current) const;
    // Capacity over [start, end): at start and at every reservation start inside the window.
    void check_capacity(const Resources& wanted, const std::string& except_id, TimePoint start, TimePoint end, TimePoint now) const;
    void check_fits(const Resources& wanted, const Totals& promised, const std::string& when) const;
    Totals promised_at(TimePoint t, TimePoint now, const std::string& except_id) const;
    bool fits_node(const Resources& wanted) const;
    bool fits_now(const Resources& wanted) const;
    void check_workflow_conflicts(const AllocationRequest& request, std::uint32_t uid) const;
    // CONFLICT when a file the request wants exclusively is held by a running allocation.
    // Another allocation holds one of the request's files over [start, end), or a reservation books it.
    void check_file_conflicts(const AllocationRequest& request, TimePoint start, TimePoint end, TimePoint now) const;
    // `id` empty: a fresh one from the generator.
    Allocation make_allocation(const AllocationRequest& request, const Owner& owner, TimePoint now, const std::string& id);

    NodeCapacity capacity_;
    Policy policy_;
    IdGenerator ids_;
    std::map<std::string, Allocation> allocations_;
    Totals node_; // allocations holding capacity now
    std::map<std::string, Totals> workflows_;
    int reserved_count_ = 0; // no reservations: the calendar check is the O(1) check of now
    // conflict_avoidance without a scan: allocations holding capacity per workflow, and how many
    // of them list each workflow to avoid.
    std::map<std::string, int> holding_per_workflow_;
    std::map<std::string, int> avoided_by_holders_;
    // constraints.exclusive_access of allocations holding capacity: path -> holder.
    std::map<std::string, std::string> file_holders_;
    std::uint64_t next_queue_seq_ = 1;
};

// The kernel limits that make an allocation real (see the backends in agent/cgroup).
cgroup::Limits limits_for(const Allocation& allocation, const Policy& policy);

} // namespace resmgr::core
