#include "lifecycle/completion.hpp"

#include "core/deadlines.hpp"

#include <signal.h>

#include <spdlog/spdlog.h>

#include "lifecycle/lifecycle.hpp"
#include "monitor/proc.hpp"

namespace resmgr::lifecycle {

using nlohmann::json;

namespace {

bool group_populated(cgroup::CgroupBackend& backend, const std::string& id) {
    std::string path = backend.group_path(id);
    if (path.empty()) return false;
    try {
        auto events = monitor::read_flat_keyed(path + "/cgroup.events");
        return events.count("populated") && events["populated"] != 0;
    } catch (const monitor::ParseError& e) {
        spdlog::warn("{}: {}", id, e.what());
        return true; // unknown: never release on a guess
    }
}

// After a restart: frozen exactly when the ledger says paused or the pressure responder's state
// holds a freeze (a crash may have split them).
void sync_freezer(cgroup::CgroupBackend& backend, const Allocation& a, bool pressure_frozen) {
    if (!backend.enforces_limits() && backend.group_path(a.allocation_id).empty()) return; // nothing to freeze
    try {
        backend.freeze(a.allocation_id, a.status == AllocationStatus::paused || pressure_frozen);
    } catch (const cgroup::BackendError& e) {
        spdlog::warn("{}: cannot make its freezer match its status ({}): {}", a.allocation_id, to_string(a.status), e.what());
    }
}

std::string grace_text(const Allocation& a) { return format_duration(std::chrono::duration_cast<Millis>(a.auto_release.grace_period)); }

} // namespace

void Completion::on_timer() {
    auto& ledger = life_.ledger_;
    const TimePoint now = life_.clock_();
    for (auto& id : core::due_to_expire(ledger, now)) {
        const Allocation& a = *ledger.find(id);
        if (!a.auto_release.on_timeout) {
            ledger.mark_expired(id);
            spdlog::info("{}: duration over; auto_release.on_timeout is false, so it keeps running (status expired)", id);
            continue;
        }
        spdlog::info("{}: duration over: SIGTERM to the group, cgroup.kill in {}", id, grace_text(a));
        try {
            life_.backend_.signal(id, SIGTERM);
        } catch (const cgroup::BackendError& e) {
            spdlog::warn("{}: SIGTERM: {}", id, e.what());
        }
        // Expired and past its grace while resmgrd was down, or frozen by a preemption or the
        // pressure responder (it cannot act on SIGTERM): the kill is due at once.
        auto adj = life_.adjustments_.find(id);
        const bool frozen = a.status == AllocationStatus::paused || (adj != life_.adjustments_.end() && adj->second.pressure_frozen);
        bool grace_long_over = *a.expires_at + a.auto_release.grace_period <= now || frozen;
        ledger.mark_terminating(id, grace_long_over ? now - a.auto_release.grace_period : now);
    }
    for (auto& id : core::due_to_complete(ledger, now)) {
        if (group_populated(life_.backend_, id)) ledger.mark_populated(id); // joined, and its event is still on the way
        else complete(id, "completed: its group stayed empty for " + grace_text(*ledger.find(id)));
    }
    life_.persist();
    for (auto& id : core::due_to_kill(ledger, now)) {
        try {
            life_.finish(id, AllocationStatus::expired, "expired");
        } catch (const std::exception& e) { // the group or the record: both are kept as they were
            spdlog::error("{}: cannot end the expired allocation, retrying after the grace period: {}", id, e.what());
            ledger.mark_terminating(id, now);
            life_.persist();
        }
    }
    life_.refill();
    life_.reschedule();
}

void Completion::completed_if_empty(const std::string& id) {
    const Allocation* a = life_.ledger_.find(id);
    if (!a) {
        stranded_.erase(id);
        return;
    }
    if (stranded_.count(id) || !a->populated_once || a->supervisor_pid > 0 || group_populated(life_.backend_, id)) return;
    // Emptied after SIGTERM: the expiry is complete without waiting for the grace period.
    if (a->terminating_since) {
        try {
            life_.finish(id, AllocationStatus::expired, "expired");
        } catch (const std::exception& e) { // kept as it was; the grace period's end tries again
            spdlog::error("{}: {}", id, e.what());
        }
        return;
    }
    if (!a->auto_release.on_completion) return;
    if (!a->supervised) {
        // Between two steps of a workflow: idle, not done, until its grace period passes empty.
        if (a->idle_since) return;
        life_.ledger_.mark_idle(id, life_.clock_());
        life_.persist();
        life_.reschedule();
        spdlog::info("{}: its group is empty; it completes in {} unless a process joins", id, grace_text(*a));
        return;
    }
    complete(id, "completed: its group is empty");
}

void Completion::complete(const std::string& id, const std::string& reason) {
    try {
        life_.finish(id, AllocationStatus::released, reason);
    } catch (const std::exception& e) { // the group or the record: kept as they were
        spdlog::error("{}: cannot release the completed allocation: {}", id, e.what());
    }
}

void Completion::on_group_event(const std::string& id) {
    const Allocation* a = life_.ledger_.find(id);
    if (!a) return;
    if ((!a->populated_once || a->idle_since) && group_populated(life_.backend_, id)) {
        life_.ledger_.mark_populated(id);
        life_.persist();
        return;
    }
    completed_if_empty(id);
}

void Completion::on_supervisor_exit(const std::string& id) {
    const Allocation* a = life_.ledger_.find(id);
    if (!a || a->supervisor_pid == 0) return;
    spdlog::info("{}: its resmgr-run (pid {}) is gone", id, a->supervisor_pid);
    if (a->status == AllocationStatus::queued) {
        life_.finish(id, AllocationStatus::released, "cancelled: the resmgr-run waiting for it is gone");
        return;
    }
    life_.ledger_.set_supervisor(id, 0);
    life_.persist();
    completed_if_empty(id);
}

json Completion::reconcile() {
    auto& ledger = life_.ledger_;
    auto& backend = life_.backend_;
    life_.files_.load();
    json adopted = json::array(), taken_over = json::array(), removed = json::array(), failed = json::array();
    stranded_.clear();
    // Watches may fire at once and end an allocation: iterate over ids, not the ledger's map.
    std::vector<std::string> ids;
    for (auto& [id, _] : ledger.allocations()) ids.push_back(id);
    for (auto& id : ids) {
        const Allocation* a = ledger.find(id);
        if (!a) continue;
        if (!core::holds_capacity(*a)) {
            if (a->supervisor_pid > 0 && life_.hooks_.watch_supervisor) life_.hooks_.watch_supervisor(id, a->supervisor_pid);
            continue; // queued and reserved allocations have no group yet
        }
        try {
            life_.enforcement_[id] = life_.enforcements_.share(backend.create(id, adjusted_limits(*a, ledger.policy(), life_.adjustments_)));
            life_.enforcement_[id] = life_.enforcements_.with_unenforced(life_.enforcement_[id], life_.files_.hold(*a)); // the marks come back from state
            // Before the watch: a group whose processes are still in the other layout would
            // look empty, and complete while its work runs on. A take-over that fails part way
            // is reported; the group is adopted, but neither its emptying nor its wrapper's exit
            // completes it (stranded_): the allocation ends when it is released, or at its duration.
            bool all_here = true;
            try {
                if (const std::size_t moved = backend.take_over_elsewhere(id); moved > 0) {
                    taken_over.push_back({{"allocation_id", id}, {"processes", moved}});
                    spdlog::info("{}: {} process(es) taken over from the group a previous resmgrd kept in the other layout", id, moved);
                }
            } catch (const cgroup::BackendError& e) {
                all_here = false;
                stranded_.insert(id);
                spdlog::error("{}: cannot take its processes over from the other layout (its group is not watched for emptying): {}", id,
                              e.what());
                failed.push_back({{"allocation_id", id}, {"error", std::string("taking its processes over from the other layout: ") + e.what()}});
            }
            adopted.push_back(id);
            auto adj = life_.adjustments_.find(id);
            sync_freezer(backend, *a, adj != life_.adjustments_.end() && adj->second.pressure_frozen);
            life_.watch(*a, Lifecycle::GroupOrigin::adopted, all_here);
        } catch (const cgroup::BackendError& e) {
            // Kept in the ledger: losing the allocation would be worse than a missing group.
            failed.push_back({{"allocation_id", id}, {"error", e.what()}});
        }
    }
    try {
        for (auto& group : backend.list_groups()) {
            if (ledger.find(group)) continue;
            try {
                backend.destroy(group);
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
    return {{"adopted", adopted}, {"taken_over", taken_over}, {"removed_orphans", removed}, {"failed", failed}};
}

} // namespace resmgr::lifecycle
