// Changes asked for by requests, and the shared steps (persist, finish, refill, preemption).
// See lifecycle.hpp for the order of effects.
#include "core/deadlines.hpp"
#include "lifecycle/lifecycle.hpp"
#include "lifecycle/run_records.hpp"

#include <fcntl.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <spdlog/spdlog.h>

#include "core/pressure.hpp"
#include "core/temp_dirs.hpp"
#include "monitor/proc.hpp"
#include "resmgr/json.hpp"

namespace resmgr::lifecycle {

using nlohmann::json;

namespace {

// How soon after protected work starts a sampling pass looks at its CPU stall.
constexpr Millis kProtectedStartPass{250};

json limits_json(const cgroup::Limits& l) {
    auto opt = [](const std::optional<std::uint64_t>& v) { return v ? json(*v) : json("max"); };
    return {{"cpu_max", l.cpu_quota_us ? std::to_string(*l.cpu_quota_us) + " " + std::to_string(l.cpu_period_us)
                                       : "max " + std::to_string(l.cpu_period_us)},
            {"cpu_weight", l.cpu_weight},
            {"memory_max", opt(l.memory_max)},
            {"memory_high", opt(l.memory_high)},
            {"pids_max", opt(l.pids_max)}};
}

// A limit update: the new limits written to the allocation's group, then its enforcement the
// backend's report on them, with what the file guard could not guard (ExclusiveFiles::hold's
// reasons) carried over from before for the files it still holds: an update changes limits, not
// what is guarded. Nothing is recorded when the backend throws.
void update_limits(cgroup::CgroupBackend& backend, cgroup::EnforcementPool& pool,
                   std::map<std::string, std::shared_ptr<const cgroup::Enforcement>>& enforcement, const Allocation& a,
                   const cgroup::Limits& limits) {
    cgroup::Enforcement applied = backend.update(a.allocation_id, limits);
    const auto& files = a.constraints.exclusive_access;
    std::vector<std::string> unguarded;
    if (auto before = enforcement.find(a.allocation_id); before != enforcement.end() && before->second && !files.empty())
        for (const auto& reason : before->second->unenforced) {
            if (!reason.starts_with(ExclusiveFiles::kUnguarded)) continue;
            // "exclusive_files: /path: why" names one file: kept while the allocation holds it.
            const std::string_view rest = std::string_view(reason).substr(ExclusiveFiles::kUnguarded.size());
            const bool still_held = !rest.starts_with('/') || std::any_of(files.begin(), files.end(), [&](const std::string& f) {
                                        return rest.starts_with(f) && rest.substr(f.size()).starts_with(": ");
                                    });
            if (still_held) unguarded.push_back(reason);
        }
    auto shared = pool.share(std::move(applied));
    enforcement[a.allocation_id] = unguarded.empty() ? shared : pool.with_unenforced(shared, std::move(unguarded));
}

// Tags a backend failure with what was being done, for the router's BACKEND_ERROR.
[[noreturn]] void rethrow_with_action(cgroup::BackendError& e, std::string action) {
    if (e.action.empty()) e.action = std::move(action);
    throw;
}

// Reads the group's memory.events (and, with monitoring, what it used) before it goes, so a
// wrapper can tell an OOM kill.
json final_counters(cgroup::CgroupBackend& backend, const monitor::Monitoring* monitoring, const std::string& id, TimePoint now) {
    std::string path = backend.group_path(id);
    if (path.empty()) return json::object();
    // One path walk for the group's files, each then opened from it.
    const monitor::DirFd group{::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)};
    const std::string no_group = group.fd < 0 ? "cannot open " + path + ": " + std::strerror(errno) : std::string();
    json counters;
    std::string why = no_group;
    if (const auto text = group.fd >= 0 ? monitor::read_text_at(group.fd, "memory.events", why) : std::nullopt; !text) {
        counters = {{"unavailable", why}};
    } else {
        try {
            auto events = monitor::parse_flat_keyed(*text, "memory.events");
            counters = {{"oom_kills", events.count("oom_kill") ? events["oom_kill"] : 0}, {"memory_events", events}};
        } catch (const monitor::ParseError& e) {
            counters = {{"unavailable", e.what()}};
        }
    }
    if (monitoring) {
        counters["usage"] = monitoring->final_usage(id, now, group.fd, no_group);
        if (monitoring->probes().loaded()) counters["kernel"] = monitoring->probes().figures(id);
    }
    return counters;
}

} // namespace

