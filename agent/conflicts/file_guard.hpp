// FileGuard: the kernel side of exclusive files. A fanotify group (FAN_CLASS_CONTENT) with
// FAN_OPEN_PERM inode marks on exactly the held files (never a mount or filesystem mark, so
// unrelated opens pay nothing) and one decision thread that answers each open from the hold
// table (decide() in decision.hpp). A second, notification-only group watches the held files'
// directories and the files themselves, so a rename-over, unlink or truncate(2), which raise no
// permission event, is seen after the fact and the file now at the path is marked again.
//
// The rules that keep it from hanging the machine:
// - the decision thread reads only /proc (served by the kernel from the stopped opener), never
//   the disk, D-Bus or the log; it answers first and reports after, through report_fd();
// - the daemon's own opens are allowed without a look-up;
// - a watchdog answers an event the decision thread has held past `decision_deadline` with the
//   fallback answer (allow by default);
// - every event fd is answered and closed: queued opens when their holder lets go, their
//   timeout passes or their opener dies (a pidfd per queued opener, polled by the decision
//   thread), everything at shutdown; if the daemon dies, the kernel allows what was pending, and
//   the marks come back from state at the next start;
// - queued openers are capped per uid and in all (GuardPolicy::max_queued_*): past a cap an
//   opener is denied at once, so no user can make the daemon run out of fds.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf/cgroup_migrations.hpp"
#include "bpf/guard_lsm.hpp"
#include "conflicts/decision.hpp"
#include "conflicts/open_mode.hpp"

namespace resmgr::conflicts {

struct GuardError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// What the guard saw, delivered after the opener was answered.
struct GuardReport {
    enum class Kind {
        denied,          // a write open from outside the holder failed with EPERM
        queued,          // ... is waiting for the holder (queue_and_serialize)
        granted,         // a queued open went ahead after the holder let go
        timed_out,       // a queued open waited the whole timeout and was denied
        advisory,        // a conflicting open was allowed because enforcement is advisory
        stalled,         // the decision thread missed its deadline; the watchdog answered
        replaced,        // the held path now names another inode (rename-over); re-marked
        removed,         // the held path was unlinked or renamed away
        modified,        // the held file was written by a process outside the holder (truncate(2), an old fd)
        rename_refused,  // BPF LSM: a rename of or over the held file from outside was refused
        unlink_refused,  // BPF LSM: an unlink of the held file from outside was refused
        truncate_refused, // BPF LSM: a truncate(2) of the held file from outside was refused
        overflow,        // the kernel's event queue overflowed: some notifications were lost
    };
    Kind kind = Kind::denied;
    std::string path;
    std::string allocation_id;
    std::string workflow_id;
    Opener opener;
    std::string reason;
    std::chrono::system_clock::time_point at; // the first time
    long count = 1; // the same opener met the same answer on the same file this many times in one batch
};
std::string_view to_string(GuardReport::Kind kind);

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

    // Readable (an eventfd) when reports are waiting; take_reports() drains them.
    int report_fd() const { return report_event_fd_; }
    std::vector<GuardReport> take_reports();
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

    static Opener describe_from_proc(pid_t tid);

private:
    struct Pending {
        int fd;
        int pidfd; // readable once the opener has died; -1 when the kernel gave none
        std::uint32_t uid; // the opener's real uid, for the per-user cap
        std::uint64_t id;  // names it in the pidfd epoll set (fd numbers are reused)
        Opener opener;
        std::chrono::steady_clock::time_point deadline;
        std::chrono::system_clock::time_point since; // for `resmgr why` and `status conflicts`
    };
    struct Entry {
        Hold hold;
        std::optional<FileKey> key;
        int path_fd = -1; // O_PATH fd of the marked inode: marks are added and removed through it
        std::string dir;
        std::deque<Pending> queue;
    };

    void decision_loop();
    void watchdog_loop();
    void handle_permission_event(int fd, pid_t tid);
    void answer(int fd, bool allow);
    // Answers without counting (the opener is gone: the kernel frees the event once answered).
    void respond(int fd, bool allow);
    // Queues a permission event whose decision was `queue`, or denies it at once when its opener
    // is gone or over a cap.
    void enqueue(int fd, pid_t tid, const FileKey& key, const GuardPolicy& policy, GuardReport r);
    // Under mutex_: a Pending leaves a queue (caps counted down).
    void dequeued_locked(const Pending& pending);
    // Answers a Pending that left its queue and closes its fds.
    void close_pending(const Pending& pending, bool allow);
    // The openers whose pidfds became readable: answered and forgotten.
    void reap_dead_openers();
    // Queues a report for the loop. `batched` (the decision thread's own answers): the loop is
    // told at most once per kReportBatch, and a repeat of a waiting report only counts up, so a
    // retry loop hammering a held file costs neither the opener nor the loop an event per open.
    void report(GuardReport report, bool batched = false);
    // A report like `r` (same kind, file, holder, opener) still waits for the loop: count it there.
    bool count_if_waiting(const GuardReport& r);
    bool count_if_waiting_locked(const GuardReport& r);
    // Tells the loop about batched reports whose time has come; otherwise when to look again.
    std::optional<std::chrono::steady_clock::time_point> flush_reports();
    // Under mutex_: (re)mark what stands at entry.hold.path now; false when nothing does.
    bool mark_locked(Entry& entry);
    void unmark_locked(Entry& entry);
    void watch_dir_locked(const std::string& dir);
    void unwatch_dir_locked(const std::string& dir);
    // Answers (outside the lock) a list of queued openers; allow or deny.
    void answer_all(std::vector<Pending> pending, bool allow, GuardReport::Kind kind, const Hold& hold);
    std::optional<std::chrono::steady_clock::time_point> expire_queued();
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
    int wake_fd_ = -1;          // eventfd: wakes the decision thread
    int report_event_fd_ = -1;  // eventfd: tells the loop reports are waiting
    int pidfd_epoll_ = -1;      // the queued openers' pidfds

    mutable std::mutex mutex_; // holds, policy, queues; never held across I/O that can block
    GuardPolicy policy_;
    std::map<std::string, Entry> entries_; // by path
    std::map<FileKey, std::string> by_key_;
    std::map<std::string, int> watched_dirs_; // directory -> holds in it
    std::map<std::uint32_t, size_t> queued_by_uid_;
    size_t queued_now_ = 0;
    std::uint64_t next_pending_id_ = 0;
    // A cap is reported once, then again only after its queue has emptied.
    std::set<std::uint32_t> cap_reported_uids_;
    bool total_cap_reported_ = false;

    std::mutex report_mutex_;
    std::vector<GuardReport> reports_;
    std::chrono::steady_clock::time_point last_report_signal_{};
    bool report_signal_due_ = false; // batched reports wait for the loop to be told

    // The event the decision thread is working on, for the watchdog.
    std::mutex inflight_mutex_;
    int inflight_fd_ = -1;
    bool inflight_answered_ = false;
    std::chrono::steady_clock::time_point inflight_since_;

    std::atomic<bool> stopping_{false};
    std::mutex stop_mutex_;
    std::condition_variable stop_cv_;
    std::atomic<std::uint64_t> events_{0}, allowed_{0}, denied_{0}, queued_{0}, granted_{0}, timed_out_{0}, stalled_{0},
        own_opens_{0}, overflows_{0}, openers_gone_{0}, queue_full_{0};
    std::thread decision_thread_;
    std::thread watchdog_thread_;
};

} // namespace resmgr::conflicts
