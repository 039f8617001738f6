// The planning operations: predict (the next run of a workflow type from its run records, with
// intervals and a back-test on its own runs), forecast (a metric's next hours or week, with intervals and the
// accuracy measured by back-testing on this node's own history), analyze-trends (trend,
// seasonality, peaks and anomalies per metric) and plan-capacity (the seed's capacity_plan: the
// trend of the daily peaks, time to exhaustion with its interval, dated recommendations). Thin:
// read the history's rollups, ask the pure models of agent/analytics (backtest, trends,
// anomalies), shape the reply. A series is read back from its own newest bucket, so a trace
// imported with `history import` is analysed where it lies in time. May call: history,
// analytics, model.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <map>

#include "analytics/anomalies.hpp"
#include "analytics/backtest.hpp"
#include "analytics/run_prediction.hpp"
#include "analytics/series_csv.hpp"
#include "analytics/trends.hpp"
#include "history/history.hpp"
#include "history/series.hpp"
#include "resmgr/json.hpp"
#include "server/router.hpp"

namespace resmgr::server {
namespace {

using nlohmann::json;
using analytics::RegularSeries;

constexpr std::int64_t kHour = 3600, kDay = 86400;
constexpr std::int64_t kMaxForecastSeconds = 7 * kDay;
constexpr std::size_t kTrendMinHours = 24;  // a trend over less than a day says nothing
constexpr std::size_t kPlanMinDays = 7;     // daily peaks needed for a capacity trend
constexpr std::size_t kAnomaliesShown = 10;
constexpr const char* kWeekdays[] = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};

double round3(double v) { return std::round(v * 1000) / 1000; }
// A figure in a sentence: four significant digits.
std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
}
// A string parameter, or `absent` when it is not given (or null).
std::string text_or(const json& params, const char* key, const char* absent) {
    const std::string v = param_string(params, key);
    return v.empty() ? absent : v;
}
json number_or_null(double v) { return std::isfinite(v) ? json(round3(v)) : json(nullptr); }
json number_or_null(const std::optional<double>& v) { return v ? number_or_null(*v) : json(nullptr); }
std::string when(std::int64_t ts) { return format_timestamp(TimePoint(std::chrono::seconds(ts))); }
std::int64_t epoch_seconds(TimePoint t) { return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count(); }

// The series a metric names: the seed's words for the node's own series, or a series name the
// history holds (an imported one, "node/io_pressure_some_avg10", ...).
std::string series_of(const history::HistoryStore& store, const std::string& metric, const std::string& field) {
    static const std::map<std::string, std::string> aliases{
        {"cpu", "node/cpu_percent"},       {"cpu_usage", "node/cpu_percent"},       {"memory", "node/memory_percent"},
        {"memory_usage", "node/memory_percent"}, {"agents", "node/live_agents"}, {"agent_pool", "node/live_agents"},
        {"allocations", "node/allocations"}};
    if (auto it = aliases.find(metric); it != aliases.end()) return it->second;
    const auto names = store.series_names(metric);
    if (std::find(names.begin(), names.end(), metric) != names.end()) return metric;
    std::string known = "cpu, cpu_usage, memory, memory_usage, agents, allocations";
    std::size_t listed = 0;
    for (const auto& n : store.series_names(""))
        if (n.rfind("alloc/", 0) != 0 && listed++ < 20) known += ", " + n; // each allocation's series would drown the list
    if (listed > 20) known += " and " + std::to_string(listed - 20) + " more";
    throw ApiError(ErrorCode::INVALID_REQUEST, "'" + field + "': no metric or series '" + metric + "' in the history", "known: " + known, {field});
}

json history_json(const RegularSeries& s, const std::string& name, const char* resolution) {
    if (s.values.empty()) return {{"series", name}, {"points", 0}, {"resolution", resolution}};
    return {{"series", name}, {"resolution", resolution}, {"points", s.values.size()}, {"from", when(s.start)},
            {"to", when(s.ts(s.values.size() - 1))}, {"filled_points", s.gap_points}};
}

// The last `points` values of `s` (asked with history_points, for a chart): from the first
// one's time, one every step_seconds, null where the history had no sample (a filled gap).
json recent_json(const RegularSeries& s, const json& params) {
    const auto asked = static_cast<std::size_t>(param_integer(params, "history_points").value_or(0));
    const std::size_t n = std::min(asked, s.values.size()), first = s.values.size() - n;
    json values = json::array();
    for (std::size_t i = first; i < s.values.size(); ++i) values.push_back(s.filled[i] ? json(nullptr) : number_or_null(s.values[i]));
    return {{"from", n ? json(when(s.ts(first))) : json(nullptr)}, {"step_seconds", s.step}, {"values", values}};
}
bool wants_recent(const json& params) { return param_integer(params, "history_points").value_or(0) > 0; }