Lifecycle::Lifecycle(core::Ledger& ledger, cgroup::CgroupBackend& backend, state::StateStore& store, ClockFn clock,
                     events::Notifier& events, ExclusiveFiles& files)
    : ledger_(ledger), backend_(backend), store_(store), clock_(std::move(clock)), events_(events), files_(files) {}

void write_snapshot(const core::Ledger& ledger, state::StateStore& store, TimePoint now) {
    std::vector<const Allocation*> all;
    all.reserve(ledger.allocations().size());
    for (auto& [_, a] : ledger.allocations()) all.push_back(&a);
    store.save_allocations(all, now);
}

void Lifecycle::persist() {
    // What changed since the last persist, as the ledger tracked it: one journal batch, whatever
    // the number of live allocations. On failure the ledger keeps them as changed, so the next
    // persist writes them (the callers' rollbacks mark what they put back).
    auto snapshot = [&] { write_snapshot(ledger_, store_, clock_()); };
    std::vector<state::Change> changes;
    changes.reserve(ledger_.changed().size());
    for (auto& id : ledger_.changed()) changes.push_back({id, ledger_.find(id)});
    try {
        store_.record(changes);
    } catch (const state::StateError& e) {
        if (!store_.journal_lost()) throw;
        // The journal was moved or removed: only the whole snapshot records the change now.
        spdlog::warn("{}; writing the snapshot instead", e.what());
        snapshot();
        ledger_.clear_changed();
        return;
    }
    ledger_.clear_changed();
    if (!store_.snapshot_due()) return;
    // Compaction, after the record: the snapshot then holds exactly what the journal does, which
    // makes a replay of the journal over it harmless (state_store.hpp). Done as often as the
    // snapshot holds allocations, so O(1) per change; the change is durable already, so a failure
    // only leaves the journal longer.
    try {
        snapshot();
    } catch (const state::StateError& e) {
        spdlog::warn("cannot write the allocations' snapshot, the journal keeps the changes: {}", e.what());
    }
}

json Lifecycle::describe(const Allocation& a) const {
    json j = to_json(a);
    j["cgroup_path"] = core::holds_capacity(a) ? backend_.group_path(a.allocation_id) : "";
    if (a.status == AllocationStatus::queued) j["queue_position"] = core::queue_position(ledger_, a.allocation_id);
    if (a.idle_since) j["completes_at"] = format_timestamp(*a.idle_since + a.auto_release.grace_period);
    j["limits"] = limits_json(adjusted_limits(a, ledger_.policy(), adjustments_));
    if (auto it = enforcement_.find(a.allocation_id); it != enforcement_.end()) j["enforcement"] = it->second->to_json();
    if (auto it = tmp_.find(a.allocation_id); it != tmp_.end() && temp_dirs_) {
        const TempDir& t = it->second;
        j["tmpdir"] = temp_dirs_->path_of(a.allocation_id);
        json storage = t.storage.to_json();
        storage["used_bytes"] = t.measured_at ? json(t.usage.bytes) : json(nullptr);
        storage["used_gb"] = t.measured_at ? json(std::round(static_cast<double>(t.usage.bytes) / kGiB * 1000) / 1000) : json(nullptr);
        storage["measured_by"] = t.measured_at ? json(t.usage.method) : json("not yet measured");
        if (t.measured_at) storage["measured_at"] = format_timestamp(*t.measured_at);
        if (!t.usage.complete) storage["measure_note"] = "walk stopped at " + std::to_string(t.usage.entries) + " entries: a lower bound";
        j["storage"] = std::move(storage);
    }
    if (auto it = adjustments_.find(a.allocation_id); it != adjustments_.end()) {
        if (it->second.cpu_loan > 0) j["cpu_loan_cores"] = std::round(it->second.cpu_loan * 1000) / 1000;
        if (it->second.memory_high_ratio) j["tuned_memory_high_ratio"] = std::round(*it->second.memory_high_ratio * 1000) / 1000;
        if (it->second.cpu_weight_factor != 1) j["tuned_cpu_weight_factor"] = std::round(it->second.cpu_weight_factor * 1000) / 1000;
        // What the pressure responder holds back (status pressure has the steps and their signals).
        json held = json::array();
        if (it->second.pressure_memory_high) held.push_back("memory.high=" + std::to_string(*it->second.pressure_memory_high));
        if (it->second.pressure_cpu_weight) held.push_back("cpu.weight=" + std::to_string(*it->second.pressure_cpu_weight));
        if (it->second.pressure_cpu_max_cores) held.push_back("cpu.max=" + std::to_string(std::round(*it->second.pressure_cpu_max_cores * 1000) / 1000) + " cores");
        if (it->second.pressure_frozen) held.push_back("frozen");
        if (!held.empty()) j["pressure_held"] = held;
    }
    return j;
}

