// Rolling-origin back-test of the forecasting models on one regular series, the choice of a
// model for it, and the accuracy that choice is reported with. Pure: values in, scores out.
//
// Origins o_k every `step` values, the last one `horizon` values before the end, the first once
// min_train values are there (one longest season plus one shortest, or max(horizon, 32) values
// without a season). At each origin every model forecasts the next `horizon` values from the
// values before it (Tashman 2000, "Out-of-sample tests of forecasting accuracy").
//
// Named methods (kBacktestMethods says the same in every answer):
//   - MASE (Hyndman & Koehler 2006): each absolute error divided by the in-sample MAE of the
//     one-step seasonal naive forecast on the values before that fold's origin (season m = the
//     shortest season found, 1 without one), averaged over all scored points. Null when that
//     in-sample error is 0 (a constant history).
//   - relative MAE: the model's summed absolute error over the seasonal naive's, same points.
//   - prediction intervals: empirical quantiles of the model's own back-test residuals (actual −
//     forecast) from the folds whose windows had ended before the origin (at most the last
//     kIntervalFolds of them), pooled per 1/24 of the horizon; lower = forecast + the
//     ⌊(n+1)·α/2⌋-th smallest, upper = forecast + the ⌈(n+1)·(1−α/2)⌉-th (the split-conformal
//     ranks). No interval until n ≥ 2/α − 1 residuals are there; coverage counts only points
//     that had one. The level of those ranks adapts (adaptive conformal inference, Gibbs &
//     Candès 2021, updated once per fold when its window has ended): α_k = α + γ·Σ (α − miss_i)
//     over the folds i ended before origin k, miss_i the share of fold i's points outside its
//     interval, clamped to [0, kMaxAdaptedAlpha] (0: the widest residuals kept). Folds that miss
//     widen the next intervals, folds that over-cover narrow them; γ = adapt_rate (0: plain split
//     conformal). The forecast ahead uses the level after every fold. For a day after ETS
//     detected a level shift (kShiftSpanSeconds; the grid point's detection, before the origin),
//     the offsets are added to the lower and the higher of two forecasts: the one that restarted
//     its level, and its twin's without detection (whose clipped state creeps towards a new
//     level). A shift seen for a few hours may persist (a new level) or return (an excursion);
//     the band spans both until a whole daily cycle has shown which (span_shifts).
//   - Winkler score (Winkler 1972): interval width, plus 2/α times the distance by which the
//     actual falls outside it; mean over the points with an interval. Lower is better.
//   - ETS parameters, per fold: the grid point with the least absolute error over the folds
//     already ended before the origin; before any has ended, the least one-step squared error
//     on the values before it. The grid holds each point with ETS's level-shift detection
//     (EtsParams::shift_run = options.shift_run, forecast_models.hpp) and without it.
//   - selection ("resmgr" in the answers), per fold: the candidate (seasonal naive, drift,
//     Theil-Sen, ETS) with the least absolute error over the folds ended before the origin,
//     when that is less than the seasonal naive's; otherwise the seasonal naive. Each fold's
//     forecast is made as it would have been live: its score is an out-of-sample figure.
//   - the model chosen from now on: the candidate with the least absolute error over all folds,
//     if less than the seasonal naive's, else the seasonal naive. Its own row is a figure that
//     also chose on those folds (slightly optimistic); the selection row is the honest one.
// Values filled into gaps (RegularSeries::filled) are forecast through but never scored.
// Look-ahead, said plainly: the seasons are detected on the whole series, not per fold.
// May call: forecast_models.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "analytics/forecast_models.hpp"

