// The Service's exclusive-file side: paths made canonical at admission, holds handed to the
// fanotify guard while an allocation runs, the guard's reports turned into conflict records
// (current_state/conflicts.json) and RESOURCE_CONFLICT events, and the operations
// resolve-conflicts and prevent-conflicts.
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "resmgr/json.hpp"
#include "server/params.hpp"
#include "server/service.hpp"

namespace resmgr::server {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

json claimant_json(const conflicts::Opener& opener) {
    return {{"pid", opener.pid},
            {"comm", opener.comm},
            {"cgroup", opener.cgroup.empty() ? json(nullptr) : json(opener.cgroup)},
            {"open_mode", conflicts::to_string(opener.mode)}};
}

std::string join_first(const std::vector<std::string>& items, size_t most) {
    std::string out;
    for (size_t i = 0; i < items.size() && i < most; ++i) out += (i ? ", " : "") + items[i];
    if (items.size() > most) out += " and " + std::to_string(items.size() - most) + " more";
    return out;
}

// The holds in a guard's status() that are objects (a guard's status is read, never trusted).
std::vector<json> guard_holds(const json& status) {
    std::vector<json> out;
    if (const auto it = status.find("holds"); it != status.end() && it->is_array())
        for (const auto& h : *it)
            if (h.is_object()) out.push_back(h);
    return out;
}

std::string describe_claimant(const json& claimant) {
    return claimant.value("comm", std::string("?")) + "[" + std::to_string(claimant.value("pid", 0)) + "]";
}

} // namespace

void Service::set_guard(conflicts::Guard* guard, std::string unavailable) {
    guard_ = guard;
    guard_unavailable_ = std::move(unavailable);
    if (guard_) guard_->set_policy(conflicts::guard_policy(file_policy_));
}

fs::path Service::conflicts_path() const { return store_.dir() / "current_state" / "conflicts.json"; }
fs::path Service::file_policy_path() const { return store_.dir() / "policies" / "file_conflicts.json"; }

void Service::load_conflicts() {
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
            conflicts_.load(json::parse(in));
        } catch (const std::exception& e) {
            set_aside(conflicts_path(), e.what());
        }
    }
    if (fs::exists(file_policy_path())) {
        try {
            std::ifstream in(file_policy_path());
            file_policy_ = core::parse_file_conflicts(json::parse(in), "policies/file_conflicts.json", ledger_.policy().file_conflicts);
        } catch (const std::exception& e) {
            set_aside(file_policy_path(), e.what());
        }
    }
    if (guard_) guard_->set_policy(conflicts::guard_policy(file_policy_));
}

void Service::save_conflicts() {
    try {
        state::write_file_atomic(conflicts_path(), dump_text(conflicts_.to_json(), 2) + "\n");
        conflicts_dirty_ = false;
    } catch (const state::StateError& e) {
        spdlog::error("could not record conflicts: {}", e.what());
        conflicts_dirty_ = true;
    }
}