const cgroup::Enforcement* Lifecycle::enforcement(const std::string& id) const {
    auto it = enforcement_.find(id);
    return it == enforcement_.end() ? nullptr : it->second.get();
}

const Allocation& Lifecycle::allocate(const AllocationRequest& req, const Owner& peer, bool supervised, bool wait,
                                      std::optional<AttachTarget>& first, const std::function<void()>& vet_queued, bool held_elsewhere) {
    if (req.resources.storage_bytes > 0) {
        if (!storage_refused_.empty())
            throw ApiError(ErrorCode::RESOURCE_EXHAUSTED, "Allocations that ask for storage are refused while storage is short",
                           "the pressure responder holds refuse_storage: " + storage_refused_, {"storage"},
                           {"Wait until the storage_free signal clears (resmgr status pressure)", "Free space on the temp root's filesystem"},
                           {"Allocate without resources.storage_gb"});
        refresh_storage_capacity(); // set against the free space of now
    }
    bool preempted = false;
    // One that waits for another node's file anyway preempts nothing for room it cannot use yet.
    if (auto plan = held_elsewhere ? std::nullopt : ledger_.admission().plan_preemption(req)) {
        try {
            apply_preemption(*plan, req);
        } catch (cgroup::BackendError& e) {
            refill();
            rethrow_with_action(e, "Could not preempt lower-priority allocations");
        }
        preempted = true;
    }
    const Allocation* admitted_ptr = nullptr;
    try {
        admitted_ptr = &ledger_.allocate(req, peer, clock_(), wait, held_elsewhere);
    } catch (const ApiError& e) {
        if (preempted) refill(); // the room was not enough after all (e.g. a reservation): give it back
        if (e.code == ErrorCode::CONFLICT && !e.affected_resources.empty() && e.affected_resources[0].rfind("file:", 0) == 0) {
            ApiError recorded = e;
            recorded.details += "; recorded as conflict " + files_.record_admission_conflict(req, e, peer);
            throw recorded;
        }
        throw;
    }
    const std::string id = admitted_ptr->allocation_id;
    if (admitted_ptr->status == AllocationStatus::queued && vet_queued) {
        try {
            vet_queued();
        } catch (const ApiError&) {
            ledger_.release(id, Owner{0, 0});
            throw;
        }
    }
    // The kernel-verified peer is the wrapper that will report the command's exit.
    if (supervised) ledger_.set_supervisor(id, peer.pid);
    if (admitted_ptr->status == AllocationStatus::queued) {
        persist();
        if (supervised && hooks_.watch_supervisor) hooks_.watch_supervisor(id, peer.pid);
        spdlog::info("queued {} workflow={} priority={} position={}", id, admitted_ptr->workflow_id, admitted_ptr->priority.value,
                     core::queue_position(ledger_, id));
        events_.emit(events::EventType::queued, id + " queued for workflow " + admitted_ptr->workflow_id, admitted_ptr->workflow_id, id,
                     {{"queue_position", core::queue_position(ledger_, id)}});
        return *ledger_.find(id);
    }
    cgroup::Limits limits = adjusted_limits(*admitted_ptr, ledger_.policy(), adjustments_);
    try {
        if (first && !first->agent.empty()) {
            if (!monitoring_) throw ApiError(ErrorCode::UNSUPPORTED, "Monitoring is not running in this resmgrd");
            monitoring_->agents().check_slot(*admitted_ptr, first->agent);
        }
        enforcement_[id] = enforcements_.share(!first        ? backend_.create(id, limits)
                                               : first->spawn ? backend_.create_for_spawn(id, limits, first->leaf, first->spawn_dir)
                                                              : backend_.create_attached(id, limits, first->leaf, static_cast<pid_t>(first->pid)));
    } catch (cgroup::BackendError& e) {
        ledger_.release(id, Owner{0, 0});
        rethrow_with_action(e, first ? "Could not create the cgroup for the allocation and move the process into it"
                                     : "Could not create the cgroup for the allocation");
    } catch (const ApiError&) {
        ledger_.release(id, Owner{0, 0});
        throw;
    }
    // A spawned process is on its way (its wrapper's exit completes the allocation even when it
    // never came).
    const bool placed = first && (!first->spawn || !first->spawn_dir.empty());
    if (placed) ledger_.mark_populated(id);
    try {
        make_temp_dir(*ledger_.find(id));
    } catch (const TempDirError& e) {
        if (req.resources.storage_bytes == 0) {
            spdlog::warn("{}: runs without a temporary directory: {}", id, e.what());
        } else {
            try {
                backend_.destroy(id);
            } catch (const cgroup::BackendError& gone) {
                spdlog::error("{}: its group could not be removed after its temporary directory failed: {}", id, gone.what());
            }
            ledger_.release(id, Owner{0, 0});
            enforcement_.erase(id);
            throw ApiError(ErrorCode::INTERNAL_ERROR, "Could not create the allocation's temporary directory", e.what(), {"storage"});
        }
    }
    enforcement_[id] = enforcements_.with_unenforced(enforcement_[id], files_.hold(*ledger_.find(id)));
    try {
        persist();
    } catch (const state::StateError& e) {
        // An allocation that is not on disk would be lost by a crash: undo it.
        backend_.destroy(id);
        ledger_.release(id, Owner{0, 0});
        enforcement_.erase(id);
        if (temp_dirs_) temp_dirs_->release(id);
        tmp_.erase(id);
        throw ApiError(ErrorCode::INTERNAL_ERROR, "Could not record the allocation in the state directory", e.what());
    }
    const Allocation& a = *ledger_.find(id);
    spdlog::info("allocated {} workflow={} priority={} cpu={} memory={} uid={}", id, a.workflow_id, a.priority.value,
                 a.resources.cpu_cores, format_size(a.resources.memory_bytes), peer.uid);
    if (placed) attached(a, *first);
    watch(a, placed ? GroupOrigin::made_with_process : GroupOrigin::made_empty);
    reschedule();
    events_.emit(events::EventType::allocated, id + " allocated to workflow " + a.workflow_id, a.workflow_id, id,
                 {{"resources", to_json(a.resources)}, {"cgroup_path", backend_.group_path(id)}, {"priority", a.priority.value}});
    return a;
}

