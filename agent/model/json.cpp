// JSON forms of the model. Every field read from outside is type-checked here so the rest of
// the agent only ever sees valid values; errors name the field and what was expected.
#include "resmgr/json.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <string_view>

#include "resmgr/protocol.hpp"

namespace resmgr {
namespace {

using nlohmann::json;

[[noreturn]] void invalid(const std::string& field, const std::string& expected, const json& got) {
    throw ApiError(ErrorCode::INVALID_REQUEST, "invalid value for '" + field + "'",
                   "expected " + expected + ", got " + got.dump(), {field},
                   {"Fix '" + field + "' and retry"});
}

const json* find(const json& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
}

void require_object(const json& j, const std::string& where) {
    if (!j.is_object()) invalid(where, "a JSON object", j);
}

// Unknown keys are rejected: a typo like "memroy_gb" must not silently mean "no limit".
void reject_unknown(const json& obj, const std::string& where, std::initializer_list<const char*> known) {
    for (auto& [key, _] : obj.items()) {
        bool ok = false;
        for (auto* k : known) ok = ok || key == k;
        if (!ok) {
            std::string list;
            for (auto* k : known) list += std::string(list.empty() ? "" : ", ") + k;
            throw ApiError(ErrorCode::INVALID_REQUEST, "unknown field '" + (where.empty() ? "" : where + ".") + key + "'",
                           "known fields here: " + list, {key});
        }
    }
}

std::string get_string(const json& obj, const char* key, const std::string& where, bool required) {
    const json* v = find(obj, key);
    std::string field = where.empty() ? key : where + "." + key;
    if (!v) {
        if (required) throw ApiError(ErrorCode::INVALID_REQUEST, "missing required field '" + field + "'", {}, {field});
        return {};
    }
    if (!v->is_string() || v->get_ref<const std::string&>().empty()) invalid(field, "a non-empty string", *v);
    return v->get<std::string>();
}

double get_number(const json& v, const std::string& field, double max) {
    if (!v.is_number()) invalid(field, "a number", v);
    double d = v.get<double>();
    if (!std::isfinite(d) || d < 0 || d > max) invalid(field, "a number between 0 and " + std::to_string(static_cast<long long>(max)), v);
    return d;
}

std::uint64_t get_count(const json& v, const std::string& field, std::uint64_t max) {
    if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<std::uint64_t>() > max)
        invalid(field, "a whole number between 0 and " + std::to_string(max), v);
    return v.get<std::uint64_t>();
}

bool get_bool(const json& v, const std::string& field) {
    if (!v.is_boolean()) invalid(field, "true or false", v);
    return v.get<bool>();
}

Millis get_duration(const json& v, const std::string& field) {
    if (v.is_number()) return Millis(static_cast<Millis::rep>(get_number(v, field, 1e12) * 1000));
    if (v.is_string())
        if (auto d = parse_duration(v.get<std::string>())) return *d;
    invalid(field, "a duration such as \"2h\", \"5m\", \"30s\", \"PT2H\" or a number of seconds", v);
}

// Memory given as GiB (number) or as a size string ("4G", "512M").
std::uint64_t get_memory(const json& v, const std::string& field) {
    if (v.is_number()) return static_cast<std::uint64_t>(std::llround(get_number(v, field, 1 << 20) * kGiB));
    if (v.is_string())
        if (auto s = parse_size(v.get<std::string>())) return *s;
    invalid(field, "GiB as a number, or a size such as \"4G\" or \"512M\"", v);
}

std::vector<std::string> get_string_list(const json& v, const std::string& field) {
    if (!v.is_array()) invalid(field, "an array of strings", v);
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (auto& item : v) {
        if (!item.is_string() || item.get_ref<const std::string&>().empty()) invalid(field, "an array of non-empty strings", v);
        if (seen.insert(item.get<std::string>()).second) out.push_back(item.get<std::string>());
    }
    return out;
}

Priority get_priority(const json& v) {
    std::optional<Priority> p;
    if (v.is_string()) p = Priority::parse(v.get<std::string>());
    else if (v.is_number_integer()) p = Priority::parse(std::to_string(v.get<long long>()));
    if (!p) invalid("priority", "critical, high, medium, low or a whole number 0-100", v);
    return *p;
}

} // namespace

