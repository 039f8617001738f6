// Admission control over node capacity and per-workflow policy.
#include "core/ledger.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "resmgr/protocol.hpp"

namespace resmgr::core {
namespace {

std::string cores(double c) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", std::round(c * 100) / 100);
    return buf;
}

std::string gb(std::uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%gGB", std::round(static_cast<double>(bytes) / kGiB * 100) / 100);
    return buf;
}

} // namespace

std::string Ledger::random_allocation_id() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    char buf[24];
    std::snprintf(buf, sizeof buf, "alloc_%012llx", static_cast<unsigned long long>(rng() & 0xffffffffffffULL));
    return buf;
}

Ledger::Ledger(NodeCapacity capacity, Policy policy, IdGenerator ids)
    : capacity_(capacity), policy_(std::move(policy)), ids_(std::move(ids)) {}

static std::int64_t micro_cores(double cores) { return std::llround(cores * 1e6); }

void Ledger::Totals::add(const Resources& r, int sign) {
    cpu_micro += sign * micro_cores(r.cpu_cores);
    memory = sign > 0 ? memory + r.memory_bytes : memory - r.memory_bytes;
    agents += sign * r.agents;
}

bool Ledger::holds_capacity(const Allocation& a) {
    // Expired with on_timeout=false still runs; reserved and queued hold nothing yet.
    return a.status == AllocationStatus::active || a.status == AllocationStatus::paused || a.status == AllocationStatus::expired;
}

void Ledger::Totals::add_held(const Allocation& a, int sign) {
    if (a.status != AllocationStatus::paused) cpu_micro += sign * micro_cores(a.resources.cpu_cores);
    memory = sign > 0 ? memory + a.resources.memory_bytes : memory - a.resources.memory_bytes;
    agents += sign * a.resources.agents;
}

void Ledger::account(const Allocation& a, int sign) {
    if (!holds_capacity(a)) return;
    auto count = [sign](std::map<std::string, int>& m, const std::string& key) {
        if ((m[key] += sign) == 0) m.erase(key);
    };
    count(holding_per_workflow_, a.workflow_id);
    for (auto& avoided : a.constraints.conflict_avoidance) count(avoided_by_holders_, avoided);
    for (auto& file : a.constraints.exclusive_access) {
        if (sign > 0) file_holders_.emplace(file, a.allocation_id);
        else if (auto it = file_holders_.find(file); it != file_holders_.end() && it->second == a.allocation_id) file_holders_.erase(it);
    }
    node_.add_held(a, sign);
    const std::string key = workflow_key(a.owner.uid, a.workflow_id);
    Totals& w = workflows_[key];
    w.add_held(a, sign);
    if (w.cpu_micro == 0 && w.memory == 0 && w.agents == 0) workflows_.erase(key);
}

Ledger::Totals Ledger::workflow_totals(const std::string& workflow) const {
    auto it = workflows_.find(workflow);
    return it == workflows_.end() ? Totals{} : it->second;
}

Availability Ledger::availability() const {
    Availability v;
    const Totals& t = node_;
    v.cpu_total = capacity_.cpu_cores;
    v.cpu_reserved = std::min(policy_.system_reserve_cpu, capacity_.cpu_cores);
    v.cpu_allocated = static_cast<double>(t.cpu_micro) / 1e6;
    v.cpu_available = std::max(0.0, v.cpu_total - v.cpu_reserved - v.cpu_allocated);
    v.memory_total = capacity_.memory_bytes;
    v.memory_reserved = std::min<std::uint64_t>(static_cast<std::uint64_t>(policy_.system_reserve_memory_gb * kGiB), capacity_.memory_bytes);
    v.memory_allocated = t.memory;
    auto usable = v.memory_total - v.memory_reserved;
    v.memory_available = usable > t.memory ? usable - t.memory : 0;
    v.agents_max = policy_.max_agents;
    v.agents_allocated = t.agents;
    v.agents_available = std::max(0, policy_.max_agents - t.agents);
    return v;
}

