// Rolling-origin back-test and model choice (see backtest.hpp).
#include "analytics/backtest.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace resmgr::analytics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::size_t kIntervalBuckets = 24;

// One model's forecasts at every fold, folds × horizon, and what they scored.
struct Track {
    ModelScore score;
    std::vector<double> forecast, lower, upper;
    // The other reading of a recent level shift (ETS: the twin without detection) where there is
    // one, else the forecast itself; empty for models without restarts. Intervals span both.
    std::vector<double> other;
    std::vector<double> fold_abs; // summed absolute error per fold (scored points)
    double next_alpha = 0;        // the adaptive miscoverage level after every fold (for the forecast ahead)
};

struct Layout {
    const std::vector<double>& y;
    const std::vector<bool>& filled;
    std::vector<std::size_t> origins;
    std::size_t h = 0;
    std::size_t lag_folds = 0; // folds k − lag_folds and earlier have ended by origin k

    bool scored(std::size_t t) const { return filled.empty() || !filled[t]; }
    // Folds [0, ended(k)) had ended before origin k.
    std::size_t ended(std::size_t k) const { return k >= lag_folds ? k - lag_folds + 1 : 0; }
};

std::vector<double> fold_abs_errors(const Layout& L, const std::vector<double>& forecast) {
    std::vector<double> out(L.origins.size(), 0.0);
    for (std::size_t k = 0; k < L.origins.size(); ++k)
        for (std::size_t j = 0; j < L.h; ++j) {
            const std::size_t t = L.origins[k] + j;
            if (L.scored(t)) out[k] += std::abs(L.y[t] - forecast[k * L.h + j]);
        }
    return out;
}

// The interval offsets (lowest, highest residual kept) at miscoverage `alpha` from the
// residuals of folds [begin, end) at horizon steps [j0, j1), or false when fewer than
// 2/nominal_alpha − 1 are there.
bool residual_quantiles(const Layout& L, const Track& track, std::size_t begin, std::size_t end, std::size_t j0, std::size_t j1,
                        double nominal_alpha, double alpha, std::vector<double>& residuals, double& lo, double& hi) {
    const auto needed = static_cast<std::size_t>(std::ceil(2 / nominal_alpha - 1 - 1e-9));
    residuals.clear();
    for (std::size_t i = begin; i < end; ++i)
        for (std::size_t j = j0; j < j1; ++j) {
            const std::size_t t = L.origins[i] + j;
            if (L.scored(t)) residuals.push_back(L.y[t] - track.forecast[i * L.h + j]);
        }
    const std::size_t n = residuals.size();
    if (n < needed || n == 0) return false;
    const double np1 = static_cast<double>(n + 1);
    const auto lo_rank = std::clamp<std::size_t>(static_cast<std::size_t>(std::floor(np1 * alpha / 2)), 1, n);
    const auto hi_rank = std::clamp<std::size_t>(static_cast<std::size_t>(std::ceil(np1 * (1 - alpha / 2))), 1, n);
    std::nth_element(residuals.begin(), residuals.begin() + static_cast<std::ptrdiff_t>(lo_rank - 1), residuals.end());
    lo = residuals[lo_rank - 1];
    std::nth_element(residuals.begin(), residuals.begin() + static_cast<std::ptrdiff_t>(hi_rank - 1), residuals.end());
    hi = residuals[hi_rank - 1];
    return true;
}

// Bounds around `forecast` (h values) at miscoverage `alpha` from the residuals of folds ended
// before fold k (k = the number of folds: after the last one), written to lower/upper; NaN
// where too few are there for the nominal level. `other` (h values, or null): a second forecast
// the bounds must span too.
void bounds_at(const Layout& L, const Track& track, std::size_t ended, double confidence, double alpha, const double* forecast,
               const double* other, double* lower, double* upper) {
    const std::size_t h = L.h, buckets = std::min(h, kIntervalBuckets), begin = ended > kIntervalFolds ? ended - kIntervalFolds : 0;
    std::vector<double> residuals;
    for (std::size_t b = 0; b < buckets; ++b) {
        const std::size_t j0 = b * h / buckets, j1 = (b + 1) * h / buckets;
        double lo = kNaN, hi = kNaN;
        if (ended > 0 && !residual_quantiles(L, track, begin, ended, j0, j1, 1 - confidence, alpha, residuals, lo, hi)) lo = hi = kNaN;
        for (std::size_t j = j0; j < j1; ++j) {
            lower[j] = (other ? std::min(forecast[j], other[j]) : forecast[j]) + lo;
            upper[j] = (other ? std::max(forecast[j], other[j]) : forecast[j]) + hi;
        }
    }
}

