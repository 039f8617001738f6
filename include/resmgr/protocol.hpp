// The wire protocol between clients and resmgrd: one JSON request per line, one JSON response
// per line, both in the seed's shapes.
//
// Request:  {"operation":"allocate","resource_type":"system","params":{...}}
// Success:  {"status":"success","operation":..,"timestamp":..,"result":{..},
//            "metrics":{"execution_time":"0.4ms","resources_affected":1},"recommendations":[..]}
// Error:    {"status":"error","operation":..,"error":{"code":..,"message":..,"details":..,
//            "affected_resources":[..]},"recovery_suggestions":[..],"alternative_options":[..]}
#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "resmgr/model.hpp"

namespace resmgr {

enum class ErrorCode {
    INVALID_REQUEST,
    RESOURCE_EXHAUSTED,
    POLICY_VIOLATION,
    NOT_FOUND,
    PERMISSION_DENIED,
    CONFLICT,
    UNSUPPORTED,
    BACKEND_ERROR,
    INTERNAL_ERROR,
    // An analytics answer needs more recorded history than there is; the details say how much
    // there is and how much is needed (never answered with a made-up figure).
    INSUFFICIENT_HISTORY,
    // A cluster operation (a cluster-scoped claim) needs etcd or this node's lease and has
    // neither; the details name the endpoints. Local work is never refused for it.
    CLUSTER_UNAVAILABLE,
};
std::string to_string(ErrorCode code);

// Thrown anywhere a request cannot be served; turned into the seed's error envelope.
struct ApiError : std::runtime_error {
    ErrorCode code;
    std::string details;
    std::vector<std::string> affected_resources;
    std::vector<std::string> recovery_suggestions;
    std::vector<std::string> alternative_options;

    ApiError(ErrorCode code, std::string message, std::string details = {},
             std::vector<std::string> affected = {}, std::vector<std::string> recovery = {},
             std::vector<std::string> alternatives = {});
};

// INVALID_REQUEST for an exception nlohmann raised on the client's input, its text in plain
// words (without the "[json.exception.type_error.302] " prefix) as the details.
ApiError invalid_json(std::string message, const nlohmann::json::exception& e, std::vector<std::string> recovery = {});

struct Request {
    std::string operation;
    std::string resource_type; // empty when absent
    nlohmann::json params = nlohmann::json::object();
};

// How deep [ and { may nest in a request line, the request object being level 1. Parsing is
// iterative, but copying and dumping a json recurse: 100,000 levels overflowed the stack.
constexpr size_t kMaxRequestDepth = 64;

// Throws ApiError(INVALID_REQUEST) with a precise reason for anything malformed, nesting past
// kMaxRequestDepth included (refused before it is parsed).
Request parse_request_line(std::string_view line);
nlohmann::json to_json(const Request& request);

struct SuccessBody {
    nlohmann::json result = nlohmann::json::object();
    int resources_affected = 0;
    std::vector<std::string> recommendations;
};

// Takes the body whole: its result is moved into the envelope, not copied (an allocation's
// answer is most of the envelope).
nlohmann::json success_envelope(const std::string& operation, TimePoint now, SuccessBody body, Millis::rep execution_time_us);
nlohmann::json error_envelope(const std::string& operation, const ApiError& error);

// "0.8s", "12.3ms", "45us": the seed writes execution_time as a string with a unit.
std::string format_execution_time(long long microseconds);

// "resp_1a2b…", "conf_…": the seed's id style.
std::string random_id(const char* prefix);

} // namespace resmgr
