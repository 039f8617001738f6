// JSON forms of the model, in the seed's field names. Parsing validates and throws
// ApiError(INVALID_REQUEST) naming the offending field.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "resmgr/model.hpp"

namespace resmgr {

// Accepts the seed's allocate parameters: workflow_id, priority, resources{cpu_cores, memory_gb
// (number or "4G"), agents, pids, tool_instances}, duration or constraints.max_duration,
// exclusive_files or constraints.exclusive_access, constraints.conflict_avoidance,
// performance_requirements, auto_release, requester.
AllocationRequest parse_allocation_request(const nlohmann::json& params);
Resources parse_resources(const nlohmann::json& j, const std::string& where);
// A name that reaches logs, the journal and events (workflow, type, series): 1-128 characters of
// A-Z a-z 0-9 . _ - : @ / + =, else INVALID_REQUEST naming `field`.
void check_name(const std::string& value, const std::string& field);

// JSON text of `j` for the wire, a file or the journal. Strings from outside (a process's
// command name, a parser's quote of a bad request line) may not be UTF-8, and nlohmann's dump()
// throws on those; here each bad byte becomes U+FFFD instead.
inline std::string dump_text(const nlohmann::json& j, int indent = -1) {
    return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json to_json(const Resources& r);
nlohmann::json to_json(const Allocation& a); // the seed's "resource_allocation" body
// Inverse of to_json(Allocation), for the state file. Throws ApiError on malformed input.
Allocation allocation_from_json(const nlohmann::json& j);

} // namespace resmgr