std::string steps_as_duration(std::size_t steps, std::int64_t step) {
    return format_duration(std::chrono::seconds(static_cast<std::int64_t>(steps) * step));
}

ApiError insufficient(const std::string& metric, const std::string& name, std::size_t have, std::size_t need, std::int64_t step,
                      const std::string& why) {
    return ApiError(ErrorCode::INSUFFICIENT_HISTORY,
                    "Not enough history of '" + metric + "' (" + name + "): " + std::to_string(have) + " points, " + std::to_string(need) + " needed",
                    why, {metric},
                    {"resmgrd keeps a 5-minute bucket of every node series; about " +
                         steps_as_duration(need > have ? need - have : 0, step > 0 ? step : 300) + " more of history is needed",
                     "Or seed it from another monitor: resmgr history import --csv FILE --metric NAME (root)"});
}

// ---- forecast ----

std::int64_t forecast_seconds(const std::string& period) {
    static const std::map<std::string, std::int64_t> named{{"next_hour", kHour}, {"next_day", kDay}, {"tomorrow", kDay}, {"next_week", 7 * kDay}};
    if (auto it = named.find(period); it != named.end()) return it->second;
    if (auto d = parse_duration(period)) {
        const auto s = std::chrono::duration_cast<std::chrono::seconds>(*d).count();
        if (s > 0 && s <= kMaxForecastSeconds) return s;
    }
    throw ApiError(ErrorCode::INVALID_REQUEST, "'period' must be next_hour, next_day, next_week or a duration up to 7d",
                   "got '" + period + "'; beyond a week, resmgr plan-capacity projects the trend of the daily peaks", {"period"});
}

double confidence_of(const json& params, const char* key) {
    auto it = params.find(key);
    if (it == params.end() || it->is_null()) return 0.95;
    const double c = it->get<double>();
    if (!(c >= 0.5 && c <= 0.99))
        throw ApiError(ErrorCode::INVALID_REQUEST, std::string("'") + key + "' must be between 0.5 and 0.99", "got " + it->dump(), {key});
    return c;
}

json score_json(const analytics::ModelScore& s, double confidence) {
    return {{"model", s.model},
            {"points", s.points},
            {"mae", number_or_null(s.mae)},
            {"mase", number_or_null(s.mase)},
            {"relative_mae", number_or_null(s.relative_mae)},
            {"interval_coverage", number_or_null(s.coverage)},
            {"interval_nominal", confidence},
            {"interval_points", s.interval_points},
            {"winkler", number_or_null(s.winkler)}};
}

json seasons_json(const std::vector<analytics::Season>& seasons, std::int64_t step) {
    json out = json::array();
    for (const auto& s : seasons) {
        json j{{"name", s.name}, {"found", s.found}, {"autocorrelation", number_or_null(s.autocorrelation)}};
        if (s.period > 0) j["period"] = steps_as_duration(s.period, step);
        if (!s.reason.empty()) j["reason"] = s.reason;
        out.push_back(std::move(j));
    }
    return out;
}

json point_json(const RegularSeries& s, const analytics::FoldForecast& f, std::size_t j) {
    return {{"timestamp", when(s.ts(f.origin + j))}, {"value", number_or_null(f.forecast[j])},
            {"lower", number_or_null(f.lower[j])}, {"upper", number_or_null(f.upper[j])}};
}

