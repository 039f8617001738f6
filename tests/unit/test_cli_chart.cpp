// The chart renderer: a terminal plot of history, forecast and band fitted to a width, and a
// standalone SVG with escaped text, on struct literals.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "cli/chart.hpp"

using namespace resmgr::cli;

namespace {

constexpr std::int64_t kT0 = 1700000000; // 2023-11-14 22:13:20 UTC

// 24 hourly history points rising 0..23, then 12 forecast points at 30 with the band 20..40.
Chart rising_then_flat() {
    Chart c;
    c.title = "cpu: forecast";
    c.level = 0.95;
    for (int i = 0; i < 24; ++i) c.history.push_back({kT0 + i * 3600, static_cast<double>(i)});
    for (int i = 24; i < 36; ++i) c.forecast.push_back({kT0 + i * 3600, 30, 20, 40});
    return c;
}

std::size_t count_of(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) ++n;
    return n;
}

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

} // namespace

TEST(CliChart, DrawsHistoryForecastAndTheBandWithinTheWidth) {
    const auto lines = render_chart(rising_then_flat(), 60, {Charset::ascii, false});
    ASSERT_EQ(lines.size(), kChartHeight + 3); // plot rows, axis, times, legend
    for (const auto& l : lines) EXPECT_LE(display_width(l), 60u) << l;
    const std::string all = joined(lines);
    EXPECT_GT(count_of(all, "*"), 10u) << all;  // the history, one mark per column it covers
    EXPECT_GT(count_of(all, "x"), 5u) << all;   // the forecast
    EXPECT_GT(count_of(all, ":"), 20u) << all;  // the band spans rows above and below the forecast
    EXPECT_EQ(lines[0].substr(0, 2), "40") << all; // the top label is the band's upper bound
    EXPECT_NE(lines.back().find("95 % interval"), std::string::npos) << lines.back();
    EXPECT_NE(lines[kChartHeight + 1].find("2023-11-14 22:13"), std::string::npos) << all; // first time
    // The forecast sits at 30 of 0..40: the row a quarter down from the top, in the right part.
    const std::string& row = lines[static_cast<std::size_t>(std::lround(0.25 * (kChartHeight - 1)))];
    EXPECT_NE(row.find('x'), std::string::npos) << all;
    EXPECT_GT(row.find('x'), row.size() / 2) << all;
    // The first history point (0) is at the bottom left.
    EXPECT_EQ(lines[kChartHeight - 1].find('*'), lines[kChartHeight - 1].find('+') + 1) << all;
}

TEST(CliChart, Utf8AndColourUseBlocksAndEscapes) {
    const auto lines = render_chart(rising_then_flat(), 80, {Charset::utf8, true});
    const std::string all = joined(lines);
    EXPECT_NE(all.find("\u2591"), std::string::npos); // band
    EXPECT_NE(all.find("\u2022"), std::string::npos); // history
    EXPECT_NE(all.find("\x1b["), std::string::npos);  // colour escapes
    for (const auto& l : render_chart(rising_then_flat(), 80, {Charset::utf8, false})) EXPECT_EQ(l.find('\x1b'), std::string::npos) << l;
}

TEST(CliChart, NarrowWidthsShrinkThePlotOrDrawNothing) {
    for (std::size_t width : {kChartMinWidth, std::size_t{20}, std::size_t{25}, std::size_t{33}}) {
        const auto lines = render_chart(rising_then_flat(), width, {Charset::utf8, false});
        ASSERT_FALSE(lines.empty()) << width;
        for (const auto& l : lines) EXPECT_LE(display_width(l), width) << width << ": " << l;
    }
    EXPECT_TRUE(render_chart(rising_then_flat(), kChartMinWidth - 1, {Charset::utf8, false}).empty());
    EXPECT_TRUE(render_chart(rising_then_flat(), 0, {Charset::utf8, false}).empty());
}