void Service::normalize_exclusive_files(AllocationRequest& request, const Owner& peer) const {
    if (request.constraints.exclusive_access.empty()) return;
    // Looked at as the requester, so holding grants nothing over a file it could not write anyway
    // and resolving reveals nothing of directories it cannot search.
    const core::UserIdentity who = lookup_user_ ? lookup_user_(peer.uid) : core::UserIdentity{peer.uid, {}, {}, {}};
    const bool privileged = core::may_hold_any_file(file_policy_, who);
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

std::string Service::owner_cgroup(const std::string& id) {
    std::string path = backend_.group_path(id);
    const std::string mount = host_report_.value("cgroup2_mount", std::string());
    if (path.empty() || mount.empty() || path.compare(0, mount.size(), mount) != 0) return {};
    std::string relative = path.substr(mount.size());
    return relative.empty() ? "/" : relative;
}

std::optional<std::string> Service::allocation_of_cgroup(const std::string& cgroup) {
    if (cgroup.empty()) return std::nullopt;
    for (const auto& [id, a] : ledger_.allocations()) {
        if (!core::Ledger::holds_capacity(a)) continue;
        std::string owner = owner_cgroup(id);
        if (!owner.empty() && conflicts::in_subtree(cgroup, owner)) return id;
    }
    return std::nullopt;
}

void Service::hold_files(const Allocation& a) {
    if (a.constraints.exclusive_access.empty()) return;
    auto& unenforced = enforcement_[a.allocation_id].unenforced;
    if (!guard_) {
        unenforced.push_back("exclusive_files: held at admission only, not on open: " + guard_unavailable_);
        return;
    }
    const std::string owner = owner_cgroup(a.allocation_id);
    if (owner.empty()) {
        unenforced.push_back("exclusive_files: held at admission only: the " + backend_.name() +
                             " backend does not put the allocation's processes in a cgroup the guard can tell apart");
        return;
    }
    for (const auto& file : a.constraints.exclusive_access) {
        try {
            guard_->hold({file, a.allocation_id, a.workflow_id, a.priority.value, owner, std::nullopt});
        } catch (const conflicts::GuardError& e) {
            spdlog::error("{}: cannot guard {}: {}", a.allocation_id, file, e.what());
            unenforced.push_back("exclusive_files: " + file + ": " + e.what());
        }
    }
}

void Service::release_files(const std::string& id, const std::optional<std::string>& file, const std::string& resolution) {
    if (guard_) guard_->release(id, file);
    if (!conflicts_.resolve_for_holder(id, file, resolution, clock_()).empty()) save_conflicts();
}

void Service::on_guard_reports(std::vector<conflicts::GuardReport> reports) {
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
        auto [stored, is_new] = conflicts_.record(std::move(record), random_id("conf"));
        created = created || is_new;
        conflicts_dirty_ = true;
        const bool refused = r.kind == Kind::denied || r.kind == Kind::timed_out || r.kind == Kind::rename_refused ||
                             r.kind == Kind::unlink_refused || r.kind == Kind::truncate_refused;
        std::string message = describe_claimant(stored->claimant) + " " +
                              (refused ? "was refused" : r.kind == Kind::queued ? "waits for" : std::string(conflicts::to_string(r.kind))) + " " +
                              r.path + (r.count > 1 ? " " + std::to_string(r.count) + " times" : std::string()) + " (held by " + r.allocation_id +
                              " of workflow " + r.workflow_id + "): " + r.reason + "; `resmgr why " + r.path + "` explains";
        emit(events::EventType::conflict, message, r.workflow_id, r.allocation_id,
             {{"conflict_id", stored->conflict_id},
              {"conflict_type", "file"},
              {"file", r.path},
              {"event", stored->event},
              {"holder", stored->holder},
              {"denied_process", stored->claimant},
              {"occurrences", stored->occurrences},
              {"resolution_strategies", json::array({"queue_and_serialize", "priority_based", "release"})}});
    }
    // A new conflict is on disk at once; repeats of known ones are saved with the next sample.
    if (created) save_conflicts();
}

std::string Service::record_admission_conflict(const AllocationRequest& request, const ApiError& error, const Owner& peer) {
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
    auto [stored, is_new] = conflicts_.record(std::move(record), random_id("conf"));
    if (is_new) save_conflicts();
    else conflicts_dirty_ = true;
    return stored->conflict_id;
}

SuccessBody Service::resolve_conflicts(const Request& request, const Owner& peer) {
    only_params(request.params, {"conflict_id", "strategy", "notify_affected"});
    const std::string id = string_param(request.params, "conflict_id", true);
    // The seed's notify_affected: the outcome is published (journald, subscribers) once for
    // each workflow the conflict involved. On unless turned off.
    const bool notify = !request.params.contains("notify_affected") || bool_param(request.params, "notify_affected");
    std::vector<std::string> affected;
    if (const conflicts::ConflictRecord* record = conflicts_.find(id)) {
        for (const json* side : {&record->holder, &record->claimant}) // objects with string fields, checked at load
            if (side->contains("workflow_id")) affected.push_back((*side)["workflow_id"]);
        affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    }
    SuccessBody body = resolve_conflict(id, string_param(request.params, "strategy", true), peer);
    if (notify) {
        const std::string outcome = body.result.value("outcome", "");
        const std::string allocation = body.result.value("new_holder", body.result.value("holder", ""));
        for (const auto& workflow : affected)
            emit(events::EventType::conflict, "conflict " + id + " over " + body.result.value("file", "") + " resolved by " +
                     body.result.value("strategy", "") + ": " + outcome,
                 workflow, allocation, {{"conflict_id", id}, {"conflict_type", "file"}, {"file", body.result["file"]},
                                        {"resolution", body.result["strategy"]}, {"outcome", outcome}, {"holder", body.result["holder"]},
                                        {"new_holder", body.result.value("new_holder", json())}});
    }
    body.result["notified_workflows"] = notify ? json(affected) : json::array();
    return body;
}