const Allocation& Lifecycle::reserve(const AllocationRequest& req, const std::string& id, TimePoint start, const Owner& peer) {
    const Allocation& a = ledger_.reserve(req, id, start, peer, clock_());
    persist();
    reschedule();
    spdlog::info("reserved {} from {} to {}", a.allocation_id, format_timestamp(*a.start_at), format_timestamp(*a.expires_at));
    return a;
}

Allocation Lifecycle::reallocate(const std::string& id, const Resources& wanted, const Owner& peer) {
    const Allocation before = ledger_.authorize(id, peer);
    const Allocation& after = ledger_.reallocate(id, wanted, peer, clock_());
    try {
        update_limits(backend_, enforcements_, enforcement_, after, adjusted_limits(after, ledger_.policy(), adjustments_));
    } catch (cgroup::BackendError& e) {
        ledger_.restore(before);
        rethrow_with_action(e, "Could not change the allocation's limits; the old limits stay");
    }
    persist();
    spdlog::info("reallocated {} cpu={} memory={}", id, after.resources.cpu_cores, format_size(after.resources.memory_bytes));
    refill(); // a shrink may have made room
    return before;
}

void Lifecycle::attach(const std::string& id, const AttachTarget& target) {
    const Allocation& allocation = *ledger_.find(id);
    if (!core::holds_capacity(allocation))
        throw ApiError(ErrorCode::CONFLICT, "Allocation '" + id + "' is " + to_string(allocation.status) + ", not running yet", {}, {},
                       {"Wait until it is active (resmgr status)"});
    if (!target.agent.empty()) {
        if (!monitoring_) throw ApiError(ErrorCode::UNSUPPORTED, "Monitoring is not running in this resmgrd");
        monitoring_->agents().check_slot(allocation, target.agent);
    }
    try {
        backend_.attach(id, target.leaf, static_cast<pid_t>(target.pid));
    } catch (cgroup::BackendError& e) {
        rethrow_with_action(e, "Could not move the process into the allocation's cgroup");
    }
    ledger_.mark_populated(id);
    persist();
    attached(allocation, target);
}

