// FileGuard: the kernel side of exclusive files. A fanotify group (FAN_CLASS_CONTENT) with
// FAN_OPEN_PERM inode marks on exactly the held files (never a mount or filesystem mark, so
// unrelated opens pay nothing) and one decision thread that answers each open from the hold
// table (decide() in decision.hpp). A second, notification-only group watches the held files'
// directories and the files themselves, so a rename-over, unlink or truncate(2), which raise no
// permission event, is seen after the fact and the file now at the path is marked again.
//
// The rules that keep it from hanging the machine:
// - the decision thread reads only /proc (served by the kernel from the stopped opener), never
//   the disk, D-Bus or the log; it answers first and reports after, through reports() (guard_reports.hpp);
// - the daemon's own opens are allowed without a look-up;
// - a watchdog answers an event the decision thread has held past `decision_deadline` with the
//   fallback answer (allow by default);
// - every event fd is answered and closed: queued opens when their holder lets go, their
//   timeout passes or their opener dies (a pidfd per queued opener, polled by the decision
//   thread), everything at shutdown; if the daemon dies, the kernel allows what was pending, and
//   the marks come back from state at the next start;
// - queued openers are capped per uid and in all (GuardPolicy::max_queued_*): past a cap an
//   opener is denied at once, so no user can make the daemon run out of fds.
//
// Its parts: ReportQueue (guard_reports.hpp) carries what it saw to the loop; DecisionWatchdog
// answers a stalled decision; WaitingOpeners keeps the queued openers, their caps and pidfds;
// decision.hpp decides. FileGuard owns the fanotify groups, the marks and the hold table.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf/cgroup_migrations.hpp"
#include "bpf/guard_lsm.hpp"
#include "conflicts/decision.hpp"
#include "conflicts/decision_watchdog.hpp"
#include "conflicts/file_guard_detail.hpp"
#include "conflicts/guard_reports.hpp"
#include "conflicts/open_mode.hpp"
#include "conflicts/waiting_openers.hpp"

namespace resmgr::conflicts {

// What the daemon asks of a guard (FileGuard on a kernel with fanotify; a fake in unit tests).
class Guard {
public:
    virtual ~Guard() = default;
    virtual void hold(const Hold& hold) = 0;
    virtual void release(const std::string& allocation_id, const std::optional<std::string>& path = std::nullopt) = 0;
    virtual bool set_strategy(const std::string& path, Strategy strategy) = 0;
    virtual void set_policy(GuardPolicy policy) = 0;
    virtual GuardPolicy policy() const = 0;
    virtual nlohmann::json status() const = 0;
};

class FileGuard : public Guard {
public:
    struct Options {
        std::chrono::milliseconds decision_deadline{2000};
        bool fallback_allow = true; // the watchdog's answer
        // Who is opening (comm, cgroup, mode). Unset: read from /proc through cached fds, the
        // command name only when a report or a command exception needs it. Tests inject a slow one.
        std::function<Opener(pid_t tid)> describe_opener;
        // Where cgroup v2 is mounted, to find a holder's cgroup id for the BPF LSM programs.
        std::string cgroup_mount = "/sys/fs/cgroup";
        // Also enforce through BPF LSM programs where the kernel runs them (status() says).
        bool bpf_lsm = true;
        // Count cgroup migrations with eBPF, so a refused outsider's cgroup is read again only
        // after some task has moved (status() says whether it loaded).
        bool bpf_migrations = true;
    };

    // Opens both fanotify groups and starts the decision and watchdog threads. Throws GuardError
    // saying why the kernel refused (not root, no fanotify permission events, ...).
    FileGuard(GuardPolicy policy, Options options);
    // Answers every pending open (allow), stops the threads, closes every fd.
    ~FileGuard() override;
    FileGuard(const FileGuard&) = delete;
    FileGuard& operator=(const FileGuard&) = delete;

    // Marks the file at hold.path (an absolute, canonical path; never through a symbolic link,
    // so one put there later marks nothing). A path that does not exist yet is held by
    // name: its directory is watched and the file is marked when it appears. Throws GuardError
    // when neither the file nor its directory can be watched.
    void hold(const Hold& hold) override;
    // Drops every hold of the allocation (or one file of it); its queued openers go ahead, FIFO.
    void release(const std::string& allocation_id, const std::optional<std::string>& path = std::nullopt) override;
    // Changes a hold's strategy (resolve-conflicts queue_and_serialize). False if not held.
    bool set_strategy(const std::string& path, Strategy strategy) override;

    void set_policy(GuardPolicy policy) override;
    GuardPolicy policy() const override;

    // What the guard saw, for the loop: poll reports().fd(), drain with reports().take().
    ReportQueue& reports() { return reports_; }
    // Readable when a watched directory or file changed; on_watch_ready() handles it (it stats
    // paths, so it runs on the daemon's loop, never on the decision thread).
    int watch_fd() const { return notify_fd_; }
    void on_watch_ready();
    // Readable when the BPF LSM programs refused something (-1 without them); on_lsm_ready() reports it.
    int lsm_fd() const;
    void on_lsm_ready();

    nlohmann::json status() const override; // holds (with their waiting openers), counters, options
    std::vector<Hold> holds() const;
    // Open file descriptors the guard owns besides its fixed ones (event fds of queued opens,
    // O_PATH fds of held inodes): for the leak checks of the tests.
    size_t open_fds() const;

private:
    struct Entry {
        Hold hold;
        std::optional<FileKey> key;
        int path_fd = -1; // O_PATH fd of the marked inode: marks are added and removed through it
        std::string dir;
    };

    void decision_loop();
    void handle_permission_event(int fd, pid_t tid);
    // Writes the kernel's answer; `counted` false for an opener that is gone (the kernel frees
    // the event once answered).
    void answer(int fd, bool allow, bool counted = true);
    // Under mutex_: (re)mark what stands at entry.hold.path now; false when nothing does.
    bool mark_locked(Entry& entry);
    void unmark_locked(Entry& entry);
    void recheck_path(Entry& entry, const Opener& actor, std::vector<GuardReport>& out);
    // Under mutex_: the entry's inode in the BPF LSM map, with what the policy refuses.
    void lsm_sync_locked(const Entry& entry);

    Options options_;
    std::unique_ptr<bpf::GuardLsm> lsm_;
    std::string lsm_status_;
    std::unique_ptr<bpf::CgroupMigrations> migrations_;
    std::string migrations_status_;
    TaskProcReader proc_; // the decision thread's alone
    int perm_fd_ = -1;
    int notify_fd_ = -1;
    int wake_fd_ = -1; // eventfd: wakes the decision thread
    ReportQueue reports_;

    mutable std::mutex mutex_; // holds, policy, marks; never held across I/O that can block
    GuardPolicy policy_;
    std::map<std::string, Entry> entries_; // by path
    std::map<FileKey, std::string> by_key_;
    std::unique_ptr<detail::DirectoryWatches> watched_dirs_;
    std::unique_ptr<WaitingOpeners> waiting_; // answers through perm_fd_: gone before it closes

    std::atomic<bool> stopping_{false};
    std::atomic<std::uint64_t> events_{0}, allowed_{0}, denied_{0}, stalled_{0}, own_opens_{0}, overflows_{0};
    std::thread decision_thread_;
    std::unique_ptr<DecisionWatchdog> watchdog_; // the event the decision thread is working on
};

} // namespace resmgr::conflicts