SuccessBody Service::resolve_conflict(const std::string& id, std::string strategy, const Owner& peer) {
    if (strategy == "priority_override") strategy = "priority_based"; // the seed's name for the same method
    if (strategy == "copy_on_write" || strategy == "merge_changes")
        throw ApiError(ErrorCode::UNSUPPORTED, "Strategy '" + strategy + "' cannot be carried out by resmgrd",
                       "resmgrd enforces exclusive files in the kernel; it does not copy or merge file contents", {"strategy"},
                       {"Use priority_based, queue_and_serialize or release"});
    if (strategy != "priority_based" && strategy != "queue_and_serialize" && strategy != "release")
        throw ApiError(ErrorCode::INVALID_REQUEST, "Unknown strategy '" + strategy + "'", "expected priority_based, queue_and_serialize or release",
                       {"strategy"});
    const conflicts::ConflictRecord* record = conflicts_.find(id);
    if (!record) {
        std::vector<std::string> active;
        for (const auto* c : conflicts_.active()) active.push_back(c->conflict_id);
        std::string can = active.empty() ? "there is no active conflict to resolve" : "active conflicts: " + join_first(active, 10);
        if (id.rfind(kPredictedPrefix, 0) == 0)
            throw ApiError(ErrorCode::NOT_FOUND, "'" + id + "' is a conflict check-conflicts predicted; predictions are not recorded, so there is nothing to resolve",
                           can, {"conflict_id"}, {"Allocate with \"wait\": true to queue behind the holder, or resolve a recorded conflict"});
        throw ApiError(ErrorCode::NOT_FOUND, "No conflict with id '" + id + "'", can, {"conflict_id"}, {"List them with `resmgr status conflicts`"});
    }
    if (record->status != "active")
        throw ApiError(ErrorCode::CONFLICT, "Conflict '" + id + "' is already resolved", record->resolution.value_or(""), {"conflict_id"});
    const std::string file = record->file;
    const std::string holder_id = record->holder.value("allocation_id", "");
    const std::string claimant_id = record->claimant.value("allocation_id", "");
    // Only those the conflict involves may settle it: root, or the owner of the holder's or the
    // claimant's allocation (a conflict with no live allocation left is root's to settle).
    auto owned_by_peer = [&](const std::string& allocation) {
        const Allocation* a = allocation.empty() ? nullptr : ledger_.find(allocation);
        return a && a->owner.uid == peer.uid;
    };
    if (peer.uid != 0 && !owned_by_peer(holder_id) && !owned_by_peer(claimant_id))
        throw ApiError(ErrorCode::PERMISSION_DENIED, "Conflict '" + id + "' is not yours to resolve",
                       "only root and the owners of its holder and claimant allocations may resolve it", {"conflict_id"});
    // Taking a file from its holder is a priority's privilege (priority_privileges).
    if (strategy == "priority_based" && !may_use_any_priority(peer))
        throw ApiError(ErrorCode::PERMISSION_DENIED, "priority_based takes a file from its holder: it is for root and the users and groups in priority_privileges",
                       "uid " + std::to_string(peer.uid) + " is not among them", {"strategy"},
                       {"Ask the holder to release it, or use queue_and_serialize as the holder's owner"});
    const TimePoint now = clock_();
    SuccessBody body;
    body.result = {{"conflict_id", id}, {"strategy", strategy}, {"file", file}, {"holder", holder_id}};

    if (ledger_.file_holder(file) != holder_id) {
        conflicts_.resolve(id, "the holder no longer holds the file", now);
        save_conflicts();
        body.result["outcome"] = "holder_gone";
        return body;
    }
    const Allocation& holder = *ledger_.find(holder_id);
    auto files_without = [&](const Allocation& a) {
        std::vector<std::string> files = a.constraints.exclusive_access;
        files.erase(std::remove(files.begin(), files.end(), file), files.end());
        return files;
    };

    if (strategy == "release") {
        ledger_.authorize(holder_id, peer);
        ledger_.set_exclusive_files(holder_id, files_without(holder));
        persist();
        release_files(holder_id, file, "release: " + holder_id + " let go of the file");
        body.result["outcome"] = "released";
        body.resources_affected = 1;
        refill(); // an allocation queued for the file may start now
        return body;
    }
    if (strategy == "queue_and_serialize") {
        ledger_.authorize(holder_id, peer);
        const bool guarded = guard_ && guard_->set_strategy(file, conflicts::Strategy::queue_and_serialize);
        conflicts_.resolve(id, "queue_and_serialize: outside writers now wait for " + holder_id + " to let go", now);
        save_conflicts();
        body.result["outcome"] = guarded ? "queued" : "queued_at_admission_only";
        body.recommendations.push_back("Allocations that want the file: allocate with \"wait\": true to queue for it");
        return body;
    }
    // priority_based: the higher-priority claimant takes the file.
    const Allocation* claimant = claimant_id.empty() ? nullptr : ledger_.find(claimant_id);
    if (!claimant || !core::Ledger::holds_capacity(*claimant)) {
        body.result["outcome"] = "holder_keeps";
        body.result["reason"] = "the claimant " + describe_claimant(record->claimant) + " is not in a running allocation, so it has no priority";
        conflicts_.resolve(id, "priority_based: " + holder_id + " keeps the file (" + body.result["reason"].get<std::string>() + ")", now);
        save_conflicts();
        return body;
    }
    ledger_.authorize(claimant_id, peer);
    if (claimant->priority.value <= holder.priority.value) {
        body.result["outcome"] = "holder_keeps";
        body.result["reason"] = "priority " + std::to_string(claimant->priority.value) + " of " + claimant_id + " does not exceed " +
                                std::to_string(holder.priority.value) + " of " + holder_id;
        conflicts_.resolve(id, "priority_based: " + holder_id + " keeps the file", now);
        save_conflicts();
        return body;
    }
    std::vector<std::string> taken = claimant->constraints.exclusive_access;
    taken.push_back(file);
    ledger_.set_exclusive_files(holder_id, files_without(holder));
    ledger_.set_exclusive_files(claimant_id, taken);
    persist();
    release_files(holder_id, file, "priority_based: " + claimant_id + " (priority " + std::to_string(claimant->priority.value) + ") took the file");
    if (guard_) {
        try {
            guard_->hold({file, claimant_id, claimant->workflow_id, claimant->priority.value, owner_cgroup(claimant_id), std::nullopt});
        } catch (const conflicts::GuardError& e) {
            body.recommendations.push_back(std::string("The file could not be guarded for the new holder: ") + e.what());
        }
    }
    body.result["outcome"] = "transferred";
    body.result["new_holder"] = claimant_id;
    body.resources_affected = 2;
    return body;
}

