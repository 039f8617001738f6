// Openers waiting for a held file (queue_and_serialize): one FIFO per held path, the caps per uid
// and in all (past a cap an opener is denied at once, so no user can make the daemon run out of
// fds), a pidfd per opener so one that dies is answered and forgotten at once, and the queue
// timeout. Every event fd it is given is answered and closed exactly once. Thread-safe; the
// file guard calls it with its own lock held or not (it takes no lock of the guard's).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "conflicts/decision.hpp"
#include "conflicts/guard_reports.hpp"

namespace resmgr::conflicts {

class WaitingOpeners {
public:
    // Writes the kernel's answer to a permission event; `counted`: false for an opener that is gone.
    using Answer = std::function<void(int fd, bool allow, bool counted)>;
    // Throws GuardError when the kernel gives no epoll fd.
    WaitingOpeners(Answer answer, ReportQueue& reports);
    ~WaitingOpeners(); // every waiting opener goes ahead (the daemon is stopping)
    WaitingOpeners(const WaitingOpeners&) = delete;
    WaitingOpeners& operator=(const WaitingOpeners&) = delete;

    // The held path takes waiters for this hold from now on.
    void open(const Hold& hold);
    // The holder let go: the path's waiters go ahead, FIFO.
    void close(const std::string& path);
    // Queues the permission event `fd` of thread `tid`, about to be refused for `about` (a
    // report naming the hold); denied at once when its opener is gone or a cap is reached, let
    // go at once when the hold ended meanwhile.
    void enqueue(int fd, pid_t tid, GuardReport about, const GuardPolicy& policy);
    // Denies the openers that waited their whole timeout; says when to look again.
    std::optional<std::chrono::steady_clock::time_point> expire();
    // Readable once some waiting opener has died; reap_dead() answers and forgets those.
    int dead_fd() const { return pidfd_epoll_; }
    void reap_dead();

    nlohmann::json describe(const std::string& path) const; // the path's waiters, for status
    size_t waiting() const;
    size_t open_fds() const; // event fds and pidfds held, for the leak checks of the tests
    nlohmann::json counters() const;

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
    struct Queue {
        Hold hold;
        std::deque<Pending> pending;
    };

    // Under mutex_: a Pending leaves its queue (caps counted down).
    void dequeued_locked(const Pending& pending);
    // Answers a Pending that left its queue and closes its fds; `report` says why (kind, reason).
    void finish(const Pending& pending, bool allow, const Hold& hold, GuardReport::Kind kind, const std::string& reason);

    Answer answer_;
    ReportQueue& reports_;
    int pidfd_epoll_ = -1;
    mutable std::mutex mutex_;
    std::map<std::string, Queue> queues_; // by held path
    std::map<std::uint32_t, size_t> by_uid_;
    size_t total_ = 0;
    std::uint64_t next_id_ = 0;
    // A cap is reported once, then again only after its queue has emptied.
    std::set<std::uint32_t> cap_reported_uids_;
    bool total_cap_reported_ = false;
    std::atomic<std::uint64_t> queued_{0}, granted_{0}, timed_out_{0}, gone_{0}, refused_full_{0};
};

} // namespace resmgr::conflicts
