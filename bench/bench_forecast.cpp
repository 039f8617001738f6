// Forecast accuracy on the NAB corpus (issue 14): every series under the NAB directory
// (argv[1], default /work/shared/data/nab; read there, never copied into the repository) back-tested
// as `resmgr backtest --csv FILE` does it (the same analytics::read_series_csv,
// to_regular_series and backtest), at a horizon of 1 day with an origin every 6 h and 95 %
// intervals. A bench program: prints tables, no Google Benchmark.
//
// Per series: MASE and MAE relative to the seasonal naive, of the selection (each fold forecast by
// the model that was best on the folds before it: out of sample) and of the model chosen on all
// folds; the coverage of the 95 % intervals; the MAE of Prometheus-style predict_linear (a
// least-squares line over the last day, what capacity alerts use) relative to the seasonal naive;
// and the CPU time of fit + back-test (this thread's CPU clock: the build machine is shared, so
// wall time would measure the neighbours), also per 14 days of data.
//
// Tuning: only the series in kTuneSet were looked at while changing agent/analytics after the
// first run; every other series is held out, and the summary is given for both groups.
// Targets (issue 14): median relative MAE ≤ 0.85 and none above 1.0; 95 % coverage within
// 92-97 %; fit + back-test ≤ 100 ms per 14 days of 5-minute data on one core.
// Intervals: adapted as backtest.hpp says with γ = kIntervalAdaptRate (--adapt-rate G to try
// another); the coverage without adaptation (γ = 0, plain split conformal) is printed beside it.
// Level shifts: --no-level-shifts runs the ETS grid without its level-shift detection (the method
// before), --shift-run N tries another run length (EtsParams::shift_run), --no-span keeps the
// intervals around the restarted forecast alone after a detected shift (the method before
// BacktestOptions::span_shifts).
// Winkler: the selection's mean Winkler score over the seasonal naive's (lower is better; what a
// wider band costs).
// Run: build-release/bench/bench_forecast [nab-dir] [--adapt-rate G] [--no-level-shifts] [--shift-run N] [--no-span]
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "analytics/backtest.hpp"
#include "analytics/series_csv.hpp"

using namespace resmgr::analytics;

