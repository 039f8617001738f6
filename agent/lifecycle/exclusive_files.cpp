// Exclusive files while allocations run (see exclusive_files.hpp).
#include "lifecycle/exclusive_files.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "resmgr/json.hpp"
#include "state/state_store.hpp"

namespace resmgr::lifecycle {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

json claimant_json(const conflicts::Opener& opener) {
    return {{"pid", opener.pid},
            {"comm", opener.comm},
            {"cgroup", opener.cgroup.empty() ? json(nullptr) : json(opener.cgroup)},
            {"open_mode", conflicts::to_string(opener.mode)}};
}

} // namespace

std::string describe_claimant(const json& claimant) {
    return claimant.value("comm", std::string("?")) + "[" + std::to_string(claimant.value("pid", 0)) + "]";
}

ExclusiveFiles::ExclusiveFiles(const core::Ledger& ledger, cgroup::CgroupBackend& backend, fs::path state_dir, std::string cgroup_mount,
                               ClockFn clock, events::Notifier& events)
    : ledger_(ledger), backend_(backend), state_dir_(std::move(state_dir)), cgroup_mount_(std::move(cgroup_mount)),
      clock_(std::move(clock)), events_(events), probe_path_(conflicts::probe_path), policy_(ledger.policy().file_conflicts) {
    registry_.set_max_active(static_cast<size_t>(ledger.policy().limits.active_conflicts));
}

json ExclusiveFiles::guard_status() const {
    return guard_ ? guard_->status() : json{{"available", false}, {"reason", guard_unavailable_}};
}

void ExclusiveFiles::set_policy(const core::Policy::FileConflicts& policy) {
    state::write_file_atomic(policy_path(), dump_text(policy.to_json(), 2) + "\n");
    policy_ = policy;
    if (guard_) guard_->set_policy(conflicts::guard_policy(policy_));
}

std::optional<std::string> ExclusiveFiles::hold_file(const std::string& file, const Allocation& a) {
    if (!guard_) return std::nullopt;
    try {
        guard_->hold({file, a.allocation_id, a.workflow_id, a.priority.value, owner_cgroup(a.allocation_id), std::nullopt});
    } catch (const conflicts::GuardError& e) {
        return std::string(e.what());
    }
    return std::nullopt;
}

void ExclusiveFiles::save_if_changed() {
    if (dirty_) save();
}

void ExclusiveFiles::set_guard(conflicts::Guard* guard, std::string unavailable) {
    guard_ = guard;
    guard_unavailable_ = std::move(unavailable);
    if (guard_) guard_->set_policy(conflicts::guard_policy(policy_));
}

fs::path ExclusiveFiles::conflicts_path() const { return state_dir_ / "current_state" / "conflicts.json"; }

fs::path ExclusiveFiles::policy_path() const { return state_dir_ / "policies" / "file_conflicts.json"; }

void ExclusiveFiles::load() {
    // A record of what happened, not a promise: a damaged file is set aside, never fatal.
    auto set_aside = [](const fs::path& path, const std::string& why) {
        fs::path aside = path;
        aside += ".damaged";
        std::error_code ec;
        fs::rename(path, aside, ec);
        spdlog::error("{}: {}; moved to {}", path.string(), why, aside.string());
    };
    if (fs::exists(conflicts_path())) {
        try {
            std::ifstream in(conflicts_path());
            registry_.load(json::parse(in));
        } catch (const std::exception& e) {
            set_aside(conflicts_path(), e.what());
        }
    }
    if (fs::exists(policy_path())) {
        try {
            std::ifstream in(policy_path());
            policy_ = core::parse_file_conflicts(json::parse(in), "policies/file_conflicts.json", ledger_.policy().file_conflicts);
        } catch (const std::exception& e) {
            set_aside(policy_path(), e.what());
        }
    }
    if (guard_) guard_->set_policy(conflicts::guard_policy(policy_));
}

void ExclusiveFiles::save() {
    try {
        state::write_file_atomic(conflicts_path(), dump_text(registry_.to_json(), 2) + "\n");
        dirty_ = false;
    } catch (const state::StateError& e) {
        spdlog::error("could not record conflicts: {}", e.what());
        dirty_ = true;
    }
}