namespace {

// The seed's policy form, {"policy_type": "file_locking", "scope": "global", "enforcement":
// "strict", "exceptions": ["read_only_operations"]}, as a file_conflicts update; null when the
// request does not use it.
json seed_policy_as_file_conflicts(const json& params) {
    const bool used = params.contains("policy_type") || params.contains("scope") || params.contains("enforcement") ||
                      params.contains("exceptions");
    if (!used) return nullptr;
    if (params.contains("file_conflicts"))
        throw ApiError(ErrorCode::INVALID_REQUEST, "give 'file_conflicts' or the seed's policy_type/scope/enforcement/exceptions, not both",
                       {}, {"file_conflicts", "policy_type"});
    auto text = [&](const char* key, const char* fallback) {
        std::string value = string_param(params, key, false);
        return value.empty() ? std::string(fallback) : value;
    };
    const std::string type = text("policy_type", "file_locking"), scope = text("scope", "global");
    if (type != "file_locking")
        throw ApiError(ErrorCode::UNSUPPORTED, "Policy type '" + type + "' is not one resmgrd can enforce",
                       "exclusive files are what the kernel guards per open (file_locking); resources and workflows are enforced at admission",
                       {"policy_type"}, {"Use \"policy_type\": \"file_locking\""});
    if (scope != "global")
        throw ApiError(ErrorCode::UNSUPPORTED, "Scope '" + scope + "' is not available", "the file conflict policy applies to the whole node",
                       {"scope"}, {"Use \"scope\": \"global\""});
    json update = json::object();
    std::string enforcement = string_param(params, "enforcement", false);
    bool reads_excepted = false;
    if (auto it = params.find("exceptions"); it != params.end()) {
        if (it->is_object()) {
            update["exceptions"] = *it; // resmgrd's own form: {"cgroups": [...], "commands": [...]}
        } else if (it->is_array()) {
            for (const auto& e : *it) {
                if (e != "read_only_operations")
                    throw ApiError(ErrorCode::INVALID_REQUEST, "unknown exception " + e.dump(),
                                   "the seed's list form knows \"read_only_operations\"; exempt cgroups and commands with "
                                   "{\"cgroups\": [...], \"commands\": [...]}",
                                   {"exceptions"});
                reads_excepted = true;
            }
        } else {
            throw ApiError(ErrorCode::INVALID_REQUEST, "'exceptions' must be a list such as [\"read_only_operations\"]", "got " + it->dump(),
                           {"exceptions"});
        }
    }
    // strict with reads excepted is what resmgrd calls exclusive_writes.
    if (enforcement == "strict" && reads_excepted) enforcement = "exclusive_writes";
    if (!enforcement.empty()) update["enforcement"] = enforcement;
    return update;
}

int severity_rank(const std::string& severity) { return severity == "high" ? 2 : severity == "medium" ? 1 : 0; }

} // namespace