TEST(CliChart, EmptyAndConstantSeries) {
    EXPECT_TRUE(render_chart(Chart{}, 80, {Charset::ascii, false}).empty());
    Chart nan_only;
    nan_only.history = {{kT0, NAN}, {kT0 + 300, NAN}};
    EXPECT_TRUE(render_chart(nan_only, 80, {Charset::ascii, false}).empty());

    Chart flat;
    for (int i = 0; i < 10; ++i) flat.history.push_back({kT0 + i * 300, 5});
    const auto lines = render_chart(flat, 50, {Charset::ascii, false});
    ASSERT_EQ(lines.size(), kChartHeight + 3);
    const std::string all = joined(lines);
    EXPECT_EQ(count_of(all, "*"), 10u + 1) << all; // a mark per point, on one row (and the legend's)
    // A flat series is drawn in the middle of a padded range, not at an edge.
    const std::string& mid = lines[static_cast<std::size_t>(std::lround((kChartHeight - 1) / 2.0))];
    EXPECT_NE(mid.find('*'), std::string::npos) << all;
    for (std::size_t y = 0; y < kChartHeight; ++y) EXPECT_EQ(lines[y].find(':'), std::string::npos) << "no band without an interval: " << all;

    Chart one; // one point: one column, one time
    one.forecast = {{kT0, 1, 0, 2}};
    EXPECT_FALSE(render_chart(one, 40, {Charset::ascii, false}).empty());
    EXPECT_NE(render_svg({one}).find("<polygon"), std::string::npos);
}

TEST(CliChart, SvgHasTheLinesTheBandAxesAndLegend) {
    const std::string svg = render_svg({rising_then_flat()});
    EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
    EXPECT_EQ(count_of(svg, "<g transform="), 1u); // one panel
    EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
    EXPECT_EQ(count_of(svg, "<polygon"), 1u) << svg;  // one contiguous band
    EXPECT_EQ(count_of(svg, "<polyline"), 2u) << svg; // history and forecast
    EXPECT_NE(svg.find(">95 % interval<"), std::string::npos);
    EXPECT_NE(svg.find(">history<"), std::string::npos);
    EXPECT_NE(svg.find(">forecast<"), std::string::npos);
    EXPECT_NE(svg.find(">time (UTC)<"), std::string::npos);
    EXPECT_NE(svg.find(">11-14 22:13<"), std::string::npos) << svg; // the first time tick
    EXPECT_NE(svg.find("text-anchor=\"end\">11-16 09:13<"), std::string::npos) << "the last one ends at the axis' end\n" << svg;
    EXPECT_NE(svg.find(">40<"), std::string::npos);                // the top value tick
    EXPECT_NE(svg.find(">0<"), std::string::npos);                 // the bottom one
    EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");

    // A gap in the interval splits the band; a gap in the history splits its line.
    Chart gaps = rising_then_flat();
    gaps.forecast[5].lower = NAN;
    gaps.history[10].value = NAN;
    const std::string split = render_svg({gaps});
    EXPECT_EQ(count_of(split, "<polygon"), 2u);
    EXPECT_EQ(count_of(split, "<polyline"), 3u);
}

TEST(CliChart, SvgEscapesOutsideTextAndSaysWhenThereIsNothingToDraw) {
    Chart c = rising_then_flat();
    c.title = "a<b>&\"c'\x01\x1b[31m";
    c.forecast_label = "</text><script>x</script>";
    const std::string svg = render_svg({c});
    EXPECT_EQ(svg.find("<script"), std::string::npos);
    EXPECT_EQ(svg.find("a<b"), std::string::npos);
    EXPECT_EQ(svg.find('\x01'), std::string::npos);
    EXPECT_EQ(svg.find('\x1b'), std::string::npos);
    EXPECT_NE(svg.find("a&lt;b&gt;&amp;&quot;c&apos;"), std::string::npos) << svg;
    EXPECT_NE(svg.find("&lt;/text&gt;&lt;script&gt;"), std::string::npos);
    EXPECT_EQ(xml_escape("\xff"), "\uFFFD");

    const std::string empty = render_svg({});
    EXPECT_NE(empty.find("no values to draw"), std::string::npos);
    EXPECT_EQ(count_of(empty, "<polyline"), 0u);
    EXPECT_EQ(empty.substr(empty.size() - 7), "</svg>\n");
}

