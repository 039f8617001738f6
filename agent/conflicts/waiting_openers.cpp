#include "conflicts/waiting_openers.hpp"

#include <sys/epoll.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "conflicts/file_guard_detail.hpp"
#include "resmgr/model.hpp"

namespace resmgr::conflicts {
namespace {

using detail::SteadyClock;

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
    const std::string status = detail::read_proc_line("/proc/" + std::to_string(tid) + "/status");
    const auto at = status.find("\nUid:");
    if (at == std::string::npos) return UINT32_MAX;
    return static_cast<std::uint32_t>(std::strtoul(status.c_str() + at + 5, nullptr, 10));
}

} // namespace

WaitingOpeners::WaitingOpeners(Answer answer, ReportQueue& reports)
    : answer_(std::move(answer)), reports_(reports), pidfd_epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (pidfd_epoll_ < 0) throw GuardError(detail::errno_text("epoll_create1 for the waiting openers' pidfds"));
}

WaitingOpeners::~WaitingOpeners() {
    for (auto& [path, queue] : queues_)
        for (const auto& p : queue.pending) finish(p, true, queue.hold, GuardReport::Kind::granted, {});
    ::close(pidfd_epoll_);
}

void WaitingOpeners::finish(const Pending& pending, bool allow, const Hold& hold, GuardReport::Kind kind, const std::string& reason) {
    answer_(pending.fd, allow, true);
    ::close(pending.fd);
    if (pending.pidfd >= 0) ::close(pending.pidfd); // and out of the epoll set with it
    if (!reason.empty()) reports_.push({kind, hold.path, hold.allocation_id, hold.workflow_id, pending.opener, reason, {}});
}

void WaitingOpeners::dequeued_locked(const Pending& pending) {
    total_--;
    if (--by_uid_[pending.uid] == 0) {
        by_uid_.erase(pending.uid);
        cap_reported_uids_.erase(pending.uid);
    }
    if (total_ == 0) total_cap_reported_ = false;
}

void WaitingOpeners::open(const Hold& hold) {
    std::lock_guard lock(mutex_);
    queues_[hold.path].hold = hold;
}

void WaitingOpeners::close(const std::string& path) {
    Queue queue;
    {
        std::lock_guard lock(mutex_);
        auto it = queues_.find(path);
        if (it == queues_.end()) return;
        for (const auto& p : it->second.pending) dequeued_locked(p);
        queue = std::move(it->second);
        queues_.erase(it);
    }
    for (const auto& p : queue.pending) {
        granted_++;
        finish(p, true, queue.hold, GuardReport::Kind::granted, queue.hold.allocation_id + " let go of the file");
    }
}

void WaitingOpeners::enqueue(int fd, pid_t tid, GuardReport about, const GuardPolicy& policy) {
    // The pidfd first: it pins the opener, so the uid read next is its own.
    const int pidfd = open_pidfd(tid);
    if (pidfd < 0 && errno == ESRCH) { // died while we looked
        answer_(fd, false, false);
        ::close(fd);
        gone_++;
        return;
    }
    const std::uint32_t uid = proc_uid(tid);
    enum { queued, released, over_user, over_total } outcome = queued;
    bool first_refusal = false;
    {
        std::lock_guard lock(mutex_);
        auto it = queues_.find(about.path);
        const auto of_uid = by_uid_.find(uid);
        if (it == queues_.end() || it->second.hold.allocation_id != about.allocation_id) outcome = released; // let go while we looked
        else if (total_ >= policy.max_queued_total) outcome = over_total;
        else if (of_uid != by_uid_.end() && of_uid->second >= policy.max_queued_per_user) outcome = over_user;
        if (outcome == over_total) first_refusal = !std::exchange(total_cap_reported_, true);
        if (outcome == over_user) first_refusal = cap_reported_uids_.insert(uid).second;
        if (outcome == queued) {
            Pending p{fd, pidfd, uid, next_id_++, about.opener, SteadyClock::now() + policy.queue_timeout, std::chrono::system_clock::now()};
            epoll_event watch{};
            watch.events = EPOLLIN;
            watch.data.u64 = p.id;
            if (pidfd >= 0 && ::epoll_ctl(pidfd_epoll_, EPOLL_CTL_ADD, pidfd, &watch) != 0) {
                ::close(pidfd); // unwatched: the queue timeout still answers it
                p.pidfd = -1;
            }
            it->second.pending.push_back(std::move(p));
            total_++;
            by_uid_[uid]++;
        }
    }
    if (outcome == queued) {
        queued_++;
        about.kind = GuardReport::Kind::queued;
        reports_.push(std::move(about), true);
        return;
    }
    answer_(fd, outcome == released, true);
    ::close(fd);
    if (pidfd >= 0) ::close(pidfd);
    if (outcome == released) return;
    refused_full_++;
    if (!first_refusal) return;
    about.kind = GuardReport::Kind::denied;
    about.reason = outcome == over_total ? "denied at once: " + std::to_string(policy.max_queued_total) +
                                               " openers already wait for held files (file_conflicts.queue_limits.total)"
                                         : "denied at once: " + std::to_string(policy.max_queued_per_user) + " openers of uid " +
                                               std::to_string(uid) + " already wait for held files (file_conflicts.queue_limits.per_user)";
    reports_.push(std::move(about), true);
}

