// agent/server owns the daemon's front door: Service turns one request (already attributed to
// a kernel-verified peer) into one envelope by driving the ledger, the backend and the state
// store; SocketServer carries lines between Unix-socket clients and Service on sd-event.
#pragma once

#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cgroup/backend.hpp"
#include "conflicts/file_access.hpp"
#include "conflicts/file_guard.hpp"
#include "conflicts/registry.hpp"
#include "core/ledger.hpp"
#include "events/event.hpp"
#include "monitor/proc.hpp"
#include "server/monitoring.hpp"
#include "resmgr/protocol.hpp"
#include "state/state_store.hpp"

namespace resmgr::server {

// What the Service asks of the event loop. Every hook may be left empty (unit tests drive
// on_timer / on_group_event / on_supervisor_exit by hand).
struct LoopHooks {
    // Call on_timer() at this time (nullopt: nothing is due).
    std::function<void(std::optional<TimePoint>)> schedule;
    // Call on_group_event(id) when the file `cgroup_events_path` changes; unwatch stops it.
    std::function<void(const std::string& id, const std::string& cgroup_events_path)> watch_group;
    std::function<void(const std::string& id)> unwatch_group;
    // Call on_supervisor_exit(id) when process `pid` exits (at once if it is already gone).
    std::function<void(const std::string& id, pid_t pid)> watch_supervisor;
};

// check-conflicts' ids: predictions, never recorded, so resolve-conflicts can tell them apart.
inline const std::string kPredictedPrefix = "pred_";

class Service {
public:
    using ClockFn = std::function<TimePoint()>;

    // `host_report` is the probe's JSON (agent/cgroup/probe), shown by `doctor`.
    Service(core::Ledger& ledger, cgroup::CgroupBackend& backend, state::StateStore& store, ClockFn clock,
            nlohmann::json host_report, nlohmann::json daemon_info);

    // Never throws: every failure becomes the seed's error envelope.
    nlohmann::json handle_line(std::string_view line, const Owner& peer);
    nlohmann::json handle(const Request& request, const Owner& peer);

    // At start: re-creates (adopts) the group of every stored allocation and removes groups the
    // backend holds that no allocation claims. Returns what it did, for the log.
    nlohmann::json reconcile();

    void set_hooks(LoopHooks hooks) { hooks_ = std::move(hooks); }
    // Who a process is (parent, uids), for attach permissions; /proc by default.
    using IdentifyFn = std::function<std::optional<monitor::ProcessIdentity>(long pid)>;
    void set_process_identity(IdentifyFn identify) { identify_ = std::move(identify); }
    // Who a uid is (name, groups), for priority_privileges; the user database by default.
    using LookupUserFn = std::function<core::UserIdentity(std::uint32_t uid)>;
    void set_user_lookup(LookupUserFn lookup) { lookup_user_ = std::move(lookup); }
    // How an exclusive file looks to its requester (conflicts::probe_path by default).
    void set_path_probe(conflicts::PathProbe probe) { probe_path_ = std::move(probe); }
    // Where transitions are reported (journald, alerts.jsonl); none by default.
    void set_event_sink(events::EventSink* sink) { events_ = sink; }
    // Sampling, thresholds, agents and the monitoring operations; without it those operations
    // answer UNSUPPORTED and agents are not tracked.
    void set_monitoring(Monitoring* monitoring) { monitoring_ = monitoring; }
    // The fanotify guard for exclusive files. Without one (`unavailable` says why) a file is still
    // exclusive at admission (a second allocation wanting it is refused or queued), not on open.
    void set_guard(conflicts::Guard* guard, std::string unavailable);
    // The guard answered opens or saw a held path change: conflict records and RESOURCE_CONFLICT.
    void on_guard_reports(std::vector<conflicts::GuardReport> reports);
    // One sampling pass (the loop calls it every monitoring_intervals.resource_check).
    void on_sample();
    void publish(events::Event event);
    // Durations: SIGTERM to expired groups, cgroup.kill once their grace period is over.
    void on_timer();
    // cgroup.events changed: a group that held processes and is now empty has completed.
    void on_group_event(const std::string& id);
    // The resmgr-run waiting on this allocation is gone without reporting.
    void on_supervisor_exit(const std::string& id);