void Lifecycle::attached(const Allocation& allocation, const AttachTarget& target) {
    if (!monitoring_) return;
    monitoring_->refresh_probe_watches(allocation.allocation_id);
    // Work the responder protects has started: a pass soon judges its CPU stall (counted from its
    // group's birth) instead of up to a whole sampling interval later, when a short build step may
    // be half done at half speed.
    const auto& response = ledger_.policy().pressure_response;
    if (hooks_.sample_soon && response.mode != "off" && !core::may_touch(allocation.priority, response)) hooks_.sample_soon(kProtectedStartPass);
    if (!target.agent.empty()) monitoring_->agent_started(allocation, target.agent, static_cast<pid_t>(target.pid), clock_());
}

SuccessBody Lifecycle::release(const std::string& id, const Owner& peer, std::optional<int> exit_status, bool force) {
    SuccessBody body;
    body.resources_affected = 1;
    if (!ledger_.find(id)) {
        // Ended already (its group emptied, or it expired): the wrapper still gets the record.
        EndedRecord* ended = ended_.find(id);
        if (!ended) ledger_.authorize(id, peer); // throws NOT_FOUND
        json record = ended->record();
        if (peer.uid != 0 && record["allocation"]["owner"]["uid"] != peer.uid)
            throw ApiError(ErrorCode::PERMISSION_DENIED, "Allocation '" + id + "' belongs to another user");
        if (exit_status) {
            record["exit_status"] = *exit_status;
            ended->cbor = json::to_cbor(record);
            if (history_) history_->record_exit(id, *exit_status);
        }
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
    } catch (cgroup::BackendError& e) {
        if (!force) rethrow_with_action(e, "Could not remove the allocation's cgroup; the allocation is kept");
        body.recommendations.push_back("Forced release: the cgroup could not be removed (" + std::string(e.what()) +
                                       "); resmgrd removes it at its next start");
        files_.release(id, std::nullopt, "holder released (forced)");
        Allocation gone = ledger_.release(id, Owner{0, 0});
        persist();
        body.result = {{"allocation_id", id}, {"allocation", to_json(gone)}, {"reason", reason}};
    }
    if (exit_status) {
        body.result["exit_status"] = *exit_status;
        if (history_) history_->record_exit(id, *exit_status);
    }
    body.result["capacity"] = ledger_.admission().availability().to_json();
    return body;
}

