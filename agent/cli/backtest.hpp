// `resmgr backtest`: the forecasting models back-tested on a CSV file, offline (no resmgrd),
// through the same analytics code resmgrd uses (analytics/backtest, analytics/anomalies).
// The report is built as JSON (for --json and for tests) and rendered for a terminal.
#pragma once

#include <chrono>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "analytics/anomalies.hpp"
#include "analytics/backtest.hpp"
#include "analytics/series_csv.hpp"
#include "cli/chart.hpp"

namespace resmgr::cli {

// The report: the series read (and what was done to lay it on a grid), the seasons, the
// back-test's layout and methods, the chosen model and every model's scores.
nlohmann::json backtest_report(const std::string& file, const analytics::RegularSeries& series,
                               const analytics::BacktestResult& result, std::chrono::microseconds elapsed);
// {"anomalies": [{"timestamp", "value", "score"}], "method": ...}
nlohmann::json anomalies_report(const analytics::RegularSeries& series, const std::vector<analytics::Anomaly>& anomalies);
// The report for a person: a few lines and a table.
void print_backtest(std::ostream& out, const nlohmann::json& report);
// origin,timestamp,actual,forecast,lower,upper: one row per forecast point of the selection.
void write_forecasts_csv(std::ostream& out, const analytics::RegularSeries& series, const analytics::BacktestResult& result);

// The chart of --svg: the last three horizons of the series and the forecast ahead by the chosen
// model with its interval.
Chart backtest_chart(const std::string& file, const analytics::RegularSeries& series, const analytics::BacktestResult& result);

// `resmgr backtest ...`; argv[0] is "backtest". Exit 0 done, 1 the data could not be back-tested
// (unreadable file, bad row, too little data), 2 usage.
int backtest_main(int argc, char** argv);

} // namespace resmgr::cli
