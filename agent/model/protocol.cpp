// Request parsing and the seed's success/error envelopes.
#include "resmgr/protocol.hpp"

#include <cstdio>
#include <random>

namespace resmgr {

std::string to_string(ErrorCode code) {
    switch (code) {
    case ErrorCode::INVALID_REQUEST: return "INVALID_REQUEST";
    case ErrorCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case ErrorCode::POLICY_VIOLATION: return "POLICY_VIOLATION";
    case ErrorCode::NOT_FOUND: return "NOT_FOUND";
    case ErrorCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case ErrorCode::CONFLICT: return "CONFLICT";
    case ErrorCode::UNSUPPORTED: return "UNSUPPORTED";
    case ErrorCode::BACKEND_ERROR: return "BACKEND_ERROR";
    case ErrorCode::INTERNAL_ERROR: return "INTERNAL_ERROR";
    case ErrorCode::INSUFFICIENT_HISTORY: return "INSUFFICIENT_HISTORY";
    case ErrorCode::CLUSTER_UNAVAILABLE: return "CLUSTER_UNAVAILABLE";
    }
    return "INTERNAL_ERROR";
}

ApiError::ApiError(ErrorCode code, std::string message, std::string details, std::vector<std::string> affected,
                   std::vector<std::string> recovery, std::vector<std::string> alternatives)
    : std::runtime_error(std::move(message)), code(code), details(std::move(details)),
      affected_resources(std::move(affected)), recovery_suggestions(std::move(recovery)),
      alternative_options(std::move(alternatives)) {}

ApiError invalid_json(std::string message, const nlohmann::json::exception& e, std::vector<std::string> recovery) {
    std::string text = e.what();
    if (text.rfind("[json.exception.", 0) == 0)
        if (auto end = text.find("] "); end != std::string::npos) text.erase(0, end + 2);
    return ApiError(ErrorCode::INVALID_REQUEST, std::move(message), std::move(text), {}, std::move(recovery));
}

std::string random_id(const char* prefix) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    char buf[40];
    std::snprintf(buf, sizeof buf, "%s_%016llx", prefix, static_cast<unsigned long long>(rng()));
    return buf;
}

namespace {

// True when [ and { outside strings nest deeper than `limit` somewhere in `text`. Not a
// validator: the parser judges the rest.
bool nested_deeper_than(std::string_view text, size_t limit) {
    size_t depth = 0;
    bool in_string = false, escaped = false;
    for (char ch : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (ch == '\\') escaped = true;
            else if (ch == '"') in_string = false;
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == '[' || ch == '{') {
            if (++depth > limit) return true;
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            --depth;
        }
    }
    return false;
}

} // namespace

Request parse_request_line(std::string_view line) {
    if (nested_deeper_than(line, kMaxRequestDepth))
        throw ApiError(ErrorCode::INVALID_REQUEST, "request is nested too deeply",
                       "at most " + std::to_string(kMaxRequestDepth) + " levels of [ and {");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
        throw invalid_json("request is not valid JSON", e, {"Send one JSON object per line: {\"operation\":\"status\",\"params\":{}}"});
    } catch (const nlohmann::json::exception& e) {
        // out_of_range.406: a number no double holds, such as 1e400.
        throw invalid_json("request holds a value resmgrd cannot represent", e);
    }
    if (!j.is_object()) throw ApiError(ErrorCode::INVALID_REQUEST, "request must be a JSON object", "got " + std::string(j.type_name()));
    Request r;
    auto op = j.find("operation");
    if (op == j.end() || !op->is_string() || op->get_ref<const std::string&>().empty())
        throw ApiError(ErrorCode::INVALID_REQUEST, "request has no 'operation' string");
    r.operation = op->get<std::string>();
    if (auto rt = j.find("resource_type"); rt != j.end() && !rt->is_null()) {
        if (!rt->is_string()) throw ApiError(ErrorCode::INVALID_REQUEST, "'resource_type' must be a string");
        r.resource_type = rt->get<std::string>();
    }
    if (auto p = j.find("params"); p != j.end() && !p->is_null()) {
        if (!p->is_object()) throw ApiError(ErrorCode::INVALID_REQUEST, "'params' must be a JSON object", "got " + std::string(p->type_name()));
        r.params = std::move(*p);
    }
    for (auto& [key, _] : j.items())
        if (key != "operation" && key != "resource_type" && key != "params")
            throw ApiError(ErrorCode::INVALID_REQUEST, "unknown request field '" + key + "'", "known: operation, resource_type, params");
    return r;
}

nlohmann::json to_json(const Request& request) {
    nlohmann::json j{{"operation", request.operation}, {"params", request.params}};
    if (!request.resource_type.empty()) j["resource_type"] = request.resource_type;
    return j;
}

std::string format_execution_time(long long us) {
    char buf[32];
    if (us >= 1'000'000) std::snprintf(buf, sizeof buf, "%.2fs", static_cast<double>(us) / 1e6);
    else if (us >= 1000) std::snprintf(buf, sizeof buf, "%.1fms", static_cast<double>(us) / 1e3);
    else std::snprintf(buf, sizeof buf, "%lldus", us);
    return buf;
}

// Filled key by key, as to_json(Allocation) is (see there): every answer goes through it.
nlohmann::json success_envelope(const std::string& operation, TimePoint now, SuccessBody body, Millis::rep execution_time_us) {
    nlohmann::json envelope = nlohmann::json::object();
    envelope["status"] = "success";
    envelope["operation"] = operation;
    envelope["timestamp"] = format_timestamp(now);
    envelope["result"] = std::move(body.result);
    nlohmann::json& metrics = envelope["metrics"];
    metrics["execution_time"] = format_execution_time(execution_time_us);
    metrics["resources_affected"] = body.resources_affected;
    envelope["recommendations"] = std::move(body.recommendations);
    return envelope;
}

nlohmann::json error_envelope(const std::string& operation, const ApiError& error) {
    return {
        {"status", "error"},
        {"operation", operation},
        {"error", {{"code", to_string(error.code)},
                   {"message", error.what()},
                   {"details", error.details},
                   {"affected_resources", error.affected_resources}}},
        {"recovery_suggestions", error.recovery_suggestions},
        {"alternative_options", error.alternative_options},
    };
}

} // namespace resmgr
