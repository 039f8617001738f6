#include "conflicts/file_guard.hpp"
#include "conflicts/file_guard_detail.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/openat2.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>

#include "conflicts/open_mode.hpp"
#include "monitor/proc.hpp"
#include "resmgr/model.hpp"

#include <spdlog/spdlog.h>

namespace resmgr::conflicts {
namespace detail {

// How long the decision thread's reports may wait before the loop is told: short next to what a
// person reading the journal notices, long next to one open (~60 us) in a retry loop.
constexpr auto kReportBatch = std::chrono::milliseconds(10);

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

void signal_eventfd(int fd) {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
}

void drain_eventfd(int fd) {
    std::uint64_t count = 0;
    [[maybe_unused]] ssize_t n = ::read(fd, &count, sizeof count);
}

// An O_PATH fd of what stands at `path`, refusing symbolic links anywhere in it: held paths are
// canonical at admission, so a link there now was put in by someone, and following it would mark
// a file the holder was never allowed to hold.
int open_held_path(const std::string& path) {
    open_how how{};
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS;
    return static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof how));
}

// The path fanotify_mark resolves to exactly the inode behind an O_PATH fd, even after a rename.
std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

std::string read_proc_line(const std::string& path) {
    char buffer[4096];
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    ::close(fd);
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
}

// A pidfd for the opening thread (PIDFD_THREAD, Linux 6.9), else for its process when the thread
// leads it; -1 with errno ESRCH when it is gone.
int open_pidfd(pid_t tid) {
    constexpr unsigned kPidfdThread = O_EXCL; // PIDFD_THREAD, absent from older headers
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, tid, kPidfdThread));
    if (fd < 0 && errno == EINVAL) fd = static_cast<int>(::syscall(SYS_pidfd_open, tid, 0));
    return fd;
}

// The real uid on the "Uid:" line of /proc/<tid>/status; UINT32_MAX when it cannot be read.
std::uint32_t proc_uid(pid_t tid) {
    const std::string status = read_proc_line("/proc/" + std::to_string(tid) + "/status");
    const auto at = status.find("\nUid:");
    if (at == std::string::npos) return UINT32_MAX;
    return static_cast<std::uint32_t>(std::strtoul(status.c_str() + at + 5, nullptr, 10));
}

bool own_thread(pid_t tid) {
    if (tid == ::getpid()) return true;
    char path[48];
    std::snprintf(path, sizeof path, "/proc/self/task/%d", static_cast<int>(tid));
    return ::access(path, F_OK) == 0;
}

// The name in a FAN_EVENT_INFO_TYPE_DFID_NAME record (the entry in the watched directory).
// Records with names are padded to 4 bytes only (the kernel's FANOTIFY_EVENT_ALIGN), so every
// header is copied out rather than read in place: the structs need 8-byte alignment.
std::string event_name(const char* event, const fanotify_event_metadata& meta) {
    const char* p = event + meta.metadata_len;
    const char* end = event + meta.event_len;
    while (p + sizeof(fanotify_event_info_header) <= end) {
        fanotify_event_info_header header{};
        std::memcpy(&header, p, sizeof header);
        if (header.len == 0 || p + header.len > end) break;
        const char* record_end = p + header.len;
        const char* handle = p + offsetof(fanotify_event_info_fid, handle);
        if (header.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME && handle + sizeof(file_handle) <= record_end) {
            file_handle fh{};
            std::memcpy(&fh, handle, sizeof fh);
            const char* name = handle + sizeof(file_handle) + fh.handle_bytes;
            if (name < record_end) return std::string(name, strnlen(name, static_cast<size_t>(record_end - name)));
        }
        p = record_end;
    }
    return {};
}

} // namespace detail

using namespace detail;