nlohmann::json Availability::to_json() const {
    auto g = [](std::uint64_t b) { return std::round(static_cast<double>(b) / kGiB * 1000) / 1000; };
    return {
        {"cpu_cores", {{"total", cpu_total}, {"reserved", cpu_reserved}, {"allocated", cpu_allocated}, {"available", cpu_available}}},
        {"memory", {{"total_gb", g(memory_total)}, {"buffer_gb", g(memory_reserved)}, {"allocated_gb", g(memory_allocated)},
                    {"available_gb", g(memory_available)}}},
        {"agent_pool", {{"max_agents", agents_max}, {"allocated_agents", agents_allocated}, {"available_agents", agents_available}}},
    };
}

std::string Ledger::workflow_key(std::uint32_t uid, const std::string& workflow) { return std::to_string(uid) + "/" + workflow; }

void Ledger::check_policy(std::uint32_t uid, const std::string& workflow, const Resources& wanted, const Resources* current) const {
    Totals have = workflow_totals(workflow_key(uid, workflow));
    if (current) have.add(*current, -1);
    std::vector<std::string> affected, details;
    auto max_mem = static_cast<std::uint64_t>(std::llround(policy_.max_memory_gb_per_workflow * kGiB));
    const double have_cpu = static_cast<double>(have.cpu_micro) / 1e6;
    if (have.cpu_micro + micro_cores(wanted.cpu_cores) > micro_cores(policy_.max_cpu_per_workflow)) {
        affected.push_back("cpu");
        details.push_back("cpu_cores: workflow would hold " + cores(have_cpu + wanted.cpu_cores) +
                          ", max_cpu_per_workflow is " + cores(policy_.max_cpu_per_workflow));
    }
    if (have.memory + wanted.memory_bytes > max_mem) {
        affected.push_back("memory");
        details.push_back("memory: workflow would hold " + gb(have.memory + wanted.memory_bytes) +
                          ", max_memory_per_workflow is " + gb(max_mem));
    }
    if (have.agents + wanted.agents > policy_.max_agents_per_workflow) {
        affected.push_back("agents");
        details.push_back("agents: workflow would hold " + std::to_string(have.agents + wanted.agents) +
                          ", max_agents_per_workflow is " + std::to_string(policy_.max_agents_per_workflow));
    }
    if (affected.empty()) return;
    std::string joined;
    for (auto& d : details) joined += (joined.empty() ? "" : "; ") + d;
    throw ApiError(ErrorCode::POLICY_VIOLATION, "Request exceeds the per-workflow limits for workflow '" + workflow + "'",
                   joined, affected,
                   {"Reduce the request to fit the workflow's remaining allowance",
                    "Release other allocations of workflow '" + workflow + "'"},
                   {"Split the work across workflows only if it is really independent",
                    "Raise allocation_limits in the policy file (resource_policies.allocation_limits)"});
}

Ledger::Totals Ledger::promised_at(TimePoint t, TimePoint now, const std::string& except_id) const {
    if (reserved_count_ == 0 && t <= now) {
        Totals p = node_;
        if (auto* a = find(except_id); a && holds_capacity(*a)) p.add_held(*a, -1);
        return p;
    }
    Totals p;
    for (auto& [id, a] : allocations_) {
        if (id == except_id) continue;
        bool holding = holds_capacity(a) && (t <= now || !a.expires_at || *a.expires_at > t || a.terminating_since);
        bool booked = a.status == AllocationStatus::reserved && a.start_at && *a.start_at <= t && (!a.expires_at || t < *a.expires_at);
        if (booked) p.add(a.resources, +1);
        else if (holding) p.add_held(a, +1);
    }
    return p;
}

bool Ledger::fits_node(const Resources& wanted) const {
    Availability v = availability();
    return micro_cores(wanted.cpu_cores) <= micro_cores(v.cpu_total - v.cpu_reserved) &&
           wanted.memory_bytes <= v.memory_total - v.memory_reserved && wanted.agents <= v.agents_max;
}