void ExclusiveFiles::normalize(AllocationRequest& request, const Owner& peer) const {
    if (request.constraints.exclusive_access.empty()) return;
    // Looked at as the requester, so holding grants nothing over a file it could not write anyway
    // and resolving reveals nothing of directories it cannot search.
    const core::UserIdentity who = lookup_user_ ? lookup_user_(peer.uid) : core::UserIdentity{peer.uid, {}, {}, {}};
    const bool privileged = core::may_hold_any_file(policy_, who);
    std::optional<conflicts::Credentials> as;
    if (!privileged)
        as = conflicts::Credentials{peer.uid, who.gids.empty() ? 65534u : who.gids.front(), who.gids}; // no passwd entry: nogroup, no groups
    std::vector<std::string> files;
    for (const auto& file : request.constraints.exclusive_access) {
        fs::path path(file);
        if (file.empty()) throw ApiError(ErrorCode::INVALID_REQUEST, "an exclusive file path is empty", {}, {"exclusive_files"});
        if (path.is_relative()) {
            // The kernel-verified peer's working directory: what the user meant by a relative path.
            std::error_code ec;
            fs::path cwd = peer.pid > 0 ? fs::read_symlink("/proc/" + std::to_string(peer.pid) + "/cwd", ec) : fs::path();
            if (peer.pid <= 0 || ec || cwd.is_relative())
                throw ApiError(ErrorCode::INVALID_REQUEST, "exclusive file '" + file + "' is relative and the requester's directory is unknown",
                               {}, {"exclusive_files"}, {"Give an absolute path"});
            path = cwd / path;
        }
        const std::string asked = path.lexically_normal().string();
        const conflicts::Holdability verdict = conflicts::holdable(asked, probe_path_(asked, as), privileged);
        if (verdict.verdict == conflicts::Holdability::Verdict::denied)
            throw ApiError(ErrorCode::PERMISSION_DENIED, "You may not hold exclusive file '" + asked + "'", verdict.reason, {"exclusive_files"},
                           {verdict.hint});
        if (verdict.verdict == conflicts::Holdability::Verdict::invalid)
            throw ApiError(ErrorCode::INVALID_REQUEST, "exclusive file " + verdict.reason, {}, {"exclusive_files"}, {verdict.hint});
        if (std::find(files.begin(), files.end(), verdict.path) == files.end()) files.push_back(verdict.path);
    }
    request.constraints.exclusive_access = std::move(files);
}

std::string ExclusiveFiles::owner_cgroup(const std::string& id) const {
    std::string path = backend_.group_path(id);
    const std::string mount = cgroup_mount_;
    if (path.empty() || mount.empty() || path.compare(0, mount.size(), mount) != 0) return {};
    std::string relative = path.substr(mount.size());
    return relative.empty() ? "/" : relative;
}

std::optional<std::string> ExclusiveFiles::allocation_of_cgroup(const std::string& cgroup) const {
    if (cgroup.empty()) return std::nullopt;
    for (const auto& [id, a] : ledger_.allocations()) {
        if (!core::holds_capacity(a)) continue;
        std::string owner = owner_cgroup(id);
        if (!owner.empty() && conflicts::in_subtree(cgroup, owner)) return id;
    }
    return std::nullopt;
}

std::vector<std::string> ExclusiveFiles::hold(const Allocation& a) {
    std::vector<std::string> unenforced;
    if (a.constraints.exclusive_access.empty()) return unenforced;
    if (!guard_) {
        unenforced.push_back(std::string(kUnguarded) + "held at admission only, not on open: " + guard_unavailable_);
        return unenforced;
    }
    const std::string owner = owner_cgroup(a.allocation_id);
    if (owner.empty()) {
        unenforced.push_back(std::string(kUnguarded) + "held at admission only: the " + backend_.name() +
                             " backend does not put the allocation's processes in a cgroup the guard can tell apart");
        return unenforced;
    }
    for (const auto& file : a.constraints.exclusive_access) {
        try {
            guard_->hold({file, a.allocation_id, a.workflow_id, a.priority.value, owner, std::nullopt});
        } catch (const conflicts::GuardError& e) {
            spdlog::error("{}: cannot guard {}: {}", a.allocation_id, file, e.what());
            unenforced.push_back(std::string(kUnguarded) + file + ": " + e.what());
        }
    }
    return unenforced;
}

namespace {
std::string node_holder(const std::string& node) { return "cluster:" + node; }
} // namespace

std::optional<std::string> ExclusiveFiles::hold_for_node(const std::string& file, const std::string& node, const std::string& workflow_id) {
    if (!guard_) return "no file guard: " + guard_unavailable_;
    try {
        guard_->hold({file, node_holder(node), workflow_id, 0, "/resmgr-cluster/" + node, std::nullopt});
    } catch (const conflicts::GuardError& e) {
        return std::string(e.what());
    }
    return std::nullopt;
}