std::string_view to_string(GuardReport::Kind kind) {
    switch (kind) {
    case GuardReport::Kind::denied: return "denied";
    case GuardReport::Kind::queued: return "queued";
    case GuardReport::Kind::granted: return "granted";
    case GuardReport::Kind::timed_out: return "timed_out";
    case GuardReport::Kind::advisory: return "advisory";
    case GuardReport::Kind::stalled: return "stalled";
    case GuardReport::Kind::replaced: return "replaced";
    case GuardReport::Kind::removed: return "removed";
    case GuardReport::Kind::modified: return "modified";
    case GuardReport::Kind::rename_refused: return "rename_refused";
    case GuardReport::Kind::unlink_refused: return "unlink_refused";
    case GuardReport::Kind::truncate_refused: return "truncate_refused";
    case GuardReport::Kind::overflow: break;
    }
    return "overflow";
}

Opener FileGuard::describe_from_proc(pid_t tid) {
    Opener opener;
    opener.pid = tid;
    const std::string dir = "/proc/" + std::to_string(tid);
    opener.comm = read_proc_line(dir + "/comm");
    if (!opener.comm.empty() && opener.comm.back() == '\n') opener.comm.pop_back();
    try {
        opener.cgroup = monitor::parse_proc_cgroup_v2(read_proc_line(dir + "/cgroup"));
    } catch (const std::exception&) {
        opener.cgroup.clear(); // gone, or no v2 hierarchy: an outsider as far as the guard can tell
    }
    opener.mode = read_open_mode(tid);
    return opener;
}

FileGuard::FileGuard(GuardPolicy policy, Options options) : options_(std::move(options)), policy_(std::move(policy)) {
    // FAN_REPORT_TID: the event names the opening thread, whose /proc/<tid>/syscall shows the open.
    // The queue is unlimited so no permission event is lost; a held opener costs one event.
    perm_fd_ = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_TID | FAN_UNLIMITED_QUEUE,
                             O_RDONLY | O_LARGEFILE | O_CLOEXEC);
    if (perm_fd_ < 0)
        throw GuardError(errno_text("fanotify_init(FAN_CLASS_CONTENT) for open permission events") +
                         (errno == EPERM ? " (needs root: CAP_SYS_ADMIN)" : errno == EINVAL ? " (kernel without FANOTIFY_ACCESS_PERMISSIONS)" : ""));
    // File-handle events carry no fd; names tell which held path changed.
    notify_fd_ = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME, O_RDONLY | O_CLOEXEC);
    if (notify_fd_ < 0) {
        std::string why = errno_text("fanotify_init(FAN_REPORT_DFID_NAME) for rename and unlink detection");
        ::close(perm_fd_);
        throw GuardError(why);
    }
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    report_event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pidfd_epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (wake_fd_ < 0 || report_event_fd_ < 0 || pidfd_epoll_ < 0) {
        std::string why = errno_text("eventfd or epoll_create1");
        for (int fd : {perm_fd_, notify_fd_, wake_fd_, report_event_fd_, pidfd_epoll_})
            if (fd >= 0) ::close(fd);
        throw GuardError(why);
    }
    if (options_.bpf_lsm) {
        auto loaded = bpf::GuardLsm::load(::getpid());
        lsm_ = std::move(loaded.lsm);
        lsm_status_ = lsm_ ? "enforcing (file_open, rename, unlink, truncate)" : "not loaded: " + loaded.error;
    } else {
        lsm_status_ = "disabled";
    }
    if (options_.bpf_migrations && !options_.describe_opener) {
        auto loaded = bpf::CgroupMigrations::load();
        migrations_ = std::move(loaded.counter);
        migrations_status_ = migrations_ ? "counted (an outsider's cgroup is read again only after a migration)" : "not loaded: " + loaded.error;
    } else {
        migrations_status_ = "disabled";
    }
    decision_thread_ = std::thread([this] { decision_loop(); });
    watchdog_thread_ = std::thread([this] { watchdog_loop(); });
}

