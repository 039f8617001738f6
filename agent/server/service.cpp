// Operation dispatch. Order of effects for every change: decide in the ledger, act on the
// backend, then persist; a backend failure rolls the ledger back so state never claims a group
// that does not exist.
#include "server/service.hpp"
#include "server/doctor.hpp"
#include "server/params.hpp"
#include "server/users.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <random>
#include <set>

#include <signal.h>

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include "monitor/node.hpp"
#include "resmgr/json.hpp"

namespace resmgr::server {
namespace {

using nlohmann::json;

// Agent names become part of a cgroup (and systemd unit) name.
void check_agent_name(const std::string& name) {
    bool ok = !name.empty() && name.size() <= 64 && name.front() != '.' && name.front() != '-' &&
              std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; });
    if (!ok)
        throw ApiError(ErrorCode::INVALID_REQUEST, "invalid agent name '" + name + "'",
                       "1-64 characters of A-Z a-z 0-9 _ - ., not starting with '.' or '-'", {"agent"});
}

ApiError backend_error(const std::string& what, const cgroup::BackendError& e) {
    return ApiError(ErrorCode::BACKEND_ERROR, what, e.what(), {"cgroup"},
                    {"Check `resmgr doctor` and the resmgrd log", "Retry the operation"});
}

json limits_json(const cgroup::Limits& l) {
    auto opt = [](const std::optional<std::uint64_t>& v) { return v ? json(*v) : json("max"); };
    return {{"cpu_max", l.cpu_quota_us ? std::to_string(*l.cpu_quota_us) + " " + std::to_string(l.cpu_period_us)
                                       : "max " + std::to_string(l.cpu_period_us)},
            {"cpu_weight", l.cpu_weight},
            {"memory_max", opt(l.memory_max)},
            {"memory_high", opt(l.memory_high)},
            {"pids_max", opt(l.pids_max)}};
}

// The kernel's active LSMs, for the doctor's BPF LSM advice; empty without securityfs.
std::string read_lsm_list() {
    try {
        std::string list = monitor::read_text_file("/sys/kernel/security/lsm");
        while (!list.empty() && (list.back() == '\n' || list.back() == ' ')) list.pop_back();
        return list;
    } catch (const monitor::ParseError&) {
        return {};
    }
}

// systemd's WatchdogSec= for this process, 0 outside it.
std::uint64_t watchdog_usec() {
    std::uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

} // namespace

Service::Service(core::Ledger& ledger, cgroup::CgroupBackend& backend, state::StateStore& store, ClockFn clock,
                 json host_report, json daemon_info)
    : ledger_(ledger), backend_(backend), store_(store), clock_(std::move(clock)),
      host_report_(std::move(host_report)), daemon_info_(std::move(daemon_info)),
      identify_([](long pid) { return monitor::read_process_identity(pid); }), lookup_user_(lookup_user), probe_path_(conflicts::probe_path),
      file_policy_(ledger.policy().file_conflicts) {
    conflicts_.set_max_active(static_cast<size_t>(ledger.policy().limits.active_conflicts));
}

json Service::handle_line(std::string_view line, const Owner& peer) {
    Request request;
    try {
        request = parse_request_line(line);
    } catch (const ApiError& e) {
        return error_envelope("unknown", e);
    }
    return handle(request, peer);
}

json Service::handle(const Request& request, const Owner& peer) {
    auto started = std::chrono::steady_clock::now();
    try {
        SuccessBody body;
        const auto& op = request.operation;
        if (op == "allocate") body = allocate(request, peer);
        else if (op == "release") body = release(request, peer);
        else if (op == "reallocate") body = reallocate(request, peer);
        else if (op == "reserve") body = reserve(request, peer);
        else if (op == "check-conflicts") body = check_conflicts(request, peer);
        else if (op == "resolve-conflicts") body = resolve_conflicts(request, peer);
        else if (op == "prevent-conflicts") body = prevent_conflicts(request, peer);
        else if (op == "status" && request.resource_type == "conflicts") body = list_conflicts(request);
        else if (op == "status") body = request.resource_type.empty() ? status(request) : monitoring_operation(request);
        else if (op == "doctor") body = doctor();
        else if (op == "attach") body = attach(request, peer);
        else if (op == "detach") body = detach(request, peer);
        else if (op == "events") body = recent_events(request);
        else if (op == "why") body = why(request);
        else if (op == "monitor" || op == "usage" || op == "capacity")
            body = monitoring_operation(request);
        else if (std::find(seed_operations().begin(), seed_operations().end(), op) != seed_operations().end())
            throw ApiError(ErrorCode::UNSUPPORTED, "Operation '" + op + "' is a seed operation that resmgrd does not implement yet",
                           "implemented: allocate, reserve, release, reallocate, status, check-conflicts, resolve-conflicts, prevent-conflicts, monitor, usage, capacity, doctor, why, events, attach, detach", {},
                           {"No version of resmgrd implements it yet; use one of the implemented operations"});
        else
            throw ApiError(ErrorCode::INVALID_REQUEST, "Unknown operation '" + op + "'",
                           "operations: allocate, reserve, release, reallocate, status, monitor, usage, capacity, check-conflicts, resolve-conflicts, prevent-conflicts, doctor, attach, detach, events, why", {},
                           {"Run `resmgr --help` for the list of operations"});
        auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
        return success_envelope(op, clock_(), body, elapsed.count());
    } catch (const ApiError& e) {
        if (request.operation == "allocate" && (e.code == ErrorCode::RESOURCE_EXHAUSTED || e.code == ErrorCode::POLICY_VIOLATION ||
                                               e.code == ErrorCode::CONFLICT)) {
            std::string workflow = request.params.is_object() && request.params.value("workflow_id", json()).is_string()
                                       ? request.params["workflow_id"].get<std::string>() : "unknown";
            emit(e.code == ErrorCode::CONFLICT ? events::EventType::conflict : events::EventType::denied,
                 "allocation for workflow " + workflow + " denied: " + e.what() + (e.details.empty() ? "" : " (" + e.details + ")"),
                 workflow, {}, {{"code", to_string(e.code)}, {"conflict_reason", e.details}, {"affected_resources", e.affected_resources}});
        }
        return error_envelope(request.operation, e);
    } catch (const nlohmann::json::exception& e) {
        // A parameter an operation read without checking its type: the client's mistake.
        return error_envelope(request.operation, invalid_json("invalid request parameters", e));
    } catch (const std::exception& e) {
        spdlog::error("{}: internal error: {}", request.operation, e.what());
        return error_envelope(request.operation, ApiError(ErrorCode::INTERNAL_ERROR, "Internal error in resmgrd", e.what()));
    }
}

