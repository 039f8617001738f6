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
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    try {
        if (notify_fd_ < 0) throw GuardError(errno_text("fanotify_init(FAN_REPORT_DFID_NAME) for rename and unlink detection"));
        if (wake_fd_ < 0) throw GuardError(errno_text("eventfd for the decision thread"));
        waiting_ = std::make_unique<WaitingOpeners>([this](int fd, bool allow, bool counted) { answer(fd, allow, counted); }, reports_);
    } catch (...) {
        for (int fd : {perm_fd_, notify_fd_, wake_fd_})
            if (fd >= 0) ::close(fd);
        throw;
    }
    watched_dirs_ = std::make_unique<DirectoryWatches>(notify_fd_);
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
    watchdog_ = std::make_unique<DecisionWatchdog>(
        options_.decision_deadline, options_.fallback_allow, [this](int fd, bool allow) { answer(fd, allow); },
        [this] {
            stalled_++;
            reports_.push({GuardReport::Kind::stalled, {}, {}, {}, {},
                           std::string("the decision took longer than its deadline; answered ") + (options_.fallback_allow ? "allow" : "deny"), {}});
        });
    decision_thread_ = std::thread([this] { decision_loop(); });
}

FileGuard::~FileGuard() {
    stopping_ = true;
    signal_eventfd(wake_fd_);
    if (decision_thread_.joinable()) decision_thread_.join();
    watchdog_.reset();
    waiting_.reset(); // answers every waiting opener: allow
    {
        std::lock_guard lock(mutex_);
        for (auto& [path, entry] : entries_)
            if (entry.path_fd >= 0) ::close(entry.path_fd);
    }
    // Closing the group allows whatever the kernel still had queued for it.
    for (int fd : {perm_fd_, notify_fd_, wake_fd_}) ::close(fd);
}

void FileGuard::answer(int fd, bool allow, bool counted) {
    fanotify_response response{fd, static_cast<__u32>(allow ? FAN_ALLOW : FAN_DENY)};
    [[maybe_unused]] ssize_t n = ::write(perm_fd_, &response, sizeof response);
    if (counted) (allow ? allowed_ : denied_)++;
}

void FileGuard::decision_loop() {
    // fanotify_event_metadata needs its natural alignment.
    alignas(fanotify_event_metadata) char buffer[8192];
    pollfd fds[3] = {{perm_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}, {waiting_->dead_fd(), POLLIN, 0}};
    auto last_event = SteadyClock::now();
    while (!stopping_) {
        auto next_deadline = waiting_->expire();
        if (auto flush_at = reports_.flush(); flush_at && (!next_deadline || *flush_at < *next_deadline)) next_deadline = flush_at;
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
        if (fds[2].revents & POLLIN) waiting_->reap_dead();
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
                reports_.push({GuardReport::Kind::overflow, {}, {}, {}, {}, "the permission event queue overflowed", {}});
                continue;
            }
            if (event->fd >= 0) handle_permission_event(event->fd, event->pid);
        }
    }
}

void FileGuard::handle_permission_event(int fd, pid_t tid) {
    events_++;
    watchdog_->begin(fd);
    // Answers the in-flight event unless the watchdog already did; the fd is closed either way.
    auto finish = [&](bool allow) {
        watchdog_->finish(allow);
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
        if (watchdog_->hand_over()) waiting_->enqueue(fd, tid, std::move(r), policy);
        else ::close(fd); // the watchdog answered it meanwhile
        return;
    }
    const bool reportable = decision.verdict == Verdict::deny || decision.conflict;
    // A repeat of a report still waiting for the loop only counts up; a new one gets the command
    // name before the answer, since a refused opener may exit right after it.
    const bool new_report = reportable && !reports_.count_if_waiting(r);
    if (new_report && r.opener.comm.empty()) r.opener.comm = proc_.comm(tid);
    finish(decision.verdict == Verdict::allow);
    if (new_report) reports_.push(std::move(r), true);
}

} // namespace resmgr::conflicts