FileGuard::~FileGuard() {
    {
        std::lock_guard lock(stop_mutex_);
        stopping_ = true;
    }
    stop_cv_.notify_all();
    signal_eventfd(wake_fd_);
    if (decision_thread_.joinable()) decision_thread_.join();
    if (watchdog_thread_.joinable()) watchdog_thread_.join();
    std::vector<Pending> pending;
    {
        std::lock_guard lock(mutex_);
        for (auto& [path, entry] : entries_) {
            for (auto& p : entry.queue) pending.push_back(std::move(p));
            entry.queue.clear();
            if (entry.path_fd >= 0) ::close(entry.path_fd);
        }
    }
    for (auto& p : pending) close_pending(p, true);
    // Closing the group allows whatever the kernel still had queued for it.
    for (int fd : {perm_fd_, notify_fd_, wake_fd_, report_event_fd_, pidfd_epoll_}) ::close(fd);
}

void FileGuard::respond(int fd, bool allow) {
    fanotify_response response{fd, static_cast<__u32>(allow ? FAN_ALLOW : FAN_DENY)};
    [[maybe_unused]] ssize_t n = ::write(perm_fd_, &response, sizeof response);
}

void FileGuard::answer(int fd, bool allow) {
    respond(fd, allow);
    (allow ? allowed_ : denied_)++;
}

void FileGuard::close_pending(const Pending& pending, bool allow) {
    answer(pending.fd, allow);
    ::close(pending.fd);
    if (pending.pidfd >= 0) ::close(pending.pidfd); // and out of the epoll set with it
}

void FileGuard::dequeued_locked(const Pending& pending) {
    queued_now_--;
    if (--queued_by_uid_[pending.uid] == 0) {
        queued_by_uid_.erase(pending.uid);
        cap_reported_uids_.erase(pending.uid);
    }
    if (queued_now_ == 0) total_cap_reported_ = false;
}

bool FileGuard::count_if_waiting_locked(const GuardReport& r) {
    auto same = std::find_if(reports_.begin(), reports_.end(), [&](const GuardReport& q) {
        return q.kind == r.kind && q.path == r.path && q.allocation_id == r.allocation_id && q.opener.pid == r.opener.pid &&
               q.opener.cgroup == r.opener.cgroup;
    });
    if (same == reports_.end()) return false;
    same->count += r.count; // the loop has been or will be told
    return true;
}

bool FileGuard::count_if_waiting(const GuardReport& r) {
    std::lock_guard lock(report_mutex_);
    return count_if_waiting_locked(r);
}

void FileGuard::report(GuardReport r, bool batched) {
    r.at = std::chrono::system_clock::now();
    std::lock_guard lock(report_mutex_);
    if (count_if_waiting_locked(r)) return;
    reports_.push_back(std::move(r));
    const auto now = SteadyClock::now();
    if (batched && now - last_report_signal_ < kReportBatch) {
        report_signal_due_ = true; // the decision thread (the caller) flushes it from its loop
        return;
    }
    last_report_signal_ = now;
    report_signal_due_ = false;
    signal_eventfd(report_event_fd_);
}

std::optional<SteadyClock::time_point> FileGuard::flush_reports() {
    std::lock_guard lock(report_mutex_);
    if (!report_signal_due_) return std::nullopt;
    const auto due = last_report_signal_ + kReportBatch;
    if (SteadyClock::now() < due) return due;
    last_report_signal_ = SteadyClock::now();
    report_signal_due_ = false;
    signal_eventfd(report_event_fd_);
    return std::nullopt;
}

std::vector<GuardReport> FileGuard::take_reports() {
    drain_eventfd(report_event_fd_);
    std::lock_guard lock(report_mutex_);
    return std::exchange(reports_, {});
}

