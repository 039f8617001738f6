// agent/events owns what resmgrd tells the world happened: one Event type, its journald form
// (a stable MESSAGE_ID per type and RESMGR_* fields; units/resmgr.catalog explains each id), and
// the sinks it goes to (journald, monitoring/alerts.jsonl). Producers never wait on a sink.
#pragma once

#include <syslog.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "events/jsonl_log.hpp"
#include "resmgr/model.hpp"

namespace resmgr::events {

enum class EventType { allocated, released, expired, denied, queued, preempted, resumed, conflict, threshold_raised, threshold_cleared, oom_kill,
                       resized, pressure, pressure_relieved, leak, performance_degraded };

std::string to_string(EventType type);         // the seed-style name, e.g. "RESOURCE_ALLOCATED"
std::string message_id(EventType type);        // 32 hex digits, stable forever
int default_priority(EventType type);          // syslog level
// "RESOURCE_THRESHOLD", "resource_threshold", "threshold", "oom_kill", "performance_degraded": the type, or nullopt.
std::optional<EventType> parse_event_name(std::string_view name);
std::vector<std::string> event_names();
// A request's "types" list (["allocated", "RESOURCE_CONFLICT", ...]); INVALID_REQUEST naming
// the first unknown one. An empty set means every type.
std::set<EventType> parse_event_types(const nlohmann::json& names);

struct Event {
    EventType type = EventType::allocated;
    int priority = LOG_INFO;
    std::string message;
    std::string workflow;   // "global" for node-wide events, as the seed does
    std::string allocation;
    std::optional<std::string> metric;
    std::optional<double> value, threshold;
    TimePoint time;
    nlohmann::json details = nlohmann::json::object();

    static Event make(EventType type, std::string message, std::string workflow = "global", std::string allocation = {});
    nlohmann::json to_json() const; // the line written to alerts.jsonl and sent to subscribers
};

// "MESSAGE_ID=...", "PRIORITY=6", "MESSAGE=...", "RESMGR_EVENT=...", ...: what journald receives.
std::vector<std::string> journal_fields(const Event& event);

class EventSink {
public:
    virtual ~EventSink() = default;
    virtual void publish(const Event& event) = 0;
};

// sd_journal_sendv; where no journald listens (containers, this build host) the send fails and
// the event still reaches the other sinks.
class JournalSink : public EventSink {
public:
    void publish(const Event& event) override;
};

// One JSON line per event in a bounded file (monitoring/alerts.jsonl).
class JsonlSink : public EventSink {
public:
    JsonlSink(std::string path, std::uint64_t max_bytes, Seconds max_age = Seconds(0)) : log_(std::move(path), max_bytes, max_age) {}
    void publish(const Event& event) override { log_.append(event.to_json()); }

private:
    JsonlLog log_;
};

// Fans an event out to every sink; a failing sink is logged and skipped.
class EventBus : public EventSink {
public:
    void add(std::unique_ptr<EventSink> sink) { sinks_.push_back(std::move(sink)); }
    void publish(const Event& event) override;

private:
    std::vector<std::unique_ptr<EventSink>> sinks_;
};

} // namespace resmgr::events