// ---- the planning operations' answers as charts ----

#include <nlohmann/json.hpp>

#include "cli/planning_charts.hpp"

using nlohmann::json;

TEST(PlanningCharts, ForecastDrawsItsRecentHistoryAndItsPointsWithBounds) {
    const json result = json::parse(R"({
        "metric": "cpu_usage", "period": "next_hour", "confidence_interval": 0.9, "model": {"name": "seasonal_naive"},
        "history": {"points": 100, "recent": {"from": "2025-01-15T10:00:00Z", "step_seconds": 300, "values": [1, null, 3]}},
        "forecast": [{"timestamp": "2025-01-15T10:15:00Z", "value": 4, "lower": 2, "upper": 6},
                     {"timestamp": "2025-01-15T10:20:00Z", "value": 5, "lower": null, "upper": null},
                     {"timestamp": "not a time", "value": 9}]})");
    const auto charts = planning_charts("forecast", result);
    ASSERT_EQ(charts.size(), 1u);
    const Chart& c = charts[0];
    EXPECT_EQ(c.title, "cpu_usage: forecast next_hour (seasonal_naive)");
    EXPECT_DOUBLE_EQ(c.level, 0.9);
    ASSERT_EQ(c.history.size(), 3u);
    EXPECT_EQ(c.history[2].t - c.history[0].t, 600);
    EXPECT_TRUE(std::isnan(c.history[1].value)); // no sample stays a gap
    ASSERT_EQ(c.forecast.size(), 2u);            // the point without a time is left out
    EXPECT_EQ(c.forecast[0].t - c.history[0].t, 900);
    EXPECT_DOUBLE_EQ(c.forecast[0].upper, 6);
    EXPECT_TRUE(std::isnan(c.forecast[1].lower));
    const json shown = without_recent_history("forecast", result);
    EXPECT_FALSE(shown["history"].contains("recent"));
    EXPECT_EQ(shown["history"]["points"], 100);
    EXPECT_EQ(chart_history_points("forecast"), 864);
    EXPECT_EQ(chart_history_points("status"), 0);
}

TEST(PlanningCharts, TrendsAndCapacityPlans) {
    const json trends = json::parse(R"({"metrics": {
        "cpu": {"history": {"from": "2025-01-01T00:00:00Z", "to": "2025-01-02T00:00:00Z",
                            "recent": {"from": "2025-01-01T22:00:00Z", "step_seconds": 3600, "values": [10, 12, 11]}},
                "trend": {"fitted_start": 9, "fitted_end": 13}},
        "memory": {"insufficient_history": {"points": 3}}}})");
    const auto t = planning_charts("analyze-trends", trends);
    ASSERT_EQ(t.size(), 1u); // memory has no trend to draw
    EXPECT_EQ(t[0].history.size(), 3u);
    // The fitted line (9 at the history's start, 13 at its end) is marked at each recent hour.
    ASSERT_EQ(t[0].forecast.size(), 3u);
    EXPECT_EQ(t[0].forecast[0].t, t[0].history[0].t);
    EXPECT_DOUBLE_EQ(t[0].forecast[0].value, 9 + 4 * 22.0 / 24);
    EXPECT_DOUBLE_EQ(t[0].forecast[2].value, 13);
    EXPECT_FALSE(without_recent_history("analyze-trends", trends)["metrics"]["cpu"]["history"].contains("recent"));

    const json plan = json::parse(R"({"capacity_plan": {
        "exhaustion": {"cpu": {"daily_peaks": {"to": "2025-01-10T00:00:00Z",
                                               "recent": {"from": "2025-01-09T00:00:00Z", "step_seconds": 86400, "values": [50, 52]}},
                               "current_level": 52, "trend": {}},
                       "agents": {"insufficient_history": {}}},
        "forecasted_needs": {"next_month": {"cpu": {"projected_peak": 60, "projected_peak_interval": [55, 70]}},
                             "next_quarter": {"cpu": {"projected_peak": 80, "projected_peak_interval": [60, 100]}}}}})");
    const auto p = planning_charts("plan-capacity", plan);
    ASSERT_EQ(p.size(), 1u);
    ASSERT_EQ(p[0].forecast.size(), 3u); // today's level, next month, next quarter
    EXPECT_EQ(p[0].forecast[2].t - p[0].forecast[0].t, 90 * 86400);
    EXPECT_DOUBLE_EQ(p[0].forecast[1].lower, 55);
    EXPECT_DOUBLE_EQ(p[0].forecast[2].upper, 100);
    EXPECT_FALSE(render_chart(p[0], 70, {Charset::ascii, false}).empty());
}