SuccessBody Service::prevent_conflicts(const Request& request, const Owner& peer) {
    only_params(request.params, {"file_conflicts", "pending_requests", "prediction_horizon", "policy_type", "scope", "enforcement",
                                 "exceptions", "risk_threshold", "auto_mitigation", "notification_enabled"});
    SuccessBody body;
    json file_update = seed_policy_as_file_conflicts(request.params);
    if (auto it = request.params.find("file_conflicts"); it != request.params.end()) file_update = *it;
    if (!file_update.is_null()) {
        if (peer.uid != 0)
            throw ApiError(ErrorCode::PERMISSION_DENIED, "Only root may change the file conflict policy", {}, {"file_conflicts"});
        core::Policy::FileConflicts updated = core::parse_file_conflicts(file_update, "file_conflicts", file_policy_);
        try {
            state::write_file_atomic(file_policy_path(), dump_text(updated.to_json(), 2) + "\n");
        } catch (const state::StateError& e) {
            throw ApiError(ErrorCode::INTERNAL_ERROR, "Could not record the file conflict policy", e.what());
        }
        file_policy_ = updated;
        if (guard_) guard_->set_policy(conflicts::guard_policy(file_policy_));
        body.resources_affected = 1;
        spdlog::info("file conflict policy: {}", file_policy_.to_json().dump());
    }
    // The seed's risk_threshold: only conflicts of this severity or above are reported.
    std::string threshold = string_param(request.params, "risk_threshold", false);
    if (threshold.empty()) threshold = "low";
    if (threshold != "low" && threshold != "medium" && threshold != "high")
        throw ApiError(ErrorCode::INVALID_REQUEST, "'risk_threshold' must be low, medium or high", "got \"" + threshold + "\"", {"risk_threshold"});
    // auto_mitigation: what resmgrd does by itself, always; it cannot be turned off per request.
    if (request.params.contains("auto_mitigation") && !bool_param(request.params, "auto_mitigation"))
        throw ApiError(ErrorCode::UNSUPPORTED, "resmgrd always mitigates conflicts it can enforce",
                       "it refuses or queues conflicting allocations and guards held files in the kernel", {"auto_mitigation"},
                       {"For file conflicts that are only reported, set \"enforcement\": \"advisory\""});
    const bool notify = bool_param(request.params, "notification_enabled");
    Seconds horizon = std::chrono::hours(1);
    if (auto h = request.params.find("prediction_horizon"); h != request.params.end()) {
        auto d = h->is_string() ? parse_duration(h->get<std::string>()) : std::nullopt;
        if (!d) throw ApiError(ErrorCode::INVALID_REQUEST, "'prediction_horizon' must be a duration such as \"1h\"", "got " + h->dump(), {"prediction_horizon"});
        horizon = std::chrono::duration_cast<Seconds>(*d);
    }
    json analysis = json::array();
    if (auto it = request.params.find("pending_requests"); it != request.params.end()) {
        if (!it->is_array()) throw ApiError(ErrorCode::INVALID_REQUEST, "'pending_requests' must be a list of allocation requests", {}, {"pending_requests"});
        size_t index = 0;
        for (const auto& pending : *it) {
            AllocationRequest req = parse_allocation_request(pending);
            normalize_exclusive_files(req, peer);
            json found = json::array();
            for (auto& f : ledger_.find_conflicts(req, peer.uid, clock_(), true, horizon)) {
                if (severity_rank(f.severity) < severity_rank(threshold)) continue;
                found.push_back({{"conflict_type", f.type}, {"severity", f.severity}, {"affected_workflows", f.affected_workflows},
                                 {"conflict_details", f.details}, {"resolution_strategies", f.strategies}});
                // notification_enabled: a predicted conflict is published like one that happened.
                if (notify)
                    emit(events::EventType::conflict, "predicted " + f.type + " conflict for workflow " + req.workflow_id, req.workflow_id, {},
                         {{"predicted", true}, {"conflict_type", f.type}, {"severity", f.severity}, {"affected_workflows", f.affected_workflows},
                          {"conflict_details", f.details}});
            }
            analysis.push_back({{"index", index++}, {"workflow_id", req.workflow_id}, {"conflicts", found}, {"conflict_free", found.empty()}});
        }
    }
    json active = json::array();
    for (const auto* c : conflicts_.active()) active.push_back(c->to_json());
    body.result = {{"file_conflicts", file_policy_.to_json()},
                   {"guard", guard_ ? guard_->status() : json{{"available", false}, {"reason", guard_unavailable_}}},
                   {"conflict_analysis", analysis},
                   {"prediction_horizon", format_duration(std::chrono::duration_cast<Millis>(horizon))},
                   {"risk_threshold", threshold},
                   {"mitigations",
                    {"admission: allocations that would overcommit the node, break a policy limit, meet a conflict_avoidance "
                     "workflow or want a held file are refused, or queued with \"wait\": true",
                     guard_ ? "files: the kernel guard " + std::string(file_policy_.enforcement == "advisory" ? "reports" : "enforces") +
                                  " exclusive files (" + file_policy_.strategy + ", enforcement " + file_policy_.enforcement + ")"
                            : "files: exclusive at admission only (" + guard_unavailable_ + ")"}},
                   {"active_conflicts", active}};
    if (!guard_) body.recommendations.push_back("Exclusive files are enforced at admission only: " + guard_unavailable_);
    return body;
}