namespace {

void check_text(const std::string& value, const std::string& field) {
    const bool ok = value.size() <= 256 && std::none_of(value.begin(), value.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    });
    if (!ok) throw ApiError(ErrorCode::INVALID_REQUEST, "'" + field + "' must be at most 256 characters with no control characters", {}, {field});
}

} // namespace

Resources parse_resources(const json& j, const std::string& where) {
    require_object(j, where);
    reject_unknown(j, where, {"cpu_cores", "memory_gb", "memory", "agents", "pids", "tool_instances", "storage_gb"});
    Resources r;
    if (auto* v = find(j, "cpu_cores")) r.cpu_cores = get_number(*v, where + ".cpu_cores", 4096);
    if (find(j, "memory_gb") && find(j, "memory"))
        throw ApiError(ErrorCode::INVALID_REQUEST, "give either '" + where + ".memory_gb' or '" + where + ".memory', not both");
    if (auto* v = find(j, "memory_gb")) r.memory_bytes = get_memory(*v, where + ".memory_gb");
    if (auto* v = find(j, "memory")) r.memory_bytes = get_memory(*v, where + ".memory");
    if (auto* v = find(j, "storage_gb")) r.storage_bytes = get_memory(*v, where + ".storage_gb");
    if (auto* v = find(j, "agents")) r.agents = static_cast<int>(get_count(*v, where + ".agents", 100000));
    if (auto* v = find(j, "pids")) r.pids = get_count(*v, where + ".pids", 1u << 30);
    if (auto* v = find(j, "tool_instances")) {
        require_object(*v, where + ".tool_instances");
        for (auto& [name, count] : v->items()) {
            check_name(name, where + ".tool_instances");
            r.tool_instances[name] = static_cast<int>(get_count(count, where + ".tool_instances." + name, 100000));
        }
    }
    return r;
}

// Names reach logs, the journal and events: a newline or an escape sequence there would forge
// or hide lines. Workflow names are short words; free text (requester) is printable.
void check_name(const std::string& value, const std::string& field) {
    const bool ok = !value.empty() && value.size() <= 128 && std::all_of(value.begin(), value.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("._-:@/+=").find(c) != std::string_view::npos;
    });
    if (!ok)
        throw ApiError(ErrorCode::INVALID_REQUEST, "'" + field + "' must be 1-128 characters of A-Z a-z 0-9 . _ - : @ / + =", {}, {field});
}

// "local" (the default) or "cluster".
bool file_scope_is_cluster(const json& v, const std::string& field) {
    if (!v.is_string() || (v != "local" && v != "cluster")) invalid(field, "\"local\" or \"cluster\"", v);
    return v == "cluster";
}

