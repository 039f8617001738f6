// What the file guard saw, and the queue that carries it from the guard's threads to the daemon's
// loop. The decision thread answers the opener first and reports after: a report never delays an
// open. Thread-safe; the loop polls fd() and drains with take().
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conflicts/decision.hpp"
#include "conflicts/guard_error.hpp"

namespace resmgr::conflicts {

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

class ReportQueue {
public:
    // Throws GuardError when the kernel gives no eventfd.
    ReportQueue();
    ~ReportQueue();
    ReportQueue(const ReportQueue&) = delete;
    ReportQueue& operator=(const ReportQueue&) = delete;

    // Readable (an eventfd) when reports are waiting.
    int fd() const { return event_fd_; }
    // Stamps and queues a report. `batched` (the decision thread's own answers): the loop is told
    // at most once per batch interval, and a repeat of a waiting report only counts up, so a retry
    // loop hammering a held file costs neither the opener nor the loop an event per open.
    void push(GuardReport report, bool batched = false);
    // A report like `r` (same kind, file, holder, opener) still waits for the loop: counted there.
    bool count_if_waiting(const GuardReport& r);
    // Tells the loop about batched reports whose time has come; otherwise when to look again.
    std::optional<std::chrono::steady_clock::time_point> flush();
    std::vector<GuardReport> take();

private:
    // Under mutex_.
    GuardReport* waiting_like(const GuardReport& r);

    int event_fd_ = -1;
    std::mutex mutex_;
    std::vector<GuardReport> reports_;
    std::chrono::steady_clock::time_point last_signal_{};
    bool signal_due_ = false; // batched reports wait for the loop to be told
};

} // namespace resmgr::conflicts
