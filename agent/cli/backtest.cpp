// `resmgr backtest` (see backtest.hpp).
#include "cli/backtest.hpp"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>

#include "resmgr/json.hpp"
#include "resmgr/model.hpp"

namespace resmgr::cli {
namespace {

using nlohmann::json;
using namespace resmgr::analytics;

std::string when(std::int64_t ts) { return format_timestamp(TimePoint(std::chrono::seconds(ts))); }

json optional_number(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json score_json(const ModelScore& s) {
    return {{"model", s.model},
            {"detail", s.detail},
            {"candidate", s.candidate},
            {"points", s.points},
            {"mae", s.mae},
            {"mase", optional_number(s.mase)},
            {"relative_mae", optional_number(s.relative_mae)},
            {"interval_points", s.interval_points},
            {"coverage", optional_number(s.coverage)},
            {"winkler", optional_number(s.winkler)}};
}

std::string fixed(const json& v, const char* format) {
    if (!v.is_number()) return "-";
    char text[32];
    std::snprintf(text, sizeof text, format, v.get<double>());
    return text;
}

constexpr const char* kHelp =
    "resmgr backtest - back-test the forecasting models on a time series, offline (no resmgrd).\n\n"
    "Reads FILE (a header, then timestamp,value first on each row; ISO 8601, 'YYYY-MM-DD HH:MM:SS' (UTC) or\n"
    "seconds since the epoch; more columns ignored), lays it on a regular grid (the median spacing),\n"
    "finds its seasons (1 day, 1 week), and forecasts HORIZON ahead from an origin every STEP, each\n"
    "time from the values before the origin only. Prints the model chosen, the seasons, points, folds,\n"
    "and for the selection and every model: MASE, MAE relative to the seasonal naive, the coverage of\n"
    "the intervals and their Winkler score.\n\n"
    "Bad input: a row that is not a timestamp and a finite number, or a timestamp earlier than the\n"
    "row before it, refuses the file naming its line (exit 1). Handled and reported: duplicate\n"
    "timestamps (averaged) and gaps (filled by linear interpolation, never scored).\n\n"
    "Examples:\n"
    "  resmgr backtest --csv cpu.csv\n"
    "  resmgr backtest --csv cpu.csv --horizon 6h --step 1h --confidence 0.9\n"
    "  resmgr backtest --csv cpu.csv --forecasts-out folds.csv --json\n"
    "  resmgr backtest --csv cpu.csv --svg cpu.svg   (the series' end, the forecast ahead and its interval)\n"
    "  resmgr backtest --csv cpu.csv --anomalies --json | jq '.anomalies[] | select(.score > 10)'\n";

} // namespace

json backtest_report(const std::string& file, const RegularSeries& series, const BacktestResult& result,
                     std::chrono::microseconds elapsed) {
    json seasons = json::array();
    for (const Season& s : result.seasons) {
        json j = {{"name", s.name}, {"period", s.period}, {"found", s.found}};
        if (s.found || s.reason.rfind("autocorrelation", 0) == 0) j["autocorrelation"] = s.autocorrelation;
        if (!s.reason.empty()) j["reason"] = s.reason;
        seasons.push_back(j);
    }
    json models = json::array();
    for (std::size_t i = 0; i < result.models.size(); ++i) {
        json m = score_json(result.models[i]);
        if (result.models[i].candidate) m["folds_selected"] = result.selected_folds[i];
        models.push_back(m);
    }
    json chosen;
    for (const ModelScore& s : result.models)
        if (s.model == result.chosen) chosen = score_json(s);
    const auto span = [&](std::size_t steps) { return format_duration(std::chrono::seconds(static_cast<std::int64_t>(steps) * series.step)); };
    return {{"file", file},
            {"series",
             {{"points", series.values.size()},
              {"rows", series.samples},
              {"step", span(1)},
              {"step_seconds", series.step},
              {"start", when(series.start)},
              {"end", when(series.ts(series.values.size() - 1))},
              {"duplicate_timestamps_averaged", series.duplicate_timestamps},
              {"first_duplicate_line", series.first_duplicate_line == 0 ? json(nullptr) : json(series.first_duplicate_line)},
              {"rows_merged", series.merged},
              {"gaps", {{"count", series.gaps}, {"points_filled", series.gap_points}, {"longest", series.longest_gap}}}}},
            {"seasons", seasons},
            {"backtest",
             {{"horizon", span(result.options.horizon)},
              {"horizon_steps", result.options.horizon},
              {"step", span(result.options.step)},
              {"step_steps", result.options.step},
              {"folds", result.folds},
              {"min_train", result.min_train},
              {"confidence", result.options.confidence},
              {"method", kBacktestMethods}}},
            {"chosen", chosen},
            {"mase_note", result.mase_note.empty() ? json(nullptr) : json(result.mase_note)},
            {"selection", score_json(result.selection)},
            {"models", models},
            {"elapsed_ms", static_cast<double>(elapsed.count()) / 1000.0}};
}

json anomalies_report(const RegularSeries& series, const std::vector<Anomaly>& anomalies) {
    json list = json::array();
    for (const Anomaly& a : anomalies) list.push_back({{"timestamp", when(series.ts(a.index))}, {"value", a.value}, {"score", a.score}});
    return {{"anomalies", list}, {"method", kAnomalyMethod}};
}

void print_backtest(std::ostream& out, const json& r) {
    const json& s = r["series"];
    out << r["file"].get<std::string>() << ": " << s["points"] << " points every " << s["step"].get<std::string>() << ", "
        << s["start"].get<std::string>() << " .. " << s["end"].get<std::string>() << "\n";
    out << "  " << s["rows"] << " rows; duplicate timestamps averaged: " << s["duplicate_timestamps_averaged"]
        << "; rows merged into a slot: " << s["rows_merged"] << "; gaps filled: " << s["gaps"]["count"] << " ("
        << s["gaps"]["points_filled"] << " points, longest " << s["gaps"]["longest"] << ")\n";
    out << "seasons:";
    for (const json& season : r["seasons"]) {
        out << " " << season["name"].get<std::string>();
        if (season["period"].get<std::size_t>() > 0) out << " (" << season["period"] << " steps)";
        out << (season["found"].get<bool>() ? " found" : " not found");
        if (season.contains("autocorrelation"))
            out << ", autocorrelation " << fixed(season["autocorrelation"], "%.2f")
                << (season["found"].get<bool>() ? "" : " (below " + fixed(kSeasonMinAutocorrelation, "%.2f") + ")");
        if (season.contains("reason") && !season.contains("autocorrelation")) out << " [" << season["reason"].get<std::string>() << "]";
        out << ";";
    }
    const json& b = r["backtest"];
    out << "\nback-test: " << b["folds"] << " folds, horizon " << b["horizon"].get<std::string>() << " (" << b["horizon_steps"]
        << " steps), an origin every " << b["step"].get<std::string>() << ", the first after " << b["min_train"] << " points; "
        << fixed(b["confidence"].get<double>() * 100, "%.0f") << "% intervals\n";
    out << "model chosen: " << r["chosen"]["model"].get<std::string>() << " (" << r["chosen"]["detail"].get<std::string>() << ")\n\n";
    out << "  model            MASE  rel.MAE          MAE  coverage     Winkler  folds\n";
    auto row = [&](const json& m, const std::string& folds) {
        char line[200];
        std::snprintf(line, sizeof line, "  %-14s %6s %8s %12s %9s %11s  %s\n", m["model"].get<std::string>().c_str(),
                      fixed(m["mase"], "%.3f").c_str(), fixed(m["relative_mae"], "%.3f").c_str(), fixed(m["mae"], "%.4g").c_str(),
                      m["coverage"].is_number() ? (fixed(m["coverage"].get<double>() * 100, "%.1f") + "%").c_str() : "-",
                      fixed(m["winkler"], "%.4g").c_str(), folds.c_str());
        out << line;
    };
    row(r["selection"], "all");
    for (const json& m : r["models"]) row(m, m.contains("folds_selected") ? m["folds_selected"].dump() : "baseline");
    if (r["mase_note"].is_string()) out << "  " << r["mase_note"].get<std::string>() << "\n";
    out << "\nselection: each fold forecast by the model best on the folds before it (out of sample); the model rows\n"
           "are each model on every fold. Coverage counts the points that had an interval: "
        << r["selection"]["interval_points"] << " of " << r["selection"]["points"] << ".\nfit + back-test: "
        << fixed(r["elapsed_ms"], "%.1f") << " ms\n";
}

void write_forecasts_csv(std::ostream& out, const RegularSeries& series, const BacktestResult& result) {
    out << "origin,timestamp,actual,forecast,lower,upper\n";
    char number[40];
    auto put = [&](double v) {
        if (std::isnan(v)) return std::string();
        std::snprintf(number, sizeof number, "%.10g", v);
        return std::string(number);
    };
    for (const FoldForecast& f : result.forecasts) {
        const std::string origin = when(series.ts(f.origin));
        for (std::size_t j = 0; j < f.forecast.size(); ++j) {
            const std::size_t t = f.origin + j;
            out << origin << ',' << when(series.ts(t)) << ',' << (series.filled[t] ? std::string() : put(series.values[t])) << ','
                << put(f.forecast[j]) << ',' << put(f.lower[j]) << ',' << put(f.upper[j]) << '\n';
        }
    }
}

Chart backtest_chart(const std::string& file, const RegularSeries& series, const BacktestResult& result) {
    Chart c;
    const FoldForecast& ahead = result.ahead;
    c.title = file + ": forecast " + format_duration(std::chrono::seconds(series.step * static_cast<std::int64_t>(ahead.forecast.size()))) +
              " ahead (" + ahead.model + ")";
    c.level = result.options.confidence;
    const std::size_t n = series.values.size(), shown = std::min(n, 3 * ahead.forecast.size());
    for (std::size_t i = n - shown; i < n; ++i) c.history.push_back({series.ts(i), series.filled[i] ? NAN : series.values[i]});
    for (std::size_t j = 0; j < ahead.forecast.size(); ++j)
        c.forecast.push_back({series.ts(ahead.origin + j), ahead.forecast[j], ahead.lower[j], ahead.upper[j]});
    return c;
}

int backtest_main(int argc, char** argv) {
    CLI::App app{kHelp, "resmgr backtest"};
    std::string csv, horizon_text = "1d", step_text = "6h", forecasts_out, svg;
    double confidence = 0.95;
    bool anomalies = false, as_json = false;
    app.add_option("--csv", csv, "the series: a CSV file, timestamp,value first on each row")->required();
    app.add_option("--horizon", horizon_text, "how far ahead each fold forecasts (default 1d)");
    app.add_option("--step", step_text, "time between back-test origins (default 6h)");
    app.add_option("--confidence", confidence, "level of the prediction intervals (default 0.95)");
    app.add_option("--forecasts-out", forecasts_out, "write every fold's forecasts as origin,timestamp,actual,forecast,lower,upper");
    app.add_option("--svg", svg, "write a chart of the series' end and the forecast ahead with its interval to this SVG file");
    app.add_flag("--anomalies", anomalies, "also list the anomalies found causally, each value judged only from the values before it");
    app.add_flag("--json", as_json, "print JSON even on a terminal");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    const auto usage = [](const std::string& message) {
        std::cerr << "resmgr backtest: " << message << " (see resmgr backtest --help)\n";
        return 2;
    };
    const auto horizon = parse_duration(horizon_text), step = parse_duration(step_text);
    if (!horizon || horizon->count() <= 0) return usage("--horizon '" + horizon_text + "' is not a duration such as 1d or 6h");
    if (!step || step->count() <= 0) return usage("--step '" + step_text + "' is not a duration such as 6h or 30m");
    if (!(confidence > 0 && confidence < 1)) return usage("--confidence must be between 0 and 1, such as 0.95");

    std::ifstream in(csv);
    if (!in) {
        std::cerr << "resmgr backtest: cannot read " << csv << ": " << std::strerror(errno) << "\n";
        return 1;
    }
    try {
        const auto started = std::chrono::steady_clock::now();
        const RegularSeries series = to_regular_series(read_series_csv(in));
        const double step_ms = static_cast<double>(series.step) * 1000.0;
        BacktestOptions options;
        options.horizon = static_cast<std::size_t>(std::llround(static_cast<double>(horizon->count()) / step_ms));
        options.step = static_cast<std::size_t>(std::llround(static_cast<double>(step->count()) / step_ms));
        options.confidence = confidence;
        if (options.horizon == 0 || options.step == 0)
            return usage("--horizon and --step must be at least the series' step (" +
                         format_duration(std::chrono::seconds(series.step)) + ")");
        const BacktestResult result = backtest(series.values, series.filled, series.step, options);
        const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
        json report = backtest_report(csv, series, result, elapsed);
        if (!forecasts_out.empty()) {
            std::ofstream out(forecasts_out);
            write_forecasts_csv(out, series, result);
            out.flush();
            if (!out) {
                std::cerr << "resmgr backtest: cannot write " << forecasts_out << ": " << std::strerror(errno) << "\n";
                return 1;
            }
        }
        if (!svg.empty())
            if (auto error = write_svg_file(svg, {backtest_chart(csv, series, result)})) {
                std::cerr << "resmgr backtest: " << *error << "\n";
                return 1;
            }
        json found;
        if (anomalies) found = anomalies_report(series, detect_anomalies(series.values, series.filled, series.step));
        if (as_json || !::isatty(STDOUT_FILENO)) {
            if (anomalies) report.update(found);
            std::cout << dump_text(report, 2) << "\n";
        } else {
            print_backtest(std::cout, report);
            if (anomalies)
                std::cout << "\nanomalies (" << found["method"].get<std::string>() << "):\n"
                          << dump_text(json{{"anomalies", found["anomalies"]}}) << "\n";
        }
        return 0;
    } catch (const SeriesCsvError& e) {
        std::cerr << "resmgr backtest: " << csv << ": " << e.what() << "\n";
    } catch (const NotEnoughData& e) {
        std::cerr << "resmgr backtest: " << csv << ": " << e.what() << "\n";
    } catch (const std::invalid_argument& e) {
        return usage(e.what());
    }
    return 1;
}

} // namespace resmgr::cli