namespace resmgr::analytics {

inline constexpr const char* kBacktestMethods =
    "rolling-origin back-test; MASE (Hyndman & Koehler 2006) scaled by the in-sample one-step seasonal naive MAE before each "
    "origin; intervals from empirical quantiles of the model's residuals on earlier folds per 1/24 of the horizon "
    "(split-conformal ranks) at a level adapted to the misses of the folds already ended (adaptive conformal inference, "
    "Gibbs & Candes 2021); Winkler score; ETS restarting its level from the post-shift data after a run of errors beyond "
    "its clip (a run rule), with a twin without it, the intervals spanning both for a day after a detected shift; per-fold "
    "selection by absolute error on the folds already ended, seasonal naive unless beaten";
inline constexpr std::size_t kIntervalFolds = 40;
// γ of the adaptive intervals: chosen on the NAB tuning series only (bench/bench_forecast.cpp's
// kTuneSet; BENCHMARKS.md gives the held-out figures).
inline constexpr double kIntervalAdaptRate = 0.05;
inline constexpr double kMaxAdaptedAlpha = 0.5;
// How long after a detected level shift the bands span both readings (BacktestOptions::span_shifts):
// a day, chosen on the NAB tuning series among 3, 6, 12 and 24 hours and the restart's own fresh
// start (BENCHMARKS.md, "A band over both readings of a recent level shift").
inline constexpr std::int64_t kShiftSpanSeconds = 86400;

struct BacktestOptions {
    std::size_t horizon = 288;  // values forecast from each origin
    std::size_t step = 72;      // values between origins
    double confidence = 0.95;   // of the intervals, in (0, 1)
    double adapt_rate = kIntervalAdaptRate; // γ of the adaptive intervals, >= 0 (0: not adapted)
    bool level_shifts = true;   // false: the ETS grid without level-shift detection (the method before)
    // For kShiftSpanSeconds after ETS detects a level shift, the interval spans the forecasts with
    // and without detection (false: around the forecast alone, the method before).
    bool span_shifts = true;
    std::size_t shift_run = kShiftRun; // EtsParams::shift_run of the grid's points with detection
};

// Fewer values than a back-test needs; what() says how many there are and how many are needed.
struct NotEnoughData : std::runtime_error {
    NotEnoughData(std::size_t have, std::size_t need, const std::string& why);
    std::size_t have, need;
};

struct ModelScore {
    std::string model;   // seasonal_naive, drift, theil_sen, ets, linear_fit, selection
    std::string detail;  // its parameters, or how it was made
    bool candidate = true; // false: a baseline only (linear_fit)
    std::size_t points = 0; // forecast points scored
    double mae = 0;
    std::optional<double> mase, relative_mae;
    std::size_t interval_points = 0;
    std::optional<double> coverage, winkler;
};

struct FoldForecast {
    std::size_t origin = 0;   // index of the first value forecast
    std::string model;        // which candidate made it
    std::vector<double> forecast, lower, upper; // lower/upper NaN where there was no interval yet
};

struct BacktestResult {
    std::vector<Season> seasons;
    std::size_t season = 1, season2 = 0; // periods used (1 / 0: none)
    std::size_t points = 0, min_train = 0, folds = 0;
    BacktestOptions options;
    std::vector<ModelScore> models;      // seasonal_naive, drift, theil_sen, ets, linear_fit
    ModelScore selection;
    std::vector<std::size_t> selected_folds; // per models[i]: the folds the selection gave it
    std::string chosen, chosen_detail;   // the model for forecasts from now on
    std::string mase_note;               // why MASE is null, when it is
    std::vector<FoldForecast> forecasts; // the selection's, one per fold
    // The next `horizon` values after the series, by the model chosen from now on, bounded by
    // the empirical quantiles of its residuals on the last kIntervalFolds folds (NaN bounds where
    // fewer than 2/α − 1 residuals were there).
    FoldForecast ahead;
};

// `filled` may be empty (nothing filled). NotEnoughData when no fold fits; std::invalid_argument
// for options out of range (horizon or step 0, confidence outside (0, 1)).
BacktestResult backtest(const std::vector<double>& y, const std::vector<bool>& filled, std::int64_t step_seconds,
                        const BacktestOptions& options);

// Predictive alerts: where the forecast from the end first reaches `threshold`, and how often
// such a call held in the back-test (kCrossingMethod): of the folds whose forecast reached the
// threshold, the share whose actual values reached it within the same window (the precision of
// the call). Filled values never count as reaching it.
inline constexpr const char* kCrossingMethod =
    "first forecast point at or above the threshold; confidence = share of the back-test folds whose forecast reached it "
    "in which the actual values reached it too, within the same horizon";

struct Crossing {
    std::optional<std::size_t> at;   // index into ahead.forecast of the first value at or above the threshold
    std::size_t folds_called = 0, folds_confirmed = 0;
    std::optional<double> precision; // folds_confirmed / folds_called; nullopt when no fold called it
};

Crossing predicted_crossing(const std::vector<double>& y, const std::vector<bool>& filled, const BacktestResult& result, double threshold);

} // namespace resmgr::analytics
