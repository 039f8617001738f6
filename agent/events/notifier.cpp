#include "events/notifier.hpp"

namespace resmgr::events {

void Notifier::publish(const Event& event) { deliver(Event(event)); }

void Notifier::deliver(Event&& event) {
    if (sink_) sink_->publish(event);
    recent_.push_back(std::move(event));
    if (recent_.size() > kRecentEvents) recent_.pop_front();
}

void Notifier::emit(EventType type, const std::string& message, const std::string& workflow, const std::string& allocation,
                    nlohmann::json details) {
    auto e = Event::make(type, message, workflow, allocation);
    e.time = clock_();
    e.details = std::move(details);
    deliver(std::move(e)); // moved, not copied as publish() must: most events come through here
}

} // namespace resmgr::events