void Service::persist() {
    std::vector<Allocation> all;
    for (auto& [_, a] : ledger_.allocations()) all.push_back(a);
    store_.save_allocations(all, clock_());
}

json Service::describe(const Allocation& a) {
    json j = to_json(a);
    j["cgroup_path"] = core::Ledger::holds_capacity(a) ? backend_.group_path(a.allocation_id) : "";
    if (a.status == AllocationStatus::queued) j["queue_position"] = ledger_.queue_position(a.allocation_id);
    if (a.idle_since) j["completes_at"] = format_timestamp(*a.idle_since + a.auto_release.grace_period);
    j["limits"] = limits_json(core::limits_for(a, ledger_.policy()));
    if (auto it = enforcement_.find(a.allocation_id); it != enforcement_.end()) j["enforcement"] = it->second.to_json();
    return j;
}

SuccessBody Service::allocate(const Request& request, const Owner& peer) {
    AllocationRequest req = parse_allocation_request(request.params);
    check_priority_privilege(req.priority, peer);
    check_files_limit(req);
    check_user_limit(peer, AllocationStatus::active);
    normalize_exclusive_files(req, peer);
    if (req.requester.empty()) req.requester = "uid:" + std::to_string(peer.uid) + " pid:" + std::to_string(peer.pid);
    const bool supervised = bool_param(request.params, "supervised");
    const bool wait = bool_param(request.params, "wait");
    // "attach": {"pid": N, "leaf"|"agent": ...}: put that process in the group as it is made
    // (once the allocation runs: a queued one is attached later with `attach`).
    std::optional<AttachTarget> first;
    if (auto it = request.params.find("attach"); it != request.params.end()) {
        if (!it->is_object()) throw ApiError(ErrorCode::INVALID_REQUEST, "'attach' must be an object {\"pid\": N}", {}, {"attach"});
        only_params(*it, {"pid", "leaf", "agent"});
        first = attach_target(*it, peer);
    }
    bool preempted = false;
    if (auto plan = ledger_.plan_preemption(req)) {
        try {
            apply_preemption(*plan, req);
        } catch (const cgroup::BackendError& e) {
            refill();
            throw backend_error("Could not preempt lower-priority allocations", e);
        }
        preempted = true;
    }
    const Allocation* admitted_ptr = nullptr;
    try {
        admitted_ptr = &ledger_.allocate(req, peer, clock_(), wait);
    } catch (const ApiError& e) {
        if (preempted) refill(); // the room was not enough after all (e.g. a reservation): give it back
        if (e.code == ErrorCode::CONFLICT && !e.affected_resources.empty() && e.affected_resources[0].rfind("file:", 0) == 0) {
            ApiError recorded = e;
            recorded.details += "; recorded as conflict " + record_admission_conflict(req, e, peer);
            throw recorded;
        }
        throw;
    }
    const Allocation& admitted = *admitted_ptr;
    const std::string id = admitted.allocation_id;
    if (admitted.status == AllocationStatus::queued) {
        try {
            check_user_limit(peer, AllocationStatus::queued, 1); // the ledger counts this one already
        } catch (const ApiError&) {
            ledger_.release(id, Owner{0, 0});
            throw;
        }
    }
    // The kernel-verified peer is the wrapper that will report the command's exit.
    if (supervised) ledger_.set_supervisor(id, peer.pid);
    if (admitted.status == AllocationStatus::queued) {
        persist();
        if (supervised && hooks_.watch_supervisor) hooks_.watch_supervisor(id, peer.pid);
        spdlog::info("queued {} workflow={} priority={} position={}", id, admitted.workflow_id, admitted.priority.value,
                     ledger_.queue_position(id));
        SuccessBody body;
        body.result = {{"allocation_id", id}, {"allocation", describe(admitted)}, {"queue_position", ledger_.queue_position(id)},
                       {"capacity", ledger_.availability().to_json()}};
        body.recommendations.push_back("Queued: it starts when capacity frees, in priority order, then arrival order");
        emit(events::EventType::queued, id + " queued for workflow " + admitted.workflow_id, admitted.workflow_id, id,
             {{"queue_position", ledger_.queue_position(id)}});
        return body;
    }
    cgroup::Limits limits = core::limits_for(admitted, ledger_.policy());
    try {
        if (first && !first->agent.empty()) monitoring().check_agent_slot(admitted, first->agent);
        enforcement_[id] = first ? backend_.create_attached(id, limits, first->leaf, static_cast<pid_t>(first->pid)) : backend_.create(id, limits);
    } catch (const cgroup::BackendError& e) {
        ledger_.release(id, Owner{0, 0});
        throw backend_error(first ? "Could not create the cgroup for the allocation and move the process into it"
                                  : "Could not create the cgroup for the allocation",
                            e);
    } catch (const ApiError&) {
        ledger_.release(id, Owner{0, 0});
        throw;
    }
    if (first) ledger_.mark_populated(id);
    hold_files(*ledger_.find(id));
    try {
        persist();
    } catch (const state::StateError& e) {
        // An allocation that is not on disk would be lost by a crash: undo it.
        backend_.destroy(id);
        ledger_.release(id, Owner{0, 0});
        enforcement_.erase(id);
        throw ApiError(ErrorCode::INTERNAL_ERROR, "Could not record the allocation in the state directory", e.what());
    }
    const Allocation& a = *ledger_.find(id);
    spdlog::info("allocated {} workflow={} priority={} cpu={} memory={} uid={}", id, a.workflow_id, a.priority.value,
                 a.resources.cpu_cores, format_size(a.resources.memory_bytes), peer.uid);
    if (first) attached(a, *first);
    watch(a);
    reschedule();
    emit(events::EventType::allocated, id + " allocated to workflow " + a.workflow_id, a.workflow_id, id,
         {{"resources", to_json(a.resources)}, {"cgroup_path", backend_.group_path(id)}, {"priority", a.priority.value}});

    SuccessBody body;
    const auto& enf = enforcement_[id];
    body.result = {
        {"allocation_id", id},
        {"allocation", describe(a)},
        {"cgroup_path", backend_.group_path(id)},
        {"enforcement", enf.to_json()},
        {"allocation_response", {{"response_id", random_id("resp")},
                                 {"status", "approved"},
                                 {"timestamp", format_timestamp(a.timestamp)},
                                 {"allocated_resources", to_json(a.resources)},
                                 {"restrictions", {{"limits", limits_json(limits)},
                                                   {"expires_at", a.expires_at ? json(format_timestamp(*a.expires_at)) : json(nullptr)}}},
                                 {"alternatives", json::array()}}},
        {"capacity", ledger_.availability().to_json()},
    };
    if (first) body.result["attached"] = {{"pid", first->pid}, {"leaf", first->leaf}};
    body.resources_affected = 1;
    if (!enf.unenforced.empty())
        body.recommendations.push_back("Some limits are not enforced on this host (" + std::to_string(enf.unenforced.size()) +
                                       "); see result.enforcement and `resmgr doctor`");
    return body;
}

