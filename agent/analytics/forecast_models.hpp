// Forecasting models for regular series (a value every `step` seconds), and the detection of
// their seasons. Pure: values in, forecasts out; no I/O, no clock. backtest.hpp scores them and
// picks one per series; the daemon's forecast and `resmgr backtest` both go through that.
//
// Every model forecasts from an origin o: it sees y[0..o) only and gives the h values
// y[o..o+h). The models:
//   - seasonal naive: y[o−m+((j−1) mod m)], the value one season earlier (m = 1: the last value);
//   - drift: the last value plus the mean step of the whole history (Hyndman & Athanasopoulos,
//     "Forecasting: Principles and Practice", 5.2);
//   - linear fit: least squares over the last `window` values, extended (Prometheus'
//     predict_linear, what capacity alerts use; a baseline, never chosen);
//   - Theil-Sen: a robust trend (median of pairwise slopes, Theil 1950 / Sen 1968) over pairs a
//     whole number of seasons apart (so the seasonal pattern cancels out of every slope), added to
//     the median of the last seasons' values at the same phase, each moved along that trend;
//   - Holt-Winters / ETS(A,Ad,A): additive errors, damped additive trend, one or two additive
//     seasons (Taylor 2003's double seasonal Holt-Winters for day and week), in the
//     error-correction form of Hyndman et al. 2008 ("Forecasting with Exponential Smoothing").
//     Its parameters come from a coarse grid (ets_grid), chosen by the back-test; errors are
//     clipped (Huber-style) when the state is updated (EtsParams::clip). A level shift is told
//     from a spike by a run rule (EtsParams::shift_run): when that many one-step errors in a row
//     lie beyond the clip on the same side, the state is put back to where the run began, its
//     level moved by the median of the run's errors (a level-shift intervention at the run's
//     start, as in Chen & Liu 1993), and the run's values are filtered again; until 1/α values
//     have come since the shift, the level is their median (seasons removed): a fresh start from
//     the post-shift data. Without it the clipped state creeps towards the new level by α·clip
//     scales a step, and the seasonal profile soaks up what the level does not.
// May call: nothing outside analytics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace resmgr::analytics {

// A season looked for: one day and one week, in steps of the series.
struct Season {
    std::string name;        // "1d", "1w"
    std::size_t period = 0;  // in steps
    double autocorrelation = 0;
    bool found = false;
    std::string reason;      // why it was not taken (too short, weak), or empty
};

// Autocorrelation at the lag of 1 day and 1 week, on the series with its least-squares line
// removed (for the week: also with the mean daily profile removed, so a purely daily pattern does
// not count as a weekly one). A season is found when that is at least kSeasonMinAutocorrelation
// and the series holds at least two whole periods. A lag that is not a whole number of steps is
// not looked for.
inline constexpr double kSeasonMinAutocorrelation = 0.25;
std::vector<Season> detect_seasons(const std::vector<double>& y, std::int64_t step_seconds);

// The forecasts of y[o..o+h), written to out[0..h). Each needs o ≥ 1; those with a season need
// o ≥ m (Theil-Sen with a season: o ≥ 2m).
void seasonal_naive_forecast(const std::vector<double>& y, std::size_t o, std::size_t m, std::size_t h, double* out);
void drift_forecast(const std::vector<double>& y, std::size_t o, std::size_t h, double* out);
void linear_fit_forecast(const std::vector<double>& y, std::size_t o, std::size_t window, std::size_t h, double* out);
// m: the season (1 = none). The trend is fitted over the last min(o, window) values.
void theil_sen_forecast(const std::vector<double>& y, std::size_t o, std::size_t m, std::size_t window, std::size_t h, double* out);

