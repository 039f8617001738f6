// agent/cli owns the two client programs (resmgr, resmgr-run) and how envelopes are shown to a
// person at a terminal. Scripts get the envelope itself (--json, or stdout not a terminal).
// May call: model (the catalog, the client), analytics (the offline back-test). Never resmgrd's parts.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/table.hpp"

namespace resmgr::cli {

// stdout's width (TIOCGWINSZ, else $COLUMNS, else 80), the locale's charset, and colour when
// colour_wanted() says so for stdout, $NO_COLOR and $TERM.
Display stdout_display();

// The history series whose last hour the readable form of `operation` draws (node CPU and
// memory; each listed allocation's CPU and memory, at most kSparklineAllocations), for a
// `history recent` request; empty when it draws none.
constexpr std::size_t kSparklineAllocations = 50;
std::vector<std::string> sparkline_series(const std::string& operation, const nlohmann::json& envelope);
// How many slots `history recent` is asked for: one mark per slot of the node's trend column.
std::size_t sparkline_points(const Display& display);

// Readable rendering of a success envelope for `operation`: tables fitted to display.width,
// never JSON. `recent` is the result of `history recent` for sparkline_series(): null when it
// was not asked, {"unavailable": why} when it could not be had.
void print_human(std::ostream& out, const std::string& operation, const nlohmann::json& envelope, const Display& display = {},
                 const nlohmann::json& recent = nullptr);
// "2025-01-15T11:30:00Z RESOURCE_THRESHOLD global cpu 91.2 >= 80: message"
void print_event_line(std::ostream& out, const nlohmann::json& event);
// "syntax error while parsing object - unexpected end of input; expected '}', at byte 12" for
// nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 12: ...".
std::string parse_error_text(const nlohmann::json::parse_error& e);
// "resmgr: allocate failed: RESOURCE_EXHAUSTED: ..." plus details and suggestions.
void print_error(std::ostream& err, const std::string& program, const nlohmann::json& envelope);

} // namespace resmgr::cli
