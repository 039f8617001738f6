// Admission: the questions a decision asks of what the ledger holds. Does a request fit the node
// now, or at every instant of a reserved window? Is it within its workflow's policy allowance?
// Does it meet a workflow or file conflict? Whom would preempting free room? A read-only view over
// the Ledger's allocations, made on demand by Ledger::admission(); every denial is an ApiError
// that says which resource is short and by how much. Pure: no I/O. May call: model, core.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/holdings.hpp"
#include "core/policy.hpp"
#include "resmgr/model.hpp"

namespace resmgr::core {

struct NodeCapacity {
    double cpu_cores = 0;
    std::uint64_t memory_bytes = 0;
};

// The temp root's filesystem as the allocations' temporary directories see it: its free bytes
// plus what those directories use now inside their promises (measured), so storage_gb is set
// against it as memory_gb is against the node's memory. nullopt: no temp root (refused).
using StorageCapacity = std::optional<std::uint64_t>;

struct Availability {
    double cpu_total = 0, cpu_reserved = 0, cpu_allocated = 0, cpu_available = 0;
    std::uint64_t memory_total = 0, memory_reserved = 0, memory_allocated = 0, memory_available = 0;
    int agents_max = 0, agents_allocated = 0, agents_available = 0;
    std::optional<std::uint64_t> storage_total; // nullopt: no temp root
    std::uint64_t storage_allocated = 0, storage_available = 0;
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

class Admission {
public:
    Admission(const NodeCapacity& capacity, const StorageCapacity& storage, const Policy& policy,
              const std::map<std::string, Allocation>& allocations, const Holdings& holdings, bool has_reservations);

    Availability availability() const;
    // Could the node ever give this (capacity minus the system reserve)?
    bool fits_node(const Resources& wanted) const;
    bool fits_now(const Resources& wanted) const;

    // Each throws ApiError when the request cannot be admitted for its reason.
    // POLICY_VIOLATION: duration or grace period over the policy's bounds.
    void check_duration(const AllocationRequest& request) const;
    // POLICY_VIOLATION: the workflow would exceed its allowance (`current`: what it replaces).
    void check_policy(std::uint32_t uid, const std::string& workflow, const Resources& wanted, const Resources* current) const;
    // RESOURCE_EXHAUSTED: capacity over [start, end), at start and at every reservation start inside.
    void check_capacity(const Resources& wanted, const std::string& except_id, TimePoint start, TimePoint end, TimePoint now) const;
    // CONFLICT: conflict_avoidance, either way round.
    void check_workflow_conflicts(const AllocationRequest& request, std::uint32_t uid) const;
    // CONFLICT: another allocation holds one of the request's files over [start, end), or a
    // reservation books it.
    void check_file_conflicts(const AllocationRequest& request, TimePoint start, TimePoint end, TimePoint now) const;

    // For a request that does not fit now: the victims whose pausing, degrading or killing
    // makes room, or nullopt (it fits, the requester may not preempt, or no victims suffice).
    // Victims are of a lower band; fewest first, then lowest priority, then youngest.
    std::optional<Preemption> plan_preemption(const AllocationRequest& request) const;
    // Conflicts `proposed` would meet now and, with `check_future`, from reservations starting
    // within `horizon`. `files` are paths it wants exclusively.
    std::vector<ConflictFinding> find_conflicts(const AllocationRequest& proposed, std::uint32_t uid, TimePoint now, bool check_future,
                                                Seconds horizon) const;

private:
    void check_fits(const Resources& wanted, const HeldTotals& promised, const std::string& when) const;
    HeldTotals promised_at(TimePoint t, TimePoint now, const std::string& except_id) const;

    const NodeCapacity& capacity_;
    const StorageCapacity& storage_;
    const Policy& policy_;
    const std::map<std::string, Allocation>& allocations_;
    const Holdings& holdings_;
    bool has_reservations_; // none: the calendar check is the O(1) check of now
};

} // namespace resmgr::core
