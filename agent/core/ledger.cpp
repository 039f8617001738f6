// The allocations and their transitions (see ledger.hpp).
#include "core/ledger.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include "resmgr/protocol.hpp"

namespace resmgr::core {
// "alloc_" and 9 random base-36 digits (46.5 bits, about what 12 hex digits held): 15 characters,
// so every copy of an id (a dozen maps key by it) fits in std::string's inline buffer and costs
// no heap block of its own: ~32 bytes a copy at 10,000 allocations (issue 12, BENCHMARKS).
std::string random_allocation_id() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    std::string id = "alloc_";
    std::uint64_t r = rng();
    for (int i = 0; i < 9; ++i, r /= 36) id += kDigits[r % 36];
    return id;
}

Ledger::Ledger(NodeCapacity capacity, Policy policy, IdGenerator ids)
    : capacity_(capacity), policy_(std::move(policy)), ids_(std::move(ids)) {}

void Ledger::set_exclusive_files(const std::string& id, std::vector<std::string> files) {
    Allocation& a = allocations_.at(id);
    holdings_.account(a, -1);
    a.constraints.exclusive_access = std::move(files);
    holdings_.account(a, +1);
    touch(id);
}

Allocation Ledger::make_allocation(const AllocationRequest& request, const Owner& owner, TimePoint now, const std::string& id) {
    Allocation a;
    a.allocation_id = id;
    while (a.allocation_id.empty() || allocations_.count(a.allocation_id)) a.allocation_id = ids_();
    a.workflow_id = request.workflow_id;
    a.workflow_type = request.workflow_type;
    a.requester = request.requester;
    a.timestamp = now;
    a.priority = request.priority;
    a.status = AllocationStatus::active;
    a.resources = request.resources;
    a.constraints = request.constraints;
    // Without an explicit duration an allocation still ends: at the policy's max_duration.
    if (!a.constraints.max_duration) a.constraints.max_duration = policy_.max_duration;
    a.performance_requirements = request.performance_requirements;
    a.auto_release = request.auto_release;
    a.owner = owner;
    a.expires_at = now + *a.constraints.max_duration;
    return a;
}

const Allocation& Ledger::allocate(const AllocationRequest& request, const Owner& owner, TimePoint now, bool wait, bool held_elsewhere) {
    admission().check_duration(request);
    admission().check_policy(owner.uid, request.workflow_id, request.resources, nullptr); // waiting never fixes a policy violation
    const Seconds duration = request.constraints.max_duration.value_or(policy_.max_duration);
    bool queued = false;
    try {
        admission().check_workflow_conflicts(request, owner.uid);
        // One that keeps running past its duration holds its files with no end in sight.
        admission().check_file_conflicts(request, now, request.auto_release.on_timeout ? now + duration : TimePoint::max(), now);
        admission().check_capacity(request.resources, {}, now, now + duration, now);
        if (held_elsewhere) {
            if (!wait) throw ApiError(ErrorCode::CONFLICT, "A file of the request is held by another node");
            queued = true;
        }
    } catch (const ApiError& e) {
        if (!wait || !admission().fits_node(request.resources)) throw;
        queued = true;
    }
    Allocation a = make_allocation(request, owner, now, {});
    if (queued) {
        a.status = AllocationStatus::queued;
        a.expires_at.reset(); // the clock starts at admission
        a.queue_seq = next_queue_seq_++;
    }
    holdings_.account(a, +1);
    const Allocation& stored = allocations_.emplace(a.allocation_id, std::move(a)).first->second;
    touch(stored.allocation_id);
    return stored;
}

const Allocation& Ledger::reserve(const AllocationRequest& request, const std::string& id, TimePoint start, const Owner& owner,
                                  TimePoint now) {
    if (!request.constraints.max_duration)
        throw ApiError(ErrorCode::INVALID_REQUEST, "A reservation needs a 'duration'", {}, {"duration"});
    if (start < now)
        throw ApiError(ErrorCode::INVALID_REQUEST, "start_time " + format_timestamp(start) + " is in the past", "now is " + format_timestamp(now),
                       {"start_time"}, {"Use allocate for resources needed now"});
    if (!id.empty() && allocations_.count(id))
        throw ApiError(ErrorCode::CONFLICT, "Reservation id '" + id + "' is already in use", {}, {"reservation_id"});
    admission().check_duration(request);
    admission().check_policy(owner.uid, request.workflow_id, request.resources, nullptr);
    admission().check_capacity(request.resources, {}, start, start + *request.constraints.max_duration, now);
    admission().check_file_conflicts(request, start, start + *request.constraints.max_duration, now);
    Allocation a = make_allocation(request, owner, now, id);
    a.status = AllocationStatus::reserved;
    a.start_at = start;
    a.expires_at = start + *request.constraints.max_duration;
    ++reserved_count_;
    const Allocation& stored = allocations_.emplace(a.allocation_id, std::move(a)).first->second;
    touch(stored.allocation_id);
    return stored;
}

