#include "conflicts/decision_watchdog.hpp"

#include <algorithm>

namespace resmgr::conflicts {

DecisionWatchdog::DecisionWatchdog(std::chrono::milliseconds deadline, bool fallback_allow, Answer answer, std::function<void()> on_stall)
    : deadline_(deadline), fallback_allow_(fallback_allow), answer_(std::move(answer)), on_stall_(std::move(on_stall)),
      thread_([this] { loop(); }) {}

DecisionWatchdog::~DecisionWatchdog() {
    {
        std::lock_guard lock(stop_mutex_);
        stopping_ = true;
    }
    stop_cv_.notify_all();
    thread_.join();
}

void DecisionWatchdog::begin(int fd) {
    std::lock_guard lock(mutex_);
    fd_ = fd;
    answered_ = false;
    since_ = std::chrono::steady_clock::now();
}

void DecisionWatchdog::finish(bool allow) {
    std::lock_guard lock(mutex_);
    if (!answered_) answer_(fd_, allow);
    fd_ = -1;
}

bool DecisionWatchdog::hand_over() {
    std::lock_guard lock(mutex_);
    fd_ = -1;
    return !answered_;
}

void DecisionWatchdog::loop() {
    const auto tick = std::max(deadline_ / 4, std::chrono::milliseconds(10));
    for (;;) {
        {
            std::unique_lock lock(stop_mutex_);
            if (stop_cv_.wait_for(lock, tick, [this] { return stopping_; })) return;
        }
        bool stalled = false;
        {
            std::lock_guard lock(mutex_);
            if (fd_ >= 0 && !answered_ && std::chrono::steady_clock::now() - since_ > deadline_) {
                answer_(fd_, fallback_allow_);
                answered_ = true;
                stalled = true;
            }
        }
        if (stalled) on_stall_();
    }
}

} // namespace resmgr::conflicts
