// Exclusive files while allocations run: paths made canonical as the requester sees them (only
// files it could write are holdable), holds handed to the fanotify guard when a group exists and
// dropped when it ends, the guard's reports turned into conflict records
// (current_state/conflicts.json) and RESOURCE_CONFLICT events, allocations refused a held file
// recorded the same way, and the node's file conflict policy (policies/file_conflicts.json).
// Reads the ledger and the backend; the Lifecycle decides when files are held and released.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cgroup/backend.hpp"
#include "conflicts/file_access.hpp"
#include "conflicts/file_guard.hpp"
#include "conflicts/registry.hpp"
#include "core/ledger.hpp"
#include "events/notifier.hpp"
#include "resmgr/protocol.hpp"

namespace resmgr::lifecycle {

// "comm[pid]" of a conflict's claimant record.
std::string describe_claimant(const nlohmann::json& claimant);

class ExclusiveFiles {
public:
    using ClockFn = std::function<TimePoint()>;
    using LookupUserFn = std::function<core::UserIdentity(std::uint32_t uid)>;

    ExclusiveFiles(const core::Ledger& ledger, cgroup::CgroupBackend& backend, std::filesystem::path state_dir,
                   std::string cgroup_mount, ClockFn clock, events::Notifier& events);

    // The fanotify guard. Without one (`unavailable` says why) a file is still exclusive at
    // admission (a second allocation wanting it is refused or queued), not on open.
    void set_guard(conflicts::Guard* guard, std::string unavailable);
    conflicts::Guard* guard() const { return guard_; }
    const std::string& guard_unavailable() const { return guard_unavailable_; }
    // The guard's status, or why there is none.
    nlohmann::json guard_status() const;
    // Who a uid is (name, groups), for who may hold any file; the user database by default.
    void set_user_lookup(LookupUserFn lookup) { lookup_user_ = std::move(lookup); }
    // How a path looks to its requester (conflicts::probe_path by default).
    void set_path_probe(conflicts::PathProbe probe) { probe_path_ = std::move(probe); }

    const core::Policy::FileConflicts& policy() const { return policy_; }
    // prevent-conflicts: recorded, then given to the guard. Throws StateError when not recorded.
    void set_policy(const core::Policy::FileConflicts& policy);

    // Relative paths against the requester's working directory, then canonical as the
    // requester resolves them; only regular files the requester may hold pass.
    void normalize(AllocationRequest& request, const Owner& peer) const;
    // The allocation's files go to the guard; returns what cannot be guarded (the allocation's
    // enforcement lists it as not enforced), each reason starting with kUnguarded.
    static constexpr std::string_view kUnguarded = "exclusive_files: ";
    std::vector<std::string> hold(const Allocation& allocation);
    // One more file for a running allocation (resolve-conflicts handed it over); the error when
    // it cannot be guarded.
    std::optional<std::string> hold_file(const std::string& file, const Allocation& allocation);
    // Drops the allocation's holds (or one file) and resolves the conflicts over them; then
    // tells `on_release` (the cluster's claims follow the local holds).
    void release(const std::string& id, const std::optional<std::string>& file, const std::string& resolution);
    // A file another node of the cluster claims: guarded against every workflow of this node
    // (its owner group is one no process is in). The error when it cannot be guarded.
    std::optional<std::string> hold_for_node(const std::string& file, const std::string& node, const std::string& workflow_id);
    void release_for_node(const std::string& file, const std::string& node);
    using ReleaseObserver = std::function<void(const std::string& id, const std::optional<std::string>& file)>;
    void set_on_release(ReleaseObserver observer) { on_release_ = std::move(observer); }

    // The guard answered opens or saw a held path change: conflict records and events.
    void on_guard_reports(std::vector<conflicts::GuardReport> reports);
    // An allocate refused because a file is held: recorded like the guard's conflicts; returns its id.
    std::string record_admission_conflict(const AllocationRequest& request, const ApiError& error, const Owner& peer);
    conflicts::ConflictRegistry& registry() { return registry_; }
    const conflicts::ConflictRegistry& registry() const { return registry_; }
    // Loaded at start (a damaged file is set aside, never fatal); saved when a record is new,
    // repeats at the next sampling pass.
    void load();
    void save();
    void save_if_changed();

    // The allocation's group as /proc/PID/cgroup shows it (empty: processes are not grouped).
    std::string owner_cgroup(const std::string& id) const;

private:
    std::optional<std::string> allocation_of_cgroup(const std::string& cgroup) const;
    std::filesystem::path conflicts_path() const;
    std::filesystem::path policy_path() const;

    const core::Ledger& ledger_;
    cgroup::CgroupBackend& backend_;
    std::filesystem::path state_dir_;
    std::string cgroup_mount_;
    ClockFn clock_;
    events::Notifier& events_;
    LookupUserFn lookup_user_;
    conflicts::PathProbe probe_path_;
    conflicts::Guard* guard_ = nullptr;
    std::string guard_unavailable_ = "no file guard is running";
    conflicts::ConflictRegistry registry_;
    bool dirty_ = false;
    core::Policy::FileConflicts policy_; // the policy's, or what prevent-conflicts set since
    ReleaseObserver on_release_;
};

} // namespace resmgr::lifecycle
