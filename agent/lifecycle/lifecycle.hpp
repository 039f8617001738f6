// agent/lifecycle is the one writer of the ledger, the cgroup backend and the state store: every
// change to an allocation goes through Lifecycle (asked for by a request) or Completion (the
// clock and the kernel: durations, emptied groups, wrappers gone, restart), which shares its
// private steps. The order of effects is the same everywhere:
//   1. decide in the ledger (admission, preemption plan, transition),
//   2. act on the kernel through the backend (create, update, freeze, signal, destroy),
//   3. persist what changed (the ledger's changed ids: one journal batch, fdatasync'd) before
//      the answer goes out; the state store writes the whole snapshot only every so often;
// a backend failure rolls the ledger back so the state never claims a group that does not
// exist, and an end is recorded before the group goes, so a crash never leaves a recorded
// allocation whose processes were killed. Exclusive-file holds (ExclusiveFiles) follow the
// allocation: taken when its group exists, dropped when it ends.
// Each ended allocation leaves a run record in the history (run_records.hpp).
// May call: core, cgroup, state, monitor, history, conflicts, events. Never the server.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cgroup/backend.hpp"
#include "core/ledger.hpp"
#include "events/notifier.hpp"
#include "history/history.hpp"
#include "lifecycle/completion.hpp"
#include "lifecycle/cpu_lending.hpp"
#include "lifecycle/exclusive_files.hpp"
#include "lifecycle/temp_dirs.hpp"
#include "monitor/monitoring.hpp"
#include "resmgr/protocol.hpp"
#include "state/state_store.hpp"

namespace resmgr::lifecycle {

// What the lifecycle asks of the event loop. Every hook may be left empty (unit tests drive
// on_timer / on_group_event / on_supervisor_exit by hand).
struct LoopHooks {
    // Call Completion::on_timer() at this time (nullopt: nothing is due).
    std::function<void(std::optional<TimePoint>)> schedule;
    // Call Completion::on_group_event(id) when `cgroup_events_path` changes; unwatch stops it.
    // `may_have_changed`: the group may have changed before the watch (a process placed in it, a
    // group found at restart), so call it once at the start too; false for a group made empty by
    // the request that watches it, which no one else knows of yet.
    std::function<void(const std::string& id, const std::string& cgroup_events_path, bool may_have_changed)> watch_group;
    std::function<void(const std::string& id)> unwatch_group;
    // Call Completion::on_supervisor_exit(id) when process `pid` exits (at once if it is gone).
    std::function<void(const std::string& id, pid_t pid)> watch_supervisor;
    // Run the next sampling pass within `delay` if it was due later.
    std::function<void(Millis delay)> sample_soon;
    // Whether a queued allocation that fits may start (none: all may); the cluster's: not while
    // a file it wants is held by another node (it claims it here first).
    std::function<bool(const Allocation&)> may_start_queued;
};

// A process to put into an allocation's group, already authorized by the caller.
struct AttachTarget {
    long long pid = 0;
    std::string leaf;  // "main", or "agent-<name>"
    std::string agent; // empty unless an agent
    // No pid: the caller starts its process in the leaf itself (allocate only). allocate sets
    // spawn_dir to the leaf's directory, or leaves it empty when the backend cannot (the caller
    // then attaches a pid).
    bool spawn = false;
    std::string spawn_dir;
};

// An ended allocation's final record (what it used, why it ended), kept for a wrapper's late
// release and for `usage` of an ended workflow. Kept as CBOR: as a json tree each record held
// ~6.6 KB of nodes (1.7 MB for the 256 kept, heaptrack), as bytes a fraction of that.
struct EndedRecord {
    std::string allocation_id;
    std::string workflow_id;
    std::vector<std::uint8_t> cbor;
    nlohmann::json record() const { return nlohmann::json::from_cbor(cbor); }
};

// The newest ended allocations' records, at most kKept.
class EndedLog {
public:
    static constexpr size_t kKept = 256;
    void add(std::string id, const nlohmann::json& record) {
        std::string workflow;
        if (auto a = record.find("allocation"); a != record.end() && a->is_object()) workflow = a->value("workflow_id", "");
        records_.push_back({std::move(id), std::move(workflow), nlohmann::json::to_cbor(record)});
        if (records_.size() > kKept) records_.pop_front();
    }
    EndedRecord* find(const std::string& id) {
        for (auto& e : records_)
            if (e.allocation_id == id) return &e;
        return nullptr;
    }
    const std::deque<EndedRecord>& records() const { return records_; }

private:
    std::deque<EndedRecord> records_; // newest last; the oldest leaves at every release once full
};

// The whole snapshot of the ledger's allocations (state::StateStore::save_allocations): the
// journal's compaction, the shutdown's, and the fallback when a journal sync fails.
void write_snapshot(const core::Ledger& ledger, state::StateStore& store, TimePoint now);

class Lifecycle {
public:
    using ClockFn = std::function<TimePoint()>;

