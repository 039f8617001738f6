// The ledger: every allocation the node knows of and its transitions (admitted, queued, reserved,
// paused, degraded, released). What the node can give and whether a request fits is asked of
// Admission (admission.hpp); what held allocations hold is summed in Holdings (holdings.hpp),
// which the ledger keeps current on every change. Pure: no I/O. May call: model, core.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cgroup/backend.hpp"
#include "core/admission.hpp"
#include "core/holdings.hpp"
#include "core/policy.hpp"
#include "resmgr/model.hpp"

namespace resmgr::core {

std::string random_allocation_id();

class Ledger {
public:
    using IdGenerator = std::function<std::string()>;

    Ledger(NodeCapacity capacity, Policy policy, IdGenerator ids = random_allocation_id);

    // Admits `request` or throws ApiError: POLICY_VIOLATION (a workflow limit), RESOURCE_EXHAUSTED
    // (node capacity, now or during a reservation inside the request's window), CONFLICT
    // (conflict_avoidance). With `wait`, capacity and conflicts queue the request instead (status
    // queued); a request the node can never satisfy is still refused. `held_elsewhere` (with
    // `wait`): queued even if it fits, a file it wants being held by another node of the cluster.
    // Returns the stored allocation.
    const Allocation& allocate(const AllocationRequest& request, const Owner& owner, TimePoint now, bool wait = false, bool held_elsewhere = false);
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
    // that does not fit stops the line, so later smaller ones cannot starve it. One that fits but
    // `may_start` holds back (a file claimed by another node of the cluster) is passed over.
    std::vector<std::string> admit_queued(TimePoint now, const std::function<bool(const Allocation&)>& may_start = {});
    void pause(const std::string& id);   // frozen: its CPU is free, its memory is not
    void degrade(const std::string& id); // its CPU shrunk to Policy::degrade_ratio
    // Paused and degraded allocations whose room is back, highest priority (then oldest) first;
    // each is returned to active with its full resources.
    std::vector<std::string> restore_preempted();
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

    // The ids added, changed or removed since clear_changed(): what the state store records next
    // (Lifecycle::persist), so each change writes what it touched, not every allocation.
    const std::set<std::string>& changed() const { return changed_; }
    void clear_changed() { changed_.clear(); }

    // Indexes kept in step with every change (touch), so that the questions asked on every
    // change (refill, the next timer) cost what they find, not the number of live allocations:
    // the queued, the preempted (paused or degraded) and the reserved ids; and each
    // allocation's own earliest deadline (grace periods, a running one's end of duration).
    const std::set<std::string>& queued_ids() const { return queued_ids_; }
    const std::set<std::string>& reserved_ids() const { return reserved_ids_; }
    std::optional<TimePoint> earliest_deadline() const;
    // The ids whose own earliest deadline is at or before `now`, earliest first.
    std::vector<std::string> due_by(TimePoint now) const;

    const Allocation* find(const std::string& id) const;
    const std::map<std::string, Allocation>& allocations() const { return allocations_; }
    const Policy& policy() const { return policy_; }
    // Questions about fitting, policy, conflicts and preemption, asked of the ledger as it is now.
    Admission admission() const { return Admission(capacity_, storage_, policy_, allocations_, holdings_, reserved_count_ > 0); }
    const Holdings& holdings() const { return holdings_; }
    // The temp root's room as measured now (StorageCapacity); admission sets storage_gb
    // against the newest figure.
    void set_storage_capacity(StorageCapacity bytes) { storage_ = bytes; }

private:
    // `id` empty: a fresh one from the generator.
    Allocation make_allocation(const AllocationRequest& request, const Owner& owner, TimePoint now, const std::string& id);

    NodeCapacity capacity_;
    StorageCapacity storage_;
    Policy policy_;
    IdGenerator ids_;
    std::map<std::string, Allocation> allocations_;
    std::set<std::string> changed_;
    // Marks `id` changed and brings the indexes up to date with it (present or gone).
    void touch(const std::string& id);
    std::set<std::string> queued_ids_, preempted_ids_, reserved_ids_;
    std::map<std::string, TimePoint> deadline_of_;
    std::set<std::pair<TimePoint, std::string>> deadlines_;
    Holdings holdings_;
    int reserved_count_ = 0;
    std::uint64_t next_queue_seq_ = 1;
};

// The kernel limits that make an allocation real (see the backends in agent/cgroup).
cgroup::Limits limits_for(const Allocation& allocation, const Policy& policy);

} // namespace resmgr::core
