// The questions admission asks of the ledger's contents (see admission.hpp).
#include "core/admission.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

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

Admission::Admission(const NodeCapacity& capacity, const StorageCapacity& storage, const Policy& policy,
                     const std::map<std::string, Allocation>& allocations, const Holdings& holdings, bool has_reservations)
    : capacity_(capacity), storage_(storage), policy_(policy), allocations_(allocations), holdings_(holdings), has_reservations_(has_reservations) {}

Availability Admission::availability() const {
    Availability v;
    const HeldTotals& t = holdings_.node();
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
    v.storage_total = storage_;
    v.storage_allocated = t.storage;
    v.storage_available = storage_ && *storage_ > t.storage ? *storage_ - t.storage : 0;
    return v;
}

// Filled key by key, as resmgr::to_json(Allocation) is (see there): every allocate and release
// answer carries it.
nlohmann::json Availability::to_json() const {
    auto g = [](std::uint64_t b) { return std::round(static_cast<double>(b) / kGiB * 1000) / 1000; };
    nlohmann::json j = nlohmann::json::object();
    nlohmann::json& cpu = j["cpu_cores"];
    cpu["total"] = cpu_total;
    cpu["reserved"] = cpu_reserved;
    cpu["allocated"] = cpu_allocated;
    cpu["available"] = cpu_available;
    nlohmann::json& memory = j["memory"];
    memory["total_gb"] = g(memory_total);
    memory["buffer_gb"] = g(memory_reserved);
    memory["allocated_gb"] = g(memory_allocated);
    memory["available_gb"] = g(memory_available);
    nlohmann::json& agents = j["agent_pool"];
    agents["max_agents"] = agents_max;
    agents["allocated_agents"] = agents_allocated;
    agents["available_agents"] = agents_available;
    nlohmann::json& storage = j["storage"];
    if (storage_total) {
        storage["total_gb"] = g(*storage_total);
        storage["allocated_gb"] = g(storage_allocated);
        storage["available_gb"] = g(storage_available);
    } else {
        storage["total_gb"] = nullptr;
        storage["reason"] = "no temporary directory root";
    }
    return j;
}