struct EtsParams {
    double alpha = 0.1;          // level
    double beta = 0;             // trend (0: no trend)
    double phi = 1;              // damping of the trend
    double gamma1 = 0, gamma2 = 0; // the two seasons (0 when a season is absent)
    // The state is updated with the error clipped at ±clip robust scales (0: not clipped), so one
    // spike does not drag the level and the seasonal profile with it; the scale is 1.25 × an
    // exponentially weighted (0.99) mean of the clipped absolute errors (≈ σ for Gaussian errors).
    // 3 was chosen on the tuning series of bench_forecast (BENCHMARKS.md), not on the held-out ones.
    double clip = 3;
    // Level-shift detection (needs clip > 0): this many consecutive one-step errors beyond the
    // clip, all on one side, restart the level from the run's start (see above); 0: off.
    // Western Electric's run rules for control charts, with the clip as the control limit.
    std::size_t shift_run = 0;
    std::string describe() const;
};

// The grid searched: alpha × (no trend, or beta = alpha·{0.01, 0.1} × phi {0.98, 0.995}) ×
// gamma = (1 − alpha)·{0.1, 0.3} for each season present. With shift_run > 0 every point comes
// twice, with level-shift detection first and then without it: the back-test's choice of a
// grid point on the folds already ended (ties to the first) keeps the detection unless the
// twin without it has done better, e.g. on a series whose bursts look like shifts.
std::vector<EtsParams> ets_grid(bool season1, bool season2, std::size_t shift_run = 0);

// The run of EtsParams::shift_run the back-test uses, in values (a run rule counts values, as
// Nelson's "nine in a row on one side" does). Chosen on the tuning series of bench_forecast
// (BENCHMARKS.md), not on the held-out ones.
inline constexpr std::size_t kShiftRun = 12;

// Runs ETS(A,Ad,A) through y once. Seasons m1 and m2 (0 = absent; m2 a multiple of m1 when
// both are there). The state starts from the first season (the first m2 values when there are
// two; the first 16 when there is none) and is then updated value by value.
class EtsFilter {
public:
    EtsFilter(const std::vector<double>& y, std::size_t m1, std::size_t m2, const EtsParams& params);
    // Values needed before the first forecast.
    std::size_t warmup() const { return start_; }
    // Advances the state through y[next..o) (o ≥ the last origin asked, and ≥ warmup()),
    // accumulating one-step errors, then writes the forecasts of y[o..o+h) to out.
    void forecast_from(std::size_t o, std::size_t h, double* out);
    // Sum of squared one-step errors so far.
    double sse() const { return sse_; }
    // Advances to o without forecasting.
    void advance(std::size_t o);
    // Level shifts detected so far (EtsParams::shift_run).
    std::size_t shifts() const { return shifts_; }
    // True when a level shift was detected among the last `values` values before where the
    // filter stands: the shift may yet turn out to be an excursion that returns, and the
    // back-test's intervals then span this forecast and its twin's without detection.
    bool shift_detected_within(std::size_t values) const { return shifts_ > 0 && t_ - detected_at_ < values; }

private:
    const std::vector<double>& y_;
    std::size_t m1_, m2_;
    EtsParams p_;
    std::size_t start_ = 0, t_ = 0;
    double level_ = 0, trend_ = 0, sse_ = 0, scale_ = 0; // scale_: of the clipping, 0 until the first error
    std::vector<double> s1_, s2_;
    // The open run of errors beyond the clip: its side (+1, −1, 0: none), its raw errors, and the
    // state before its first value (seasonal entries as an undo log: index, old value).
    struct Run {
        int side = 0;
        std::size_t start = 0;
        double level = 0, trend = 0, sse = 0, scale = 0;
        std::vector<double> errors;
        std::vector<std::pair<std::size_t, double>> s1_undo, s2_undo;
    } run_;
    std::size_t replay_until_ = 0, shifts_ = 0; // no new run opens before replay_until_ (a restart's values)
    std::size_t detected_at_ = 0;                // the value after which the last shift was detected
    // After a restart, until there are 1/alpha of them: the values since the shift, seasons
    // removed, whose median is the level (a fresh start; the smoothed level weighs about 1/alpha).
    std::vector<double> fresh_, sorted_;
    bool fresh_active_ = false;
};

} // namespace resmgr::analytics