SuccessBody forecast(const Call& call) {
    const auto& store = call.ctx.require_history();
    const json& p = call.params();
    const std::string metric = text_or(p, "metric", "cpu_usage");
    const std::string name = series_of(store, metric, "metric");
    const std::string period = text_or(p, "period", "next_day");
    const std::int64_t horizon_seconds = forecast_seconds(period);
    const double confidence = confidence_of(p, "confidence_interval");
    // Four weeks of history, eight for a horizon past a day (two weekly seasons plus folds).
    const std::int64_t span = (horizon_seconds > kDay ? 56 : 28) * kDay;
    const RegularSeries s = history::read_regular(store, name, history::Resolution::five_minutes, span, history::Take::mean);
    const std::size_t have = s.values.size();
    const std::int64_t step = have ? s.step : 300;
    const auto horizon = static_cast<std::size_t>(std::max<std::int64_t>(1, (horizon_seconds + step - 1) / step));
    analytics::BacktestResult r;
    try {
        if (have < 2) throw analytics::NotEnoughData(have, 2 * horizon, "fewer than two 5-minute buckets");
        r = analytics::backtest(s.values, s.filled, step, {horizon, std::max<std::size_t>(1, horizon / 4), confidence});
    } catch (const analytics::NotEnoughData& e) {
        throw insufficient(metric, name, e.have, e.need, step, e.what());
    }
    json points = json::array();
    for (std::size_t j = 0; j < r.ahead.forecast.size(); ++j) points.push_back(point_json(s, r.ahead, j));
    std::size_t without_interval = 0;
    for (double lo : r.ahead.lower) without_interval += std::isnan(lo);

    json models = json::array();
    for (const auto& m : r.models) models.push_back(score_json(m, confidence));
    SuccessBody body;
    body.result = {{"metric", metric},
                   {"period", period},
                   {"horizon", steps_as_duration(horizon, step)},
                   {"step_seconds", step},
                   {"confidence_interval", confidence},
                   {"history", history_json(s, name, "5-minute bucket means")},
                   {"model", {{"name", r.chosen}, {"detail", r.chosen_detail}}},
                   {"seasons", seasons_json(r.seasons, step)},
                   {"forecast", points},
                   {"accuracy", {{"method", analytics::kBacktestMethods},
                                 {"folds", r.folds},
                                 {"horizon", steps_as_duration(horizon, step)},
                                 {"origins_every", steps_as_duration(r.options.step, step)},
                                 {"out_of_sample", score_json(r.selection, confidence)},
                                 {"models", models},
                                 {"note", "out_of_sample is the per-fold selection as it would have run live; each model's row is its own "
                                          "back-test; relative_mae is against the seasonal naive on the same points"}}}};
    if (!r.mase_note.empty()) body.result["accuracy"]["mase_note"] = r.mase_note;
    if (wants_recent(p)) body.result["history"]["recent"] = recent_json(s, p);
    if (without_interval > 0)
        body.recommendations.push_back(std::to_string(without_interval) + " of the " + std::to_string(horizon) +
                                       " points have no interval: too few back-test residuals at that lead time for the level asked");
    if (auto t = p.find("threshold"); t != p.end() && t->is_number()) {
        const double threshold = t->get<double>();
        const auto c = analytics::predicted_crossing(s.values, s.filled, r, threshold);
        json crossing{{"threshold", threshold}, {"reached", c.at.has_value()}, {"folds_that_called_it", c.folds_called},
                      {"confirmed", c.folds_confirmed}, {"prediction_confidence", number_or_null(c.precision)}, {"method", analytics::kCrossingMethod}};
        if (c.at) {
            crossing["at"] = when(s.ts(r.ahead.origin + *c.at));
            crossing["time_to_impact"] = steps_as_duration(*c.at + 1, step);
        }
        body.result["threshold_crossing"] = crossing;
    }
    if (param_flag(p, "include_peaks", true)) {
        // A week: the highest point of each day; shorter: the highest points a sixth of the horizon apart.
        const std::size_t separation = horizon_seconds > kDay ? static_cast<std::size_t>(kDay / step) : std::max<std::size_t>(1, horizon / 6);
        const std::size_t count = horizon_seconds > kDay ? static_cast<std::size_t>((horizon_seconds + kDay - 1) / kDay) : 3;
        json peaks = json::array();
        for (std::size_t j : analytics::top_peaks(r.ahead.forecast, count, separation)) peaks.push_back(point_json(s, r.ahead, j));
        body.result["peaks"] = peaks;
    }
    return body;
}

// ---- analyze-trends ----

// "30_days", "2_weeks", "12_hours", "3_months" (30 days each) or a duration.
std::int64_t span_seconds(const std::string& text, const char* field, std::int64_t max_days) {
    static const std::map<std::string, std::int64_t> units{{"hour", kHour}, {"hours", kHour}, {"day", kDay}, {"days", kDay},
                                                           {"week", 7 * kDay}, {"weeks", 7 * kDay}, {"month", 30 * kDay}, {"months", 30 * kDay}};
    std::int64_t seconds = 0;
    const auto underscore = text.find('_');
    if (underscore != std::string::npos && underscore > 0 && underscore < 6 &&
        std::all_of(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(underscore), [](char c) { return c >= '0' && c <= '9'; })) {
        if (auto it = units.find(text.substr(underscore + 1)); it != units.end()) seconds = std::stoll(text.substr(0, underscore)) * it->second;
    } else if (auto d = parse_duration(text)) {
        seconds = std::chrono::duration_cast<std::chrono::seconds>(*d).count();
    }
    if (seconds <= 0 || seconds > max_days * kDay)
        throw ApiError(ErrorCode::INVALID_REQUEST,
                       std::string("'") + field + "' must be N_hours, N_days, N_weeks, N_months or a duration, up to " + std::to_string(max_days) + " days",
                       "got '" + text + "'", {field});
    return seconds;
}

json trend_json(const analytics::Trend& t, std::size_t last, std::int64_t step) {
    const double per_day = static_cast<double>(kDay) / static_cast<double>(step);
    const double start = t.fitted(0), end = t.fitted(static_cast<double>(last));
    json j{{"slope_per_day", number_or_null(t.slope * per_day)},
           {"slope_per_week", number_or_null(t.slope * per_day * 7)},
           {"slope_per_day_interval", {number_or_null(t.slope_lower * per_day), number_or_null(t.slope_upper * per_day)}},
           {"interval_level", t.confidence},
           {"fitted_start", number_or_null(start)},
           {"fitted_end", number_or_null(end)},
           {"growth_percent", std::abs(start) > 1e-9 ? number_or_null((end - start) / std::abs(start) * 100) : json(nullptr)},
           {"points", t.points},
           {"method", analytics::kTrendMethod}};
    const bool rising = t.slope_lower > 0, falling = t.slope_upper < 0;
    j["direction"] = rising ? "rising" : falling ? "falling" : "flat (the slope's interval holds 0)";
    return j;
}