// The share of fold k's scored points that had an interval and fell outside it; nullopt when
// none had one.
std::optional<double> fold_miss(const Layout& L, const Track& track, std::size_t k) {
    std::size_t with = 0, outside = 0;
    for (std::size_t j = 0; j < L.h; ++j) {
        const std::size_t t = L.origins[k] + j, at = k * L.h + j;
        if (!L.scored(t) || std::isnan(track.lower[at])) continue;
        ++with;
        outside += L.y[t] < track.lower[at] || L.y[t] > track.upper[at];
    }
    return with ? std::optional<double>(static_cast<double>(outside) / static_cast<double>(with)) : std::nullopt;
}

// Intervals from the empirical quantiles of earlier folds' residuals, at the level adapted to
// the misses of the folds already ended (see backtest.hpp).
void add_intervals(const Layout& L, const BacktestOptions& options, Track& track) {
    const std::size_t folds = L.origins.size(), h = L.h;
    const double nominal = 1 - options.confidence;
    track.lower.assign(folds * h, kNaN);
    track.upper.assign(folds * h, kNaN);
    double alpha = nominal;
    std::size_t counted = 0; // folds whose misses are in alpha
    auto catch_up = [&](std::size_t ended) {
        for (; counted < ended; ++counted)
            if (const auto miss = fold_miss(L, track, counted)) alpha = std::clamp(alpha + options.adapt_rate * (nominal - *miss), 0.0, kMaxAdaptedAlpha);
    };
    for (std::size_t k = 0; k < folds; ++k) {
        catch_up(L.ended(k));
        bounds_at(L, track, L.ended(k), options.confidence, alpha, track.forecast.data() + k * h,
                  track.other.empty() ? nullptr : track.other.data() + k * h, track.lower.data() + k * h, track.upper.data() + k * h);
    }
    catch_up(folds);
    track.next_alpha = alpha;
}

// MAE, MASE, relative MAE, coverage and Winkler of a track against the seasonal naive's errors.
void score(const Layout& L, const std::vector<double>& scale, const std::vector<double>& naive_abs, double confidence, Track& track) {
    ModelScore& s = track.score;
    const double alpha = 1 - confidence;
    double abs_sum = 0, scaled_sum = 0, naive_sum = 0, winkler_sum = 0;
    std::size_t inside = 0;
    bool scale_zero = false;
    s.points = s.interval_points = 0;
    for (std::size_t k = 0; k < L.origins.size(); ++k) {
        scale_zero = scale_zero || scale[k] <= 0;
        naive_sum += naive_abs[k];
        for (std::size_t j = 0; j < L.h; ++j) {
            const std::size_t t = L.origins[k] + j, at = k * L.h + j;
            if (!L.scored(t)) continue;
            const double e = std::abs(L.y[t] - track.forecast[at]);
            abs_sum += e;
            if (scale[k] > 0) scaled_sum += e / scale[k];
            ++s.points;
            const double lo = track.lower[at], hi = track.upper[at];
            if (std::isnan(lo)) continue;
            ++s.interval_points;
            const double y = L.y[t];
            double w = hi - lo;
            if (y < lo) w += 2 / alpha * (lo - y);
            else if (y > hi) w += 2 / alpha * (y - hi);
            else ++inside;
            winkler_sum += w;
        }
    }
    if (s.points == 0) return;
    const double n = static_cast<double>(s.points);
    s.mae = abs_sum / n;
    s.mase = scale_zero ? std::nullopt : std::optional<double>(scaled_sum / n);
    s.relative_mae = naive_sum > 0 ? std::optional<double>(abs_sum / naive_sum) : std::nullopt;
    if (s.interval_points > 0) {
        s.coverage = static_cast<double>(inside) / static_cast<double>(s.interval_points);
        s.winkler = winkler_sum / static_cast<double>(s.interval_points);
    }
}

// The twin of a grid point with level-shift detection: the same point without it.
EtsParams without_restarts(EtsParams p) {
    p.shift_run = 0;
    return p;
}