void ExclusiveFiles::release_for_node(const std::string& file, const std::string& node) {
    if (guard_) guard_->release(node_holder(node), file);
}

void ExclusiveFiles::release(const std::string& id, const std::optional<std::string>& file, const std::string& resolution) {
    if (guard_) guard_->release(id, file);
    if (!registry_.resolve_for_holder(id, file, resolution, clock_()).empty()) save();
    if (on_release_) on_release_(id, file);
}

void ExclusiveFiles::on_guard_reports(std::vector<conflicts::GuardReport> reports) {
    using Kind = conflicts::GuardReport::Kind;
    bool created = false;
    for (auto& r : reports) {
        if (r.kind == Kind::stalled || r.kind == Kind::overflow) {
            spdlog::warn("file guard: {}: {}", conflicts::to_string(r.kind), r.reason);
            continue;
        }
        if (r.kind == Kind::granted) continue; // the holder's release already resolved the conflict
        const Allocation* holder = ledger_.find(r.allocation_id);
        conflicts::ConflictRecord record;
        record.file = r.path;
        record.event = std::string(conflicts::to_string(r.kind));
        record.holder = {{"allocation_id", r.allocation_id},
                         {"workflow_id", r.workflow_id},
                         {"priority", holder ? json(holder->priority.value) : json(nullptr)}};
        record.claimant = claimant_json(r.opener);
        if (auto claimant = allocation_of_cgroup(r.opener.cgroup)) {
            record.claimant["allocation_id"] = *claimant;
            record.claimant["workflow_id"] = ledger_.find(*claimant)->workflow_id;
        }
        record.reason = r.reason;
        record.occurrences = r.count;
        record.detected_at = record.last_seen = std::chrono::time_point_cast<TimePoint::duration>(r.at);
        auto [stored, is_new] = registry_.record(std::move(record), random_id("conf"));
        created = created || is_new;
        dirty_ = true;
        const bool refused = r.kind == Kind::denied || r.kind == Kind::timed_out || r.kind == Kind::rename_refused ||
                             r.kind == Kind::unlink_refused || r.kind == Kind::truncate_refused;
        std::string message = describe_claimant(stored->claimant) + " " +
                              (refused ? "was refused" : r.kind == Kind::queued ? "waits for" : std::string(conflicts::to_string(r.kind))) + " " +
                              r.path + (r.count > 1 ? " " + std::to_string(r.count) + " times" : std::string()) + " (held by " + r.allocation_id +
                              " of workflow " + r.workflow_id + "): " + r.reason + "; `resmgr why " + r.path + "` explains";
        events_.emit(events::EventType::conflict, message, r.workflow_id, r.allocation_id,
             {{"conflict_id", stored->conflict_id},
              {"conflict_type", "file"},
              {"file", r.path},
              {"event", stored->event},
              {"holder", stored->holder},
              {"denied_process", stored->claimant},
              {"occurrences", stored->occurrences},
              {"count", r.count}, // of this report (occurrences counts the record's whole life)
              {"resolution_strategies", json::array({"queue_and_serialize", "priority_based", "release"})}});
    }
    // A new conflict is on disk at once; repeats of known ones are saved with the next sample.
    if (created) save();
}

std::string ExclusiveFiles::record_admission_conflict(const AllocationRequest& request, const ApiError& error, const Owner& peer) {
    const std::string file = error.affected_resources[0].substr(std::string("file:").size());
    // The ledger names the holder (or the reservation booking the file) second.
    const std::string prefix = "allocation:";
    const Allocation* holder = error.affected_resources.size() > 1 && error.affected_resources[1].rfind(prefix, 0) == 0
                                   ? ledger_.find(error.affected_resources[1].substr(prefix.size()))
                                   : nullptr;
    conflicts::ConflictRecord record;
    record.file = file;
    record.event = "allocation_refused";
    record.holder = {{"allocation_id", holder ? holder->allocation_id : ""},
                     {"workflow_id", holder ? holder->workflow_id : ""},
                     {"priority", holder ? json(holder->priority.value) : json(nullptr)}};
    record.claimant = {{"pid", peer.pid}, {"comm", "allocate " + request.workflow_id}, {"cgroup", nullptr}, {"workflow_id", request.workflow_id},
                       {"priority", request.priority.value}};
    record.reason = error.what();
    record.detected_at = record.last_seen = clock_();
    auto [stored, is_new] = registry_.record(std::move(record), random_id("conf"));
    if (is_new) save();
    else dirty_ = true;
    return stored->conflict_id;
}

} // namespace resmgr::lifecycle
