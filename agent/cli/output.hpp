// agent/cli owns the two client programs (resmgr, resmgr-run) and how envelopes are shown to a
// person at a terminal. Scripts get the envelope itself (--json, or stdout not a terminal).
#pragma once

#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

namespace resmgr::cli {

// Readable rendering of a success envelope for `operation`.
void print_human(std::ostream& out, const std::string& operation, const nlohmann::json& envelope);
// "2025-01-15T11:30:00Z RESOURCE_THRESHOLD global cpu 91.2 >= 80: message"
void print_event_line(std::ostream& out, const nlohmann::json& event);
// "syntax error while parsing object - unexpected end of input; expected '}', at byte 12" for
// nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 12: ...".
std::string parse_error_text(const nlohmann::json::parse_error& e);
// "resmgr: allocate failed: RESOURCE_EXHAUSTED: ..." plus details and suggestions.
void print_error(std::ostream& err, const std::string& program, const nlohmann::json& envelope);

} // namespace resmgr::cli