void Ledger::check_capacity(const Resources& wanted, const std::string& except_id, TimePoint start, TimePoint end, TimePoint now) const {
    std::vector<TimePoint> times{start};
    if (reserved_count_ > 0)
        for (auto& [id, a] : allocations_)
            if (a.status == AllocationStatus::reserved && a.start_at && *a.start_at > start && *a.start_at < end) times.push_back(*a.start_at);
    for (TimePoint t : times)
        check_fits(wanted, promised_at(t, now, except_id), t <= now ? "" : " at " + format_timestamp(t) + " (reserved then)");
}

void Ledger::check_fits(const Resources& wanted, const Totals& promised, const std::string& when) const {
    Availability v = availability();
    const std::int64_t usable_cpu = micro_cores(v.cpu_total - v.cpu_reserved);
    const std::int64_t cpu_free_micro = std::max<std::int64_t>(0, usable_cpu - promised.cpu_micro);
    const double cpu_free = static_cast<double>(cpu_free_micro) / 1e6;
    const std::uint64_t usable_mem = v.memory_total - v.memory_reserved;
    const std::uint64_t mem_free = usable_mem > promised.memory ? usable_mem - promised.memory : 0;
    const int agents_free = std::max(0, policy_.max_agents - promised.agents);

    std::vector<std::string> affected, details, headline;
    if (micro_cores(wanted.cpu_cores) > cpu_free_micro) {
        affected.push_back("cpu");
        headline.push_back("CPU");
        details.push_back("Requested " + cores(wanted.cpu_cores) + " cores, only " + cores(cpu_free) + " available" + when);
    }
    if (wanted.memory_bytes > mem_free) {
        affected.push_back("memory");
        headline.push_back("memory");
        details.push_back("Requested " + gb(wanted.memory_bytes) + ", only " + gb(mem_free) + " available" + when);
    }
    if (wanted.agents > agents_free) {
        affected.push_back("agents");
        headline.push_back("agents");
        details.push_back("Requested " + std::to_string(wanted.agents) + " agents, only " + std::to_string(agents_free) + " available" + when);
    }
    if (affected.empty()) return;
    std::string message = "Insufficient ";
    for (size_t i = 0; i < headline.size(); ++i) message += (i ? (i + 1 == headline.size() ? " and " : ", ") : "") + headline[i];
    message += " available for allocation";
    std::string joined;
    for (auto& d : details) joined += (joined.empty() ? "" : "; ") + d;

    std::vector<std::string> alternatives;
    std::string fit = "Request at most";
    if (std::find(affected.begin(), affected.end(), "cpu") != affected.end()) fit += " " + cores(cpu_free) + " cores";
    if (std::find(affected.begin(), affected.end(), "memory") != affected.end()) fit += " " + gb(mem_free) + " memory";
    if (std::find(affected.begin(), affected.end(), "agents") != affected.end()) fit += " " + std::to_string(agents_free) + " agents";
    alternatives.push_back(fit + (when.empty() ? " (fits now)" : when));
    std::vector<std::string> recovery{"Reduce resource request size"};
    if (!fits_node(wanted)) {
        recovery.push_back("The request exceeds what this node can ever give (capacity minus system reserve); it must be reduced");
    } else {
        recovery.push_back("Wait for current allocations to release");
        alternatives.push_back("Queue request for later execution (\"wait\": true, or resmgr-run --wait)");
    }
    throw ApiError(ErrorCode::RESOURCE_EXHAUSTED, message, joined, affected, recovery, alternatives);
}

