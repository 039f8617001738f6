// The conflict operations: check-conflicts (predictions, pred_... ids, never recorded),
// resolve-conflicts (on recorded conf_... ones, by root or the owners involved), prevent-conflicts
// (the node's file conflict policy, and pending requests checked ahead), status conflicts, why.
#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "server/ops/authorize.hpp"
#include "state/state_store.hpp"

namespace resmgr::server {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// check-conflicts' ids: predictions, never recorded, so resolve-conflicts can tell them apart.
const std::string kPredictedPrefix = "pred_";

// The holds in a guard's status() that are objects (a guard's status is read, never trusted).
std::vector<json> guard_holds(const json& status) {
    std::vector<json> out;
    if (const auto it = status.find("holds"); it != status.end() && it->is_array())
        for (const auto& h : *it)
            if (h.is_object()) out.push_back(h);
    return out;
}

std::string join_first(const std::vector<std::string>& items, size_t most) {
    std::string out;
    for (size_t i = 0; i < items.size() && i < most; ++i) out += (i ? ", " : "") + items[i];
    if (items.size() > most) out += " and " + std::to_string(items.size() - most) + " more";
    return out;
}

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
        std::string value = param_string(params, key);
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
    std::string enforcement = param_string(params, "enforcement");
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


SuccessBody check_conflicts(const Call& call) {
    Context& ctx = call.ctx;
    auto it = call.params().find("proposed_allocation");
    if (it == call.params().end() || !it->is_object())
        throw ApiError(ErrorCode::INVALID_REQUEST, "missing 'proposed_allocation' object", {}, {"proposed_allocation"});
    json proposed = *it;
    // The seed's example names the wanted files "files".
    if (auto files = proposed.find("files"); files != proposed.end()) {
        proposed["exclusive_files"] = *files;
        proposed.erase("files");
    }
    if (!proposed.contains("workflow_id")) proposed["workflow_id"] = "proposed";
    if (!proposed.contains("resources")) proposed["resources"] = json::object();
    AllocationRequest req = parse_allocation_request(proposed);
    ctx.files.normalize(req, call.peer);
    const Seconds horizon = std::chrono::duration_cast<Seconds>(call.duration_param("time_horizon"));
    const TimePoint now = ctx.clock();
    json reports = json::array();
    for (auto& f : ctx.ledger().admission().find_conflicts(req, call.peer.uid, now, param_flag(call.params(), "check_future"), horizon)) {
        // "pred_": a prediction, not a record; resolve-conflicts acts on recorded "conf_" ones.
        reports.push_back({{"conflict_id", random_id("pred")},
                           {"recorded", false},
                           {"timestamp", format_timestamp(now)},
                           {"conflict_type", f.type},
                           {"severity", f.severity},
                           {"affected_workflows", f.affected_workflows},
                           {"conflict_details", f.details},
                           {"resolution_strategies", f.strategies},
                           {"estimated_impact", {{"blocks_allocation", f.type != "time"}, {"affected_workflow_count", f.affected_workflows.size()}}}});
    }
    SuccessBody body;
    body.result = {{"conflicts", reports}, {"conflict_free", reports.empty()}, {"checked_future", param_flag(call.params(), "check_future")},
                   {"time_horizon", format_duration(std::chrono::duration_cast<Millis>(horizon))}};
    if (!reports.empty()) body.recommendations.push_back("Resolve or wait out the conflicts before allocating, or allocate with \"wait\": true");
    return body;
}

SuccessBody resolve_conflict(Context& ctx, const std::string& id, std::string strategy, const Owner& peer) {
    if (strategy == "priority_override") strategy = "priority_based"; // the seed's name for the same method
    if (strategy == "copy_on_write" || strategy == "merge_changes")
        throw ApiError(ErrorCode::UNSUPPORTED, "Strategy '" + strategy + "' cannot be carried out by resmgrd",
                       "resmgrd enforces exclusive files in the kernel; it does not copy or merge file contents", {"strategy"},
                       {"Use priority_based, queue_and_serialize or release"});
    if (strategy != "priority_based" && strategy != "queue_and_serialize" && strategy != "release")
        throw ApiError(ErrorCode::INVALID_REQUEST, "Unknown strategy '" + strategy + "'", "expected priority_based, queue_and_serialize or release",
                       {"strategy"});
    const conflicts::ConflictRecord* record = ctx.files.registry().find(id);
    if (!record) {
        std::vector<std::string> active;
        for (const auto* c : ctx.files.registry().active()) active.push_back(c->conflict_id);
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
        const Allocation* a = allocation.empty() ? nullptr : ctx.ledger().find(allocation);
        return a && a->owner.uid == peer.uid;
    };
    if (peer.uid != 0 && !owned_by_peer(holder_id) && !owned_by_peer(claimant_id))
        throw ApiError(ErrorCode::PERMISSION_DENIED, "Conflict '" + id + "' is not yours to resolve",
                       "only root and the owners of its holder and claimant allocations may resolve it", {"conflict_id"});
    // Taking a file from its holder is a priority's privilege (priority_privileges).
    if (strategy == "priority_based" && !may_use_any_priority(ctx, peer))
        throw ApiError(ErrorCode::PERMISSION_DENIED, "priority_based takes a file from its holder: it is for root and the users and groups in priority_privileges",
                       "uid " + std::to_string(peer.uid) + " is not among them", {"strategy"},
                       {"Ask the holder to release it, or use queue_and_serialize as the holder's owner"});
    const TimePoint now = ctx.clock();
    SuccessBody body;
    body.result = {{"conflict_id", id}, {"strategy", strategy}, {"file", file}, {"holder", holder_id}};

    if (ctx.ledger().holdings().file_holder(file) != holder_id) {
        ctx.files.registry().resolve(id, "the holder no longer holds the file", now);
        ctx.files.save();
        body.result["outcome"] = "holder_gone";
        return body;
    }
    const Allocation& holder = *ctx.ledger().find(holder_id);
    if (strategy == "release") {
        ctx.ledger().authorize(holder_id, peer);
        ctx.lifecycle.move_file(file, holder_id, std::nullopt);
        body.result["outcome"] = "released";
        body.resources_affected = 1;
        return body;
    }
    if (strategy == "queue_and_serialize") {
        ctx.ledger().authorize(holder_id, peer);
        const bool guarded = ctx.files.guard() && ctx.files.guard()->set_strategy(file, conflicts::Strategy::queue_and_serialize);
        ctx.files.registry().resolve(id, "queue_and_serialize: outside writers now wait for " + holder_id + " to let go", now);
        ctx.files.save();
        body.result["outcome"] = guarded ? "queued" : "queued_at_admission_only";
        body.recommendations.push_back("Allocations that want the file: allocate with \"wait\": true to queue for it");
        return body;
    }
    // priority_based: the higher-priority claimant takes the file.
    const Allocation* claimant = claimant_id.empty() ? nullptr : ctx.ledger().find(claimant_id);
    if (!claimant || !core::holds_capacity(*claimant)) {
        body.result["outcome"] = "holder_keeps";
        body.result["reason"] = "the claimant " + lifecycle::describe_claimant(record->claimant) + " is not in a running allocation, so it has no priority";
        ctx.files.registry().resolve(id, "priority_based: " + holder_id + " keeps the file (" + body.result["reason"].get<std::string>() + ")", now);
        ctx.files.save();
        return body;
    }
    ctx.ledger().authorize(claimant_id, peer);
    if (claimant->priority.value <= holder.priority.value) {
        body.result["outcome"] = "holder_keeps";
        body.result["reason"] = "priority " + std::to_string(claimant->priority.value) + " of " + claimant_id + " does not exceed " +
                                std::to_string(holder.priority.value) + " of " + holder_id;
        ctx.files.registry().resolve(id, "priority_based: " + holder_id + " keeps the file", now);
        ctx.files.save();
        return body;
    }
    if (auto unguarded = ctx.lifecycle.move_file(file, holder_id, claimant_id))
        body.recommendations.push_back("The file could not be guarded for the new holder: " + *unguarded);
    body.result["outcome"] = "transferred";
    body.result["new_holder"] = claimant_id;
    body.resources_affected = 2;
    return body;
}

SuccessBody resolve_conflicts(const Call& call) {
    Context& ctx = call.ctx;
    const std::string id = param_string(call.params(), "conflict_id");
    // The seed's notify_affected: the outcome is published (journald, subscribers) once for
    // each workflow the conflict involved. On unless turned off.
    const bool notify = call.param("notify_affected").get<bool>();
    std::vector<std::string> affected;
    if (const conflicts::ConflictRecord* record = ctx.files.registry().find(id)) {
        for (const json* side : {&record->holder, &record->claimant}) // objects with string fields, checked at load
            if (side->contains("workflow_id")) affected.push_back((*side)["workflow_id"]);
        affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    }
    SuccessBody body = resolve_conflict(ctx, id, param_string(call.params(), "strategy"), call.peer);
    if (notify) {
        const std::string outcome = body.result.value("outcome", "");
        const std::string allocation = body.result.value("new_holder", body.result.value("holder", ""));
        for (const auto& workflow : affected)
            ctx.events.emit(events::EventType::conflict, "conflict " + id + " over " + body.result.value("file", "") + " resolved by " +
                     body.result.value("strategy", "") + ": " + outcome,
                 workflow, allocation, {{"conflict_id", id}, {"conflict_type", "file"}, {"file", body.result["file"]},
                                        {"resolution", body.result["strategy"]}, {"outcome", outcome}, {"holder", body.result["holder"]},
                                        {"new_holder", body.result.value("new_holder", json())}});
    }
    body.result["notified_workflows"] = notify ? json(affected) : json::array();
    return body;
}

SuccessBody prevent_conflicts(const Call& call) {
    Context& ctx = call.ctx;
    SuccessBody body;
    json file_update = seed_policy_as_file_conflicts(call.params());
    if (auto it = call.params().find("file_conflicts"); it != call.params().end()) file_update = *it;
    if (!file_update.is_null()) {
        if (call.peer.uid != 0)
            throw ApiError(ErrorCode::PERMISSION_DENIED, "Only root may change the file conflict policy", {}, {"file_conflicts"});
        core::Policy::FileConflicts updated = core::parse_file_conflicts(file_update, "file_conflicts", ctx.files.policy());
        try {
            ctx.files.set_policy(updated);
        } catch (const state::StateError& e) {
            throw ApiError(ErrorCode::INTERNAL_ERROR, "Could not record the file conflict policy", e.what());
        }
        body.resources_affected = 1;
        spdlog::info("file conflict policy: {}", ctx.files.policy().to_json().dump());
    }
    // The seed's risk_threshold: only conflicts of this severity or above are reported.
    std::string threshold = param_string(call.params(), "risk_threshold");
    if (threshold.empty()) threshold = "low";
    if (threshold != "low" && threshold != "medium" && threshold != "high")
        throw ApiError(ErrorCode::INVALID_REQUEST, "'risk_threshold' must be low, medium or high", "got \"" + threshold + "\"", {"risk_threshold"});
    // auto_mitigation: what resmgrd does by itself, always; it cannot be turned off per request.
    if (call.params().contains("auto_mitigation") && !param_flag(call.params(), "auto_mitigation"))
        throw ApiError(ErrorCode::UNSUPPORTED, "resmgrd always mitigates conflicts it can enforce",
                       "it refuses or queues conflicting allocations and guards held files in the kernel", {"auto_mitigation"},
                       {"For file conflicts that are only reported, set \"enforcement\": \"advisory\""});
    const bool notify = param_flag(call.params(), "notification_enabled");
    const Seconds horizon = std::chrono::duration_cast<Seconds>(call.duration_param("prediction_horizon"));
    json analysis = json::array();
    if (auto it = call.params().find("pending_requests"); it != call.params().end()) {
        if (!it->is_array()) throw ApiError(ErrorCode::INVALID_REQUEST, "'pending_requests' must be a list of allocation requests", {}, {"pending_requests"});
        size_t index = 0;
        for (const auto& pending : *it) {
            AllocationRequest req = parse_allocation_request(pending);
            ctx.files.normalize(req, call.peer);
            json found = json::array();
            for (auto& f : ctx.ledger().admission().find_conflicts(req, call.peer.uid, ctx.clock(), true, horizon)) {
                if (severity_rank(f.severity) < severity_rank(threshold)) continue;
                found.push_back({{"conflict_type", f.type}, {"severity", f.severity}, {"affected_workflows", f.affected_workflows},
                                 {"conflict_details", f.details}, {"resolution_strategies", f.strategies}});
                // notification_enabled: a predicted conflict is published like one that happened.
                if (notify)
                    ctx.events.emit(events::EventType::conflict, "predicted " + f.type + " conflict for workflow " + req.workflow_id, req.workflow_id, {},
                         {{"predicted", true}, {"conflict_type", f.type}, {"severity", f.severity}, {"affected_workflows", f.affected_workflows},
                          {"conflict_details", f.details}});
            }
            analysis.push_back({{"index", index++}, {"workflow_id", req.workflow_id}, {"conflicts", found}, {"conflict_free", found.empty()}});
        }
    }
    json active = json::array();
    for (const auto* c : ctx.files.registry().active()) active.push_back(c->to_json());
    body.result = {{"file_conflicts", ctx.files.policy().to_json()},
                   {"guard", ctx.files.guard_status()},
                   {"conflict_analysis", analysis},
                   {"prediction_horizon", format_duration(std::chrono::duration_cast<Millis>(horizon))},
                   {"risk_threshold", threshold},
                   {"mitigations",
                    {"admission: allocations that would overcommit the node, break a policy limit, meet a conflict_avoidance "
                     "workflow or want a held file are refused, or queued with \"wait\": true",
                     ctx.files.guard() ? "files: the kernel guard " + std::string(ctx.files.policy().enforcement == "advisory" ? "reports" : "enforces") +
                                  " exclusive files (" + ctx.files.policy().strategy + ", enforcement " + ctx.files.policy().enforcement + ")"
                            : "files: exclusive at admission only (" + ctx.files.guard_unavailable() + ")"}},
                   {"active_conflicts", active}};
    if (!ctx.files.guard()) body.recommendations.push_back("Exclusive files are enforced at admission only: " + ctx.files.guard_unavailable());
    return body;
}

SuccessBody why(const Call& call) {
    Context& ctx = call.ctx;
    const std::string given = param_string(call.params(), "path");
    // resmgr resolves the path with the asker's own permissions and sends it absolute; resmgrd
    // only normalises it, so asking reveals nothing about directories the asker cannot search.
    if (given.front() != '/')
        throw ApiError(ErrorCode::INVALID_REQUEST, "'path' must be absolute", "got " + given, {"path"},
                       {"Use `resmgr why PATH`, which resolves PATH for you"});
    const std::string path = fs::path(given).lexically_normal().string();
    json result{{"path", path}};
    json conflicts = json::array();
    for (const auto* c : ctx.files.registry().active())
        if (c->file == path) conflicts.push_back(c->to_json());
    json bookings = json::array();
    for (const auto& [id, a] : ctx.ledger().allocations())
        if (a.status == AllocationStatus::reserved && a.start_at &&
            std::find(a.constraints.exclusive_access.begin(), a.constraints.exclusive_access.end(), path) != a.constraints.exclusive_access.end())
            bookings.push_back({{"reservation_id", id}, {"workflow_id", a.workflow_id}, {"start_time", format_timestamp(*a.start_at)},
                                {"end_time", a.expires_at ? json(format_timestamp(*a.expires_at)) : json(nullptr)}});
    result["conflicts"] = conflicts;
    result["reservations"] = bookings;
    SuccessBody body;
    const auto holder_id = ctx.ledger().holdings().file_holder(path);
    if (!holder_id) {
        result["held"] = false;
        result["explanation"] = "No allocation holds " + path + " now: every process may open it" +
                                (bookings.empty() ? std::string() : "; a reservation books it (see reservations)");
        body.result = result;
        return body;
    }
    const Allocation& holder = *ctx.ledger().find(*holder_id);
    json hold = nullptr;
    if (ctx.files.guard())
        for (const auto& h : guard_holds(ctx.files.guard()->status()))
            if (h.value("path", "") == path) hold = h;
    const std::string strategy = hold.is_object() ? hold.value("strategy", ctx.files.policy().strategy) : ctx.files.policy().strategy;
    const bool queues = strategy == "queue_and_serialize";
    const std::string wait = format_duration(std::chrono::duration_cast<Millis>(ctx.files.policy().timeout));
    std::string writers;
    if (!hold.is_object()) writers = "not stopped on open (" + (ctx.files.guard() ? std::string("the file is not marked") : ctx.files.guard_unavailable()) +
                                     "): only other allocations asking for it are refused";
    else if (ctx.files.policy().enforcement == "advisory") writers = "allowed and reported (enforcement is advisory)";
    else if (queues) writers = "wait until the holder lets go, at most " + wait + ", then get EPERM";
    else writers = "get EPERM at once (file_locking)";
    const std::string readers = ctx.files.policy().enforcement == "strict" ? writers + " (reads too: enforcement is strict)"
                                                                     : "allowed (enforcement " + ctx.files.policy().enforcement + " lets reads through)";
    result["held"] = true;
    result["holder"] = {{"allocation_id", holder.allocation_id},
                        {"workflow_id", holder.workflow_id},
                        {"owner_uid", holder.owner.uid},
                        {"priority", holder.priority.value},
                        {"since", format_timestamp(holder.start_at.value_or(holder.timestamp))},
                        {"expires_at", holder.expires_at ? json(format_timestamp(*holder.expires_at)) : json(nullptr)}};
    result["strategy"] = strategy;
    result["enforcement"] = ctx.files.policy().enforcement;
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

SuccessBody list_conflicts(const Call& call) {
    Context& ctx = call.ctx;
    const bool all = param_flag(call.params(), "all");
    json list = json::array();
    const json recorded = ctx.files.registry().to_json();
    for (const auto& c : recorded["conflicts"])
        if (all || c["status"] == "active") list.push_back(c);
    const json guard = ctx.files.guard_status();
    // Who is stuck right now, first: the openers waiting for a held file.
    json waiting = json::array();
    for (const auto& h : guard_holds(guard))
        for (const auto& opener : h.value("waiting_openers", json::array()))
            waiting.push_back({{"file", h.value("path", "")}, {"holder", h.value("allocation_id", "")}, {"opener", opener}});
    SuccessBody body;
    body.result = {{"conflicts", list}, {"waiting_openers", waiting}, {"guard", guard}};
    return body;
}

} // namespace

void register_conflict_operations(Router& router) {
    router.add("check-conflicts", "", check_conflicts);
    router.add("resolve-conflicts", "", resolve_conflicts);
    router.add("prevent-conflicts", "", prevent_conflicts);
    router.add("status", "conflicts", list_conflicts);
    router.add("why", "", why);
}

} // namespace resmgr::server