SuccessBody Service::why(const Request& request) {
    only_params(request.params, {"path"});
    const std::string given = string_param(request.params, "path", true);
    // resmgr resolves the path with the asker's own permissions and sends it absolute; resmgrd
    // only normalises it, so asking reveals nothing about directories the asker cannot search.
    if (given.front() != '/')
        throw ApiError(ErrorCode::INVALID_REQUEST, "'path' must be absolute", "got " + given, {"path"},
                       {"Use `resmgr why PATH`, which resolves PATH for you"});
    const std::string path = fs::path(given).lexically_normal().string();
    json result{{"path", path}};
    json conflicts = json::array();
    for (const auto* c : conflicts_.active())
        if (c->file == path) conflicts.push_back(c->to_json());
    json bookings = json::array();
    for (const auto& [id, a] : ledger_.allocations())
        if (a.status == AllocationStatus::reserved && a.start_at &&
            std::find(a.constraints.exclusive_access.begin(), a.constraints.exclusive_access.end(), path) != a.constraints.exclusive_access.end())
            bookings.push_back({{"reservation_id", id}, {"workflow_id", a.workflow_id}, {"start_time", format_timestamp(*a.start_at)},
                                {"end_time", a.expires_at ? json(format_timestamp(*a.expires_at)) : json(nullptr)}});
    result["conflicts"] = conflicts;
    result["reservations"] = bookings;
    SuccessBody body;
    const auto holder_id = ledger_.file_holder(path);
    if (!holder_id) {
        result["held"] = false;
        result["explanation"] = "No allocation holds " + path + " now: every process may open it" +
                                (bookings.empty() ? std::string() : "; a reservation books it (see reservations)");
        body.result = result;
        return body;
    }
    const Allocation& holder = *ledger_.find(*holder_id);
    json hold = nullptr;
    if (guard_)
        for (const auto& h : guard_holds(guard_->status()))
            if (h.value("path", "") == path) hold = h;
    const std::string strategy = hold.is_object() ? hold.value("strategy", file_policy_.strategy) : file_policy_.strategy;
    const bool queues = strategy == "queue_and_serialize";
    const std::string wait = format_duration(std::chrono::duration_cast<Millis>(file_policy_.timeout));
    std::string writers;
    if (!hold.is_object()) writers = "not stopped on open (" + (guard_ ? std::string("the file is not marked") : guard_unavailable_) +
                                     "): only other allocations asking for it are refused";
    else if (file_policy_.enforcement == "advisory") writers = "allowed and reported (enforcement is advisory)";
    else if (queues) writers = "wait until the holder lets go, at most " + wait + ", then get EPERM";
    else writers = "get EPERM at once (file_locking)";
    const std::string readers = file_policy_.enforcement == "strict" ? writers + " (reads too: enforcement is strict)"
                                                                     : "allowed (enforcement " + file_policy_.enforcement + " lets reads through)";
    result["held"] = true;
    result["holder"] = {{"allocation_id", holder.allocation_id},
                        {"workflow_id", holder.workflow_id},
                        {"owner_uid", holder.owner.uid},
                        {"priority", holder.priority.value},
                        {"since", format_timestamp(holder.start_at.value_or(holder.timestamp))},
                        {"expires_at", holder.expires_at ? json(format_timestamp(*holder.expires_at)) : json(nullptr)}};
    result["strategy"] = strategy;
    result["enforcement"] = file_policy_.enforcement;
    result["queue_timeout"] = queues ? json(wait) : json(nullptr);
    result["outside_processes"] = {{"writes", writers}, {"reads", readers}};
    result["waiting_openers"] = hold.is_object() ? hold["waiting_openers"] : json::array();
    result["explanation"] = path + " is held by allocation " + holder.allocation_id + " (workflow " + holder.workflow_id + ", uid " +
                            std::to_string(holder.owner.uid) + ") since " + result["holder"]["since"].get<std::string>() +
                            "; processes outside it that open it for writing " + writers;
    body.result = result;
    body.recommendations.push_back("The holder lets go when it is released (resmgr release '{\"allocation_id\":\"" + holder.allocation_id +
                                   "\"}' as its owner or root), or with resolve-conflicts on one of the conflicts listed");
    return body;
}

SuccessBody Service::list_conflicts(const Request& request) {
    only_params(request.params, {"all"});
    const bool all = bool_param(request.params, "all");
    json list = json::array();
    const json recorded = conflicts_.to_json();
    for (const auto& c : recorded["conflicts"])
        if (all || c["status"] == "active") list.push_back(c);
    const json guard = guard_ ? guard_->status() : json{{"available", false}, {"reason", guard_unavailable_}};
    // Who is stuck right now, first: the openers waiting for a held file.
    json waiting = json::array();
    for (const auto& h : guard_holds(guard))
        for (const auto& opener : h.value("waiting_openers", json::array()))
            waiting.push_back({{"file", h.value("path", "")}, {"holder", h.value("allocation_id", "")}, {"opener", opener}});
    SuccessBody body;
    body.result = {{"conflicts", list}, {"waiting_openers", waiting}, {"guard", guard}};
    return body;
}

} // namespace resmgr::server