std::optional<std::string> Lifecycle::move_file(const std::string& file, const std::string& holder, const std::optional<std::string>& to) {
    auto without = [&](const Allocation& a) {
        std::vector<std::string> files = a.constraints.exclusive_access;
        files.erase(std::remove(files.begin(), files.end(), file), files.end());
        return files;
    };
    ledger_.set_exclusive_files(holder, without(*ledger_.find(holder)));
    if (to) {
        std::vector<std::string> taken = ledger_.find(*to)->constraints.exclusive_access;
        taken.push_back(file);
        ledger_.set_exclusive_files(*to, taken);
    }
    persist();
    if (!to) {
        files_.release(holder, file, "release: " + holder + " let go of the file");
        refill(); // an allocation queued for the file may start now
        return std::nullopt;
    }
    const Allocation& claimant = *ledger_.find(*to);
    files_.release(holder, file, "priority_based: " + *to + " (priority " + std::to_string(claimant.priority.value) + ") took the file");
    return files_.hold_file(file, claimant);
}

json Lifecycle::finish(const std::string& id, AllocationStatus final_status, const std::string& reason, bool refill_after) {
    json counters = final_counters(backend_, monitoring_, id, clock_());
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
    files_.release(id, std::nullopt, "holder " + to_string(final_status) + ": " + reason);
    ended.status = final_status;
    enforcement_.erase(id);
    if (auto it = tmp_.find(id); it != tmp_.end()) {
        counters["tmpdir_used_bytes"] = it->second.measured_at ? json(it->second.usage.bytes) : json(nullptr);
        tmp_.erase(it);
    }
    if (temp_dirs_) temp_dirs_->release(id); // deleted (or recycled) by the remover; a failed move, by the next pass
    adjustments_.erase(id);
    reschedule();
    spdlog::info("{} {} workflow={} ({})", to_string(final_status), id, ended.workflow_id, reason);
    events_.emit(final_status == AllocationStatus::expired ? events::EventType::expired : events::EventType::released,
                 id + " of workflow " + ended.workflow_id + " " + to_string(final_status) + ": " + reason, ended.workflow_id, id,
                 {{"reason", reason}, {"final", counters}});
    // Sampling reports OOM kills as they happen; the final count reports only the rest.
    long unreported = counters.value("oom_kills", 0L) - static_cast<long>(monitoring_ ? monitoring_->oom_kills_reported(id) : 0);
    if (unreported > 0)
        events_.emit(events::EventType::oom_kill, "the OOM killer killed " + std::to_string(unreported) + " process(es) in " + id,
                     ended.workflow_id, id, {{"memory_events", counters["memory_events"]}});
    if (monitoring_) monitoring_->forget_allocation(id);
    // Filled key by key, as to_json(Allocation) is (see there): it is the release's answer.
    json record = json::object();
    record["allocation_id"] = id;
    record["allocation"] = to_json(ended);
    record["final"] = counters;
    record["reason"] = reason;
    record["ended_at"] = format_timestamp(clock_());
    ended_.add(id, record);
    if (history_) history_->record_run(run_record_of(ended, reason, counters, clock_()));
    if (refill_after) refill();
    return record;
}

bool Lifecycle::adjust(const std::string& id) {
    const Allocation* a = ledger_.find(id);
    if (!a) return false;
    if (auto it = adjustments_.find(id); it != adjustments_.end() && it->second.empty()) adjustments_.erase(it);
    try {
        update_limits(backend_, enforcements_, enforcement_, *a, adjusted_limits(*a, ledger_.policy(), adjustments_));
        return true;
    } catch (const cgroup::BackendError& e) {
        spdlog::warn("{}: live adjustment refused, back to its size: {}", id, e.what());
        adjustments_.erase(id);
        return false;
    }
}