void FileGuard::decision_loop() {
    // fanotify_event_metadata needs its natural alignment.
    alignas(fanotify_event_metadata) char buffer[8192];
    pollfd fds[3] = {{perm_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}, {pidfd_epoll_, POLLIN, 0}};
    auto last_event = SteadyClock::now();
    while (!stopping_) {
        auto next_deadline = expire_queued();
        if (auto flush_at = flush_reports(); flush_at && (!next_deadline || *flush_at < *next_deadline)) next_deadline = flush_at;
        int timeout = -1;
        if (next_deadline) {
            auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(*next_deadline - SteadyClock::now()).count();
            timeout = static_cast<int>(std::clamp<long long>(wait + 1, 0, 60'000));
        }
        // Idle for a second: let go of the cached /proc fds of openers that may be gone.
        if (proc_.cached() > 0 && (timeout < 0 || timeout > 1000)) timeout = 1000;
        int ready = ::poll(fds, 3, timeout);
        if (ready < 0 && errno != EINTR) break;
        if (ready == 0 && SteadyClock::now() - last_event >= std::chrono::seconds(1)) proc_.clear();
        if (fds[1].revents & POLLIN) drain_eventfd(wake_fd_);
        if (fds[2].revents & POLLIN) reap_dead_openers();
        if (!(fds[0].revents & POLLIN)) continue;
        last_event = SteadyClock::now();
        // One read per wakeup, not a loop until EAGAIN: the opener waits on this thread, and an
        // extra read(2) per event is measurable next to the ~50 us round trip. poll(2) is level-
        // triggered, so what this read leaves is seen at once.
        ssize_t n = ::read(perm_fd_, buffer, sizeof buffer);
        if (n <= 0) continue;
        for (auto* event = reinterpret_cast<fanotify_event_metadata*>(buffer); FAN_EVENT_OK(event, n); event = FAN_EVENT_NEXT(event, n)) {
            if (event->vers != FANOTIFY_METADATA_VERSION) continue;
            if (event->mask & FAN_Q_OVERFLOW) {
                overflows_++;
                report({GuardReport::Kind::overflow, {}, {}, {}, {}, "the permission event queue overflowed", {}});
                continue;
            }
            if (event->fd >= 0) handle_permission_event(event->fd, event->pid);
        }
    }
}

void FileGuard::handle_permission_event(int fd, pid_t tid) {
    events_++;
    {
        std::lock_guard lock(inflight_mutex_);
        inflight_fd_ = fd;
        inflight_answered_ = false;
        inflight_since_ = SteadyClock::now();
    }
    // Answers the in-flight event unless the watchdog already did; the fd is closed either way.
    auto finish = [&](bool allow) {
        {
            std::lock_guard lock(inflight_mutex_);
            if (!inflight_answered_) answer(fd, allow);
            inflight_fd_ = -1;
        }
        ::close(fd);
    };
    // A read the policy allows needs neither the file nor the opener's name: answered first,
    // since every held file is one the reads exception covers alike.
    const OpenMode mode = options_.describe_opener ? OpenMode::unknown : proc_.open_mode(tid);
    bool allow_reads = false;
    {
        std::lock_guard lock(mutex_);
        allow_reads = policy_.allow_reads;
    }
    if (allow_reads && mode == OpenMode::read) {
        finish(true);
        return;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        finish(true);
        return;
    }
    const FileKey key{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
    // The daemon's own opens never wait on the daemon.
    if (own_thread(tid)) {
        own_opens_++;
        finish(true);
        return;
    }
    Hold hold;
    GuardPolicy policy;
    bool held = false; // not: released meanwhile, or an inode we stopped holding
    {
        std::lock_guard lock(mutex_);
        auto it = by_key_.find(key);
        held = it != by_key_.end();
        if (held) {
            hold = entries_.at(it->second).hold;
            policy = policy_;
        }
    }
    if (!held) {
        finish(true);
        return;
    }
    Opener opener;
    if (options_.describe_opener) {
        opener = options_.describe_opener(tid);
    } else {
        // /proc/<tid>/cgroup costs ~3 us per open on a hybrid host, so what was read for this
        // thread (still the same thread: the mode was just read through its cached fds) is
        // trusted when (a) it was inside the holder's group: if it has moved out since, that
        // grants nothing new, as while inside it could have opened the file and kept the fd; or
        // (b) no task anywhere has moved between cgroups since (the eBPF migration count). Else
        // it is read afresh, so a process that joins the group is let in at once. The count is
        // taken before the read: a move during the read shows as a newer count next time.
        const std::optional<std::uint64_t> moved = migrations_ ? std::optional(migrations_->count()) : std::nullopt;
        const TaskProcReader::CgroupSeen* seen = proc_.last_cgroup(tid);
        const bool trusted = seen && !seen->cgroup.empty() && (in_subtree(seen->cgroup, hold.owner_cgroup) || (moved && seen->migrations == *moved));
        opener = {tid, {}, trusted ? seen->cgroup : proc_.cgroup(tid, moved.value_or(0)), mode};
        if (!policy.exempt_comms.empty()) opener.comm = proc_.comm(tid);
    }
    Decision decision = decide(hold, opener, policy);
    if (decision.verdict == Verdict::queue && opener.comm.empty()) opener.comm = proc_.comm(tid); // kept for the queue's reports
    GuardReport r{decision.verdict == Verdict::allow ? GuardReport::Kind::advisory : GuardReport::Kind::denied,
                  hold.path, hold.allocation_id, hold.workflow_id, opener, decision.reason, {}};
    if (decision.verdict == Verdict::queue) {
        bool answered_by_watchdog = false;
        {
            std::lock_guard lock(inflight_mutex_);
            answered_by_watchdog = inflight_answered_;
            inflight_fd_ = -1;
        }
        if (answered_by_watchdog) ::close(fd);
        else enqueue(fd, tid, key, policy, std::move(r));
        return;
    }
    const bool reportable = decision.verdict == Verdict::deny || decision.conflict;
    // A repeat of a report still waiting for the loop only counts up; a new one gets the command
    // name before the answer, since a refused opener may exit right after it.
    const bool new_report = reportable && !count_if_waiting(r);
    if (new_report && r.opener.comm.empty()) r.opener.comm = proc_.comm(tid);
    finish(decision.verdict == Verdict::allow);
    if (new_report) report(std::move(r), true);
}

void FileGuard::enqueue(int fd, pid_t tid, const FileKey& key, const GuardPolicy& policy, GuardReport r) {
    // The pidfd first: it pins the opener, so the uid read next is its own.
    const int pidfd = open_pidfd(tid);
    if (pidfd < 0 && errno == ESRCH) { // died while we looked
        respond(fd, false);
        ::close(fd);
        openers_gone_++;
        return;
    }
    const std::uint32_t uid = proc_uid(tid);
    enum { queued, released, over_user, over_total } outcome = queued;
    bool first_refusal = false;
    {
        std::lock_guard lock(mutex_);
        auto it = by_key_.find(key);
        const auto of_uid = queued_by_uid_.find(uid);
        if (it == by_key_.end()) outcome = released; // the holder let go while we looked
        else if (queued_now_ >= policy.max_queued_total) outcome = over_total;
        else if (of_uid != queued_by_uid_.end() && of_uid->second >= policy.max_queued_per_user) outcome = over_user;
        if (outcome == over_total) first_refusal = !std::exchange(total_cap_reported_, true);
        if (outcome == over_user) first_refusal = cap_reported_uids_.insert(uid).second;
        if (outcome == queued) {
            Pending p{fd, pidfd, uid, next_pending_id_++, r.opener, SteadyClock::now() + policy.queue_timeout, std::chrono::system_clock::now()};
            epoll_event watch{};
            watch.events = EPOLLIN;
            watch.data.u64 = p.id;
            if (pidfd >= 0 && ::epoll_ctl(pidfd_epoll_, EPOLL_CTL_ADD, pidfd, &watch) != 0) {
                ::close(pidfd); // unwatched: the queue timeout still answers it
                p.pidfd = -1;
            }
            entries_.at(it->second).queue.push_back(std::move(p));
            queued_now_++;
            queued_by_uid_[uid]++;
        }
    }
    if (outcome == queued) {
        queued_++;
        r.kind = GuardReport::Kind::queued;
        report(std::move(r), true);
        return;
    }
    answer(fd, outcome == released);
    ::close(fd);
    if (pidfd >= 0) ::close(pidfd);
    if (outcome == released) return;
    queue_full_++;
    if (!first_refusal) return;
    r.kind = GuardReport::Kind::denied;
    r.reason = outcome == over_total ? "denied at once: " + std::to_string(policy.max_queued_total) +
                                           " openers already wait for held files (file_conflicts.queue_limits.total)"
                                     : "denied at once: " + std::to_string(policy.max_queued_per_user) + " openers of uid " +
                                           std::to_string(uid) + " already wait for held files (file_conflicts.queue_limits.per_user)";
    report(std::move(r), true);
}

void FileGuard::reap_dead_openers() {
    epoll_event ready[64];
    const int n = ::epoll_wait(pidfd_epoll_, ready, 64, 0);
    if (n <= 0) return;
    std::set<std::uint64_t> dead;
    for (int i = 0; i < n; ++i) dead.insert(ready[i].data.u64);
    std::vector<Pending> gone;
    {
        std::lock_guard lock(mutex_);
        for (auto& [path, entry] : entries_)
            for (auto it = entry.queue.begin(); it != entry.queue.end();) {
                if (!dead.count(it->id)) {
                    ++it;
                    continue;
                }
                dequeued_locked(*it);
                gone.push_back(std::move(*it));
                it = entry.queue.erase(it);
            }
    }
    for (const auto& p : gone) {
        respond(p.fd, false);
        ::close(p.fd);
        ::close(p.pidfd);
        openers_gone_++;
    }
}

void FileGuard::watchdog_loop() {
    const auto tick = std::max(options_.decision_deadline / 4, std::chrono::milliseconds(10));
    for (;;) {
        {
            std::unique_lock lock(stop_mutex_);
            if (stop_cv_.wait_for(lock, tick, [this] { return stopping_.load(); })) return;
        }
        bool stalled = false;
        {
            std::lock_guard lock(inflight_mutex_);
            if (inflight_fd_ >= 0 && !inflight_answered_ && SteadyClock::now() - inflight_since_ > options_.decision_deadline) {
                answer(inflight_fd_, options_.fallback_allow);
                inflight_answered_ = true;
                stalled = true;
            }
        }
        if (stalled) {
            stalled_++;
            report({GuardReport::Kind::stalled, {}, {}, {}, {},
                    std::string("the decision took longer than its deadline; answered ") + (options_.fallback_allow ? "allow" : "deny"), {}});
        }
    }
}

std::optional<SteadyClock::time_point> FileGuard::expire_queued() {
    std::vector<std::pair<Pending, Hold>> expired;
    std::optional<SteadyClock::time_point> next;
    const auto now = SteadyClock::now();
    {
        std::lock_guard lock(mutex_);
        for (auto& [path, entry] : entries_) {
            for (auto it = entry.queue.begin(); it != entry.queue.end();) {
                if (it->deadline <= now) {
                    dequeued_locked(*it);
                    expired.emplace_back(std::move(*it), entry.hold);
                    it = entry.queue.erase(it);
                } else {
                    if (!next || it->deadline < *next) next = it->deadline;
                    ++it;
                }
            }
        }
    }
    for (auto& [pending, hold] : expired) {
        close_pending(pending, false);
        timed_out_++;
        report({GuardReport::Kind::timed_out, hold.path, hold.allocation_id, hold.workflow_id, pending.opener,
                "waited the whole queue timeout for " + hold.allocation_id + "; denied", {}});
    }
    return next;
}

} // namespace resmgr::conflicts
