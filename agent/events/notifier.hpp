// The daemon's one place events go through: each is stamped with the clock, handed to the sink
// (journald, alerts.jsonl, subscribers) and kept among the newest kRecentEvents for
// `resmgr events` without --follow. Parts that report (lifecycle, exclusive files, monitoring,
// the router's denied allocations) are given this as an EventSink; none of them knows who listens.
#pragma once

#include <deque>
#include <functional>

#include "events/event.hpp"

namespace resmgr::events {

class Notifier : public EventSink {
public:
    using ClockFn = std::function<TimePoint()>;
    static constexpr size_t kRecentEvents = 200;

    explicit Notifier(ClockFn clock) : clock_(std::move(clock)) {}
    void set_sink(EventSink* sink) { sink_ = sink; }
    void publish(const Event& event) override;
    // Makes the event (now, the given fields) and publishes it.
    void emit(EventType type, const std::string& message, const std::string& workflow, const std::string& allocation,
              nlohmann::json details = nlohmann::json::object());
    const std::deque<Event>& recent() const { return recent_; }

private:
    void deliver(Event&& event); // to the sink, then kept among the newest kRecentEvents

    ClockFn clock_;
    EventSink* sink_ = nullptr;
    std::deque<Event> recent_;
};

} // namespace resmgr::events