// The ETS family: every grid point run through the series once, each fold forecast with the
// grid point chosen causally (see backtest.hpp), into track.forecast; where that point detected a
// level shift within the last `span` values before the origin (0: never), its twin's forecast
// into track.other. `chosen` gets the grid point best over all folds.
void ets_forecasts(const Layout& L, std::size_t m1, std::size_t m2, std::size_t shift_run, std::size_t span, Track& track,
                   EtsParams& chosen) {
    const std::vector<EtsParams> grid = ets_grid(m1 > 1, m2 > 1, shift_run);
    const std::size_t folds = L.origins.size(), h = L.h;
    std::vector<std::vector<double>> prefix(grid.size(), std::vector<double>(folds + 1, 0.0)); // summed fold errors
    std::vector<std::vector<double>> sse(grid.size(), std::vector<double>(folds, 0.0));
    std::vector<double> buffer(h);
    for (std::size_t g = 0; g < grid.size(); ++g) {
        EtsFilter filter(L.y, m1, m2, grid[g]);
        for (std::size_t k = 0; k < folds; ++k) {
            filter.forecast_from(L.origins[k], h, buffer.data());
            sse[g][k] = filter.sse();
            double err = 0;
            for (std::size_t j = 0; j < h; ++j)
                if (L.scored(L.origins[k] + j)) err += std::abs(L.y[L.origins[k] + j] - buffer[j]);
            prefix[g][k + 1] = prefix[g][k] + (std::isfinite(err) ? err : std::numeric_limits<double>::max() / 4);
        }
    }
    std::vector<std::size_t> pick(folds);
    for (std::size_t k = 0; k < folds; ++k) {
        const std::size_t ended = L.ended(k);
        std::size_t best = 0;
        for (std::size_t g = 1; g < grid.size(); ++g) {
            const bool better = ended > 0 ? prefix[g][ended] < prefix[best][ended] : sse[g][k] < sse[best][k];
            if (better) best = g;
        }
        pick[k] = best;
    }
    std::size_t best_all = 0;
    for (std::size_t g = 1; g < grid.size(); ++g)
        if (prefix[g][folds] < prefix[best_all][folds]) best_all = g;
    chosen = grid[best_all];
    track.forecast.assign(folds * h, 0.0);
    if (span > 0 && shift_run > 0) track.other.assign(folds * h, 0.0);
    std::vector<std::size_t> used(pick);
    std::sort(used.begin(), used.end());
    used.erase(std::unique(used.begin(), used.end()), used.end());
    for (std::size_t g : used) {
        EtsFilter filter(L.y, m1, m2, grid[g]), twin(L.y, m1, m2, without_restarts(grid[g]));
        for (std::size_t k = 0; k < folds; ++k) {
            if (pick[k] != g) continue;
            double* out = track.forecast.data() + k * h;
            filter.forecast_from(L.origins[k], h, out);
            if (track.other.empty()) continue;
            double* other = track.other.data() + k * h;
            if (filter.shift_detected_within(span)) twin.forecast_from(L.origins[k], h, other);
            else std::copy(out, out + h, other);
        }
    }
}

std::string steps_text(std::size_t steps, std::int64_t step_seconds) {
    const std::int64_t seconds = static_cast<std::int64_t>(steps) * step_seconds;
    std::string when = seconds % 86400 == 0 ? std::to_string(seconds / 86400) + "d"
                       : seconds % 3600 == 0 ? std::to_string(seconds / 3600) + "h"
                                             : std::to_string(seconds) + "s";
    return when + " (" + std::to_string(steps) + " steps)";
}

} // namespace

NotEnoughData::NotEnoughData(std::size_t have_points, std::size_t need_points, const std::string& why)
    : std::runtime_error(why), have(have_points), need(need_points) {}