    static constexpr size_t kRecentlyEnded = 256;
    static constexpr size_t kRecentEvents = 200;

private:
    SuccessBody allocate(const Request& request, const Owner& peer);
    SuccessBody release(const Request& request, const Owner& peer);
    SuccessBody reallocate(const Request& request, const Owner& peer);
    SuccessBody reserve(const Request& request, const Owner& peer);
    SuccessBody check_conflicts(const Request& request, const Owner& peer);
    SuccessBody resolve_conflicts(const Request& request, const Owner& peer);
    SuccessBody resolve_conflict(const std::string& id, std::string strategy, const Owner& peer); // without notifying
    SuccessBody prevent_conflicts(const Request& request, const Owner& peer);
    SuccessBody list_conflicts(const Request& request); // status conflicts
    SuccessBody why(const Request& request);            // who holds a file, and what an opener meets
    SuccessBody status(const Request& request);
    SuccessBody doctor();
    // PERMISSION_DENIED when `priority` is above what priority_privileges lets the peer ask for.
    void check_priority_privilege(const Priority& priority, const Owner& peer) const;
    bool may_use_any_priority(const Owner& peer) const;
    // Policy `limits`: RESOURCE_EXHAUSTED when the peer already holds as many of `status` as one
    // user may (live allocations, queued requests or reservations); files per allocation.
    void check_user_limit(const Owner& peer, AllocationStatus status, int counted_already = 0) const;
    void check_files_limit(const AllocationRequest& request) const;
    SuccessBody attach(const Request& request, const Owner& peer);
    SuccessBody detach(const Request& request, const Owner& peer);
    // A process to put into an allocation: `attach` params, or allocate's "attach" object.
    struct AttachTarget {
        long long pid = 0;
        std::string leaf;  // "main", or "agent-<name>"
        std::string agent; // empty unless an agent
    };
    // Parses and authorizes: the pid is the peer itself, or a child of the peer running as the
    // peer's user (resmgr-run has its forked child placed before the child execs the command).
    AttachTarget attach_target(const nlohmann::json& params, const Owner& peer) const;
    // What follows a process's arrival in the allocation's group, once it is recorded.
    void attached(const Allocation& allocation, const AttachTarget& target);
    SuccessBody recent_events(const Request& request);
    SuccessBody monitoring_operation(const Request& request);
    Monitoring& monitoring();

    nlohmann::json describe(const Allocation& allocation);
    void persist();
    // Ends an allocation: final counters, group removed, out of the ledger, remembered as ended.
    nlohmann::json finish(const std::string& id, AllocationStatus final_status, const std::string& reason, bool refill_after = true);
    void watch(const Allocation& allocation);
    void emit(events::EventType type, const std::string& message, const std::string& workflow, const std::string& allocation,
              nlohmann::json details = nlohmann::json::object());
    // Makes the group of an allocation that just started to hold capacity (reservation opened,
    // queued request admitted); an allocation whose group cannot be made is ended.
    void start_group(const std::string& id, const std::string& why);
    // Starts the reservations whose window is open and whose files are free; ends those whose
    // window passed while a file stayed held. True when any changed.
    bool start_due_reservations();
    // Capacity came back: first restore preempted allocations, then admit from the queue, then
    // start due reservations.
    void refill();
    // After a restart: frozen exactly when the ledger says paused (a crash may have split them).
    void sync_freezer(const Allocation& allocation);
    void apply_preemption(const core::Preemption& plan, const AllocationRequest& for_request);
    void reschedule();
    bool group_populated(const std::string& id);
    // An empty group: the wrapper's own allocation completes now, any other goes idle first.
    void completed_if_empty(const std::string& id);
    void complete(const std::string& id, const std::string& reason);
    // Reads the group's memory.events before it goes, so a wrapper can tell an OOM kill.
    nlohmann::json final_counters(const std::string& id);

    // Exclusive files (service_conflicts.cpp).
    // Relative paths against the requester's working directory, then canonical as the requester
    // resolves them; only regular files the requester may hold (conflicts::holdable) pass.
    void normalize_exclusive_files(AllocationRequest& request, const Owner& peer) const;
    void hold_files(const Allocation& allocation);
    // Drops the allocation's holds (or one file) and resolves the conflicts over them.
    void release_files(const std::string& id, const std::optional<std::string>& file, const std::string& resolution);
    // The allocation's group as /proc/PID/cgroup shows it (empty: processes are not grouped).
    std::string owner_cgroup(const std::string& id);
    std::optional<std::string> allocation_of_cgroup(const std::string& cgroup);
    // An allocate refused because a file is held: recorded like the guard's conflicts.
    std::string record_admission_conflict(const AllocationRequest& request, const ApiError& error, const Owner& peer);
    void load_conflicts();
    void save_conflicts();
    std::filesystem::path conflicts_path() const;
    std::filesystem::path file_policy_path() const;

    core::Ledger& ledger_;
    cgroup::CgroupBackend& backend_;
    state::StateStore& store_;
    ClockFn clock_;
    nlohmann::json host_report_;
    nlohmann::json daemon_info_;
    std::map<std::string, cgroup::Enforcement> enforcement_;
    LoopHooks hooks_;
    IdentifyFn identify_;
    LookupUserFn lookup_user_;
    conflicts::PathProbe probe_path_;
    events::EventSink* events_ = nullptr;
    Monitoring* monitoring_ = nullptr;
    conflicts::Guard* guard_ = nullptr;
    std::string guard_unavailable_ = "no file guard is running";
    conflicts::ConflictRegistry conflicts_;
    bool conflicts_dirty_ = false;
    core::Policy::FileConflicts file_policy_; // the policy's, or what prevent-conflicts set since
    // Final records of ended allocations, newest last, so a wrapper's late release still gets them.
    std::vector<std::pair<std::string, nlohmann::json>> ended_;
    // The newest events, for `resmgr events` without --follow.
    std::deque<events::Event> recent_events_;
};

} // namespace resmgr::server