json Service::final_counters(const std::string& id) {
    std::string path = backend_.group_path(id);
    if (path.empty()) return json::object();
    json counters;
    try {
        auto events = monitor::read_flat_keyed(path + "/memory.events");
        counters = {{"oom_kills", events.count("oom_kill") ? events["oom_kill"] : 0}, {"memory_events", events}};
    } catch (const monitor::ParseError& e) {
        counters = {{"unavailable", e.what()}};
    }
    if (monitoring_) counters["usage"] = monitoring_->final_usage(id, clock_());
    return counters;
}

SuccessBody Service::release(const Request& request, const Owner& peer) {
    only_params(request.params, {"allocation_id", "force", "cleanup", "exit_status"});
    std::string id = string_param(request.params, "allocation_id", true);
    bool force = bool_param(request.params, "force");
    std::optional<int> exit_status;
    if (auto it = request.params.find("exit_status"); it != request.params.end() && !it->is_null()) {
        if (!it->is_number_integer()) throw ApiError(ErrorCode::INVALID_REQUEST, "'exit_status' must be an integer", {}, {"exit_status"});
        exit_status = it->get<int>();
    }
    SuccessBody body;
    body.resources_affected = 1;
    if (!ledger_.find(id)) {
        // Ended already (its group emptied, or it expired): the wrapper still gets the record.
        auto ended = std::find_if(ended_.begin(), ended_.end(), [&](auto& e) { return e.first == id; });
        if (ended == ended_.end()) ledger_.authorize(id, peer); // throws NOT_FOUND
        json& record = ended->second;
        if (peer.uid != 0 && record["allocation"]["owner"]["uid"] != peer.uid)
            throw ApiError(ErrorCode::PERMISSION_DENIED, "Allocation '" + id + "' belongs to another user");
        if (exit_status) record["exit_status"] = *exit_status;
        body.result = record;
        body.result["already_ended"] = true;
        return body;
    }
    const Allocation& a = ledger_.authorize(id, peer);
    // A wrapper's report: the auto_release flag for its outcome decides whether to release.
    if (exit_status) {
        bool failed = *exit_status != 0;
        bool release_it = failed ? a.auto_release.on_failure : a.auto_release.on_completion;
        if (!release_it && !force) {
            ledger_.set_supervisor(id, 0);
            persist();
            spdlog::info("{}: command {} (exit {}), kept: auto_release.{} is false", id, failed ? "failed" : "completed", *exit_status,
                         failed ? "on_failure" : "on_completion");
            body.result = {{"allocation_id", id}, {"kept", true}, {"exit_status", *exit_status}, {"allocation", describe(a)}};
            return body;
        }
    }
    std::string reason = exit_status ? (*exit_status == 0 ? "completed" : "failed") : "released";
    AllocationStatus final_status = AllocationStatus::released;
    if (a.terminating_since) reason = "expired", final_status = AllocationStatus::expired; // it died of its duration
    try {
        body.result = finish(id, final_status, reason);
    } catch (const state::StateError& e) {
        throw ApiError(ErrorCode::INTERNAL_ERROR, "Could not record the release in the state directory; the allocation and its processes are kept",
                       e.what(), {}, {"Free space on the state directory's filesystem, then release again"});
    } catch (const cgroup::BackendError& e) {
        if (!force) throw backend_error("Could not remove the allocation's cgroup; the allocation is kept", e);
        body.recommendations.push_back("Forced release: the cgroup could not be removed (" + std::string(e.what()) +
                                       "); resmgrd removes it at its next start");
        release_files(id, std::nullopt, "holder released (forced)");
        Allocation gone = ledger_.release(id, Owner{0, 0});
        persist();
        body.result = {{"allocation_id", id}, {"allocation", to_json(gone)}, {"reason", reason}};
    }
    if (exit_status) body.result["exit_status"] = *exit_status;
    body.result["capacity"] = ledger_.availability().to_json();
    return body;
}

json Service::finish(const std::string& id, AllocationStatus final_status, const std::string& reason, bool refill_after) {
    json counters = final_counters(id);
    // The end is recorded before the group goes. A full disk leaves everything as it was (the
    // StateError says so); a crash in between leaves an unrecorded group that the next start
    // removes as an orphan, never a recorded allocation whose processes were killed.
    const Allocation before = *ledger_.find(id);
    Allocation ended = ledger_.release(id, Owner{0, 0});
    try {
        persist();
    } catch (const state::StateError&) {
        ledger_.restore(before);
        throw;
    }
    try {
        backend_.destroy(id);
    } catch (const cgroup::BackendError&) {
        ledger_.restore(before); // the allocation stays, with its group
        try {
            persist();
        } catch (const state::StateError& e) {
            spdlog::error("{}: kept (its group could not be removed) but not recorded again: {}", id, e.what());
        }
        throw;
    }
    if (hooks_.unwatch_group) hooks_.unwatch_group(id);
    release_files(id, std::nullopt, "holder " + to_string(final_status) + ": " + reason);
    ended.status = final_status;
    enforcement_.erase(id);
    reschedule();
    spdlog::info("{} {} workflow={} ({})", to_string(final_status), id, ended.workflow_id, reason);
    emit(final_status == AllocationStatus::expired ? events::EventType::expired : events::EventType::released,
         id + " of workflow " + ended.workflow_id + " " + to_string(final_status) + ": " + reason, ended.workflow_id, id,
         {{"reason", reason}, {"final", counters}});
    // Sampling reports OOM kills as they happen; the final count reports only the rest.
    long unreported = counters.value("oom_kills", 0L) - static_cast<long>(monitoring_ ? monitoring_->oom_kills_reported(id) : 0);
    if (unreported > 0)
        emit(events::EventType::oom_kill, "the OOM killer killed " + std::to_string(unreported) + " process(es) in " + id,
             ended.workflow_id, id, {{"memory_events", counters["memory_events"]}});
    if (monitoring_) monitoring_->forget_allocation(id);
    json record{{"allocation_id", id}, {"allocation", to_json(ended)}, {"final", counters}, {"reason", reason},
                {"ended_at", format_timestamp(clock_())}};
    ended_.emplace_back(id, record);
    if (ended_.size() > kRecentlyEnded) ended_.erase(ended_.begin());
    if (refill_after) refill();
    return record;
}

