// From the planning operations' answers to charts.
#include "cli/planning_charts.hpp"

#include <chrono>

#include "cli/json_read.hpp"
#include "resmgr/model.hpp"

namespace resmgr::cli {
namespace {

using nlohmann::json;

constexpr std::int64_t kDay = 86400;

std::optional<std::int64_t> epoch_of(const json& j) {
    if (!j.is_string()) return std::nullopt;
    const auto t = parse_timestamp(j.get<std::string>());
    if (!t) return std::nullopt;
    return std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count();
}

double value_of(const json& j) { return number(j).value_or(NAN); }

// {"from", "step_seconds", "values"} (null values: no sample) as chart points.
std::vector<ChartPoint> recent_points(const json& recent) {
    std::vector<ChartPoint> out;
    const auto from = epoch_of(at(recent, "from"));
    const auto step = count(at(recent, "step_seconds"));
    const json& values = at(recent, "values");
    if (!from || !step || *step == 0 || !values.is_array()) return out;
    std::int64_t t = *from;
    for (const auto& v : values) out.push_back({t, value_of(v)}), t += *step;
    return out;
}

Chart forecast_chart(const json& result) {
    Chart c;
    c.title = text(at(result, "metric"), "?") + ": forecast " + text(at(result, "period"), "") + " (" + text(at(at(result, "model"), "name"), "?") + ")";
    c.level = value_of(at(result, "confidence_interval"));
    c.history = recent_points(at(at(result, "history"), "recent"));
    for (const auto& p : at(result, "forecast"))
        if (auto t = epoch_of(at(p, "timestamp"))) c.forecast.push_back({*t, value_of(at(p, "value")), value_of(at(p, "lower")), value_of(at(p, "upper"))});
    return c;
}

Chart trend_chart(const std::string& metric, const json& m) {
    Chart c;
    c.title = metric + ": hourly means and trend";
    c.forecast_label = "Theil-Sen trend";
    const json& history = at(m, "history");
    c.history = recent_points(at(history, "recent"));
    const json& trend = at(m, "trend");
    const auto from = epoch_of(at(history, "from")), to = epoch_of(at(history, "to"));
    if (!from || !to || *to <= *from || !trend.is_object()) return c;
    // The chart marks points, it draws no lines: the fitted line is marked at each history time
    // (two end points alone showed as one mark lost among the history's).
    const double start = value_of(at(trend, "fitted_start")), end = value_of(at(trend, "fitted_end"));
    for (const auto& p : c.history)
        if (p.t >= *from && p.t <= *to)
            c.forecast.push_back({p.t, start + (end - start) * static_cast<double>(p.t - *from) / static_cast<double>(*to - *from)});
    return c;
}

Chart capacity_chart(const std::string& resource, const json& e, const json& needs) {
    Chart c;
    c.title = resource + ": daily peaks and projected peak";
    c.forecast_label = "projected daily peak";
    const json& peaks = at(e, "daily_peaks");
    c.history = recent_points(at(peaks, "recent"));
    const auto last = epoch_of(at(peaks, "to"));
    if (!last) return c;
    const double level = value_of(at(e, "current_level"));
    c.forecast.push_back({*last, level, level, level});
    for (const auto& [when, days] : {std::pair{"next_month", 30}, std::pair{"next_quarter", 90}}) {
        const json& n = at(at(needs, when), resource.c_str());
        const json& interval = at(n, "projected_peak_interval");
        const bool bounds = interval.is_array() && interval.size() == 2;
        c.forecast.push_back({*last + days * kDay, value_of(at(n, "projected_peak")), bounds ? value_of(interval[0]) : NAN,
                              bounds ? value_of(interval[1]) : NAN});
    }
    return c;
}

} // namespace

int chart_history_points(const std::string& operation) {
    if (operation == "forecast") return 3 * 288;
    if (operation == "analyze-trends") return 30 * 24;
    if (operation == "plan-capacity") return 90;
    return 0;
}

std::vector<Chart> planning_charts(const std::string& operation, const json& result) {
    std::vector<Chart> out;
    if (operation == "forecast" && result.contains("forecast")) out.push_back(forecast_chart(result));
    if (operation == "analyze-trends")
        for (const auto& [metric, m] : at(result, "metrics").items())
            if (at(m, "trend").is_object()) out.push_back(trend_chart(metric, m));
    if (operation == "plan-capacity") {
        const json& plan = at(result, "capacity_plan");
        for (const auto& [resource, e] : at(plan, "exhaustion").items())
            if (at(e, "trend").is_object()) out.push_back(capacity_chart(resource, e, at(plan, "forecasted_needs")));
    }
    return out;
}

json without_recent_history(const std::string& operation, json result) {
    if (operation == "forecast" && at(result, "history").is_object()) result["history"].erase("recent");
    if (operation == "analyze-trends" && at(result, "metrics").is_object())
        for (auto& m : result["metrics"])
            if (at(m, "history").is_object()) m["history"].erase("recent");
    if (operation == "plan-capacity" && at(at(result, "capacity_plan"), "exhaustion").is_object())
        for (auto& e : result["capacity_plan"]["exhaustion"])
            if (at(e, "daily_peaks").is_object()) e["daily_peaks"].erase("recent");
    return result;
}

} // namespace resmgr::cli