json anomalies_json(const history::HistoryStore& store, const std::string& name, std::int64_t span) {
    const RegularSeries s = history::read_regular(store, name, history::Resolution::five_minutes, span, history::Take::mean);
    const analytics::AnomalyOptions options;
    std::vector<analytics::Anomaly> found;
    json j{{"method", analytics::kAnomalyMethod}, {"threshold", options.threshold}, {"points", s.values.size()}};
    if (s.values.size() <= options.window)
        j["note"] = "nothing judged: " + std::to_string(s.values.size()) + " 5-minute buckets; the first value is judged after " +
                    std::to_string(options.window) + " plus one longest season";
    else
        found = analytics::detect_anomalies(s.values, s.filled, s.step, options);
    j["count"] = found.size();
    std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.score > b.score; });
    json list = json::array();
    for (std::size_t i = 0; i < found.size() && i < kAnomaliesShown; ++i)
        list.push_back({{"timestamp", when(s.ts(found[i].index))}, {"value", number_or_null(found[i].value)},
                        {"expected", number_or_null(found[i].forecast)}, {"score", number_or_null(found[i].score)}});
    j["highest"] = list;
    return j;
}

json metric_trends(const history::HistoryStore& store, const std::string& metric, const std::string& name, std::int64_t span, const json& params) {
    const RegularSeries hourly = history::read_regular(store, name, history::Resolution::one_hour, span, history::Take::mean);
    const std::size_t n = hourly.values.size();
    json j{{"series", name}, {"history", history_json(hourly, name, "1-hour bucket means")}};
    std::optional<analytics::Trend> trend;
    if (n >= kTrendMinHours) trend = analytics::theil_sen_trend(hourly.values, hourly.filled);
    if (!trend) {
        j["insufficient_history"] = {{"points", n}, {"needed", kTrendMinHours},
                                     {"message", "'" + metric + "': " + std::to_string(n) + " hourly buckets, a trend needs " +
                                                     std::to_string(kTrendMinHours) + " (one day)"}};
        return j;
    }
    j["trend"] = trend_json(*trend, n - 1, hourly.step);
    if (wants_recent(params)) j["history"]["recent"] = recent_json(hourly, params);
    const auto seasons = analytics::detect_seasons(hourly.values, hourly.step);
    j["seasonality"] = {{"method", "autocorrelation at the lag of the season on the detrended hourly means (found at >= " +
                                       std::to_string(analytics::kSeasonMinAutocorrelation).substr(0, 4) + ")"},
                        {"seasons", seasons_json(seasons, hourly.step)}};
    const auto hours = analytics::profile(hourly.start, hourly.step, hourly.values, hourly.filled, kHour, 24);
    const auto days = analytics::profile(hourly.start, hourly.step, hourly.values, hourly.filled, kDay, 7, 3 * kDay);
    auto busiest = [](const std::vector<double>& v) {
        std::size_t best = 0;
        for (std::size_t i = 1; i < v.size(); ++i)
            if (std::isfinite(v[i]) && (!std::isfinite(v[best]) || v[i] > v[best])) best = i;
        return best;
    };
    json peaks{{"method", "mean of the hourly means per hour of the day and per weekday (UTC)"}};
    const std::size_t h = busiest(hours), d = busiest(days);
    peaks["daily"] = {{"hour_utc", h}, {"mean", number_or_null(hours[h])}};
    if (n >= 7 * 24) peaks["weekly"] = {{"weekday", kWeekdays[d]}, {"mean", number_or_null(days[d])}};
    else peaks["weekly"] = {{"note", "a weekly peak needs a week of history; there are " + std::to_string(n) + " hours"}};
    const RegularSeries maxima = history::read_regular(store, name, history::Resolution::one_hour, span, history::Take::max);
    json highest = json::array();
    for (std::size_t i : analytics::top_peaks(maxima.values, 3, 24))
        highest.push_back({{"timestamp", when(maxima.ts(i))}, {"value", number_or_null(maxima.values[i])}});
    peaks["highest"] = highest;
    j["peaks"] = peaks;
    if (param_flag(params, "detect_anomalies", true)) j["anomalies"] = anomalies_json(store, name, span);
    return j;
}