void Service::start_group(const std::string& id, const std::string& why) {
    const Allocation& a = *ledger_.find(id);
    try {
        enforcement_[id] = backend_.create(id, core::limits_for(a, ledger_.policy()));
    } catch (const cgroup::BackendError& e) {
        spdlog::error("{}: {} but its cgroup cannot be created, so it ends: {}", id, why, e.what());
        Allocation gone = ledger_.release(id, Owner{0, 0});
        ended_.emplace_back(id, json{{"allocation_id", id}, {"allocation", to_json(gone)}, {"reason", std::string("backend error: ") + e.what()}});
        return;
    }
    spdlog::info("{}: {}", id, why);
    hold_files(a);
    emit(events::EventType::allocated, id + " allocated to workflow " + a.workflow_id + ": " + why, a.workflow_id, id,
         {{"resources", to_json(a.resources)}, {"cgroup_path", backend_.group_path(id)}, {"priority", a.priority.value}, {"reason", why}});
    watch(a);
}

void Service::sync_freezer(const Allocation& a) {
    if (!backend_.enforces_limits() && backend_.group_path(a.allocation_id).empty()) return; // nothing to freeze
    try {
        backend_.freeze(a.allocation_id, a.status == AllocationStatus::paused);
    } catch (const cgroup::BackendError& e) {
        spdlog::warn("{}: cannot make its freezer match its status ({}): {}", a.allocation_id, to_string(a.status), e.what());
    }
}

bool Service::start_due_reservations() {
    const TimePoint now = clock_();
    const auto lapsed = ledger_.lapsed_reservations(now);
    for (auto& id : lapsed) {
        const std::string holder = ledger_.blocking_holder(*ledger_.find(id)).value_or("");
        const Allocation gone = ledger_.release(id, Owner{0, 0});
        const std::string why = "its window passed while allocation " + holder + " still held one of its exclusive files";
        spdlog::warn("reservation {} never started: {}", id, why);
        ended_.emplace_back(id, json{{"allocation_id", id}, {"allocation", to_json(gone)}, {"reason", why}});
        emit(events::EventType::denied, "reservation " + id + " never started: " + why, gone.workflow_id, id, {{"reason", why}, {"holder", holder}});
    }
    const auto due = ledger_.due_to_start(now);
    for (auto& id : due) {
        ledger_.activate(id);
        start_group(id, "reservation window opened");
    }
    return !lapsed.empty() || !due.empty();
}

void Service::refill() {
    auto restored = ledger_.restore_preempted();
    for (auto& id : restored) {
        const Allocation& a = *ledger_.find(id);
        try {
            backend_.freeze(id, false);
            enforcement_[id] = backend_.update(id, core::limits_for(a, ledger_.policy()));
            spdlog::info("{}: resumed at full size, capacity is back", id);
            emit(events::EventType::resumed, id + " resumed at full size", a.workflow_id, id);
        } catch (const cgroup::BackendError& e) {
            spdlog::error("{}: cannot resume: {}", id, e.what());
        }
    }
    auto admitted = ledger_.admit_queued(clock_());
    for (auto& id : admitted) start_group(id, "admitted from the queue");
    const bool reservations_changed = start_due_reservations();
    if (restored.empty() && admitted.empty() && !reservations_changed) return;
    persist();
    reschedule();
}

void Service::apply_preemption(const core::Preemption& plan, const AllocationRequest& req) {
    for (auto& victim : plan.victims) {
        spdlog::info("{}: preempted ({}) for a priority {} request of workflow {}", victim, plan.mode, req.priority.value, req.workflow_id);
        emit(events::EventType::preempted, victim + " preempted (" + plan.mode + ") for workflow " + req.workflow_id,
             ledger_.find(victim)->workflow_id, victim, {{"mode", plan.mode}, {"for_workflow", req.workflow_id}, {"for_priority", req.priority.value}});
        if (plan.mode == "kill") {
            finish(victim, AllocationStatus::released, "preempted by workflow " + req.workflow_id, false);
            continue;
        }
        if (plan.mode == "pause") {
            // Recorded before it is done: after a crash here, reconcile() freezes what the state says.
            ledger_.pause(victim);
            persist();
            try {
                backend_.freeze(victim, true);
            } catch (const cgroup::BackendError&) {
                refill(); // its CPU is free again in the ledger, so it comes straight back
                throw;
            }
        } else {
            ledger_.degrade(victim);
            try {
                enforcement_[victim] = backend_.update(victim, core::limits_for(*ledger_.find(victim), ledger_.policy()));
            } catch (const cgroup::BackendError&) {
                ledger_.restore_preempted();
                throw;
            }
        }
    }
    persist();
}

void Service::emit(events::EventType type, const std::string& message, const std::string& workflow, const std::string& allocation,
                   json details) {
    auto e = events::Event::make(type, message, workflow, allocation);
    e.time = clock_();
    e.details = std::move(details);
    publish(std::move(e));
}

void Service::publish(events::Event event) {
    if (events_) events_->publish(event);
    recent_events_.push_back(std::move(event));
    if (recent_events_.size() > kRecentEvents) recent_events_.pop_front();
}