void Ledger::check_workflow_conflicts(const AllocationRequest& request, std::uint32_t uid) const {
    const auto& avoid = request.constraints.conflict_avoidance;
    bool any = avoided_by_holders_.count(request.workflow_id) > 0;
    for (auto& w : avoid) any = any || holding_per_workflow_.count(w) > 0;
    if (!any) return; // the common case: decided from the counters, no scan
    for (auto& [id, a] : allocations_) {
        if (!holds_capacity(a)) continue;
        const auto& theirs = a.constraints.conflict_avoidance;
        // A name in conflict_avoidance means the owner's own workflow of that name; root's means anyone's.
        bool we_avoid_them = std::find(avoid.begin(), avoid.end(), a.workflow_id) != avoid.end() && (uid == 0 || a.owner.uid == uid);
        bool they_avoid_us = std::find(theirs.begin(), theirs.end(), request.workflow_id) != theirs.end() &&
                             (a.owner.uid == 0 || a.owner.uid == uid);
        if (!we_avoid_them && !they_avoid_us) continue;
        throw ApiError(ErrorCode::CONFLICT, "Workflow '" + request.workflow_id + "' must not run alongside workflow '" + a.workflow_id + "'",
                       (we_avoid_them ? "the request lists '" + a.workflow_id + "'" : "allocation " + id + " lists '" + request.workflow_id + "'") +
                           " in constraints.conflict_avoidance, and " + id + " of workflow '" + a.workflow_id + "' is " + to_string(a.status),
                       {"workflow:" + a.workflow_id}, {"Wait until allocation " + id + " is released, then retry"},
                       {"Run the two workflows one after the other"});
    }
}

void Ledger::check_file_conflicts(const AllocationRequest& request, TimePoint start, TimePoint end, TimePoint now) const {
    for (auto& file : request.constraints.exclusive_access) {
        if (auto it = file_holders_.find(file); it != file_holders_.end()) {
            const Allocation& holder = allocations_.at(it->second);
            // A later window may count on the holder's end, as capacity does: it is let go then.
            const bool gone_by_start = start > now && holder.expires_at && *holder.expires_at <= start && holder.auto_release.on_timeout;
            if (!gone_by_start)
                throw ApiError(ErrorCode::CONFLICT, "'" + file + "' is held exclusively by allocation " + holder.allocation_id,
                               "workflow '" + holder.workflow_id + "' (priority " + std::to_string(holder.priority.value) +
                                   ") holds it until it is released",
                               {"file:" + file, "allocation:" + holder.allocation_id},
                               {"Allocate with \"wait\": true (resmgr-run --wait) to queue until the file is free",
                                "resolve-conflicts with strategy priority_based or release"},
                               {"Work on a copy of the file, or serialize the two workflows"});
        }
        // A reservation books its files for its window, as it books capacity.
        for (auto& [id, booked] : allocations_) {
            if (booked.status != AllocationStatus::reserved || !booked.start_at || !booked.expires_at) continue;
            const auto& files = booked.constraints.exclusive_access;
            if (std::find(files.begin(), files.end(), file) == files.end()) continue;
            if (*booked.start_at < end && start < *booked.expires_at)
                throw ApiError(ErrorCode::CONFLICT, "'" + file + "' is booked exclusively by reservation " + id,
                               "from " + format_timestamp(*booked.start_at) + " to " + format_timestamp(*booked.expires_at) + "; this one would hold it " +
                                   (end == TimePoint::max() ? "for as long as it runs (auto_release.on_timeout is false)"
                                                            : "from " + format_timestamp(start) + " to " + format_timestamp(end)),
                               {"file:" + file, "allocation:" + id},
                               {"Choose a duration that ends before the reservation starts", "Cancel or move the reservation"},
                               {"Work on a copy of the file"});
        }
    }
}

void Ledger::set_exclusive_files(const std::string& id, std::vector<std::string> files) {
    Allocation& a = allocations_.at(id);
    account(a, -1);
    a.constraints.exclusive_access = std::move(files);
    account(a, +1);
}

std::optional<std::string> Ledger::file_holder(const std::string& path) const {
    auto it = file_holders_.find(path);
    if (it == file_holders_.end()) return std::nullopt;
    return it->second;
}