    Lifecycle(core::Ledger& ledger, cgroup::CgroupBackend& backend, state::StateStore& store, ClockFn clock,
              events::Notifier& events, ExclusiveFiles& files);

    void set_hooks(LoopHooks hooks) { hooks_ = std::move(hooks); }
    // Sampling, agents and final usage (without monitoring agents are not tracked), and where
    // each ended allocation's run record goes (without a history none is kept).
    void set_observers(monitor::Monitoring* monitoring, history::History* history) {
        monitoring_ = monitoring;
        history_ = history;
    }
    const core::Ledger& ledger() const { return ledger_; }
    // For reading (group_path, pids, describe); changes go through the lifecycle.
    cgroup::CgroupBackend& backend() const { return backend_; }
    Completion& completion() { return completion_; }

    // Changes a request asks for. Each throws ApiError (or BackendError with its action set)
    // and leaves everything as it was when it cannot be done.
    // Admits (or queues) the request; the group is made with `first` inside it when given.
    // `vet_queued` runs when the request was queued (e.g. the per-user queue limit) and undoes
    // the admission by throwing.
    // An allocation asking for storage_gb is refused (RESOURCE_EXHAUSTED, "storage") while the
    // pressure responder holds refuse_storage.
    // `held_elsewhere`: with `wait`, queued (see core::Ledger::allocate).
    const Allocation& allocate(const AllocationRequest& request, const Owner& peer, bool supervised, bool wait,
                               std::optional<AttachTarget>& first, const std::function<void()>& vet_queued, bool held_elsewhere = false);
    // Starts the queued allocations that may start now (after may_start_queued changed its mind).
    void start_queued() { refill(); }
    const Allocation& reserve(const AllocationRequest& request, const std::string& id, TimePoint start, const Owner& peer);
    // Returns the allocation as it was before.
    Allocation reallocate(const std::string& id, const Resources& wanted, const Owner& peer);
    // The allocation must hold capacity; an agent needs a free slot.
    void attach(const std::string& id, const AttachTarget& target);
    // Releases (or, for a wrapper's exit report whose auto_release flag says so, keeps) it.
    SuccessBody release(const std::string& id, const Owner& peer, std::optional<int> exit_status, bool force);
    // resolve-conflicts: `file` leaves `holder`'s exclusive files (and joins `to`'s when given);
    // returns why the file could not be guarded for its new holder, if so.
    std::optional<std::string> move_file(const std::string& file, const std::string& holder, const std::optional<std::string>& to);

    // The allocation as status shows it: record, group, limits, enforcement, queue position.
    nlohmann::json describe(const Allocation& allocation) const;
    const cgroup::Enforcement* enforcement(const std::string& id) const;
    const std::deque<EndedRecord>& ended() const { return ended_.records(); }