TEST(PlanningCharts, MalformedAnswersGiveFewerPointsNeverAThrow) {
    for (const char* text : {R"(null)", R"([])", R"({"forecast": 3, "history": []})", R"({"forecast": [1, "x", {"timestamp": 5}]})",
                             R"({"metrics": [1]})", R"({"metrics": {"cpu": {"trend": {}, "history": 7}}})",
                             R"({"capacity_plan": {"exhaustion": {"cpu": {"trend": {}, "daily_peaks": {"to": "2025-01-10T00:00:00Z"}}}, "forecasted_needs": 1}})",
                             R"({"history": {"recent": {"from": "2025-01-01T00:00:00Z", "step_seconds": 0, "values": [1]}}, "forecast": []})"}) {
        const json result = json::parse(text);
        for (const char* op : {"forecast", "analyze-trends", "plan-capacity"}) {
            std::vector<Chart> charts;
            EXPECT_NO_THROW(charts = planning_charts(op, result)) << op << " " << text;
            for (const auto& c : charts) EXPECT_NO_THROW(render_chart(c, 60, {Charset::utf8, false})) << text;
            EXPECT_NO_THROW(without_recent_history(op, result)) << op << " " << text;
        }
    }
}

// ---- resmgr backtest --svg ----

#include "cli/backtest.hpp"

TEST(BacktestChart, TheSeriesEndAndTheForecastAheadWithItsBand) {
    resmgr::analytics::RegularSeries s;
    s.start = kT0;
    s.step = 300;
    for (int i = 0; i < 8 * 288; ++i) s.values.push_back(50 + 20 * std::sin(2 * 3.14159265358979 * (i % 288) / 288.0) + (i * 7919 % 13) / 13.0);
    s.filled.assign(s.values.size(), false);
    s.filled[s.values.size() - 5] = true;
    const auto r = resmgr::analytics::backtest(s.values, s.filled, s.step, {288, 72, 0.9});
    const Chart c = backtest_chart("cpu<1>.csv", s, r);
    EXPECT_EQ(c.history.size(), 3u * 288);
    EXPECT_EQ(c.history.back().t, s.ts(s.values.size() - 1));
    EXPECT_TRUE(std::isnan(c.history[c.history.size() - 5].value)); // a filled value is not drawn as measured
    ASSERT_EQ(c.forecast.size(), 288u);
    EXPECT_EQ(c.forecast[0].t, s.ts(s.values.size() - 1) + 300);
    EXPECT_DOUBLE_EQ(c.level, 0.9);
    EXPECT_TRUE(std::isfinite(c.forecast[0].lower));
    const std::string svg = render_svg({c});
    EXPECT_NE(svg.find("<polygon"), std::string::npos);
    EXPECT_NE(svg.find("cpu&lt;1&gt;.csv: forecast 1d ahead"), std::string::npos) << svg.substr(0, 600);
    EXPECT_NE(svg.find(">90 % interval<"), std::string::npos);

    const std::string file = ::testing::TempDir() + "resmgr-backtest-chart.svg";
    EXPECT_FALSE(write_svg_file(file, {c}).has_value());
    std::ifstream in(file);
    const std::string written((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(written, svg);
    std::remove(file.c_str());
    const auto refused = write_svg_file("/nonexistent-dir/x.svg", {c});
    ASSERT_TRUE(refused.has_value());
    EXPECT_NE(refused->find("/nonexistent-dir/x.svg"), std::string::npos) << *refused;
}