namespace {

void check_duration(const AllocationRequest& request, const Policy& policy) {
    if (request.constraints.max_duration && *request.constraints.max_duration > policy.max_duration)
        throw ApiError(ErrorCode::POLICY_VIOLATION, "Requested duration exceeds the policy's max_duration",
                       "Requested " + format_duration(std::chrono::duration_cast<Millis>(*request.constraints.max_duration)) +
                           ", max_duration is " + format_duration(std::chrono::duration_cast<Millis>(policy.max_duration)),
                       {"duration"}, {"Request a shorter duration and renew it when needed"});
    // The grace period is time a process that ignores SIGTERM keeps running past its duration.
    if (request.auto_release.grace_period > policy.max_grace_period)
        throw ApiError(ErrorCode::POLICY_VIOLATION, "Requested grace_period exceeds the policy's max_grace_period",
                       "Requested " + format_duration(std::chrono::duration_cast<Millis>(request.auto_release.grace_period)) +
                           ", max_grace_period is " + format_duration(std::chrono::duration_cast<Millis>(policy.max_grace_period)),
                       {"auto_release.grace_period"}, {"Ask for a grace period of at most " +
                                                       format_duration(std::chrono::duration_cast<Millis>(policy.max_grace_period))});
}

} // namespace

Allocation Ledger::make_allocation(const AllocationRequest& request, const Owner& owner, TimePoint now, const std::string& id) {
    Allocation a;
    a.allocation_id = id;
    while (a.allocation_id.empty() || allocations_.count(a.allocation_id)) a.allocation_id = ids_();
    a.workflow_id = request.workflow_id;
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

const Allocation& Ledger::allocate(const AllocationRequest& request, const Owner& owner, TimePoint now, bool wait) {
    check_duration(request, policy_);
    check_policy(owner.uid, request.workflow_id, request.resources, nullptr); // waiting never fixes a policy violation
    const Seconds duration = request.constraints.max_duration.value_or(policy_.max_duration);
    bool queued = false;
    try {
        check_workflow_conflicts(request, owner.uid);
        // One that keeps running past its duration holds its files with no end in sight.
        check_file_conflicts(request, now, request.auto_release.on_timeout ? now + duration : TimePoint::max(), now);
        check_capacity(request.resources, {}, now, now + duration, now);
    } catch (const ApiError& e) {
        if (!wait || !fits_node(request.resources)) throw;
        queued = true;
    }
    Allocation a = make_allocation(request, owner, now, {});
    if (queued) {
        a.status = AllocationStatus::queued;
        a.expires_at.reset(); // the clock starts at admission
        a.queue_seq = next_queue_seq_++;
    }
    account(a, +1);
    return allocations_.emplace(a.allocation_id, std::move(a)).first->second;
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
    check_duration(request, policy_);
    check_policy(owner.uid, request.workflow_id, request.resources, nullptr);
    check_capacity(request.resources, {}, start, start + *request.constraints.max_duration, now);
    check_file_conflicts(request, start, start + *request.constraints.max_duration, now);
    Allocation a = make_allocation(request, owner, now, id);
    a.status = AllocationStatus::reserved;
    a.start_at = start;
    a.expires_at = start + *request.constraints.max_duration;
    ++reserved_count_;
    return allocations_.emplace(a.allocation_id, std::move(a)).first->second;
}

std::optional<std::string> Ledger::blocking_holder(const Allocation& a) const {
    for (auto& file : a.constraints.exclusive_access)
        if (auto it = file_holders_.find(file); it != file_holders_.end() && it->second != a.allocation_id) return it->second;
    return std::nullopt;
}

void Ledger::activate(const std::string& id) {
    Allocation& a = allocations_.at(id);
    if (a.status != AllocationStatus::reserved) return;
    // due_to_start() offers only reservations whose files are free: never two holders.
    if (auto holder = blocking_holder(a))
        throw ApiError(ErrorCode::CONFLICT, "reservation " + id + " cannot start: allocation " + *holder + " still holds one of its files");
    --reserved_count_;
    a.status = AllocationStatus::active;
    account(a, +1);
}

std::vector<std::string> Ledger::admit_queued(TimePoint now) {
    std::vector<Allocation*> line;
    for (auto& [id, a] : allocations_)
        if (a.status == AllocationStatus::queued) line.push_back(&a);
    std::sort(line.begin(), line.end(), [](const Allocation* x, const Allocation* y) {
        return x->priority.value != y->priority.value ? x->priority.value > y->priority.value : x->queue_seq < y->queue_seq;
    });
    std::vector<std::string> admitted;
    for (Allocation* a : line) {
        AllocationRequest r{a->workflow_id, a->requester, a->priority, a->resources, a->constraints, a->performance_requirements,
                            a->auto_release};
        try {
            check_workflow_conflicts(r, a->owner.uid);
            check_file_conflicts(r, now, r.auto_release.on_timeout ? now + *a->constraints.max_duration : TimePoint::max(), now);
            check_policy(a->owner.uid, a->workflow_id, a->resources, nullptr);
        } catch (const ApiError&) {
            continue; // blocked by a workflow conflict or the workflow's own allowance, not by the node
        }
        try {
            check_capacity(a->resources, a->allocation_id, now, now + *a->constraints.max_duration, now);
        } catch (const ApiError&) {
            break; // strict order: the node is full for this one, so it is full for those behind it
        }
        a->status = AllocationStatus::active;
        a->timestamp = now;
        a->expires_at = now + *a->constraints.max_duration;
        account(*a, +1);
        admitted.push_back(a->allocation_id);
    }
    return admitted;
}

bool Ledger::fits_now(const Resources& wanted) const {
    try {
        check_fits(wanted, node_, "");
        return true;
    } catch (const ApiError&) {
        return false;
    }
}

std::optional<Preemption> Ledger::plan_preemption(const AllocationRequest& request) const {
    if (policy_.preemption_mode == "none" || request.priority.value < policy_.preemption_min_priority) return std::nullopt;
    Availability v = availability();
    const std::int64_t usable_cpu = micro_cores(v.cpu_total - v.cpu_reserved);
    const std::uint64_t usable_mem = v.memory_total - v.memory_reserved;
    // What is missing now, per resource (negative: enough already).
    const std::int64_t need_cpu = node_.cpu_micro + micro_cores(request.resources.cpu_cores) - usable_cpu;
    const std::int64_t need_mem = static_cast<std::int64_t>(node_.memory + request.resources.memory_bytes) - static_cast<std::int64_t>(usable_mem);
    const int need_agents = node_.agents + request.resources.agents - policy_.max_agents;
    if (need_cpu <= 0 && need_mem <= 0 && need_agents <= 0) return std::nullopt;
    const std::string& mode = policy_.preemption_mode;
    if (mode != "kill" && (need_mem > 0 || need_agents > 0)) return std::nullopt; // pausing frees only CPU

    std::vector<const Allocation*> candidates;
    for (auto& [id, a] : allocations_)
        if (a.status == AllocationStatus::active && !a.terminating_since && !a.degraded_from_cpu && a.priority.band() < request.priority.band())
            candidates.push_back(&a);
    std::sort(candidates.begin(), candidates.end(), [](const Allocation* x, const Allocation* y) {
        return x->priority.value != y->priority.value ? x->priority.value < y->priority.value : x->timestamp > y->timestamp;
    });
    auto freed = [&](const Allocation* a) {
        Totals f;
        f.cpu_micro = mode == "degrade" ? micro_cores(a->resources.cpu_cores * (1 - policy_.degrade_ratio)) : micro_cores(a->resources.cpu_cores);
        if (mode == "kill") f.memory = a->resources.memory_bytes, f.agents = a->resources.agents;
        return f;
    };
    auto covers = [&](const std::vector<const Allocation*>& set) {
        Totals f;
        for (auto* a : set) {
            Totals x = freed(a);
            f.cpu_micro += x.cpu_micro, f.memory += x.memory, f.agents += x.agents;
        }
        return f.cpu_micro >= need_cpu && static_cast<std::int64_t>(f.memory) >= need_mem && f.agents >= need_agents;
    };
    auto plan = [&](const std::vector<const Allocation*>& set) {
        Preemption p{mode, {}};
        for (auto* a : set) p.victims.push_back(a->allocation_id);
        return p;
    };
    // Fewest victims first; within a size, the candidate order (lowest priority, youngest) decides.
    for (auto* a : candidates)
        if (covers({a})) return plan({a});
    for (size_t i = 0; i < candidates.size(); ++i)
        for (size_t j = i + 1; j < candidates.size(); ++j)
            if (covers({candidates[i], candidates[j]})) return plan({candidates[i], candidates[j]});
    std::vector<const Allocation*> prefix;
    for (auto* a : candidates) {
        prefix.push_back(a);
        if (covers(prefix)) return plan(prefix);
    }
    return std::nullopt;
}

std::vector<ConflictFinding> Ledger::find_conflicts(const AllocationRequest& proposed, std::uint32_t uid, TimePoint now, bool check_future,
                                                    Seconds horizon) const {
    std::vector<ConflictFinding> out;
    const Seconds duration = proposed.constraints.max_duration.value_or(policy_.max_duration);
    auto holders_of = [&](TimePoint t, bool reservations_only) {
        std::vector<std::string> workflows;
        for (auto& [id, a] : allocations_) {
            bool booked = a.status == AllocationStatus::reserved && a.start_at && *a.start_at <= t && a.expires_at && t < *a.expires_at;
            bool holding = !reservations_only && holds_capacity(a);
            if ((booked || holding) && std::find(workflows.begin(), workflows.end(), a.workflow_id) == workflows.end())
                workflows.push_back(a.workflow_id);
        }
        return workflows;
    };
    try {
        check_fits(proposed.resources, promised_at(now, now, {}), "");
    } catch (const ApiError& e) {
        ConflictFinding f{"resource", fits_node(proposed.resources) ? "medium" : "high", holders_of(now, false),
                          {{"message", e.what()}, {"details", e.details}, {"affected_resources", e.affected_resources}}, {}};
        if (fits_node(proposed.resources)) f.strategies.push_back("intelligent_queuing");
        if (plan_preemption(proposed)) f.strategies.push_back("priority_preemption");
        f.strategies.push_back("resource_scaling");
        out.push_back(f);
    }
    if (check_future) {
        const TimePoint end = std::min(now + duration, now + horizon);
        for (auto& [id, r] : allocations_) {
            if (r.status != AllocationStatus::reserved || !r.start_at || *r.start_at <= now || *r.start_at >= end) continue;
            try {
                check_fits(proposed.resources, promised_at(*r.start_at, now, {}), " at " + format_timestamp(*r.start_at));
            } catch (const ApiError& e) {
                out.push_back({"time", "medium", holders_of(*r.start_at, true),
                               {{"message", e.what()}, {"details", e.details}, {"reservation_id", id},
                                {"starts", format_timestamp(*r.start_at)}},
                               {"shorten_duration", "intelligent_queuing"}});
            }
        }
    }
    try {
        check_workflow_conflicts(proposed, uid);
    } catch (const ApiError& e) {
        std::string other = e.affected_resources.empty() ? "" : e.affected_resources[0].substr(std::string("workflow:").size());
        out.push_back({"workflow", "high", {proposed.workflow_id, other}, {{"message", e.what()}, {"details", e.details}},
                       {"intelligent_queuing"}});
    }
    for (auto& [id, a] : allocations_)
        for (auto& file : proposed.constraints.exclusive_access)
            if (std::find(a.constraints.exclusive_access.begin(), a.constraints.exclusive_access.end(), file) != a.constraints.exclusive_access.end())
                out.push_back({"file", "high", {proposed.workflow_id, a.workflow_id},
                               {{"file", file}, {"holder", id}, {"holder_priority", a.priority.value}, {"holder_status", to_string(a.status)},
                                {"message", "'" + file + "' is held exclusively by " + id}},
                               proposed.priority.value > a.priority.value
                                   ? std::vector<std::string>{"queue_and_serialize", "priority_based", "release"}
                                   : std::vector<std::string>{"queue_and_serialize", "release"}});
    return out;
}

void Ledger::pause(const std::string& id) {
    Allocation& a = allocations_.at(id);
    account(a, -1);
    a.status = AllocationStatus::paused;
    account(a, +1);
}

void Ledger::degrade(const std::string& id) {
    Allocation& a = allocations_.at(id);
    account(a, -1);
    a.degraded_from_cpu = a.resources.cpu_cores;
    a.resources.cpu_cores *= policy_.degrade_ratio;
    account(a, +1);
}

std::vector<std::string> Ledger::restore_preempted() {
    std::vector<Allocation*> waiting;
    for (auto& [id, a] : allocations_)
        if (a.status == AllocationStatus::paused || a.degraded_from_cpu) waiting.push_back(&a);
    std::sort(waiting.begin(), waiting.end(), [](const Allocation* x, const Allocation* y) {
        return x->priority.value != y->priority.value ? x->priority.value > y->priority.value : x->timestamp < y->timestamp;
    });
    std::vector<std::string> restored;
    for (Allocation* a : waiting) {
        Resources extra;
        extra.cpu_cores = a->status == AllocationStatus::paused ? a->resources.cpu_cores : *a->degraded_from_cpu - a->resources.cpu_cores;
        if (!fits_now(extra)) break; // in order: the first that cannot come back holds the others
        account(*a, -1);
        if (a->degraded_from_cpu) a->resources.cpu_cores = *a->degraded_from_cpu;
        a->degraded_from_cpu.reset();
        a->status = AllocationStatus::active;
        account(*a, +1);
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
    account(node.mapped(), -1);
    if (node.mapped().status == AllocationStatus::reserved) --reserved_count_;
    node.mapped().status = AllocationStatus::released;
    return std::move(node.mapped());
}

const Allocation& Ledger::reallocate(const std::string& id, const Resources& resources, const Owner& caller, TimePoint now) {
    const Allocation& current = authorize(id, caller);
    if (!holds_capacity(current))
        throw ApiError(ErrorCode::CONFLICT, "Allocation '" + id + "' is " + to_string(current.status) + "; only a running allocation can be reallocated",
                       {}, {}, {"Release it and request again"});
    check_policy(current.owner.uid, current.workflow_id, resources, &current.resources);
    check_capacity(resources, id, now, current.expires_at.value_or(now), now);
    Allocation& a = allocations_.at(id);
    account(a, -1);
    a.resources = resources;
    account(a, +1);
    return a;
}

void Ledger::restore(const Allocation& allocation) {
    if (auto it = allocations_.find(allocation.allocation_id); it != allocations_.end()) {
        account(it->second, -1);
        if (it->second.status == AllocationStatus::reserved) --reserved_count_;
    }
    account(allocation, +1);
    if (allocation.status == AllocationStatus::reserved) ++reserved_count_;
    next_queue_seq_ = std::max(next_queue_seq_, allocation.queue_seq + 1);
    allocations_[allocation.allocation_id] = allocation;
}

void Ledger::mark_terminating(const std::string& id, TimePoint now) { allocations_.at(id).terminating_since = now; }
void Ledger::mark_expired(const std::string& id) { allocations_.at(id).status = AllocationStatus::expired; }
void Ledger::mark_populated(const std::string& id) {
    auto& a = allocations_.at(id);
    a.populated_once = true;
    a.idle_since.reset();
}
void Ledger::mark_idle(const std::string& id, TimePoint since) { allocations_.at(id).idle_since = since; }
void Ledger::set_supervisor(const std::string& id, std::int32_t pid) {
    auto& a = allocations_.at(id);
    a.supervisor_pid = pid;
    if (pid > 0) a.supervised = true;
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