SuccessBody analyze_trends(const Call& call) {
    const auto& store = call.ctx.require_history();
    const json& p = call.params();
    const std::string timeframe = text_or(p, "timeframe", "30_days");
    const std::int64_t span = span_seconds(timeframe, "timeframe", 730);
    std::vector<std::string> metrics{"cpu", "memory", "agents"};
    if (auto it = p.find("metrics"); it != p.end() && !it->is_null()) {
        metrics.clear();
        for (const auto& m : *it) {
            if (!m.is_string() || m.get<std::string>().empty())
                throw ApiError(ErrorCode::INVALID_REQUEST, "'metrics' must be a list of metric names", "got " + m.dump(), {"metrics"});
            metrics.push_back(m.get<std::string>());
        }
        if (metrics.empty() || metrics.size() > 16)
            throw ApiError(ErrorCode::INVALID_REQUEST, "'metrics' must name 1 to 16 metrics", {}, {"metrics"});
    }
    json out = json::object();
    std::size_t analysed = 0;
    std::string first_shortage;
    for (const auto& metric : metrics) {
        out[metric] = metric_trends(store, metric, series_of(store, metric, "metrics"), span, p);
        if (out[metric].contains("trend")) ++analysed;
        else if (first_shortage.empty()) first_shortage = out[metric]["insufficient_history"]["message"];
    }
    if (analysed == 0)
        throw ApiError(ErrorCode::INSUFFICIENT_HISTORY, "Not enough history for a trend of any metric asked", first_shortage, metrics,
                       {"resmgrd rolls every node series up into 1-hour buckets; a day of history is needed",
                        "Or seed it from another monitor: resmgr history import --csv FILE --metric NAME (root)"});
    SuccessBody body;
    body.result = {{"timeframe", timeframe}, {"metrics", out},
                   {"note", "each series is read back from its own newest bucket (an imported trace where it lies in time)"}};
    if (p.contains("export_charts")) body.recommendations.push_back("export_charts is accepted for the seed's shape; no chart file is written");
    return body;
}

// ---- plan-capacity ----

struct Resource {
    const char* key;      // cpu, memory, agents
    const char* metric;   // as analyze-trends names it
    double limit;         // the capacity, in the series' unit
    double threshold;     // the seed's alert threshold, same unit
    const char* action;   // what the recommendation does
};

// Daily peaks (the highest hourly p95 of each UTC day) over the span up to the newest bucket;
// a first or last day without all its 24 hourly buckets is left out.
RegularSeries daily_peaks(const history::HistoryStore& store, const std::string& name, std::int64_t span) {
    const RegularSeries hourly = history::read_regular(store, name, history::Resolution::one_hour, span, history::Take::p95);
    std::map<std::int64_t, double> days;
    std::map<std::int64_t, int> hours;
    for (std::size_t i = 0; i < hourly.values.size(); ++i) {
        if (hourly.filled[i]) continue;
        const std::int64_t day = hourly.ts(i) / kDay * kDay;
        auto [it, fresh] = days.emplace(day, hourly.values[i]);
        if (!fresh) it->second = std::max(it->second, hourly.values[i]);
        ++hours[day];
    }
    // A partial first or last day (today, or where an import starts or ends) would understate its peak.
    if (!days.empty() && hours[days.rbegin()->first] < 24) days.erase(std::prev(days.end()));
    if (!days.empty() && hours[days.begin()->first] < 24) days.erase(days.begin());
    RegularSeries s;
    if (days.size() < 2) return s;
    // One value a day; a day without buckets is interpolated between its neighbours and marked.
    s.start = days.begin()->first;
    s.step = kDay;
    s.samples = days.size();
    auto prev = days.begin();
    for (auto it = days.begin(); it != days.end(); prev = it++) {
        for (std::int64_t d = prev->first + kDay; d < it->first; d += kDay) {
            const double f = static_cast<double>(d - prev->first) / static_cast<double>(it->first - prev->first);
            s.values.push_back(prev->second + f * (it->second - prev->second));
            s.filled.push_back(true);
            ++s.gap_points;
        }
        s.values.push_back(it->second);
        s.filled.push_back(false);
    }
    return s;
}

json days_json(const std::optional<double>& days, std::int64_t from) {
    if (!days) return nullptr;
    return {{"days", round3(*days)}, {"date", when(from + static_cast<std::int64_t>(std::llround(*days * kDay)))}};
}