void Ledger::activate(const std::string& id) {
    Allocation& a = allocations_.at(id);
    if (a.status != AllocationStatus::reserved) return;
    // due_to_start() offers only reservations whose files are free: never two holders.
    if (auto holder = holdings_.blocking_holder(a))
        throw ApiError(ErrorCode::CONFLICT, "reservation " + id + " cannot start: allocation " + *holder + " still holds one of its files");
    --reserved_count_;
    a.status = AllocationStatus::active;
    holdings_.account(a, +1);
    touch(id);
}

std::vector<std::string> Ledger::admit_queued(TimePoint now, const std::function<bool(const Allocation&)>& may_start) {
    std::vector<Allocation*> line;
    for (auto& id : queued_ids_) line.push_back(&allocations_.at(id));
    std::sort(line.begin(), line.end(), [](const Allocation* x, const Allocation* y) {
        return x->priority.value != y->priority.value ? x->priority.value > y->priority.value : x->queue_seq < y->queue_seq;
    });
    std::vector<std::string> admitted;
    for (Allocation* a : line) {
        AllocationRequest r{a->workflow_id, a->workflow_type, a->requester, a->priority, a->resources, a->constraints, a->performance_requirements,
                            a->auto_release};
        try {
            admission().check_workflow_conflicts(r, a->owner.uid);
            admission().check_file_conflicts(r, now, r.auto_release.on_timeout ? now + *a->constraints.max_duration : TimePoint::max(), now);
            admission().check_policy(a->owner.uid, a->workflow_id, a->resources, nullptr);
        } catch (const ApiError&) {
            continue; // blocked by a workflow conflict or the workflow's own allowance, not by the node
        }
        try {
            admission().check_capacity(a->resources, a->allocation_id, now, now + *a->constraints.max_duration, now);
        } catch (const ApiError&) {
            break; // strict order: the node is full for this one, so it is full for those behind it
        }
        if (may_start && !may_start(*a)) continue; // held elsewhere, not by this node: the line goes on
        a->status = AllocationStatus::active;
        a->timestamp = now;
        a->expires_at = now + *a->constraints.max_duration;
        holdings_.account(*a, +1);
        touch(a->allocation_id);
        admitted.push_back(a->allocation_id);
    }
    return admitted;
}

void Ledger::pause(const std::string& id) {
    Allocation& a = allocations_.at(id);
    holdings_.account(a, -1);
    a.status = AllocationStatus::paused;
    holdings_.account(a, +1);
    touch(id);
}

void Ledger::degrade(const std::string& id) {
    Allocation& a = allocations_.at(id);
    holdings_.account(a, -1);
    a.degraded_from_cpu = a.resources.cpu_cores;
    a.resources.cpu_cores *= policy_.degrade_ratio;
    holdings_.account(a, +1);
    touch(id);
}

std::vector<std::string> Ledger::restore_preempted() {
    std::vector<Allocation*> waiting;
    for (auto& id : preempted_ids_) waiting.push_back(&allocations_.at(id));
    std::sort(waiting.begin(), waiting.end(), [](const Allocation* x, const Allocation* y) {
        return x->priority.value != y->priority.value ? x->priority.value > y->priority.value : x->timestamp < y->timestamp;
    });
    std::vector<std::string> restored;
    for (Allocation* a : waiting) {
        Resources extra;
        extra.cpu_cores = a->status == AllocationStatus::paused ? a->resources.cpu_cores : *a->degraded_from_cpu - a->resources.cpu_cores;
        if (!admission().fits_now(extra)) break; // in order: the first that cannot come back holds the others
        holdings_.account(*a, -1);
        if (a->degraded_from_cpu) a->resources.cpu_cores = *a->degraded_from_cpu;
        a->degraded_from_cpu.reset();
        a->status = AllocationStatus::active;
        holdings_.account(*a, +1);
        touch(a->allocation_id);
        restored.push_back(a->allocation_id);
    }
    return restored;
}

const Allocation& Ledger::authorize(const std::string& id, const Owner& caller) const {
    auto it = allocations_.find(id);
    if (it == allocations_.end())
        throw ApiError(ErrorCode::NOT_FOUND, "No allocation with id '" + id + "'", {}, {},
                       {"List allocations with `resmgr status`"});
    if (caller.uid != 0 && caller.uid != it->second.owner.uid)
        throw ApiError(ErrorCode::PERMISSION_DENIED, "Allocation '" + id + "' belongs to another user",
                       "owner uid " + std::to_string(it->second.owner.uid) + ", caller uid " + std::to_string(caller.uid),
                       {}, {"Only the allocation's owner or root may change or release it"});
    return it->second;
}

Allocation Ledger::release(const std::string& id, const Owner& caller) {
    authorize(id, caller);
    auto node = allocations_.extract(id);
    holdings_.account(node.mapped(), -1);
    if (node.mapped().status == AllocationStatus::reserved) --reserved_count_;
    node.mapped().status = AllocationStatus::released;
    touch(id);
    return std::move(node.mapped());
}