SuccessBody Service::recent_events(const Request& request) {
    only_params(request.params, {"types", "limit"});
    std::set<events::EventType> types;
    if (auto it = request.params.find("types"); it != request.params.end()) {
        if (!it->is_array()) throw ApiError(ErrorCode::INVALID_REQUEST, "'types' must be a list of event names", {}, {"types"});
        for (auto& name : *it) {
            auto type = name.is_string() ? events::parse_event_name(name.get<std::string>()) : std::nullopt;
            if (!type) throw ApiError(ErrorCode::INVALID_REQUEST, "unknown event type " + name.dump(), {}, {"types"});
            types.insert(*type);
        }
    }
    size_t limit = kRecentEvents;
    if (auto it = request.params.find("limit"); it != request.params.end()) {
        if (!it->is_number_integer() || it->get<long long>() < 1)
            throw ApiError(ErrorCode::INVALID_REQUEST, "'limit' must be a positive whole number", {}, {"limit"});
        limit = static_cast<size_t>(std::min<long long>(it->get<long long>(), kRecentEvents));
    }
    json list = json::array();
    for (const auto& e : recent_events_)
        if (types.empty() || types.count(e.type)) list.push_back(e.to_json());
    if (list.size() > limit) list.erase(list.begin(), list.end() - static_cast<std::ptrdiff_t>(limit));
    SuccessBody body;
    body.result = {{"events", list}};
    return body;
}

void Service::watch(const Allocation& a) {
    // Copies: a watch may fire at once and end the allocation `a` refers to.
    const std::string id = a.allocation_id;
    const pid_t supervisor = a.supervisor_pid;
    std::string path = backend_.group_path(id);
    if (monitoring_) monitoring_->allocation_started(id, clock_());
    if (supervisor > 0 && hooks_.watch_supervisor) hooks_.watch_supervisor(id, supervisor);
    if (!path.empty() && hooks_.watch_group && ledger_.find(id)) hooks_.watch_group(id, path + "/cgroup.events");
}

void Service::reschedule() {
    if (hooks_.schedule) hooks_.schedule(ledger_.next_deadline());
}

bool Service::group_populated(const std::string& id) {
    std::string path = backend_.group_path(id);
    if (path.empty()) return false;
    try {
        auto events = monitor::read_flat_keyed(path + "/cgroup.events");
        return events.count("populated") && events["populated"] != 0;
    } catch (const monitor::ParseError& e) {
        spdlog::warn("{}: {}", id, e.what());
        return true; // unknown: never release on a guess
    }
}

void Service::on_timer() {
    const TimePoint now = clock_();
    for (auto& id : ledger_.due_to_expire(now)) {
        const Allocation& a = *ledger_.find(id);
        if (!a.auto_release.on_timeout) {
            ledger_.mark_expired(id);
            spdlog::info("{}: duration over; auto_release.on_timeout is false, so it keeps running (status expired)", id);
            continue;
        }
        spdlog::info("{}: duration over: SIGTERM to the group, cgroup.kill in {}", id,
                     format_duration(std::chrono::duration_cast<Millis>(a.auto_release.grace_period)));
        try {
            backend_.signal(id, SIGTERM);
        } catch (const cgroup::BackendError& e) {
            spdlog::warn("{}: SIGTERM: {}", id, e.what());
        }
        // Expired and past its grace while resmgrd was down, or frozen (it cannot act on SIGTERM):
        // the kill is due at once.
        bool grace_long_over = *a.expires_at + a.auto_release.grace_period <= now || a.status == AllocationStatus::paused;
        ledger_.mark_terminating(id, grace_long_over ? now - a.auto_release.grace_period : now);
    }
    for (auto& id : ledger_.due_to_complete(now)) {
        if (group_populated(id)) ledger_.mark_populated(id); // joined, and its event is still on the way
        else complete(id, "completed: its group stayed empty for " +
                              format_duration(std::chrono::duration_cast<Millis>(ledger_.find(id)->auto_release.grace_period)));
    }
    persist();
    for (auto& id : ledger_.due_to_kill(now)) {
        try {
            finish(id, AllocationStatus::expired, "expired");
        } catch (const std::exception& e) { // the group or the record: both are kept as they were
            spdlog::error("{}: cannot end the expired allocation, retrying after the grace period: {}", id, e.what());
            ledger_.mark_terminating(id, now);
            persist();
        }
    }
    refill();
    reschedule();
}

void Service::completed_if_empty(const std::string& id) {
    const Allocation* a = ledger_.find(id);
    if (!a || !a->populated_once || a->supervisor_pid > 0 || group_populated(id)) return;
    // Emptied after SIGTERM: the expiry is complete without waiting for the grace period.
    if (a->terminating_since) {
        try {
            finish(id, AllocationStatus::expired, "expired");
        } catch (const std::exception& e) { // kept as it was; the grace period's end tries again
            spdlog::error("{}: {}", id, e.what());
        }
        return;
    }
    if (!a->auto_release.on_completion) return;
    if (!a->supervised) {
        // Between two steps of a workflow: idle, not done, until its grace period passes empty.
        if (a->idle_since) return;
        ledger_.mark_idle(id, clock_());
        persist();
        reschedule();
        spdlog::info("{}: its group is empty; it completes in {} unless a process joins", id,
                     format_duration(std::chrono::duration_cast<Millis>(a->auto_release.grace_period)));
        return;
    }
    complete(id, "completed: its group is empty");
}

void Service::complete(const std::string& id, const std::string& reason) {
    try {
        finish(id, AllocationStatus::released, reason);
    } catch (const std::exception& e) { // the group or the record: kept as they were
        spdlog::error("{}: cannot release the completed allocation: {}", id, e.what());
    }
}

void Service::on_group_event(const std::string& id) {
    const Allocation* a = ledger_.find(id);
    if (!a) return;
    if ((!a->populated_once || a->idle_since) && group_populated(id)) {
        ledger_.mark_populated(id);
        persist();
        return;
    }
    completed_if_empty(id);
}

void Service::on_supervisor_exit(const std::string& id) {
    const Allocation* a = ledger_.find(id);
    if (!a || a->supervisor_pid == 0) return;
    spdlog::info("{}: its resmgr-run (pid {}) is gone", id, a->supervisor_pid);
    if (a->status == AllocationStatus::queued) {
        finish(id, AllocationStatus::released, "cancelled: the resmgr-run waiting for it is gone");
        return;
    }
    ledger_.set_supervisor(id, 0);
    persist();
    completed_if_empty(id);
}