void WaitingOpeners::reap_dead() {
    epoll_event ready[64];
    const int n = ::epoll_wait(pidfd_epoll_, ready, 64, 0);
    if (n <= 0) return;
    std::set<std::uint64_t> dead;
    for (int i = 0; i < n; ++i) dead.insert(ready[i].data.u64);
    std::vector<Pending> gone;
    {
        std::lock_guard lock(mutex_);
        for (auto& [path, queue] : queues_)
            for (auto it = queue.pending.begin(); it != queue.pending.end();) {
                if (!dead.count(it->id)) {
                    ++it;
                    continue;
                }
                dequeued_locked(*it);
                gone.push_back(std::move(*it));
                it = queue.pending.erase(it);
            }
    }
    for (const auto& p : gone) {
        answer_(p.fd, false, false);
        ::close(p.fd);
        ::close(p.pidfd);
        gone_++;
    }
}

std::optional<SteadyClock::time_point> WaitingOpeners::expire() {
    std::vector<std::pair<Pending, Hold>> expired;
    std::optional<SteadyClock::time_point> next;
    const auto now = SteadyClock::now();
    {
        std::lock_guard lock(mutex_);
        for (auto& [path, queue] : queues_) {
            for (auto it = queue.pending.begin(); it != queue.pending.end();) {
                if (it->deadline <= now) {
                    dequeued_locked(*it);
                    expired.emplace_back(std::move(*it), queue.hold);
                    it = queue.pending.erase(it);
                } else {
                    if (!next || it->deadline < *next) next = it->deadline;
                    ++it;
                }
            }
        }
    }
    for (auto& [pending, hold] : expired) {
        timed_out_++;
        finish(pending, false, hold, GuardReport::Kind::timed_out, "waited the whole queue timeout for " + hold.allocation_id + "; denied");
    }
    return next;
}

nlohmann::json WaitingOpeners::describe(const std::string& path) const {
    nlohmann::json waiting = nlohmann::json::array();
    std::lock_guard lock(mutex_);
    auto it = queues_.find(path);
    if (it == queues_.end()) return waiting;
    const auto now = SteadyClock::now();
    for (const auto& p : it->second.pending)
        waiting.push_back({{"pid", p.opener.pid},
                           {"uid", p.uid},
                           {"comm", p.opener.comm},
                           {"cgroup", p.opener.cgroup},
                           {"waiting_since", format_timestamp(std::chrono::time_point_cast<TimePoint::duration>(p.since))},
                           {"refused_in_seconds", std::chrono::duration_cast<std::chrono::seconds>(p.deadline - now).count()}});
    return waiting;
}

size_t WaitingOpeners::waiting() const {
    std::lock_guard lock(mutex_);
    return total_;
}

size_t WaitingOpeners::open_fds() const {
    std::lock_guard lock(mutex_);
    size_t count = 0;
    for (const auto& [path, queue] : queues_)
        for (const auto& p : queue.pending) count += p.pidfd >= 0 ? 2 : 1;
    return count;
}

nlohmann::json WaitingOpeners::counters() const {
    return {{"queued", queued_.load()},
            {"granted_after_queue", granted_.load()},
            {"timed_out", timed_out_.load()},
            {"openers_gone", gone_.load()},
            {"refused_queue_full", refused_full_.load()}};
}

} // namespace resmgr::conflicts
