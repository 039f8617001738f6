// The charts of the planning operations' answers: forecast (the recent 5-minute history, the
// forecast and its interval), analyze-trends (each metric's hourly means and its Theil-Sen
// trend line), plan-capacity (each resource's daily peaks and the projected peak next month and
// quarter with its interval). The points come from the answer itself (the history_points
// parameter asks resmgrd for the recent history), never from a second request. Pure: JSON in,
// charts out; a malformed answer gives fewer points, never a throw.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/chart.hpp"

namespace resmgr::cli {

// Whether `operation` has charts, and how many history points the client asks it for
// (history_points: 3 days of 5-minute means, 30 days of hourly means, 90 daily peaks); 0: none.
int chart_history_points(const std::string& operation);

// The charts of a success envelope's result for `operation` (empty for other operations).
std::vector<Chart> planning_charts(const std::string& operation, const nlohmann::json& result);

// `result` without the recent-history arrays the charts were drawn from (for the tables).
nlohmann::json without_recent_history(const std::string& operation, nlohmann::json result);

} // namespace resmgr::cli