BacktestResult backtest(const std::vector<double>& y, const std::vector<bool>& filled, std::int64_t step_seconds,
                        const BacktestOptions& options) {
    if (options.horizon == 0 || options.step == 0) throw std::invalid_argument("horizon and step must be at least one value");
    if (!(options.confidence > 0 && options.confidence < 1)) throw std::invalid_argument("confidence must be between 0 and 1");
    if (!(options.adapt_rate >= 0 && options.adapt_rate <= 1)) throw std::invalid_argument("adapt_rate must be between 0 and 1");
    if (!filled.empty() && filled.size() != y.size()) throw std::invalid_argument("filled must be empty or one flag per value");
    BacktestResult r;
    r.options = options;
    r.points = y.size();
    r.seasons = detect_seasons(y, step_seconds);
    std::size_t m1 = 0, m2 = 0;
    for (const Season& s : r.seasons)
        if (s.found) (m1 == 0 ? m1 : m2) = s.period;
    r.season = std::max<std::size_t>(m1, 1);
    r.season2 = m2;
    const std::size_t h = options.horizon;
    r.min_train = m1 > 0 ? std::max(m1, m2) + m1 : std::max<std::size_t>(h, 32);
    if (y.size() < r.min_train + h)
        throw NotEnoughData(y.size(), r.min_train + h,
                            "too little data: " + std::to_string(y.size()) + " values, a back-test at a horizon of " +
                                steps_text(h, step_seconds) + " needs at least " + std::to_string(r.min_train + h) + " (" +
                                std::to_string(r.min_train) + " to fit" + (m1 > 0 ? ", one longest and one shortest season" : "") +
                                ", then the horizon)");

    Layout L{y, filled, {}, h, (h + options.step - 1) / options.step};
    for (std::size_t o = y.size() - h;; o -= options.step) {
        L.origins.push_back(o);
        if (o < r.min_train + options.step) break;
    }
    std::reverse(L.origins.begin(), L.origins.end());
    const std::size_t folds = L.origins.size();
    r.folds = folds;

    // In-sample one-step seasonal naive MAE before each origin (the MASE scale).
    const std::size_t m = r.season;
    std::vector<double> scale(folds, 0.0);
    {
        double sum = 0;
        std::size_t count = 0, t = m, k = 0;
        for (; k < folds; ++k) {
            for (; t < L.origins[k]; ++t)
                if (L.scored(t) && L.scored(t - m)) sum += std::abs(y[t] - y[t - m]), ++count;
            scale[k] = count > 0 ? sum / static_cast<double>(count) : 0;
        }
    }

    // The models at every origin.
    std::vector<Track> tracks(5);
    const char* names[] = {"seasonal_naive", "drift", "theil_sen", "ets", "linear_fit"};
    for (std::size_t i = 0; i < tracks.size(); ++i) {
        tracks[i].score.model = names[i];
        tracks[i].forecast.resize(folds * h);
    }
    const std::size_t ts_window = m > 1 ? 7 * m : 2 * h;
    for (std::size_t k = 0; k < folds; ++k) {
        const std::size_t o = L.origins[k];
        seasonal_naive_forecast(y, o, m, h, tracks[0].forecast.data() + k * h);
        drift_forecast(y, o, h, tracks[1].forecast.data() + k * h);
        theil_sen_forecast(y, o, m, ts_window, h, tracks[2].forecast.data() + k * h);
        linear_fit_forecast(y, o, h, h, tracks[4].forecast.data() + k * h);
    }
    EtsParams ets_chosen;
    // How long after a detected shift the bands span both readings: a day of values (none
    // without a step to count them in).
    const std::size_t span = options.span_shifts && step_seconds > 0
                                 ? static_cast<std::size_t>(std::max<std::int64_t>(1, kShiftSpanSeconds / step_seconds))
                                 : 0;
    ets_forecasts(L, m1, m2, options.level_shifts ? options.shift_run : 0, span, tracks[3], ets_chosen);
    tracks[0].score.detail = m > 1 ? "the value one season (" + steps_text(m, step_seconds) + ") earlier" : "the last value (no season found)";
    tracks[1].score.detail = "the last value plus the mean step of the whole history";
    tracks[2].score.detail = "Theil-Sen slope over the last " + steps_text(ts_window, step_seconds) +
                             ", on pairs whole seasons apart, from the median of the last values at the same phase";
    tracks[3].score.detail = std::string(m2 > 0 ? "ETS(A,Ad,A) double seasonal" : m1 > 0 ? "ETS(A,Ad,A)" : "ETS(A,Ad,N)") +
                             "; grid point per fold; best over all folds: " + ets_chosen.describe();
    tracks[4].score.detail = "least-squares line over the last " + steps_text(h, step_seconds) + " (Prometheus predict_linear)";
    tracks[4].score.candidate = false;

    for (Track& t : tracks) {
        t.fold_abs = fold_abs_errors(L, t.forecast);
        add_intervals(L, options, t);
    }

    // The selection, fold by fold, from what had ended before each origin.
    const std::size_t candidates = 4;
    std::vector<std::vector<double>> prefix(candidates, std::vector<double>(folds + 1, 0.0));
    for (std::size_t c = 0; c < candidates; ++c)
        for (std::size_t k = 0; k < folds; ++k) prefix[c][k + 1] = prefix[c][k] + tracks[c].fold_abs[k];
    auto best_at = [&](std::size_t ended) {
        std::size_t best = 0;
        for (std::size_t c = 1; c < candidates; ++c)
            if (prefix[c][ended] < prefix[best][ended]) best = c;
        return best;
    };
    Track selection;
    selection.score.model = "selection";
    selection.score.detail = "per fold, the candidate with the least error on the folds ended before it, seasonal naive unless beaten";
    selection.forecast.resize(folds * h);
    selection.lower.resize(folds * h);
    selection.upper.resize(folds * h);
    r.selected_folds.assign(tracks.size(), 0);
    for (std::size_t k = 0; k < folds; ++k) {
        const std::size_t c = L.ended(k) > 0 ? best_at(L.ended(k)) : 0;
        ++r.selected_folds[c];
        const auto from = static_cast<std::ptrdiff_t>(k * h), to = static_cast<std::ptrdiff_t>((k + 1) * h);
        std::copy(tracks[c].forecast.begin() + from, tracks[c].forecast.begin() + to, selection.forecast.begin() + from);
        std::copy(tracks[c].lower.begin() + from, tracks[c].lower.begin() + to, selection.lower.begin() + from);
        std::copy(tracks[c].upper.begin() + from, tracks[c].upper.begin() + to, selection.upper.begin() + from);
        FoldForecast f;
        f.origin = L.origins[k];
        f.model = names[c];
        f.forecast.assign(selection.forecast.begin() + from, selection.forecast.begin() + to);
        f.lower.assign(selection.lower.begin() + from, selection.lower.begin() + to);
        f.upper.assign(selection.upper.begin() + from, selection.upper.begin() + to);
        r.forecasts.push_back(std::move(f));
    }

    for (std::size_t k = 0; k < folds && r.mase_note.empty(); ++k)
        if (scale[k] <= 0)
            r.mase_note = "MASE is undefined: the in-sample one-step seasonal naive error before the origin of fold " +
                          std::to_string(k + 1) + " (value " + std::to_string(L.origins[k]) + ") is 0, a flat history";
    const std::vector<double>& naive_abs = tracks[0].fold_abs;
    for (Track& t : tracks) score(L, scale, naive_abs, options.confidence, t);
    score(L, scale, naive_abs, options.confidence, selection);
    const std::size_t chosen = best_at(folds);
    r.chosen = names[chosen];
    r.chosen_detail = tracks[chosen].score.detail;

    // From the end of the series: the chosen model, bounded by its residuals on the last folds.
    FoldForecast& ahead = r.ahead;
    ahead.origin = y.size();
    ahead.model = names[chosen];
    ahead.forecast.resize(h);
    ahead.lower.resize(h);
    ahead.upper.resize(h);
    const std::size_t o = y.size();
    std::vector<double> ahead_other; // the ETS twin's forecast in the day after the chosen point detected a shift
    switch (chosen) {
    case 0: seasonal_naive_forecast(y, o, m, h, ahead.forecast.data()); break;
    case 1: drift_forecast(y, o, h, ahead.forecast.data()); break;
    case 2: theil_sen_forecast(y, o, m, ts_window, h, ahead.forecast.data()); break;
    default: {
        EtsFilter filter(y, m1, m2, ets_chosen);
        filter.forecast_from(o, h, ahead.forecast.data());
        if (filter.shift_detected_within(span)) {
            ahead_other.resize(h);
            EtsFilter(y, m1, m2, without_restarts(ets_chosen)).forecast_from(o, h, ahead_other.data());
        }
    }
    }
    bounds_at(L, tracks[chosen], folds, options.confidence, tracks[chosen].next_alpha, ahead.forecast.data(),
              ahead_other.empty() ? nullptr : ahead_other.data(), ahead.lower.data(), ahead.upper.data());
    for (Track& t : tracks) r.models.push_back(std::move(t.score));
    r.selection = std::move(selection.score);
    return r;
}

Crossing predicted_crossing(const std::vector<double>& y, const std::vector<bool>& filled, const BacktestResult& result, double threshold) {
    Crossing c;
    const auto& ahead = result.ahead.forecast;
    for (std::size_t j = 0; j < ahead.size() && !c.at; ++j)
        if (ahead[j] >= threshold) c.at = j;
    for (const FoldForecast& f : result.forecasts) {
        if (std::none_of(f.forecast.begin(), f.forecast.end(), [&](double v) { return v >= threshold; })) continue;
        ++c.folds_called;
        for (std::size_t j = 0; j < f.forecast.size() && f.origin + j < y.size(); ++j) {
            const std::size_t t = f.origin + j;
            if (y[t] >= threshold && (filled.empty() || !filled[t])) {
                ++c.folds_confirmed;
                break;
            }
        }
    }
    if (c.folds_called > 0) c.precision = static_cast<double>(c.folds_confirmed) / static_cast<double>(c.folds_called);
    return c;
}

} // namespace resmgr::analytics