SuccessBody Service::reallocate(const Request& request, const Owner& peer) {
    only_params(request.params, {"allocation_id", "resources"});
    std::string id = string_param(request.params, "allocation_id", true);
    const Allocation before = ledger_.authorize(id, peer);
    auto it = request.params.find("resources");
    if (it == request.params.end() || !it->is_object())
        throw ApiError(ErrorCode::INVALID_REQUEST, "missing 'resources' object with the fields to change", {}, {"resources"});
    // Fields not named keep their current value.
    json merged = to_json(before.resources);
    merged.erase("memory_gb");
    merged["memory"] = std::to_string(before.resources.memory_bytes);
    merged.erase("memory_bytes");
    if (it->contains("memory_gb")) merged.erase("memory");
    merged.update(*it);
    if (merged.contains("pids") && merged["pids"].is_null()) merged.erase("pids");
    Resources wanted = parse_resources(merged, "resources");

    const Allocation& after = ledger_.reallocate(id, wanted, peer, clock_());
    try {
        enforcement_[id] = backend_.update(id, core::limits_for(after, ledger_.policy()));
    } catch (const cgroup::BackendError& e) {
        ledger_.restore(before);
        throw backend_error("Could not change the allocation's limits; the old limits stay", e);
    }
    persist();
    spdlog::info("reallocated {} cpu={} memory={}", id, after.resources.cpu_cores, format_size(after.resources.memory_bytes));
    refill(); // a shrink may have made room
    SuccessBody body;
    body.result = {{"allocation_id", id}, {"previous_resources", to_json(before.resources)}, {"allocation", describe(*ledger_.find(id))},
                   {"enforcement", enforcement_[id].to_json()}, {"capacity", ledger_.availability().to_json()}};
    body.resources_affected = 1;
    return body;
}

SuccessBody Service::reserve(const Request& request, const Owner& peer) {
    json params = request.params;
    std::string id = string_param(params, "reservation_id", false);
    if (!id.empty() && (id.size() > 64 || id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != std::string::npos))
        throw ApiError(ErrorCode::INVALID_REQUEST, "'reservation_id' may hold only letters, digits and _ (at most 64)", {}, {"reservation_id"});
    std::string start_text = string_param(params, "start_time", true);
    auto start = parse_timestamp(start_text);
    if (!start) throw ApiError(ErrorCode::INVALID_REQUEST, "'start_time' must be an RFC 3339 timestamp such as 2025-01-15T15:00:00Z",
                               "got " + start_text, {"start_time"});
    params.erase("reservation_id");
    params.erase("start_time");
    if (!params.contains("workflow_id")) params["workflow_id"] = id.empty() ? "reservation" : id;
    AllocationRequest req = parse_allocation_request(params);
    check_priority_privilege(req.priority, peer);
    check_files_limit(req);
    check_user_limit(peer, AllocationStatus::reserved);
    normalize_exclusive_files(req, peer);
    if (req.requester.empty()) req.requester = "uid:" + std::to_string(peer.uid) + " pid:" + std::to_string(peer.pid);
    const Allocation& a = ledger_.reserve(req, id, *start, peer, clock_());
    persist();
    reschedule();
    spdlog::info("reserved {} from {} to {}", a.allocation_id, format_timestamp(*a.start_at), format_timestamp(*a.expires_at));
    SuccessBody body;
    body.result = {{"reservation_id", a.allocation_id}, {"allocation_id", a.allocation_id}, {"allocation", describe(a)},
                   {"capacity", ledger_.availability().to_json()}};
    body.resources_affected = 1;
    body.recommendations.push_back("At start_time the reservation becomes an active allocation with its own cgroup; join it with "
                                   "resmgr-run --allocation " + a.allocation_id);
    return body;
}