SuccessBody plan_capacity(const Call& call) {
    Context& ctx = call.ctx;
    const auto& store = ctx.require_history();
    const json& p = call.params();
    const std::string horizon_text = text_or(p, "time_horizon", "3_months");
    const std::int64_t horizon = span_seconds(horizon_text, "time_horizon", 730);
    const double horizon_days = static_cast<double>(horizon) / kDay;
    double growth = 0;
    if (auto g = p.find("growth_assumptions"); g != p.end() && !g->is_null()) {
        for (const auto& [key, value] : g->items())
            if (key != "workflow_increase")
                throw ApiError(ErrorCode::INVALID_REQUEST, "unknown growth assumption '" + key + "'", "known: workflow_increase (percent over the horizon)",
                               {"growth_assumptions"});
        if (auto w = g->find("workflow_increase"); w != g->end()) {
            if (!w->is_number() || w->get<double>() <= -100 || w->get<double>() > 1000)
                throw ApiError(ErrorCode::INVALID_REQUEST, "'workflow_increase' must be a percentage above -100 and at most 1000", "got " + w->dump(),
                               {"growth_assumptions"});
            growth = w->get<double>() / 100;
        }
    }
    const auto avail = ctx.ledger().admission().availability();
    const Resource resources[] = {{"cpu", "cpu", 100, 80, "cpu_upgrade"},
                                  {"memory", "memory", 100, 85, "memory_upgrade"},
                                  {"agents", "agents", static_cast<double>(avail.agents_max), 0.9 * avail.agents_max, "increase_agent_pool"}};
    const std::int64_t span = 90 * kDay;
    json exhaustion = json::object(), next_month = json::object(), next_quarter = json::object(), utilization = json::object();
    json recommendations = json::array();
    const std::int64_t today = epoch_seconds(ctx.clock());
    std::size_t planned = 0;
    std::string first_shortage;
    for (const Resource& res : resources) {
        const std::string name = series_of(store, res.metric, "metric");
        const RegularSeries peaks = daily_peaks(store, name, span);
        const std::size_t n = peaks.values.size();
        std::optional<analytics::Trend> trend;
        if (n >= kPlanMinDays) trend = analytics::theil_sen_trend(peaks.values, peaks.filled);
        const RegularSeries maxima = history::read_regular(store, name, history::Resolution::one_hour, span, history::Take::max);
        const RegularSeries means = history::read_regular(store, name, history::Resolution::one_hour, span, history::Take::mean);
        if (!maxima.values.empty()) {
            utilization[std::string("peak_") + res.key + "_usage"] = number_or_null(*std::max_element(maxima.values.begin(), maxima.values.end()));
            double sum = 0;
            std::size_t count = 0;
            for (std::size_t i = 0; i < means.values.size(); ++i)
                if (!means.filled[i]) sum += means.values[i], ++count;
            utilization[std::string("average_") + res.key + "_usage"] = count ? number_or_null(sum / static_cast<double>(count)) : json(nullptr);
        }
        if (!trend) {
            const std::string message = std::string(res.key) + ": " + std::to_string(n) + " days of daily peaks in " + name + ", a trend needs " +
                                        std::to_string(kPlanMinDays);
            exhaustion[res.key] = {{"series", name}, {"insufficient_history", {{"days", n}, {"needed", kPlanMinDays}, {"message", message}}}};
            if (first_shortage.empty()) first_shortage = message;
            continue;
        }
        ++planned;
        const std::size_t last = n - 1;
        const std::int64_t from = peaks.ts(last) + kDay; // the day after the last complete one
        auto needs = [&](double days) {
            const double level = trend->fitted(static_cast<double>(last));
            const double mid = analytics::project(*trend, trend->slope, last, days, growth, horizon_days);
            const double lo = analytics::project(*trend, trend->slope_lower, last, days, growth, horizon_days);
            const double hi = analytics::project(*trend, trend->slope_upper, last, days, growth, horizon_days);
            json j{{"projected_peak", number_or_null(mid)}, {"projected_peak_interval", {number_or_null(lo), number_or_null(hi)}}};
            if (std::string(res.key) == "agents") j["agent_increase"] = number_or_null(mid - level);
            else j[std::string(res.key) + "_increase"] = std::abs(level) > 1e-9 ? number_or_null((mid - level) / level * 100) : json(nullptr);
            return j;
        };
        next_month[res.key] = needs(30);
        next_quarter[res.key] = needs(90);
        const auto to_threshold = analytics::time_to_limit(*trend, last, res.threshold, growth, horizon_days);
        const auto to_limit = analytics::time_to_limit(*trend, last, res.limit, growth, horizon_days);
        exhaustion[res.key] = {{"series", name},
                               {"daily_peaks", {{"days", n}, {"from", when(peaks.start)}, {"to", when(peaks.ts(last))}}},
                               {"current_level", number_or_null(to_limit.level)},
                               {"trend", trend_json(*trend, last, kDay)},
                               {"threshold", number_or_null(res.threshold)},
                               {"limit", number_or_null(res.limit)},
                               {"time_to_threshold", {{"expected", days_json(to_threshold.days, from)}, {"earliest", days_json(to_threshold.earliest, from)},
                                                      {"latest", days_json(to_threshold.latest, from)}}},
                               {"time_to_exhaustion", {{"expected", days_json(to_limit.days, from)}, {"earliest", days_json(to_limit.earliest, from)},
                                                       {"latest", days_json(to_limit.latest, from)}}}};
        if (wants_recent(p)) exhaustion[res.key]["daily_peaks"]["recent"] = recent_json(peaks, p);
        if (!param_flag(p, "include_recommendations", true)) continue;
        // Dated from the threshold: expected crossing, or the earliest one when only the
        // pessimistic end of the slope's interval crosses within the horizon.
        const auto& cross = to_threshold.days ? to_threshold.days : to_threshold.earliest;
        if (!cross || *cross > horizon_days) continue;
        const bool now_or_soon = *cross <= 30;
        json rec{{"type", now_or_soon ? "immediate" : "planned"},
                 {"action", res.action},
                 {"resource", res.key},
                 {"priority", *cross <= 7 ? "critical" : now_or_soon ? "high" : "medium"},
                 {"date", days_json(*cross, from)["date"]},
                 {"timeline", *cross <= 30 ? "next_month" : *cross <= 90 ? "next_quarter" : "within " + horizon_text}};
        std::string detail = std::string(res.key) + " daily peak " + num(to_limit.level) + " trending " + num(trend->slope) + "/day";
        if (growth != 0) detail += " with " + std::to_string(static_cast<int>(std::lround(growth * 100))) + " % more work over " + horizon_text;
        detail += to_threshold.days ? " reaches the threshold " + num(res.threshold) + " in " + num(*to_threshold.days) + " days"
                                    : " reaches the threshold only at the steep end of the trend's interval, in " + num(*to_threshold.earliest) + " days";
        rec["details"] = detail;
        recommendations.push_back(std::move(rec));
    }
    if (planned == 0)
        throw ApiError(ErrorCode::INSUFFICIENT_HISTORY, "Not enough history to plan capacity: no resource has " + std::to_string(kPlanMinDays) + " days of daily peaks",
                       first_shortage, {"cpu", "memory", "agents"},
                       {"resmgrd rolls the node's series up into 1-hour buckets kept 2 years; a week of them is needed"});
    json plan{{"analysis_date", when(today)},
              {"time_horizon", horizon_text},
              {"growth_assumptions", {{"workflow_increase", round3(growth * 100)},
                                      {"applied_as", "demand scaled by 1 + workflow_increase x t / horizon on top of the measured trend"}}},
              {"current_capacity", {{"cpu_cores", avail.cpu_total}, {"memory_gb", round3(static_cast<double>(avail.memory_total) / kGiB)},
                                    {"max_agents", avail.agents_max}}},
              {"units", {{"cpu", "percent of the node"}, {"memory", "percent of the node"}, {"agents", "live agents"}}},
              {"utilization_analysis", utilization},
              {"forecasted_needs", {{"next_month", next_month}, {"next_quarter", next_quarter}}},
              {"exhaustion", exhaustion},
              {"method", analytics::kExhaustionMethod}};
    if (param_flag(p, "include_recommendations", true)) plan["recommendations"] = recommendations;
    SuccessBody body;
    body.result = {{"capacity_plan", plan}};
    if (p.contains("cost_analysis")) body.recommendations.push_back("cost_analysis is accepted for the seed's shape; resmgr knows no prices");
    return body;
}

