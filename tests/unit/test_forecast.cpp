// The forecasting models and the back-test on generated series with known answers: pure
// seasonality, trend, level shift, noise only, constant, too short; the intervals' coverage on
// Gaussian noise over many folds; anomalies on a series with injected spikes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>

#include "analytics/anomalies.hpp"
#include "analytics/backtest.hpp"
#include "analytics/forecast_models.hpp"

namespace resmgr::analytics {
namespace {

constexpr std::int64_t kStep = 300; // 5 minutes
constexpr std::size_t kDay = 288, kWeek = 7 * kDay;
constexpr double kPi = 3.14159265358979323846;

std::vector<double> generate(std::size_t n, double (*f)(std::size_t), double noise = 0, std::uint64_t seed = 1) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> gauss(0, 1);
    std::vector<double> y(n);
    for (std::size_t t = 0; t < n; ++t) y[t] = f(t) + (noise > 0 ? noise * gauss(rng) : 0);
    return y;
}

double daily(std::size_t t) { return 50 + 20 * std::sin(2 * kPi * static_cast<double>(t % kDay) / kDay); }

const ModelScore& model(const BacktestResult& r, const std::string& name) {
    for (const ModelScore& m : r.models)
        if (m.model == name) return m;
    throw std::runtime_error("no model " + name);
}

TEST(ForecastSeasons, ADailyPatternIsFoundAndAWeekNeedsTwoWeeks) {
    auto seasons = detect_seasons(generate(5 * kDay, daily, 1), kStep);
    ASSERT_EQ(seasons.size(), 2u);
    EXPECT_TRUE(seasons[0].found);
    EXPECT_EQ(seasons[0].period, kDay);
    EXPECT_GT(seasons[0].autocorrelation, 0.75); // at most (n − lag) / n = 0.8 for 5 periods
    EXPECT_FALSE(seasons[1].found);
    EXPECT_NE(seasons[1].reason.find("needs 2 periods"), std::string::npos) << seasons[1].reason;

    // Weekdays high, weekends low, on top of the daily pattern: both seasons.
    auto weekly = [](std::size_t t) { return daily(t) + ((t / kDay) % 7 >= 5 ? -15.0 : 5.0); };
    seasons = detect_seasons(generate(3 * kWeek, +weekly, 1), kStep);
    EXPECT_TRUE(seasons[0].found);
    EXPECT_TRUE(seasons[1].found) << seasons[1].reason;
    EXPECT_EQ(seasons[1].period, kWeek);

    // A purely daily pattern is not a weekly one, however long.
    seasons = detect_seasons(generate(3 * kWeek, daily, 1), kStep);
    EXPECT_FALSE(seasons[1].found) << seasons[1].autocorrelation;
    // Noise has no season; a step that does not divide a day is not looked at.
    seasons = detect_seasons(generate(5 * kDay, [](std::size_t) { return 10.0; }, 1), kStep);
    EXPECT_FALSE(seasons[0].found);
    EXPECT_FALSE(detect_seasons(generate(600, daily), 7 * 60)[0].found);
}

TEST(ForecastModels, PureSeasonalityIsRepeatedExactly) {
    auto y = generate(4 * kDay, daily);
    std::vector<double> f(kDay);
    seasonal_naive_forecast(y, 3 * kDay, kDay, kDay, f.data());
    for (std::size_t j = 0; j < kDay; ++j) EXPECT_DOUBLE_EQ(f[j], y[3 * kDay + j]);
    theil_sen_forecast(y, 3 * kDay, kDay, 7 * kDay, kDay, f.data());
    for (std::size_t j = 0; j < kDay; ++j) EXPECT_NEAR(f[j], y[3 * kDay + j], 1e-9);

    BacktestResult r = backtest(y, {}, kStep, {});
    EXPECT_EQ(r.season, kDay);
    EXPECT_EQ(r.chosen, "seasonal_naive"); // nothing beats an exact repeat
    EXPECT_NEAR(r.selection.mae, 0, 1e-9);
    EXPECT_FALSE(r.selection.mase.has_value()); // the in-sample seasonal naive error is 0: MASE undefined
}

TEST(ForecastModels, ALinearTrendIsExtendedByTheTrendModels) {
    auto y = generate(8 * kDay, [](std::size_t t) { return 5 + 0.1 * static_cast<double>(t); });
    std::vector<double> f(kDay);
    const std::size_t o = 2 * kDay;
    drift_forecast(y, o, kDay, f.data());
    EXPECT_NEAR(f[kDay - 1], y[o + kDay - 1], 1e-9);
    linear_fit_forecast(y, o, kDay, kDay, f.data());
    EXPECT_NEAR(f[0], y[o], 1e-9);
    EXPECT_NEAR(f[kDay - 1], y[o + kDay - 1], 1e-9);
    theil_sen_forecast(y, o, 1, 2 * kDay, kDay, f.data());
    EXPECT_NEAR(f[kDay - 1], y[o + kDay - 1], 1e-9);

    BacktestResult r = backtest(y, {}, kStep, {});
    EXPECT_EQ(r.season, 1u); // a line has no season
    EXPECT_NE(r.chosen, "seasonal_naive");
    EXPECT_LT(model(r, r.chosen).mae, 1e-6);
    EXPECT_NEAR(model(r, "seasonal_naive").mae, 0.1 * (kDay + 1) / 2.0, 1e-6); // the last value: off by 0.1 per step
    // Live, the selection forecasts with the seasonal naive until a fold has ended (the first 4 of
    // 25 here), then with a trend model: about 4/25 of the naive's error.
    EXPECT_EQ(r.folds, 25u);
    ASSERT_TRUE(r.selection.relative_mae.has_value());
    EXPECT_NEAR(*r.selection.relative_mae, 4.0 / 25, 0.01);
}

TEST(ForecastModels, TrendOnASeasonBeatsTheSeasonalNaive) {
    auto y = generate(10 * kDay, [](std::size_t t) { return daily(t) + 0.02 * static_cast<double>(t); }, 0.5);
    BacktestResult r = backtest(y, {}, kStep, {});
    EXPECT_EQ(r.season, kDay);
    EXPECT_TRUE(r.chosen == "theil_sen" || r.chosen == "ets") << r.chosen;
    ASSERT_TRUE(r.selection.relative_mae && r.selection.mase);
    EXPECT_LT(*r.selection.relative_mae, 0.5);
    EXPECT_GT(*model(r, "seasonal_naive").mase, *r.selection.mase);
}

TEST(ForecastModels, EtsFollowsALevelShiftWithinADay) {
    auto shifted = [](std::size_t t) { return daily(t) + (t >= 3 * kDay ? 50.0 : 0.0); };
    auto y = generate(6 * kDay, +shifted);
    EtsFilter filter(y, kDay, 0, {0.3, 0, 1, 0.1 * 0.7, 0});
    std::vector<double> f(kDay);
    filter.forecast_from(4 * kDay, kDay, f.data()); // a day after the shift
    // Within a tenth of the shift (part of it went into the seasonal profile and leaves slowly);
    // from before the shift every forecast was 50 off.
    for (std::size_t j = 0; j < kDay; j += 24) EXPECT_NEAR(f[j], y[4 * kDay + j], 5.0) << j;
    // The seasonal naive is exact again one season after the shift; so is the selection's fallback.
    seasonal_naive_forecast(y, 4 * kDay, kDay, kDay, f.data());
    EXPECT_DOUBLE_EQ(f[5], y[4 * kDay + 5]);
}

double coverage_from(const BacktestResult& r, const std::vector<double>& y, std::size_t from, std::size_t to = SIZE_MAX);

// A daily pattern with noise 1 that steps up by 20 at `kShiftAt` (not on a fold's origin) and stays.
constexpr std::size_t kShiftAt = 6 * kDay + 100;
double shifted_up(std::size_t t) { return daily(t) + (t >= kShiftAt ? 20.0 : 0.0); }

TEST(ForecastLevelShift, EtsRestartsItsLevelFromTheValuesAfterARunBeyondTheClip) {
    const auto y = generate(9 * kDay, shifted_up, 1, 21);
    const EtsParams plain{0.03, 0, 1, 0.1 * 0.97, 0};
    EtsParams detecting = plain;
    detecting.shift_run = kShiftRun;
    EtsFilter with(y, kDay, 0, detecting), without(y, kDay, 0, plain);
    // Two hours after the shift: the restarted level is there, the clipped one has crept a few units.
    const std::size_t o = kShiftAt + 24;
    std::vector<double> f(kDay), g(kDay);
    with.forecast_from(o, kDay, f.data());
    without.forecast_from(o, kDay, g.data());
    EXPECT_EQ(with.shifts(), 1u);
    double err_with = 0, err_without = 0;
    for (std::size_t j = 0; j < kDay; ++j) {
        err_with += std::abs(y[o + j] - f[j]) / kDay;
        err_without += std::abs(y[o + j] - g[j]) / kDay;
    }
    EXPECT_LT(err_with, 2.0);   // noise 1: MAE ≈ 0.8 plus what the seasons' estimate adds
    EXPECT_GT(err_without, 8.0); // most of the 20 still missing
    // The seasonal shape is kept: the forecast is the daily pattern, not a constant.
    EXPECT_GT(*std::max_element(f.begin(), f.end()) - *std::min_element(f.begin(), f.end()), 30.0);
}

TEST(ForecastLevelShift, SpikesAndNoiseAreNoShift) {
    auto y = generate(9 * kDay, daily, 1, 22);
    for (std::size_t t = 4 * kDay; t < 4 * kDay + kShiftRun - 1; ++t) y[t] += 20; // one value short of a run
    y[5 * kDay] -= 40;
    EtsParams p{0.03, 0, 1, 0.1 * 0.97, 0};
    p.shift_run = kShiftRun;
    EtsFilter filter(y, kDay, 0, p);
    filter.advance(y.size());
    EXPECT_EQ(filter.shifts(), 0u);
}

TEST(ForecastLevelShift, TheBacktestCoversTheFoldsAfterAShiftThatTheMethodBeforeMissed) {
    // Folds whose origin is 2 h or more after the shift: with detection the selection's 95 %
    // intervals cover them near their level; without (level_shifts false, the method before) the
    // ETS chosen on the quiet folds keeps forecasting below the new level for most of a day.
    const auto y = generate(10 * kDay, shifted_up, 1, 23);
    BacktestOptions on, off;
    off.level_shifts = false;
    const BacktestResult a = backtest(y, {}, kStep, on), b = backtest(y, {}, kStep, off);
    const double cov_on = coverage_from(a, y, kShiftAt + 24), cov_off = coverage_from(b, y, kShiftAt + 24);
    RecordProperty("coverage_after_shift_with", std::to_string(cov_on));
    RecordProperty("coverage_after_shift_without", std::to_string(cov_off));
    EXPECT_GT(cov_on, 0.9) << "with detection " << cov_on << ", without " << cov_off;
    EXPECT_GT(cov_on, cov_off + 0.1) << "with detection " << cov_on << ", without " << cov_off;
    ASSERT_TRUE(a.selection.relative_mae && b.selection.relative_mae);
    EXPECT_LT(*a.selection.relative_mae, *b.selection.relative_mae);
    EXPECT_NE(a.chosen_detail.find("level restarted"), std::string::npos) << a.chosen_detail;
}

// The same pattern up by 20 for 8 hours from `kShiftAt`, then back: an excursion, not a new level.
double excursion(std::size_t t) { return daily(t) + (t >= kShiftAt && t < kShiftAt + 96 ? 20.0 : 0.0); }

TEST(ForecastLevelShift, ForADayAfterAShiftTheBandSpansTheForecastWithoutIt) {
    // ETS restarts its level after 12 values of the excursion and forecasts it to stay; it
    // returns 7 hours later. The folds forecast in the day from the shift cover the return only
    // when the band spans the twin without detection too (span_shifts, the default).
    const auto y = generate(10 * kDay, excursion, 1, 29);
    BacktestOptions on, off;
    off.span_shifts = false;
    const BacktestResult a = backtest(y, {}, kStep, on), b = backtest(y, {}, kStep, off);
    const double cov_on = coverage_from(a, y, kShiftAt, kShiftAt + kDay), cov_off = coverage_from(b, y, kShiftAt, kShiftAt + kDay);
    RecordProperty("coverage_day_after_spanning", std::to_string(cov_on));
    RecordProperty("coverage_day_after_restarted_only", std::to_string(cov_off));
    EXPECT_GT(cov_on, cov_off + 0.05) << "spanning " << cov_on << ", restarted forecast alone " << cov_off;
    // The forecasts themselves are the same; a band that covers more for its width scores lower.
    EXPECT_EQ(a.selection.mae, b.selection.mae);
    ASSERT_TRUE(a.selection.winkler && b.selection.winkler);
    EXPECT_LT(*a.selection.winkler, *b.selection.winkler);
}

TEST(ForecastLevelShift, TheForecastAheadOfARecentShiftSpansBothLevels) {
    // The series ends 30 values into the rise: ETS has restarted at the new level, and the band
    // ahead reaches down to the level before it (the rise may yet return); without spanning, the
    // band sits around the new level alone.
    const auto y = generate(kShiftAt + 30, excursion, 1, 29);
    BacktestOptions on, off;
    off.span_shifts = false;
    const BacktestResult a = backtest(y, {}, kStep, on), b = backtest(y, {}, kStep, off);
    ASSERT_EQ(a.chosen, "ets") << a.chosen_detail;
    ASSERT_NE(a.chosen_detail.find("level restarted"), std::string::npos) << a.chosen_detail;
    for (std::size_t j = 0; j < a.ahead.forecast.size(); ++j) {
        ASSERT_DOUBLE_EQ(a.ahead.forecast[j], b.ahead.forecast[j]);
        EXPECT_LT(a.ahead.lower[j], a.ahead.forecast[j] - 15) << j;
        EXPECT_GT(b.ahead.lower[j], b.ahead.forecast[j] - 15) << j;
    }
}

TEST(ForecastLevelShift, ADayAfterTheShiftTheBandsAreTheSameAsWithoutSpanning) {
    // A shift that stays: once a day has passed since its detection, each fold's band is what it
    // would be without spanning (intervals not adapted, so earlier folds' misses carry nothing
    // over); in the day after it, some are wider. The forecast ahead, 3 days on, is the same too.
    const auto y = generate(10 * kDay, shifted_up, 1, 23);
    BacktestOptions on, off;
    on.adapt_rate = off.adapt_rate = 0;
    off.span_shifts = false;
    const BacktestResult a = backtest(y, {}, kStep, on), b = backtest(y, {}, kStep, off);
    ASSERT_EQ(a.forecasts.size(), b.forecasts.size());
    const std::size_t detected = kShiftAt + kShiftRun, a_day_on = detected + kDay;
    std::size_t wider_in_the_day = 0, same_after = 0;
    for (std::size_t k = 0; k < a.forecasts.size(); ++k) {
        const FoldForecast &f = a.forecasts[k], &g = b.forecasts[k];
        for (std::size_t j = 0; j < f.forecast.size(); ++j) {
            if (std::isnan(f.lower[j])) continue;
            if (f.origin >= a_day_on) {
                ASSERT_DOUBLE_EQ(f.lower[j], g.lower[j]) << "fold at " << f.origin;
                ASSERT_DOUBLE_EQ(f.upper[j], g.upper[j]) << "fold at " << f.origin;
                ++same_after;
            } else if (f.origin > detected && f.upper[j] - f.lower[j] > g.upper[j] - g.lower[j] + 1) {
                ++wider_in_the_day;
            }
        }
    }
    EXPECT_GT(same_after, 0u);
    EXPECT_GT(wider_in_the_day, 0u);
    for (std::size_t j = 0; j < a.ahead.forecast.size(); ++j) {
        EXPECT_DOUBLE_EQ(a.ahead.lower[j], b.ahead.lower[j]);
        EXPECT_DOUBLE_EQ(a.ahead.upper[j], b.ahead.upper[j]);
    }
}

TEST(ForecastLevelShift, AStepOfZeroSecondsSpansNothingAndStillBacktests) {
    // No step to count a day in: no season is found and no band spans a shift, but the back-test
    // runs (a division by the step would have stopped the process).
    const auto y = generate(10 * kDay, excursion, 1, 29);
    const BacktestResult r = backtest(y, {}, 0, {});
    EXPECT_EQ(r.season, 1u);
    EXPECT_GT(r.folds, 0u);
}

TEST(ForecastModels, NoiseOnlyHasNoSeasonAndNothingBeatsTheNaiveByMuch) {
    auto y = generate(8 * kDay, [](std::size_t) { return 10.0; }, 1, 7);
    BacktestResult r = backtest(y, {}, kStep, {});
    EXPECT_EQ(r.season, 1u);
    ASSERT_TRUE(r.selection.mase && r.selection.relative_mae);
    // The best forecast of white noise is its mean: MAE 0.80 σ; the last value has 1.13 σ.
    EXPECT_GT(r.selection.mae, 0.75);
    EXPECT_LT(*r.selection.relative_mae, 1.0);
    EXPECT_NEAR(model(r, "seasonal_naive").mae, 2 / std::sqrt(kPi), 0.1);
}

TEST(ForecastModels, AConstantIsForecastAsItselfWithAZeroWidthIntervalAndNoMase) {
    std::vector<double> y(8 * kDay, 42.0);
    BacktestResult r = backtest(y, {}, kStep, {});
    EXPECT_EQ(r.chosen, "seasonal_naive");
    for (const FoldForecast& f : r.forecasts)
        for (std::size_t j = 0; j < f.forecast.size(); ++j) {
            EXPECT_DOUBLE_EQ(f.forecast[j], 42.0);
            if (!std::isnan(f.lower[j])) {
                EXPECT_DOUBLE_EQ(f.upper[j] - f.lower[j], 0.0);
            }
        }
    EXPECT_FALSE(r.selection.mase.has_value());
    EXPECT_NE(r.mase_note.find("flat history"), std::string::npos) << r.mase_note;
    EXPECT_FALSE(r.selection.relative_mae.has_value());
    ASSERT_TRUE(r.selection.coverage.has_value());
    EXPECT_DOUBLE_EQ(*r.selection.coverage, 1.0);
}

TEST(ForecastModels, ATooShortSeriesSaysHowMuchThereIsAndHowMuchIsNeeded) {
    auto y = generate(kDay + 10, daily);
    try {
        backtest(y, {}, kStep, {});
        FAIL() << "back-tested " << y.size() << " values";
    } catch (const NotEnoughData& e) {
        EXPECT_EQ(e.have, kDay + 10);
        EXPECT_GE(e.need, 2 * kDay);
        EXPECT_NE(std::string(e.what()).find(std::to_string(kDay + 10) + " values"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(std::to_string(e.need)), std::string::npos) << e.what();
    }
    EXPECT_THROW(backtest(y, {}, kStep, {0, 72, 0.95}), std::invalid_argument);
    EXPECT_THROW(backtest(y, {}, kStep, {288, 72, 1.0}), std::invalid_argument);
}

TEST(ForecastIntervals, CoverGaussianNoiseAtTheirNominalLevelOverManyFolds) {
    auto y = generate(60 * kDay, [](std::size_t) { return 100.0; }, 5, 11);
    for (double level : {0.95, 0.8}) {
        BacktestResult r = backtest(y, {}, kStep, {kDay, 72, level});
        EXPECT_GT(r.folds, 200u);
        for (const ModelScore& m : r.models) {
            if (m.model == "drift") continue; // the drift's slope from the first value: still noise, checked by selection
            ASSERT_TRUE(m.coverage.has_value()) << m.model;
            EXPECT_NEAR(*m.coverage, level, 0.03) << m.model << " at " << level;
            EXPECT_GT(m.interval_points, m.points * 9 / 10) << m.model;
        }
        ASSERT_TRUE(r.selection.coverage.has_value());
        EXPECT_NEAR(*r.selection.coverage, level, 0.03) << level;
    }
}

// The share of the actuals inside the selection's intervals, over the folds whose origin is in
// [from, to).
double coverage_from(const BacktestResult& r, const std::vector<double>& y, std::size_t from, std::size_t to) {
    std::size_t with = 0, inside = 0;
    for (const FoldForecast& f : r.forecasts) {
        if (f.origin < from || f.origin >= to) continue;
        for (std::size_t j = 0; j < f.forecast.size(); ++j) {
            if (std::isnan(f.lower[j])) continue;
            ++with;
            inside += y[f.origin + j] >= f.lower[j] && y[f.origin + j] <= f.upper[j];
        }
    }
    return with ? static_cast<double>(inside) / static_cast<double>(with) : NAN;
}

TEST(ForecastIntervals, AdaptToNoiseThatGrowsSoonerThanTheResidualWindowAlone) {
    // Noise of 2 for 30 days, then of 6: the residuals of the last kIntervalFolds folds take
    // 10 days to forget the quiet part; the adapted level widens the intervals after the first
    // folds that miss. The same series with adapt_rate 0 is the plain split conformal.
    std::vector<double> y = generate(30 * kDay, [](std::size_t) { return 100.0; }, 2, 5);
    const std::vector<double> loud = generate(30 * kDay, [](std::size_t) { return 100.0; }, 6, 6);
    y.insert(y.end(), loud.begin(), loud.end());
    BacktestOptions adapted{kDay, 72, 0.95}, plain{kDay, 72, 0.95, 0.0};
    const BacktestResult a = backtest(y, {}, kStep, adapted), p = backtest(y, {}, kStep, plain);
    const double after_a = coverage_from(a, y, 30 * kDay), after_p = coverage_from(p, y, 30 * kDay);
    EXPECT_GT(after_a, after_p + 0.01) << "adapted " << after_a << ", plain " << after_p;
    EXPECT_NEAR(*a.selection.coverage, 0.95, 0.03);
    EXPECT_LT(std::abs(*a.selection.coverage - 0.95), std::abs(*p.selection.coverage - 0.95))
        << "adapted " << *a.selection.coverage << ", plain " << *p.selection.coverage;
    // On noise that does not change, adapting keeps the nominal level (the test above).
    EXPECT_THROW(backtest(y, {}, kStep, {kDay, 72, 0.95, -0.1}), std::invalid_argument);
}

TEST(ForecastBacktest, FilledValuesAreNeverScored) {
    auto y = generate(6 * kDay, daily, 1, 3);
    std::vector<bool> filled(y.size(), false);
    for (std::size_t t = 5 * kDay; t < 5 * kDay + 100; ++t) filled[t] = true;
    BacktestResult all = backtest(y, {}, kStep, {}), some = backtest(y, filled, kStep, {});
    EXPECT_EQ(all.folds, some.folds);
    EXPECT_LT(some.selection.points, all.selection.points);
    EXPECT_EQ(all.forecasts.size(), all.folds);
    EXPECT_EQ(all.forecasts.back().origin + kDay, y.size()); // the last fold ends at the last value
}

TEST(ForecastAnomalies, InjectedSpikesAreFoundCausallyAndLittleElse) {
    auto y = generate(6 * kDay, daily, 1, 5);
    const std::vector<std::size_t> spikes{3 * kDay + 17, 3 * kDay + 200, 4 * kDay + 5, 5 * kDay + 100, 5 * kDay + 250};
    for (std::size_t t : spikes) y[t] += 25;
    auto found = detect_anomalies(y, {}, kStep);
    for (std::size_t t : spikes) {
        bool hit = false;
        for (const Anomaly& a : found) hit = hit || a.index == t;
        EXPECT_TRUE(hit) << "spike at " << t << " missed";
    }
    EXPECT_LE(found.size(), spikes.size() + 2);
    for (const Anomaly& a : found) EXPECT_GE(a.score, AnomalyOptions{}.threshold);
    // Causal: what comes after a value never changes its verdict.
    std::vector<double> prefix(y.begin(), y.begin() + static_cast<std::ptrdiff_t>(4 * kDay + 6));
    auto early = detect_anomalies(prefix, {}, kStep);
    ASSERT_FALSE(early.empty());
    EXPECT_EQ(early.back().index, 4 * kDay + 5);
}

} // namespace
} // namespace resmgr::analytics