void Lifecycle::start_group(const std::string& id, const std::string& why) {
    const Allocation& a = *ledger_.find(id);
    try {
        enforcement_[id] = enforcements_.share(backend_.create(id, adjusted_limits(a, ledger_.policy(), adjustments_)));
    } catch (const cgroup::BackendError& e) {
        spdlog::error("{}: {} but its cgroup cannot be created, so it ends: {}", id, why, e.what());
        Allocation gone = ledger_.release(id, Owner{0, 0});
        // What it held outside the ledger goes too (a queued allocation's cluster claims and slots).
        files_.release(id, std::nullopt, "it ended: its cgroup could not be created");
        ended_.add(id, json{{"allocation_id", id}, {"allocation", to_json(gone)}, {"reason", std::string("backend error: ") + e.what()}});
        return;
    }
    spdlog::info("{}: {}", id, why);
    try {
        make_temp_dir(a);
    } catch (const TempDirError& e) {
        spdlog::warn("{}: runs without a temporary directory: {}", id, e.what());
    }
    enforcement_[id] = enforcements_.with_unenforced(enforcement_[id], files_.hold(a));
    events_.emit(events::EventType::allocated, id + " allocated to workflow " + a.workflow_id + ": " + why, a.workflow_id, id,
                 {{"resources", to_json(a.resources)}, {"cgroup_path", backend_.group_path(id)}, {"priority", a.priority.value}, {"reason", why}});
    watch(a, GroupOrigin::made_empty);
}

bool Lifecycle::start_due_reservations() {
    const TimePoint now = clock_();
    const auto lapsed = core::lapsed_reservations(ledger_, now);
    for (auto& id : lapsed) {
        const std::string holder = ledger_.holdings().blocking_holder(*ledger_.find(id)).value_or("");
        const Allocation gone = ledger_.release(id, Owner{0, 0});
        const std::string why = "its window passed while allocation " + holder + " still held one of its exclusive files";
        spdlog::warn("reservation {} never started: {}", id, why);
        ended_.add(id, json{{"allocation_id", id}, {"allocation", to_json(gone)}, {"reason", why}});
        events_.emit(events::EventType::denied, "reservation " + id + " never started: " + why, gone.workflow_id, id,
                     {{"reason", why}, {"holder", holder}});
    }
    const auto due = core::due_to_start(ledger_, now);
    for (auto& id : due) {
        ledger_.activate(id);
        start_group(id, "reservation window opened");
    }
    return !lapsed.empty() || !due.empty();
}

void Lifecycle::refill() {
    auto restored = ledger_.restore_preempted();
    for (auto& id : restored) {
        const Allocation& a = *ledger_.find(id);
        try {
            // One the pressure responder froze too stays frozen until the responder lets go.
            auto adj = adjustments_.find(id);
            if (adj == adjustments_.end() || !adj->second.pressure_frozen) backend_.freeze(id, false);
            update_limits(backend_, enforcements_, enforcement_, a, adjusted_limits(a, ledger_.policy(), adjustments_));
            spdlog::info("{}: resumed at full size, capacity is back", id);
            events_.emit(events::EventType::resumed, id + " resumed at full size", a.workflow_id, id);
        } catch (const cgroup::BackendError& e) {
            spdlog::error("{}: cannot resume: {}", id, e.what());
        }
    }
    auto admitted = ledger_.admit_queued(clock_(), hooks_.may_start_queued);
    for (auto& id : admitted) start_group(id, "admitted from the queue");
    const bool reservations_changed = start_due_reservations();
    if (restored.empty() && admitted.empty() && !reservations_changed) return;
    persist();
    reschedule();
}

void Lifecycle::apply_preemption(const core::Preemption& plan, const AllocationRequest& req) {
    for (auto& victim : plan.victims) {
        spdlog::info("{}: preempted ({}) for a priority {} request of workflow {}", victim, plan.mode, req.priority.value, req.workflow_id);
        events_.emit(events::EventType::preempted, victim + " preempted (" + plan.mode + ") for workflow " + req.workflow_id,
                     ledger_.find(victim)->workflow_id, victim,
                     {{"mode", plan.mode}, {"for_workflow", req.workflow_id}, {"for_priority", req.priority.value}});
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
                update_limits(backend_, enforcements_, enforcement_, *ledger_.find(victim), adjusted_limits(*ledger_.find(victim), ledger_.policy(), adjustments_));
            } catch (const cgroup::BackendError&) {
                ledger_.restore_preempted();
                throw;
            }
        }
    }
    persist();
}