// ---- predict ----

json quantity_json(const analytics::QuantityPrediction& q) {
    json j{{"value", number_or_null(q.point)}, {"lower", number_or_null(q.lower)}, {"upper", number_or_null(q.upper)},
           {"interval_level", q.point ? number_or_null(q.level) : json(nullptr)},
           {"interval_method", q.point ? json(analytics::to_string(q.interval_method)) : json(nullptr)}, {"runs", q.runs},
           {"backtest", {{"runs_replayed", q.replayed}, {"coverage", number_or_null(q.coverage)}, {"claimed_level", number_or_null(q.claimed_level)},
                         {"median_abs_pct_error", number_or_null(q.median_ape ? std::optional<double>(*q.median_ape * 100) : std::nullopt)},
                         {"same_as_last_run_median_abs_pct_error",
                          number_or_null(q.last_run_median_ape ? std::optional<double>(*q.last_run_median_ape * 100) : std::nullopt)}}}};
    if (!q.reason.empty()) j["reason"] = q.reason;
    return j;
}

SuccessBody predict(const Call& call) {
    Context& ctx = call.ctx;
    const auto& store = ctx.require_history();
    const json& p = call.params();
    const std::string type = param_string(p, "workflow_type");
    check_name(type, "workflow_type");
    const Millis horizon = param_duration(p, "time_horizon").value_or(std::chrono::hours(1));
    if (horizon <= Millis::zero()) throw ApiError(ErrorCode::INVALID_REQUEST, "'time_horizon' must be positive", {}, {"time_horizon"});
    const double confidence = confidence_of(p, "confidence_level");
    // Owner-scoped like optimize: no user's runs shape another's predictions (root sees all).
    history::RunQuery q;
    if (call.peer.uid != 0) q.owner_uid = call.peer.uid;
    q.workflow_type = type;
    q.limit = 1000;
    const auto runs = store.runs(q);
    const auto prediction = analytics::predict_next_run(runs, confidence);
    const auto& cpu = prediction.quantities[0];
    const auto& memory = prediction.quantities[1];
    const auto& duration = prediction.quantities[2];
    if (!cpu.point && !memory.point && !duration.point)
        throw ApiError(ErrorCode::INSUFFICIENT_HISTORY,
                       "Not enough runs of workflow type '" + type + "' to predict the next: " + std::to_string(runs.size()) + " recorded, " +
                           std::to_string(analytics::kMinPriorRuns) + " needed",
                       duration.reason, {type}, {"Run the work under resmgr-run --type " + type + " a few times; each run is recorded"});

    // The confidence score: the share of all replayed runs that fell inside their intervals.
    std::size_t replayed = 0;
    double inside = 0;
    for (const auto& x : prediction.quantities)
        if (x.coverage) replayed += x.replayed, inside += *x.coverage * static_cast<double>(x.replayed);
    // Runs of this type that started within a horizon, on average over the last week of runs.
    const std::int64_t now = epoch_seconds(ctx.clock()), horizon_s = std::chrono::duration_cast<std::chrono::seconds>(horizon).count();
    std::size_t last_week = 0;
    for (const auto& r : runs) last_week += r.started_at >= now - 7 * kDay;
    json meta{{"predicted_duration", duration.point ? json(format_duration(std::chrono::seconds(std::llround(*duration.point)))) : json(nullptr)},
              {"duration_seconds", quantity_json(duration)},
              {"confidence_score", replayed ? number_or_null(inside / static_cast<double>(replayed)) : json(nullptr)},
              {"confidence_method", "share of the replayed runs (every quantity) inside the interval predicted from the runs before them"},
              {"runs_replayed", replayed},
              {"confidence_interval", {{"quantity", "memory_gb"}, {"lower_bound", number_or_null(memory.lower)}, {"upper_bound", number_or_null(memory.upper)}}},
              {"method", analytics::kRunPredictionMethod},
              {"expected_runs_in_horizon", round3(static_cast<double>(last_week) * static_cast<double>(horizon_s) / (7.0 * kDay))}};
    if (param_flag(p, "include_risk_analysis", true)) {
        json risks = json::array();
        const double n = static_cast<double>(prediction.runs);
        if (prediction.oom_killed > 0)
            risks.push_back({{"factor", "oom_history"}, {"runs", prediction.oom_killed}, {"share", round3(static_cast<double>(prediction.oom_killed) / n)},
                             {"detail", std::to_string(prediction.oom_killed) + " of " + std::to_string(prediction.runs) + " runs were OOM-killed"}});
        if (prediction.failed > 0)
            risks.push_back({{"factor", "failures"}, {"runs", prediction.failed}, {"share", round3(static_cast<double>(prediction.failed) / n)}});
        for (const auto& x : prediction.quantities)
            if (x.slope_lower && *x.slope_lower > 0 && x.point && *x.point > 0)
                risks.push_back({{"factor", "growing_" + x.name}, {"slope_per_run", number_or_null(x.slope_per_run)},
                                 {"percent_per_run", number_or_null(*x.slope_per_run / *x.point * 100)},
                                 {"detail", x.name + " rises from run to run (the Theil-Sen slope's interval lies above 0)"}});
        const auto avail = ctx.ledger().admission().availability();
        const bool cpu_short = cpu.upper && *cpu.upper > avail.cpu_available;
        const bool memory_short = memory.upper && *memory.upper * kGiB > static_cast<double>(avail.memory_available);
        if (cpu_short || memory_short)
            risks.push_back({{"factor", "queueing"},
                             {"detail", "the node has " + num(avail.cpu_available) + " cores and " + num(static_cast<double>(avail.memory_available) / kGiB) +
                                            " GiB unallocated now; the next run may use up to " + num(cpu.upper.value_or(0)) + " cores and " +
                                            num(memory.upper.value_or(0)) + " GiB"}});
        meta["risk_factors"] = risks;
    }
    SuccessBody body;
    body.result = {{"workflow_type", type},
                   {"time_horizon", format_duration(horizon)},
                   {"runs", prediction.runs},
                   {"predicted_resources", {{"cpu_cores", quantity_json(cpu)}, {"memory_gb", quantity_json(memory)},
                                            {"agents", nullptr}, {"storage_gb", nullptr}}},
                   {"not_measured", {{"agents", "run records do not count agents"}, {"storage_gb", "run records do not measure storage"}}},
                   {"prediction_metadata", meta}};
    return body;
}

} // namespace

void register_planning_operations(Router& router) {
    router.add("forecast", "", forecast);
    router.add("analyze-trends", "", analyze_trends);
    router.add("plan-capacity", "", plan_capacity);
    router.add("predict", "", predict);
}

} // namespace resmgr::server
