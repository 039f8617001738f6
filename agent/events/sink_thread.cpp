// Events handed to a sink on a thread of its own (see sink_thread.hpp).
#include "events/sink_thread.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace resmgr::events {
namespace {

constexpr std::size_t kKeptCapacity = 1024;

} // namespace

SinkThread::SinkThread(std::unique_ptr<EventSink> sink, std::size_t max_queued)
    : sink_(std::move(sink)), max_queued_(std::max<std::size_t>(1, max_queued)) {
    thread_ = std::thread([this] { run(); });
}

SinkThread::~SinkThread() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
}

void SinkThread::publish(const Event& event) {
    bool wake = false;
    {
        std::lock_guard lock(mutex_);
        if (queue_.size() >= max_queued_) {
            ++dropped_;
            return;
        }
        queue_.push_back(event);
        ++accepted_;
        // While the thread works through a batch it takes this one with the next: no wake-up
        // (a futex call) per event under load.
        wake = std::exchange(idle_, false);
    }
    if (wake) wake_.notify_one();
}

void SinkThread::flush() {
    std::unique_lock lock(mutex_);
    const std::uint64_t target = accepted_;
    handed_.wait(lock, [&] { return handed_count_ >= target; });
}

std::uint64_t SinkThread::dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
}

void SinkThread::run() {
    std::vector<Event> batch;
    std::unique_lock lock(mutex_);
    for (;;) {
        if (queue_.empty()) {
            if (stopping_) return;
            idle_ = true;
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            idle_ = false;
            // Woken by the first event after a quiet spell: the ones that follow it within the
            // window go in the same batch, for one wake-up between them all.
            wake_.wait_for(lock, kBatchWindow, [this] { return stopping_; });
            continue;
        }
        batch.swap(queue_);
        const std::uint64_t newly_dropped = dropped_ - reported_;
        reported_ = dropped_;
        lock.unlock();
        if (newly_dropped > 0)
            spdlog::warn("{} event(s) dropped: more than {} were waiting for journald and alerts.jsonl", newly_dropped, max_queued_);
        for (const Event& event : batch) {
            try {
                sink_->publish(event);
            } catch (const std::exception& e) {
                spdlog::warn("event {} not recorded: {}", to_string(event.type), e.what());
            }
        }
        const std::size_t count = batch.size();
        batch.clear();
        // After a burst, give its room back: the two vectors take turns as queue and batch, and
        // 65,536 events are ~15 MB.
        if (batch.capacity() > kKeptCapacity) std::vector<Event>().swap(batch);
        lock.lock();
        handed_count_ += count;
        handed_.notify_all();
    }
}

} // namespace resmgr::events