SuccessBody Service::check_conflicts(const Request& request, const Owner& peer) {
    only_params(request.params, {"proposed_allocation", "check_future", "time_horizon"});
    auto it = request.params.find("proposed_allocation");
    if (it == request.params.end() || !it->is_object())
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
    normalize_exclusive_files(req, peer);
    Seconds horizon = std::chrono::hours(4);
    if (auto h = request.params.find("time_horizon"); h != request.params.end()) {
        auto d = h->is_string() ? parse_duration(h->get<std::string>()) : std::nullopt;
        if (!d) throw ApiError(ErrorCode::INVALID_REQUEST, "'time_horizon' must be a duration such as \"4h\"", "got " + h->dump(), {"time_horizon"});
        horizon = std::chrono::duration_cast<Seconds>(*d);
    }
    const TimePoint now = clock_();
    json reports = json::array();
    for (auto& f : ledger_.find_conflicts(req, peer.uid, now, bool_param(request.params, "check_future"), horizon)) {
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
    body.result = {{"conflicts", reports}, {"conflict_free", reports.empty()}, {"checked_future", bool_param(request.params, "check_future")},
                   {"time_horizon", format_duration(std::chrono::duration_cast<Millis>(horizon))}};
    if (!reports.empty()) body.recommendations.push_back("Resolve or wait out the conflicts before allocating, or allocate with \"wait\": true");
    return body;
}

SuccessBody Service::status(const Request& request) {
    only_params(request.params, {"allocation_id", "workflow_id"});
    std::string id = string_param(request.params, "allocation_id", false);
    std::string workflow = string_param(request.params, "workflow_id", false);
    if (!id.empty() && !ledger_.find(id)) throw ApiError(ErrorCode::NOT_FOUND, "No allocation with id '" + id + "'");
    json list = json::array();
    for (auto& [aid, a] : ledger_.allocations()) {
        if (!id.empty() && aid != id) continue;
        if (!workflow.empty() && a.workflow_id != workflow) continue;
        json d = describe(a);
        try {
            d["pids"] = backend_.pids(aid).size();
        } catch (const cgroup::BackendError& e) {
            d["pids"] = nullptr;
            d["pids_error"] = e.what();
        }
        list.push_back(d);
    }
    SuccessBody body;
    body.result = {{"allocations", list}, {"capacity", ledger_.availability().to_json()},
                   {"backend", {{"name", backend_.name()}, {"enforces_limits", backend_.enforces_limits()}}}};
    if (!backend_.enforces_limits())
        body.recommendations.push_back("Backend " + backend_.name() +
                                       " enforces no limits on this host: they are recorded, not applied (see `resmgr doctor`)");
    return body;
}

SuccessBody Service::doctor() {
    SuccessBody body;
    json daemon = daemon_info_;
    daemon["backend"] = backend_.name();
    daemon["enforces_limits"] = backend_.enforces_limits();
    daemon["backend_details"] = backend_.describe();
    daemon["capacity"] = ledger_.availability().to_json();
    daemon["file_guard"] = guard_ ? json{{"available", true}, {"status", guard_->status()}, {"file_conflicts", file_policy_.to_json()}}
                                  : json{{"available", false}, {"reason", guard_unavailable_}};
    if (monitoring_) {
        daemon["ebpf"] = monitoring_->probes_status();
        daemon["sample_interval"] = format_duration(monitoring_->interval());
    }
    DoctorFacts facts{host_report_, backend_.name(), backend_.enforces_limits(), daemon["backend_details"], guard_ != nullptr,
                      guard_unavailable_, guard_ ? guard_->status().value("bpf_lsm", std::string()) : std::string(),
                      monitoring_ ? monitoring_->probes_status() : std::string(), read_lsm_list(), watchdog_usec()};
    const DoctorVerdict verdict = doctor_verdict(facts);
    body.result = {{"verdict", verdict.verdict}, {"enforced", verdict.enforced}, {"not_enforced", verdict.not_enforced},
                   {"host", host_report_}, {"daemon", daemon}};
    body.recommendations = verdict.recommendations;
    return body;
}

void Service::check_user_limit(const Owner& peer, AllocationStatus status, int counted_already) const {
    const auto& limits = ledger_.policy().limits;
    if (peer.uid == 0 && !limits.include_root) return;
    const bool queued = status == AllocationStatus::queued, reserved = status == AllocationStatus::reserved;
    const int most = queued ? limits.queued_per_user : reserved ? limits.reservations_per_user : limits.allocations_per_user;
    const char* what = queued ? "queued_per_user" : reserved ? "reservations_per_user" : "allocations_per_user";
    // A scan, not a counter: at the 10,000 allocations a node holds it costs microseconds.
    int held = 0;
    for (const auto& [_, a] : ledger_.allocations()) {
        const bool same_kind = queued ? a.status == AllocationStatus::queued
                             : reserved ? a.status == AllocationStatus::reserved
                                        : core::Ledger::holds_capacity(a) || a.status == AllocationStatus::expired;
        held += a.owner.uid == peer.uid && same_kind;
    }
    held -= counted_already;
    if (held < most) return;
    throw ApiError(ErrorCode::RESOURCE_EXHAUSTED, "uid " + std::to_string(peer.uid) + " already holds " + std::to_string(held) + " " +
                                                      (queued ? "queued requests" : reserved ? "reservations" : "allocations"),
                   std::string("the policy's limits.") + what + " is " + std::to_string(most), {std::string("limits.") + what},
                   {"Release some first (resmgr status lists them)"});
}

void Service::check_files_limit(const AllocationRequest& request) const {
    const int most = ledger_.policy().limits.files_per_allocation;
    if (static_cast<int>(request.constraints.exclusive_access.size()) <= most) return;
    throw ApiError(ErrorCode::POLICY_VIOLATION, "Too many exclusive files: " + std::to_string(request.constraints.exclusive_access.size()),
                   "the policy's limits.files_per_allocation is " + std::to_string(most), {"exclusive_files"});
}

bool Service::may_use_any_priority(const Owner& peer) const {
    return peer.uid == 0 || (lookup_user_ && core::may_use_any_priority(ledger_.policy().priority_privileges, lookup_user_(peer.uid)));
}

void Service::check_priority_privilege(const Priority& priority, const Owner& peer) const {
    const int cap = ledger_.policy().priority_privileges.max_priority;
    if (priority.value <= cap || may_use_any_priority(peer)) return;
    const Priority allowed{cap};
    throw ApiError(ErrorCode::PERMISSION_DENIED,
                   "Priority " + std::to_string(priority.value) + " (" + priority.band_name() + ") is for root and the users and groups in priority_privileges",
                   "uid " + std::to_string(peer.uid) + " may ask for at most " + std::to_string(cap) + " (" + allowed.band_name() + ")",
                   {"priority"}, {"Ask with \"priority\": \"" + allowed.band_name() + "\" or lower"});
}

Service::AttachTarget Service::attach_target(const json& params, const Owner& peer) const {
    AttachTarget target;
    target.leaf = string_param(params, "leaf", false);
    target.agent = string_param(params, "agent", false);
    if (!target.agent.empty()) {
        check_agent_name(target.agent);
        if (!target.leaf.empty()) throw ApiError(ErrorCode::INVALID_REQUEST, "give 'leaf' or 'agent', not both", {}, {"leaf", "agent"});
        // Each agent in its own child group, so its CPU, memory and OOM kills are its own.
        target.leaf = "agent-" + target.agent;
    }
    if (target.leaf.empty()) target.leaf = "main";
    auto pid_it = params.find("pid");
    if (pid_it == params.end() || !pid_it->is_number_integer() || pid_it->get<long long>() <= 0)
        throw ApiError(ErrorCode::INVALID_REQUEST, "missing positive integer 'pid'", {}, {"pid"});
    target.pid = pid_it->get<long long>();
    // pid 0: the process that connected is gone, so its pid may be anyone's by now.
    if (peer.pid <= 0)
        throw ApiError(ErrorCode::PERMISSION_DENIED, "The process that opened this connection has exited; it can attach nothing",
                       "a connection handed to another process does not carry its first owner's pid", {"pid"},
                       {"Connect from the process to be attached, or from its parent"});
    // Itself, or its own child, not yet anyone else: while the peer waits for this answer it
    // cannot reap the child, so the pid cannot have been reused. Same user either way, so no
    // set-uid program is caught.
    const auto process = identify_ ? identify_(static_cast<long>(target.pid)) : std::nullopt;
    const bool same_user = process && (peer.uid == 0 || (process->real_uid == peer.uid && process->effective_uid == peer.uid));
    const bool own = target.pid == peer.pid || (process && process->ppid == peer.pid);
    if (!own || !same_user)
        throw ApiError(ErrorCode::PERMISSION_DENIED, "A process may only attach itself or its own child",
                       "pid " + std::to_string(target.pid) + " is not peer pid " + std::to_string(peer.pid) +
                           " nor a child of it running as uid " + std::to_string(peer.uid),
                       {}, {"Connect from the process to be attached, or from its parent (resmgr-run does this)"});
    return target;
}

void Service::attached(const Allocation& allocation, const AttachTarget& target) {
    if (monitoring_) monitoring_->refresh_probe_watches();
    if (!target.agent.empty()) monitoring().agent_started(allocation, target.agent, static_cast<pid_t>(target.pid), clock_());
}

SuccessBody Service::attach(const Request& request, const Owner& peer) {
    only_params(request.params, {"allocation_id", "pid", "leaf", "agent"});
    std::string id = string_param(request.params, "allocation_id", true);
    const AttachTarget target = attach_target(request.params, peer);
    const Allocation& allocation = ledger_.authorize(id, peer);
    if (!core::Ledger::holds_capacity(allocation))
        throw ApiError(ErrorCode::CONFLICT, "Allocation '" + id + "' is " + to_string(allocation.status) + ", not running yet", {}, {},
                       {"Wait until it is active (resmgr status)"});
    if (!target.agent.empty()) monitoring().check_agent_slot(allocation, target.agent);
    try {
        backend_.attach(id, target.leaf, static_cast<pid_t>(target.pid));
    } catch (const cgroup::BackendError& e) {
        throw backend_error("Could not move the process into the allocation's cgroup", e);
    }
    ledger_.mark_populated(id);
    persist();
    attached(allocation, target);
    SuccessBody body;
    body.result = {{"allocation_id", id}, {"pid", target.pid}, {"leaf", target.leaf}, {"cgroup_path", backend_.group_path(id)},
                   {"enforces_limits", backend_.enforces_limits()}};
    if (!target.agent.empty()) body.result["agent"] = target.agent;
    body.resources_affected = 1;
    return body;
}

SuccessBody Service::detach(const Request& request, const Owner& peer) {
    only_params(request.params, {"allocation_id", "agent", "exit_status"});
    std::string id = string_param(request.params, "allocation_id", true);
    std::string agent = string_param(request.params, "agent", true);
    ledger_.authorize(id, peer);
    std::optional<int> status;
    if (auto it = request.params.find("exit_status"); it != request.params.end()) {
        if (!it->is_number_integer() || it->get<long long>() < 0 || it->get<long long>() > 255)
            throw ApiError(ErrorCode::INVALID_REQUEST, "'exit_status' must be a whole number 0..255", {}, {"exit_status"});
        status = it->get<int>();
    }
    if (!monitoring().agent_exited(id, agent, status, clock_()))
        throw ApiError(ErrorCode::NOT_FOUND, "No agent '" + agent + "' in allocation '" + id + "'", {}, {"agent"});
    SuccessBody body;
    body.result = {{"allocation_id", id}, {"agent", agent}, {"exit_status", status ? json(*status) : json(nullptr)}};
    body.resources_affected = 1;
    return body;
}

Monitoring& Service::monitoring() {
    if (!monitoring_) throw ApiError(ErrorCode::UNSUPPORTED, "Monitoring is not running in this resmgrd");
    return *monitoring_;
}

SuccessBody Service::monitoring_operation(const Request& request) {
    SuccessBody body;
    const auto& op = request.operation;
    if (op == "monitor") {
        if (!request.resource_type.empty() && request.resource_type != "system")
            throw ApiError(ErrorCode::INVALID_REQUEST, "Unknown monitor target '" + request.resource_type + "'", "expected: system",
                           {"resource_type"});
        only_params(request.params, {"include_trends", "detail_level", "export_format"});
        body.result = monitoring().system_resources();
    } else if (op == "usage") {
        only_params(request.params, {"workflow_id", "breakdown_by_phase", "include_efficiency", "compare_baseline"});
        std::string workflow = request.resource_type.empty() ? string_param(request.params, "workflow_id", true) : request.resource_type;
        json ended = json::array();
        for (const auto& [id, record] : ended_)
            if (record["allocation"].value("workflow_id", "") == workflow)
                ended.push_back({{"allocation_id", id}, {"ended_at", record.value("ended_at", json(nullptr))},
                                 {"reason", record.value("reason", "")}, {"final", record.value("final", json::object())}});
        body.result = monitoring().usage(workflow, ended);
        if (auto& missing = body.result["not_measured"]; !missing.empty())
            body.recommendations.push_back("Not measured: " + missing.dump() + " (see `resmgr doctor`)");
    } else if (op == "capacity") {
        only_params(request.params, {});
        body.result = monitoring().capacity();
    } else {
        only_params(request.params, {"include_performance", "time_range", "group_by"});
        body.result = monitoring().status_of(request.resource_type);
    }
    return body;
}

void Service::on_sample() {
    if (conflicts_dirty_) save_conflicts();
    if (!monitoring_) return;
    try {
        monitoring_->sample(clock_());
    } catch (const std::exception& e) {
        spdlog::error("sampling pass failed: {}", e.what());
    }
}

json Service::reconcile() {
    load_conflicts();
    json adopted = json::array(), removed = json::array(), failed = json::array();
    // Watches may fire at once and end an allocation: iterate over ids, not the ledger's map.
    std::vector<std::string> ids;
    for (auto& [id, _] : ledger_.allocations()) ids.push_back(id);
    for (auto& id : ids) {
        const Allocation* a = ledger_.find(id);
        if (!a) continue;
        if (!core::Ledger::holds_capacity(*a)) {
            if (a->supervisor_pid > 0 && hooks_.watch_supervisor) hooks_.watch_supervisor(id, a->supervisor_pid);
            continue; // queued and reserved allocations have no group yet
        }
        try {
            enforcement_[id] = backend_.create(id, core::limits_for(*a, ledger_.policy()));
            hold_files(*a); // the marks come back from state
            adopted.push_back(id);
            sync_freezer(*a);
            watch(*a);
        } catch (const cgroup::BackendError& e) {
            // Kept in the ledger: losing the allocation would be worse than a missing group.
            failed.push_back({{"allocation_id", id}, {"error", e.what()}});
        }
    }
    try {
        for (auto& group : backend_.list_groups()) {
            if (ledger_.find(group)) continue;
            try {
                backend_.destroy(group);
                removed.push_back(group);
            } catch (const cgroup::BackendError& e) {
                failed.push_back({{"group", group}, {"error", e.what()}});
            }
        }
    } catch (const cgroup::BackendError& e) {
        failed.push_back({{"list_groups", e.what()}});
    }
    // Durations that ran out while resmgrd was down are acted on now.
    on_timer();
    return {{"adopted", adopted}, {"removed_orphans", removed}, {"failed", failed}};
}

} // namespace resmgr::server