void Admission::check_duration(const AllocationRequest& request) const {
    const Policy& policy = policy_;
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

void Admission::check_policy(std::uint32_t uid, const std::string& workflow, const Resources& wanted, const Resources* current) const {
    HeldTotals have = holdings_.workflow(uid, workflow);
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

HeldTotals Admission::promised_at(TimePoint t, TimePoint now, const std::string& except_id) const {
    if (!has_reservations_ && t <= now) {
        HeldTotals p = holdings_.node();
        if (auto it = allocations_.find(except_id); it != allocations_.end() && holds_capacity(it->second)) p.add_held(it->second, -1);
        return p;
    }
    HeldTotals p;
    for (auto& [id, a] : allocations_) {
        if (id == except_id) continue;
        bool holding = holds_capacity(a) && (t <= now || !a.expires_at || *a.expires_at > t || a.terminating_since);
        bool booked = a.status == AllocationStatus::reserved && a.start_at && *a.start_at <= t && (!a.expires_at || t < *a.expires_at);
        if (booked) p.add(a.resources, +1);
        else if (holding) p.add_held(a, +1);
    }
    return p;
}

bool Admission::fits_node(const Resources& wanted) const {
    Availability v = availability();
    return micro_cores(wanted.cpu_cores) <= micro_cores(v.cpu_total - v.cpu_reserved) &&
           wanted.memory_bytes <= v.memory_total - v.memory_reserved && wanted.agents <= v.agents_max &&
           wanted.storage_bytes <= v.storage_total.value_or(0);
}

bool Admission::fits_now(const Resources& wanted) const {
    try {
        check_fits(wanted, holdings_.node(), "");
        return true;
    } catch (const ApiError&) {
        return false;
    }
}

void Admission::check_capacity(const Resources& wanted, const std::string& except_id, TimePoint start, TimePoint end, TimePoint now) const {
    std::vector<TimePoint> times{start};
    if (has_reservations_)
        for (auto& [id, a] : allocations_)
            if (a.status == AllocationStatus::reserved && a.start_at && *a.start_at > start && *a.start_at < end) times.push_back(*a.start_at);
    for (TimePoint t : times)
        check_fits(wanted, promised_at(t, now, except_id), t <= now ? "" : " at " + format_timestamp(t) + " (reserved then)");
}

void Admission::check_fits(const Resources& wanted, const HeldTotals& promised, const std::string& when) const {
    Availability v = availability();
    const std::int64_t usable_cpu = micro_cores(v.cpu_total - v.cpu_reserved);
    const std::int64_t cpu_free_micro = std::max<std::int64_t>(0, usable_cpu - promised.cpu_micro);
    const double cpu_free = static_cast<double>(cpu_free_micro) / 1e6;
    const std::uint64_t usable_mem = v.memory_total - v.memory_reserved;
    const std::uint64_t mem_free = usable_mem > promised.memory ? usable_mem - promised.memory : 0;
    const int agents_free = std::max(0, policy_.max_agents - promised.agents);
    const std::uint64_t storage_cap = v.storage_total.value_or(0);
    const std::uint64_t storage_free = storage_cap > promised.storage ? storage_cap - promised.storage : 0;

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
    if (wanted.storage_bytes > storage_free) {
        affected.push_back("storage");
        headline.push_back("storage");
        details.push_back("Requested " + gb(wanted.storage_bytes) + " of temporary storage, only " + gb(storage_free) + " available" + when +
                          (v.storage_total ? " (free space of the temp root's filesystem, minus what is promised)" : " (no temporary directory root)"));
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
    if (std::find(affected.begin(), affected.end(), "storage") != affected.end()) fit += " " + gb(storage_free) + " storage";
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

void Admission::check_workflow_conflicts(const AllocationRequest& request, std::uint32_t uid) const {
    const auto& avoid = request.constraints.conflict_avoidance;
    if (!holdings_.avoidance_possible(request)) return; // the common case: decided from the counters, no scan
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

void Admission::check_file_conflicts(const AllocationRequest& request, TimePoint start, TimePoint end, TimePoint now) const {
    for (auto& file : request.constraints.exclusive_access) {
        if (auto holder_id = holdings_.file_holder(file)) {
            const Allocation& holder = allocations_.at(*holder_id);
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

std::optional<Preemption> Admission::plan_preemption(const AllocationRequest& request) const {
    if (policy_.preemption_mode == "none" || request.priority.value < policy_.preemption_min_priority) return std::nullopt;
    Availability v = availability();
    const std::int64_t usable_cpu = micro_cores(v.cpu_total - v.cpu_reserved);
    const std::uint64_t usable_mem = v.memory_total - v.memory_reserved;
    // What is missing now, per resource (negative: enough already).
    const std::int64_t need_cpu = holdings_.node().cpu_micro + micro_cores(request.resources.cpu_cores) - usable_cpu;
    const std::int64_t need_mem = static_cast<std::int64_t>(holdings_.node().memory + request.resources.memory_bytes) - static_cast<std::int64_t>(usable_mem);
    const int need_agents = holdings_.node().agents + request.resources.agents - policy_.max_agents;
    if (need_cpu <= 0 && need_mem <= 0 && need_agents <= 0) return std::nullopt;
    // Preempting frees no disk: a short temp root is not made good by victims.
    if (request.resources.storage_bytes > v.storage_available) return std::nullopt;
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
        HeldTotals f;
        f.cpu_micro = mode == "degrade" ? micro_cores(a->resources.cpu_cores * (1 - policy_.degrade_ratio)) : micro_cores(a->resources.cpu_cores);
        if (mode == "kill") f.memory = a->resources.memory_bytes, f.agents = a->resources.agents;
        return f;
    };
    auto covers = [&](const std::vector<const Allocation*>& set) {
        HeldTotals f;
        for (auto* a : set) {
            HeldTotals x = freed(a);
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

std::vector<ConflictFinding> Admission::find_conflicts(const AllocationRequest& proposed, std::uint32_t uid, TimePoint now, bool check_future,
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

} // namespace resmgr::core