namespace {

// ec2_cpu_utilization_825cc2 joined on 2026-12-06: its misses were diagnosed fold by fold
// (BENCHMARKS.md, "A band over both readings of a recent level shift") before the change made then.
const std::set<std::string> kTuneSet{"art_daily_jumpsup", "ec2_cpu_utilization_77c1ca", "rds_cpu_utilization_cc0c53", "nyc_taxi",
                                     "ec2_cpu_utilization_825cc2"};

struct Row {
    std::string name;
    bool tune = false;
    double days = 0, cpu_ms = 0;
    BacktestResult r;
    std::optional<double> plain_coverage; // the selection's, with intervals not adapted (γ = 0)
};

double cpu_now_ms() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

const ModelScore& model(const BacktestResult& r, const std::string& name) {
    for (const ModelScore& m : r.models)
        if (m.model == name) return m;
    return r.selection;
}

double or_nan(const std::optional<double>& v) { return v ? *v : std::nan(""); }

double relative_winkler(const BacktestResult& r) {
    const double naive = or_nan(model(r, "seasonal_naive").winkler);
    return naive > 0 ? or_nan(r.selection.winkler) / naive : std::nan(""); // a flat series: no ratio
}

double median(std::vector<double> v) {
    v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
    if (v.empty()) return std::nan("");
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

void summary(const char* title, const std::vector<const Row*>& rows) {
    if (rows.empty()) return;
    std::vector<double> sel, chosen, cov, cov_chosen, cov_plain, lin, per14, winkler;
    double worst_sel = 0, worst_chosen = 0;
    for (const Row* row : rows) {
        sel.push_back(or_nan(row->r.selection.relative_mae));
        chosen.push_back(or_nan(model(row->r, row->r.chosen).relative_mae));
        cov.push_back(or_nan(row->r.selection.coverage));
        cov_chosen.push_back(or_nan(model(row->r, row->r.chosen).coverage));
        cov_plain.push_back(or_nan(row->plain_coverage));
        lin.push_back(row->r.selection.mae / model(row->r, "linear_fit").mae);
        per14.push_back(row->cpu_ms * 14 / row->days);
        winkler.push_back(relative_winkler(row->r));
        worst_sel = std::max(worst_sel, sel.back());
        worst_chosen = std::max(worst_chosen, chosen.back());
    }
    auto in_band = [](const std::vector<double>& v) {
        return static_cast<int>(std::count_if(v.begin(), v.end(), [](double c) { return c >= 0.92 && c <= 0.97; }));
    };
    std::printf("%s (%zu series)\n", title, rows.size());
    std::printf("  relative MAE vs seasonal naive: selection median %.3f, max %.3f; chosen model median %.3f, max %.3f\n",
                median(sel), worst_sel, median(chosen), worst_chosen);
    std::printf("  95%% coverage: selection median %.1f%% (%d of %zu in 92-97%%, range %.1f-%.1f%%); chosen model median %.1f%% (%d in band)\n",
                100 * median(cov), in_band(cov), cov.size(), 100 * *std::min_element(cov.begin(), cov.end()),
                100 * *std::max_element(cov.begin(), cov.end()), 100 * median(cov_chosen), in_band(cov_chosen));
    std::printf("  95%% coverage not adapted (gamma 0): selection median %.1f%% (%d of %zu in 92-97%%, range %.1f-%.1f%%)\n", 100 * median(cov_plain),
                in_band(cov_plain), cov_plain.size(), 100 * *std::min_element(cov_plain.begin(), cov_plain.end()),
                100 * *std::max_element(cov_plain.begin(), cov_plain.end()));
    std::printf("  MAE of the selection / MAE of predict_linear: median %.3f\n", median(lin));
    std::printf("  Winkler score of the selection / the seasonal naive's: median %.3f\n", median(winkler));
    std::printf("  fit + back-test CPU per 14 days of data: median %.1f ms, max %.1f ms\n", median(per14),
                *std::max_element(per14.begin(), per14.end()));
}

} // namespace

int main(int argc, char** argv) {
    std::filesystem::path dir = "/work/shared/data/nab";
    double adapt_rate = kIntervalAdaptRate;
    bool level_shifts = true, span = true;
    std::size_t shift_run = kShiftRun;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--adapt-rate" && i + 1 < argc) adapt_rate = std::atof(argv[++i]);
        else if (std::string(argv[i]) == "--no-level-shifts") level_shifts = false;
        else if (std::string(argv[i]) == "--no-span") span = false;
        else if (std::string(argv[i]) == "--shift-run" && i + 1 < argc) shift_run = static_cast<std::size_t>(std::atoi(argv[++i]));
        else dir = argv[i];
    }
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
        std::printf("skipped: %s is not a directory (the NAB corpus is not on this machine)\n", dir.c_str());
        return 0;
    }
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir, ec))
        if (entry.is_regular_file() && entry.path().extension() == ".csv") files.push_back(entry.path());
    std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.filename() < b.filename(); });
    std::printf("NAB series under %s: horizon 1d, an origin every 6h, 95%% intervals adapted with gamma %.3f. tune = looked at while tuning; "
                "held = held out.\nrelMAE = MAE / seasonal naive's MAE; sel = the selection (out of sample), chosen = the model "
                "best on all folds; lin = predict_linear over the last day\n\n",
                dir.c_str(), adapt_rate);
    std::printf("%-40s %-5s %6s %5s %5s %-14s %6s %7s %7s %7s %7s %7s %7s %7s %8s %8s\n", "series", "set", "points", "days", "folds", "chosen",
                "MASE", "relMAE", "chosen", "lin", "cov", "cov ch.", "cov g0", "winkler", "cpu ms", "ms/14d");
    std::vector<Row> rows;
    for (const auto& file : files) {
        Row row;
        row.name = file.stem().string();
        row.tune = kTuneSet.count(row.name) > 0;
        std::ifstream in(file);
        try {
            const RegularSeries series = to_regular_series(read_series_csv(in));
            row.days = static_cast<double>(series.values.size()) * static_cast<double>(series.step) / 86400.0;
            BacktestOptions options;
            options.adapt_rate = adapt_rate;
            options.level_shifts = level_shifts;
            options.span_shifts = span;
            options.shift_run = shift_run;
            options.horizon = static_cast<std::size_t>(86400 / series.step);
            options.step = static_cast<std::size_t>(6 * 3600 / series.step);
            const double start = cpu_now_ms();
            row.r = backtest(series.values, series.filled, series.step, options);
            row.cpu_ms = cpu_now_ms() - start;
            options.adapt_rate = 0;
            row.plain_coverage = backtest(series.values, series.filled, series.step, options).selection.coverage;
        } catch (const std::exception& e) {
            std::printf("%-40s skipped: %s\n", row.name.c_str(), e.what());
            continue;
        }
        const BacktestResult& r = row.r;
        std::printf("%-40s %-5s %6zu %5.1f %5zu %-14s %6.3f %7.3f %7.3f %7.3f %6.1f%% %6.1f%% %6.1f%% %7.3f %8.1f %8.1f\n", row.name.c_str(),
                    row.tune ? "tune" : "held", r.points, row.days, r.folds, r.chosen.c_str(), or_nan(r.selection.mase),
                    or_nan(r.selection.relative_mae), or_nan(model(r, r.chosen).relative_mae),
                    or_nan(model(r, "linear_fit").relative_mae), 100 * or_nan(r.selection.coverage),
                    100 * or_nan(model(r, r.chosen).coverage), 100 * or_nan(row.plain_coverage),
                    relative_winkler(r), row.cpu_ms, row.cpu_ms * 14 / row.days);
        rows.push_back(std::move(row));
    }
    std::vector<const Row*> all, tune, held;
    for (const Row& row : rows) {
        all.push_back(&row);
        (row.tune ? tune : held).push_back(&row);
    }
    std::printf("\n");
    summary("all", all);
    summary("tuned on", tune);
    summary("held out", held);
    return 0;
}
