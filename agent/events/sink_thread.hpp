// Hands events to a sink on a thread of its own, so the event loop never waits on journald's
// socket or on a write to monitoring/alerts.jsonl: with both in line they took 8 % of the loop's
// time per allocate + release at 16 clients (perf on bench_socket_state, BENCHMARKS.md "Events
// off the loop"). Events reach the sink in the order they were published.
//
// The queue is bounded: a sink that stalls (a disk that hangs under alerts.jsonl) must not grow
// resmgrd without limit, so beyond kMaxQueued waiting events new ones are dropped, counted, and
// a warning says how many once the sink catches up. Producers never wait. Destruction hands the
// sink everything still queued, then joins: a clean stop loses nothing. A crash can lose the
// events queued and not yet written; they are notifications, like journald's own datagrams, and
// the allocations' journal (state/) is the record of what changed.
//
// The wrapped sink runs on the thread only, never on the caller's: give it sinks that touch
// nothing else (journald, a JSON-lines file). May call: the wrapped sink, spdlog.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "events/event.hpp"

namespace resmgr::events {

class SinkThread : public EventSink {
public:
    static constexpr std::size_t kMaxQueued = 65536;
    // How long the thread gathers events after a wake-up before handing them on: a wake-up per
    // event cost a single client 10 % of its changes per second (a futex call and a switch each).
    static constexpr std::chrono::milliseconds kBatchWindow{5};

    explicit SinkThread(std::unique_ptr<EventSink> sink, std::size_t max_queued = kMaxQueued);
    ~SinkThread() override;
    SinkThread(const SinkThread&) = delete;
    SinkThread& operator=(const SinkThread&) = delete;

    void publish(const Event& event) override;
    // Returns once every event published before the call has been handed to the sink.
    void flush();
    std::uint64_t dropped() const;

private:
    void run();

    std::unique_ptr<EventSink> sink_;
    const std::size_t max_queued_;
    mutable std::mutex mutex_;
    std::condition_variable wake_, handed_;
    std::vector<Event> queue_;
    bool stopping_ = false;
    bool idle_ = false; // the thread waits for work: only then does publish wake it
    std::uint64_t accepted_ = 0, handed_count_ = 0, dropped_ = 0, reported_ = 0;
    std::thread thread_;
};

} // namespace resmgr::events