void Lifecycle::watch(const Allocation& a, GroupOrigin origin, bool group_events) {
    // Copies: a watch may fire at once and end the allocation `a` refers to.
    const std::string id = a.allocation_id;
    const pid_t supervisor = a.supervisor_pid;
    std::string path = backend_.group_path(id);
    if (monitoring_) monitoring_->allocation_started(id, clock_(), origin != GroupOrigin::adopted);
    if (supervisor > 0 && hooks_.watch_supervisor) hooks_.watch_supervisor(id, supervisor);
    if (group_events && !path.empty() && hooks_.watch_group && ledger_.find(id))
        hooks_.watch_group(id, path + "/cgroup.events", origin != GroupOrigin::made_empty);
}

void Lifecycle::reschedule() {
    if (hooks_.schedule) hooks_.schedule(core::next_deadline(ledger_));
}

} // namespace resmgr::lifecycle

namespace resmgr::lifecycle {

void Lifecycle::set_temp_dirs(TempDirs* dirs) {
    temp_dirs_ = dirs;
    refresh_storage_capacity();
}

void Lifecycle::make_temp_dir(const Allocation& a) {
    if (!temp_dirs_) return;
    TempDir& t = tmp_[a.allocation_id];
    try {
        t.storage = temp_dirs_->create(a.allocation_id, a.owner.uid, a.resources.storage_bytes);
    } catch (const TempDirError&) {
        tmp_.erase(a.allocation_id);
        throw;
    }
    if (a.resources.storage_bytes && !t.storage.enforced)
        spdlog::info("{}: storage_gb {} admitted, not enforced: {}", a.allocation_id, format_size(a.resources.storage_bytes), t.storage.reason);
}

void Lifecycle::refresh_storage_capacity() {
    const auto free = temp_dirs_ ? temp_dirs_->free_bytes() : std::nullopt;
    if (!free) {
        ledger_.set_storage_capacity(std::nullopt);
        return;
    }
    // What a directory uses inside its promise is counted back: the promise holds it already.
    std::uint64_t inside = 0;
    for (const auto& [id, t] : tmp_)
        if (const Allocation* a = ledger_.find(id)) inside += std::min(t.usage.bytes, a->resources.storage_bytes);
    ledger_.set_storage_capacity(*free + inside);
}

json Lifecycle::recover_temp_dirs() {
    if (!temp_dirs_) return nullptr;
    size_t adopted = 0;
    json failed = json::object();
    for (const auto& [id, a] : ledger_.allocations()) {
        if (!core::holds_capacity(a)) continue;
        try {
            make_temp_dir(a);
            ++adopted;
        } catch (const TempDirError& e) {
            failed[id] = e.what();
            spdlog::warn("{}: runs without a temporary directory: {}", id, e.what());
        }
    }
    const core::TempDirFindings found = core::find_orphan_temp_dirs(temp_dirs_->list(), ledger_.allocations());
    for (const auto& orphan : found.orphans) temp_dirs_->release(orphan);
    if (!found.orphans.empty()) spdlog::info("removed {} temporary director(ies) no allocation claims", found.orphans.size());
    if (!found.foreign.empty())
        spdlog::warn("temp root {} holds {} entr(ies) resmgrd never makes; left alone", temp_dirs_->root(), found.foreign.size());
    on_storage_pass();
    return {{"root", temp_dirs_->root()}, {"adopted", adopted}, {"orphans_removed", found.orphans},
            {"removal_pending", temp_dirs_->pending().size()}, {"foreign_left_alone", found.foreign}, {"failed", failed}};
}

void Lifecycle::on_storage_pass() {
    if (!temp_dirs_) return;
    const TimePoint now = clock_();
    for (auto& [id, t] : tmp_) {
        if (!t.storage.enforced && t.measured_at && now - *t.measured_at < kWalkEvery) continue;
        t.usage = temp_dirs_->measure(id);
        t.measured_at = now;
    }
    const bool short_of_storage = !storage_refused_.empty();
    if (short_of_storage) // ended allocations' directories: those left by a crash or a failed move
        for (const auto& orphan : core::find_orphan_temp_dirs(temp_dirs_->list(), ledger_.allocations()).orphans) temp_dirs_->pending_removal(orphan);
    temp_dirs_->sweep();
    refresh_storage_capacity();
}

} // namespace resmgr::lifecycle