    // Per-allocation temporary directories (temp_dirs.hpp); without them (nullptr) allocations
    // get none and storage_gb is refused. Set before reconcile.
    void set_temp_dirs(TempDirs* dirs);
    TempDirs* temp_dirs() const { return temp_dirs_; }
    // Restart recovery, after reconcile: every allocation holding capacity gets its directory
    // back (adopted as it was), orphans (core::find_orphan_temp_dirs) are removed. The report.
    nlohmann::json recover_temp_dirs();
    // One sampling pass: measures the directories (a quota's count every pass, a walk at most
    // every kWalkEvery), carries on with pending removals, and sets the ledger's storage capacity.
    // While storage is short (refuse_storage held) orphans are looked for too, and removal gets
    // four times the room.
    void on_storage_pass();
    static constexpr Millis kWalkEvery{10000};

private:
    friend class Completion; // the clock-and-kernel half of the same writer
    friend class CpuLending; // balance: loans of CPU on top of the ledger's sizes
    friend class Tuner;      // tune: memory.high and cpu.weight moved by a feedback loop
    friend class PressureResponder; // pressure_response: limits held back, freezes, kills
    friend class AgentStarts;       // agent starts waiting for a slot
    friend class LeakDetector;      // recovery_procedures: leaked groups, processes and directories

    // Records the allocations the ledger changed since the last persist (state::StateStore::record),
    // and the snapshot when it is due. Throws StateError; the changes stay to be recorded.
    void persist();
    // Ends an allocation: final counters, recorded, group removed, holds dropped, remembered.
    nlohmann::json finish(const std::string& id, AllocationStatus final_status, const std::string& reason, bool refill_after = true);
    // Makes the group of an allocation that just started to hold capacity (reservation opened,
    // queued request admitted); an allocation whose group cannot be made is ended.
    void start_group(const std::string& id, const std::string& why);
    // Starts the reservations whose window is open and whose files are free; ends those whose
    // window passed while a file stayed held. True when any changed.
    bool start_due_reservations();
    // Capacity came back: first restore preempted allocations, then admit from the queue, then
    // start due reservations.
    void refill();
    void apply_preemption(const core::Preemption& plan, const AllocationRequest& for_request);
    void reschedule();
    // How its group came to be when watching starts: made by this request with nothing in it,
    // made with a process placed in it, or found at a restart.
    enum class GroupOrigin { made_empty, made_with_process, adopted };
    // Its usage, its wrapper, and its group's emptying (unless `group_events` is false: a restart
    // left some of its processes in another layout, so an empty group would not mean it ended).
    void watch(const Allocation& allocation, GroupOrigin origin, bool group_events = true);
    // What follows a process's arrival in the group, once it is recorded.
    void attached(const Allocation& allocation, const AttachTarget& target);
    // Writes the group's limits with its live adjustments; false (and the adjustment dropped)
    // when the backend refuses them.
    bool adjust(const std::string& id);

    core::Ledger& ledger_;
    cgroup::CgroupBackend& backend_;
    state::StateStore& store_;
    ClockFn clock_;
    events::Notifier& events_;
    ExclusiveFiles& files_;
    monitor::Monitoring* monitoring_ = nullptr;
    history::History* history_ = nullptr;
    LoopHooks hooks_;
    std::map<std::string, std::shared_ptr<const cgroup::Enforcement>> enforcement_; // each from enforcements_
    cgroup::EnforcementPool enforcements_;
    LiveAdjustments adjustments_; // balance's loans, tune's knobs; every group write goes through adjusted_limits
    EndedLog ended_;
    Completion completion_{*this};
    // Temporary directories: what each live allocation's got, and its newest measurement.
    struct TempDir {
        StorageEnforcement storage;
        DirUsage usage;
        std::optional<TimePoint> measured_at;
    };
    TempDirs* temp_dirs_ = nullptr;
    std::map<std::string, TempDir> tmp_;
    std::string storage_refused_; // why, while the pressure responder holds refuse_storage
    // Makes (or adopts) the directory of an allocation that now holds capacity; throws TempDirError.
    void make_temp_dir(const Allocation& allocation);
    // The temp root's room (free + what the directories use) into the ledger's capacity.
    void refresh_storage_capacity();
};

} // namespace resmgr::lifecycle
