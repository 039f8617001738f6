// The decision thread's watchdog: an open permission event the decision thread has held past
// the deadline is answered with the fallback (allow by default), so a slow /proc read or a bug
// never leaves an opener hanging. Owns its thread; the event fd stays the decision thread's.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace resmgr::conflicts {

class DecisionWatchdog {
public:
    using Answer = std::function<void(int fd, bool allow)>;
    // `answer` writes the kernel's answer; `on_stall` is told after the watchdog answered.
    DecisionWatchdog(std::chrono::milliseconds deadline, bool fallback_allow, Answer answer, std::function<void()> on_stall);
    ~DecisionWatchdog(); // stops the thread
    DecisionWatchdog(const DecisionWatchdog&) = delete;
    DecisionWatchdog& operator=(const DecisionWatchdog&) = delete;

    // The decision thread took up this event.
    void begin(int fd);
    // The decision thread answers it, unless the watchdog already did; the event is done.
    void finish(bool allow);
    // The decision thread keeps the event to answer later (a queued opener): true while it is
    // still unanswered, false when the watchdog answered it meanwhile.
    bool hand_over();

private:
    void loop();

    const std::chrono::milliseconds deadline_;
    const bool fallback_allow_;
    const Answer answer_;
    const std::function<void()> on_stall_;
    std::mutex mutex_;
    int fd_ = -1;
    bool answered_ = false;
    std::chrono::steady_clock::time_point since_;
    std::mutex stop_mutex_;
    std::condition_variable stop_cv_;
    bool stopping_ = false;
    std::thread thread_;
};

} // namespace resmgr::conflicts
