// Events, their journald fields, and the sinks (see event.hpp).
#include "events/event.hpp"

#include "resmgr/protocol.hpp"
#include "resmgr/json.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstring>

#include <spdlog/spdlog.h>

namespace resmgr::events {
namespace {

struct TypeInfo {
    EventType type;
    const char* name;
    const char* id;
    int priority;
};

// MESSAGE_IDs are part of the interface (journalctl MESSAGE_ID=..., units/resmgr.catalog): never change one.
constexpr TypeInfo kTypes[] = {
    {EventType::allocated, "RESOURCE_ALLOCATED", "602d9a099af149f78b66bd62f772e509", LOG_INFO},
    {EventType::released, "RESOURCE_RELEASED", "a3b33f2c3fd746878422f7f12086c8e3", LOG_INFO},
    {EventType::expired, "RESOURCE_EXPIRED", "689dc56faa1f4db9b3bf0227c5cfd0dc", LOG_NOTICE},
    {EventType::denied, "RESOURCE_DENIED", "1b311a99fd50439a9eaf09f0e8ebd79c", LOG_NOTICE},
    {EventType::queued, "RESOURCE_QUEUED", "91c0a409b1254cbc891a5eb97c5a1585", LOG_INFO},
    {EventType::preempted, "RESOURCE_PREEMPTED", "6ad49afbbc6e44d187a5046953c7cb39", LOG_WARNING},
    {EventType::resumed, "RESOURCE_RESUMED", "7ea2ee66bed84b5ca347f89c809b6010", LOG_INFO},
    {EventType::conflict, "RESOURCE_CONFLICT", "35b6de9a7e8147a6914f2251038df5d1", LOG_WARNING},
    {EventType::threshold_raised, "RESOURCE_THRESHOLD", "ff97be640d2c481e940fc2e5bf56efd9", LOG_WARNING},
    {EventType::threshold_cleared, "RESOURCE_THRESHOLD_CLEARED", "a28bc168085e404d9f09840809f655cc", LOG_INFO},
    {EventType::oom_kill, "RESOURCE_OOM_KILL", "96a16acba5064d4c81859687760c8a4b", LOG_ERR},
    {EventType::resized, "RESOURCE_RESIZED", "4859868ea91945b2a0633fc12297b36e", LOG_NOTICE},
    {EventType::pressure, "RESOURCE_PRESSURE", "a5d108a191c943d884157b757224ad07", LOG_WARNING},
    {EventType::pressure_relieved, "RESOURCE_PRESSURE_RELIEVED", "bba6c732dfaf4b1ea339aed20167a6d3", LOG_NOTICE},
    {EventType::leak, "RESOURCE_LEAK", "021609e5a4484cb1923d0cd8af319af7", LOG_WARNING},
    {EventType::performance_degraded, "PERFORMANCE_DEGRADED", "45f0a620501b4c72bf6c41d601e22640", LOG_WARNING},
};

const TypeInfo& info(EventType type) {
    for (auto& t : kTypes)
        if (t.type == type) return t;
    return kTypes[0];
}

std::string number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

} // namespace

std::string to_string(EventType type) { return info(type).name; }
std::string message_id(EventType type) { return info(type).id; }
int default_priority(EventType type) { return info(type).priority; }

std::optional<EventType> parse_event_name(std::string_view name) {
    std::string upper;
    for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (auto& t : kTypes)
        if (upper == t.name || "RESOURCE_" + upper == t.name) return t.type;
    return std::nullopt;
}

std::vector<std::string> event_names() {
    std::vector<std::string> names;
    for (auto& t : kTypes) names.emplace_back(t.name);
    return names;
}

Event Event::make(EventType type, std::string message, std::string workflow, std::string allocation) {
    Event e;
    e.type = type;
    e.priority = default_priority(type);
    e.message = std::move(message);
    e.workflow = std::move(workflow);
    e.allocation = std::move(allocation);
    e.time = Clock::now();
    return e;
}

nlohmann::json Event::to_json() const {
    nlohmann::json j{{"event", to_string(type)}, {"timestamp", format_timestamp(time)}, {"priority", priority},
                     {"message", message},    {"workflow_id", workflow},           {"details", details}};
    if (!allocation.empty()) j["allocation_id"] = allocation;
    if (metric) j["metric"] = *metric;
    if (value) j["current"] = *value;
    if (threshold) j["threshold"] = *threshold;
    return j;
}

std::vector<std::string> journal_fields(const Event& e) {
    std::vector<std::string> f{"MESSAGE_ID=" + message_id(e.type), "PRIORITY=" + std::to_string(e.priority), "MESSAGE=" + e.message,
                               "SYSLOG_IDENTIFIER=resmgrd", "RESMGR_EVENT=" + to_string(e.type), "RESMGR_WORKFLOW=" + e.workflow};
    if (!e.allocation.empty()) f.push_back("RESMGR_ALLOCATION=" + e.allocation);
    if (e.metric) f.push_back("RESMGR_METRIC=" + *e.metric);
    if (e.value) f.push_back("RESMGR_VALUE=" + number(*e.value));
    if (e.threshold) f.push_back("RESMGR_THRESHOLD=" + number(*e.threshold));
    if (!e.details.empty()) f.push_back("RESMGR_DETAILS=" + dump_text(e.details));
    return f;
}

void JournalSink::publish(const Event& event) {
    auto fields = journal_fields(event);
    std::vector<iovec> iov;
    for (auto& f : fields) iov.push_back({f.data(), f.size()});
    sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
}

void EventBus::publish(const Event& event) {
    for (auto& sink : sinks_) {
        try {
            sink->publish(event);
        } catch (const std::exception& e) {
            spdlog::warn("event {} not recorded: {}", to_string(event.type), e.what());
        }
    }
}

std::set<EventType> parse_event_types(const nlohmann::json& names) {
    if (!names.is_array()) throw ApiError(ErrorCode::INVALID_REQUEST, "'types' must be a list of event names", "got " + names.dump(), {"types"});
    std::set<EventType> types;
    for (const auto& name : names) {
        auto type = name.is_string() ? parse_event_name(name.get<std::string>()) : std::nullopt;
        if (!type) {
            std::string known;
            for (const auto& n : event_names()) known += (known.empty() ? "" : ", ") + n;
            throw ApiError(ErrorCode::INVALID_REQUEST, "unknown event type " + name.dump(), "known: " + known, {"types"});
        }
        types.insert(*type);
    }
    return types;
}

} // namespace resmgr::events