AllocationRequest parse_allocation_request(const json& params) {
    require_object(params, "params");
    reject_unknown(params, "", {"workflow_id", "workflow_type", "requester", "priority", "resources", "duration", "exclusive_files",
                                "file_scope", "constraints", "performance_requirements", "auto_release", "wait", "supervised", "attach"});
    AllocationRequest r;
    r.workflow_id = get_string(params, "workflow_id", "", true);
    check_name(r.workflow_id, "workflow_id");
    r.workflow_type = get_string(params, "workflow_type", "", false);
    if (find(params, "workflow_type")) check_name(r.workflow_type, "workflow_type");
    r.requester = get_string(params, "requester", "", false);
    check_text(r.requester, "requester");
    if (auto* v = find(params, "priority")) r.priority = get_priority(*v);
    if (auto* v = find(params, "resources")) r.resources = parse_resources(*v, "resources");
    else throw ApiError(ErrorCode::INVALID_REQUEST, "missing required field 'resources'", {}, {"resources"});

    if (auto* c = find(params, "constraints")) {
        require_object(*c, "constraints");
        reject_unknown(*c, "constraints", {"max_duration", "exclusive_access", "conflict_avoidance", "file_scope"});
        if (auto* v = find(*c, "file_scope")) r.constraints.cluster_files = file_scope_is_cluster(*v, "constraints.file_scope");
        if (auto* v = find(*c, "max_duration"))
            r.constraints.max_duration = std::chrono::duration_cast<Seconds>(get_duration(*v, "constraints.max_duration"));
        if (auto* v = find(*c, "exclusive_access")) r.constraints.exclusive_access = get_string_list(*v, "constraints.exclusive_access");
        if (auto* v = find(*c, "conflict_avoidance")) r.constraints.conflict_avoidance = get_string_list(*v, "constraints.conflict_avoidance");
        for (const auto& name : r.constraints.conflict_avoidance) check_name(name, "constraints.conflict_avoidance");
    }
    // The seed's allocate example writes `duration` and `exclusive_files` at top level.
    if (auto* v = find(params, "duration")) {
        if (r.constraints.max_duration) throw ApiError(ErrorCode::INVALID_REQUEST, "give either 'duration' or 'constraints.max_duration', not both");
        r.constraints.max_duration = std::chrono::duration_cast<Seconds>(get_duration(*v, "duration"));
    }
    if (auto* v = find(params, "exclusive_files"))
        for (auto& f : get_string_list(*v, "exclusive_files"))
            if (std::find(r.constraints.exclusive_access.begin(), r.constraints.exclusive_access.end(), f) == r.constraints.exclusive_access.end())
                r.constraints.exclusive_access.push_back(f);
    if (auto* v = find(params, "file_scope")) r.constraints.cluster_files = file_scope_is_cluster(*v, "file_scope");
    for (const auto& file : r.constraints.exclusive_access)
        if (file.empty() || file.size() > 4096 || std::any_of(file.begin(), file.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
            throw ApiError(ErrorCode::INVALID_REQUEST, "exclusive file paths must be 1-4096 bytes with no control characters", {}, {"exclusive_files"});
    if (r.constraints.max_duration && r.constraints.max_duration->count() == 0)
        throw ApiError(ErrorCode::INVALID_REQUEST, "duration must be longer than 0s", {}, {"duration"});

    if (auto* p = find(params, "performance_requirements")) {
        require_object(*p, "performance_requirements");
        reject_unknown(*p, "performance_requirements", {"min_response_time", "max_memory_per_agent", "storage_iops"});
        if (auto* v = find(*p, "min_response_time")) r.performance_requirements.min_response_time = get_duration(*v, "performance_requirements.min_response_time");
        if (auto* v = find(*p, "max_memory_per_agent")) r.performance_requirements.max_memory_per_agent_bytes = get_memory(*v, "performance_requirements.max_memory_per_agent");
        if (auto* v = find(*p, "storage_iops")) r.performance_requirements.storage_iops = get_count(*v, "performance_requirements.storage_iops", 1ULL << 40);
    }
    if (auto* a = find(params, "auto_release")) {
        require_object(*a, "auto_release");
        reject_unknown(*a, "auto_release", {"on_completion", "on_timeout", "on_failure", "grace_period"});
        if (auto* v = find(*a, "on_completion")) r.auto_release.on_completion = get_bool(*v, "auto_release.on_completion");
        if (auto* v = find(*a, "on_timeout")) r.auto_release.on_timeout = get_bool(*v, "auto_release.on_timeout");
        if (auto* v = find(*a, "on_failure")) r.auto_release.on_failure = get_bool(*v, "auto_release.on_failure");
        if (auto* v = find(*a, "grace_period")) r.auto_release.grace_period = std::chrono::duration_cast<Seconds>(get_duration(*v, "auto_release.grace_period"));
    }
    return r;
}

json to_json(const Resources& r) {
    json j = json::object();
    j["cpu_cores"] = r.cpu_cores;
    j["memory_gb"] = r.memory_gb();
    j["memory_bytes"] = r.memory_bytes;
    j["agents"] = r.agents;
    if (r.pids) j["pids"] = *r.pids;
    if (r.storage_bytes) j["storage_gb"] = r.storage_gb(), j["storage_bytes"] = r.storage_bytes;
    j["tool_instances"] = r.tool_instances;
    return j;
}

// This and to_json(Resources) are filled key by key, as are the other bodies every allocate and
// release answer carries (and the journal records): an initializer list of {"key", value} pairs
// builds a two-element array per pair before it becomes an object, which doubled their allocations.
json to_json(const Allocation& a) {
    json j = json::object();
    j["allocation_id"] = a.allocation_id;
    j["workflow_id"] = a.workflow_id;
    j["requester"] = a.requester;
    j["timestamp"] = format_timestamp(a.timestamp);
    j["priority"] = a.priority.band_name();
    j["priority_value"] = a.priority.value;
    j["status"] = to_string(a.status);
    j["resources"] = to_json(a.resources);
    json& constraints = j["constraints"];
    constraints["exclusive_access"] = a.constraints.exclusive_access;
    constraints["conflict_avoidance"] = a.constraints.conflict_avoidance;
    if (a.constraints.cluster_files) constraints["file_scope"] = "cluster";
    constraints["max_duration"] = a.constraints.max_duration
        ? json(format_duration(std::chrono::duration_cast<Millis>(*a.constraints.max_duration))) : json(nullptr);
    json& perf = j["performance_requirements"] = json::object();
    if (auto& v = a.performance_requirements.min_response_time) perf["min_response_time"] = format_duration(*v);
    if (auto& v = a.performance_requirements.max_memory_per_agent_bytes) perf["max_memory_per_agent"] = format_size(*v);
    if (auto& v = a.performance_requirements.storage_iops) perf["storage_iops"] = *v;
    json& auto_release = j["auto_release"];
    auto_release["on_completion"] = a.auto_release.on_completion;
    auto_release["on_timeout"] = a.auto_release.on_timeout;
    auto_release["on_failure"] = a.auto_release.on_failure;
    auto_release["grace_period"] = format_duration(std::chrono::duration_cast<Millis>(a.auto_release.grace_period));
    json& owner = j["owner"];
    owner["uid"] = a.owner.uid;
    owner["pid"] = a.owner.pid;
    if (!a.workflow_type.empty()) j["workflow_type"] = a.workflow_type;
    j["expires_at"] = a.expires_at ? json(format_timestamp(*a.expires_at)) : json(nullptr);
    if (a.terminating_since) j["terminating_since"] = format_timestamp(*a.terminating_since);
    if (a.start_at) j["start_time"] = format_timestamp(*a.start_at);
    if (a.status == AllocationStatus::queued) j["queue_seq"] = a.queue_seq;
    if (a.degraded_from_cpu) j["degraded_from_cpu_cores"] = *a.degraded_from_cpu;
    j["populated_once"] = a.populated_once;
    if (a.supervisor_pid) j["supervisor_pid"] = a.supervisor_pid;
    if (a.supervised) j["supervised"] = true;
    if (a.idle_since) j["idle_since"] = format_timestamp(*a.idle_since);
    return j;
}

Allocation allocation_from_json(const json& j) {
    require_object(j, "allocation");
    // What allocation_to_json writes, nothing else: a damaged key (or a newer resmgrd's field)
    // must stop the load, not quietly leave an allocation without its resources or constraints.
    reject_unknown(j, "allocation",
                   {"allocation_id", "workflow_id", "workflow_type", "requester", "timestamp", "expires_at", "terminating_since", "start_time",
                    "degraded_from_cpu_cores", "queue_seq", "populated_once", "supervisor_pid", "supervised", "idle_since", "priority", "priority_value", "status",
                    "resources", "constraints", "performance_requirements", "auto_release", "owner"});
    if (!j.contains("resources")) throw ApiError(ErrorCode::INVALID_REQUEST, "missing required field 'allocation.resources'");
    Allocation a;
    a.allocation_id = get_string(j, "allocation_id", "allocation", true);
    a.workflow_id = get_string(j, "workflow_id", "allocation", true);
    a.requester = get_string(j, "requester", "allocation", false);
    a.workflow_type = get_string(j, "workflow_type", "allocation", false);
    if (!a.workflow_type.empty()) check_name(a.workflow_type, "allocation.workflow_type");
    auto stamp = [&](const char* key) -> std::optional<TimePoint> {
        const json* v = find(j, key);
        if (!v) return std::nullopt;
        std::optional<TimePoint> t;
        if (v->is_string()) t = parse_timestamp(v->get<std::string>());
        if (!t) invalid(std::string("allocation.") + key, "an RFC 3339 timestamp", *v);
        return t;
    };
    auto ts = stamp("timestamp");
    if (!ts) throw ApiError(ErrorCode::INVALID_REQUEST, "missing required field 'allocation.timestamp'");
    a.timestamp = *ts;
    a.expires_at = stamp("expires_at");
    a.terminating_since = stamp("terminating_since");
    a.start_at = stamp("start_time");
    a.idle_since = stamp("idle_since");
    if (auto* v = find(j, "degraded_from_cpu_cores")) a.degraded_from_cpu = get_number(*v, "allocation.degraded_from_cpu_cores", 4096);
    if (auto* v = find(j, "queue_seq")) a.queue_seq = get_count(*v, "allocation.queue_seq", 1ULL << 62);
    if (auto* v = find(j, "populated_once")) a.populated_once = get_bool(*v, "allocation.populated_once");
    if (auto* v = find(j, "supervisor_pid")) a.supervisor_pid = static_cast<std::int32_t>(get_count(*v, "allocation.supervisor_pid", 0x7fffffffULL));
    // State written before "supervised" existed names the wrapper only by its pid.
    a.supervised = a.supervisor_pid > 0;
    if (auto* v = find(j, "supervised")) a.supervised = get_bool(*v, "allocation.supervised");
    if (auto* v = find(j, "priority_value")) a.priority = get_priority(*v);
    else if (auto* v = find(j, "priority")) a.priority = get_priority(*v);
    std::string status = get_string(j, "status", "allocation", true);
    auto st = parse_status(status);
    if (!st) invalid("allocation.status", "one of active, reserved, queued, paused, expired, released", status);
    a.status = *st;
    json resources = j.value("resources", json::object());
    resources.erase("memory_gb"); // memory_bytes is exact; memory_gb is the rounded view of it
    if (resources.contains("memory_bytes")) resources["memory"] = std::to_string(get_count(resources["memory_bytes"], "allocation.resources.memory_bytes", 1ULL << 60));
    resources.erase("memory_bytes");
    resources.erase("storage_gb"); // the same for storage
    if (resources.contains("storage_bytes")) resources["storage_gb"] = std::to_string(get_count(resources["storage_bytes"], "allocation.resources.storage_bytes", 1ULL << 60));
    resources.erase("storage_bytes");
    a.resources = parse_resources(resources, "allocation.resources");

    json params{{"workflow_id", a.workflow_id}, {"resources", json::object()}};
    if (auto* c = find(j, "constraints")) params["constraints"] = *c;
    if (auto* p = find(j, "performance_requirements")) params["performance_requirements"] = *p;
    if (auto* r = find(j, "auto_release")) params["auto_release"] = *r;
    auto parsed = parse_allocation_request(params);
    a.constraints = parsed.constraints;
    a.performance_requirements = parsed.performance_requirements;
    a.auto_release = parsed.auto_release;
    if (auto* o = find(j, "owner")) {
        require_object(*o, "allocation.owner");
        if (auto* uid = find(*o, "uid")) a.owner.uid = static_cast<std::uint32_t>(get_count(*uid, "allocation.owner.uid", 0xffffffffULL));
        if (auto* pid = find(*o, "pid")) a.owner.pid = static_cast<std::int32_t>(get_count(*pid, "allocation.owner.pid", 0x7fffffffULL));
    }
    return a;
}

} // namespace resmgr