const Allocation& Ledger::reallocate(const std::string& id, const Resources& resources, const Owner& caller, TimePoint now) {
    const Allocation& current = authorize(id, caller);
    if (!holds_capacity(current))
        throw ApiError(ErrorCode::CONFLICT, "Allocation '" + id + "' is " + to_string(current.status) + "; only a running allocation can be reallocated",
                       {}, {}, {"Release it and request again"});
    admission().check_policy(current.owner.uid, current.workflow_id, resources, &current.resources);
    admission().check_capacity(resources, id, now, current.expires_at.value_or(now), now);
    Allocation& a = allocations_.at(id);
    holdings_.account(a, -1);
    a.resources = resources;
    holdings_.account(a, +1);
    touch(id);
    return a;
}

void Ledger::restore(const Allocation& allocation) {
    if (auto it = allocations_.find(allocation.allocation_id); it != allocations_.end()) {
        holdings_.account(it->second, -1);
        if (it->second.status == AllocationStatus::reserved) --reserved_count_;
    }
    holdings_.account(allocation, +1);
    if (allocation.status == AllocationStatus::reserved) ++reserved_count_;
    next_queue_seq_ = std::max(next_queue_seq_, allocation.queue_seq + 1);
    allocations_[allocation.allocation_id] = allocation;
    touch(allocation.allocation_id);
}

void Ledger::mark_terminating(const std::string& id, TimePoint now) {
    allocations_.at(id).terminating_since = now;
    touch(id);
}
void Ledger::mark_expired(const std::string& id) {
    allocations_.at(id).status = AllocationStatus::expired;
    touch(id);
}
void Ledger::mark_populated(const std::string& id) {
    auto& a = allocations_.at(id);
    a.populated_once = true;
    a.idle_since.reset();
    touch(id);
}
void Ledger::mark_idle(const std::string& id, TimePoint since) {
    allocations_.at(id).idle_since = since;
    touch(id);
}
void Ledger::set_supervisor(const std::string& id, std::int32_t pid) {
    auto& a = allocations_.at(id);
    a.supervisor_pid = pid;
    if (pid > 0) a.supervised = true;
    touch(id);
}

void Ledger::touch(const std::string& id) {
    changed_.insert(id);
    auto it = allocations_.find(id);
    const Allocation* a = it == allocations_.end() ? nullptr : &it->second;
    auto keep = [&](std::set<std::string>& ids, bool member) {
        if (member) ids.insert(id);
        else ids.erase(id);
    };
    keep(queued_ids_, a && a->status == AllocationStatus::queued);
    keep(preempted_ids_, a && (a->status == AllocationStatus::paused || a->degraded_from_cpu));
    keep(reserved_ids_, a && a->status == AllocationStatus::reserved);
    // Its own next deadline: the grace periods, and the end of a running one's duration. A
    // reservation's start depends on other allocations' files: deadlines.cpp asks those itself.
    std::optional<TimePoint> due;
    auto consider = [&](TimePoint t) { if (!due || t < *due) due = t; };
    if (a) {
        if (a->idle_since) consider(*a->idle_since + a->auto_release.grace_period);
        if (a->terminating_since) consider(*a->terminating_since + a->auto_release.grace_period);
        else if ((a->status == AllocationStatus::active || a->status == AllocationStatus::paused) && a->expires_at) consider(*a->expires_at);
    }
    if (auto old = deadline_of_.find(id); old != deadline_of_.end()) {
        deadlines_.erase({old->second, id});
        deadline_of_.erase(old);
    }
    if (due) {
        deadline_of_.emplace(id, *due);
        deadlines_.emplace(*due, id);
    }
}

std::optional<TimePoint> Ledger::earliest_deadline() const {
    if (deadlines_.empty()) return std::nullopt;
    return deadlines_.begin()->first;
}

std::vector<std::string> Ledger::due_by(TimePoint now) const {
    std::vector<std::string> out;
    for (auto& [at, id] : deadlines_) {
        if (at > now) break;
        out.push_back(id);
    }
    return out;
}

const Allocation* Ledger::find(const std::string& id) const {
    auto it = allocations_.find(id);
    return it == allocations_.end() ? nullptr : &it->second;
}

cgroup::Limits limits_for(const Allocation& a, const Policy& policy) {
    cgroup::Limits l;
    if (a.resources.cpu_cores > 0)
        // The kernel refuses quotas under 1 ms per period.
        l.cpu_quota_us = std::max<std::uint64_t>(1000, static_cast<std::uint64_t>(std::llround(a.resources.cpu_cores * l.cpu_period_us)));
    // cpu.weight scales the kernel default (100) by the band's weight relative to medium.
    double relative = policy.priority_weights.at(a.priority.band()) / policy.priority_weights.at(PriorityBand::medium);
    l.cpu_weight = static_cast<std::uint64_t>(std::clamp<long long>(std::llround(100 * relative), 1, 10000));
    if (a.resources.memory_bytes > 0) {
        l.memory_max = a.resources.memory_bytes;
        l.memory_high = static_cast<std::uint64_t>(static_cast<double>(a.resources.memory_bytes) * policy.memory_high_ratio);
    }
    l.pids_max = a.resources.pids;
    return l;
}

} // namespace resmgr::core
