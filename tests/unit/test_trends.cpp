// The planning computations on generated series with known answers: the Theil-Sen trend and its
// interval, profiles by hour and weekday, peaks, time to a limit with and without growth, and the
// forecast from the end of a series (backtest's `ahead`) with its bounds, and the next run of a
// workflow type predicted from its runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "analytics/backtest.hpp"
#include "analytics/run_prediction.hpp"
#include "analytics/trends.hpp"

namespace resmgr::analytics {
namespace {

constexpr double kPi = 3.14159265358979323846;

std::vector<double> noisy_line(std::size_t n, double a, double b, double sigma, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> gauss(0, sigma);
    std::vector<double> y(n);
    for (std::size_t t = 0; t < n; ++t) y[t] = a + b * static_cast<double>(t) + gauss(rng);
    return y;
}

TEST(Trends, NormalQuantileMatchesTheTable) {
    EXPECT_NEAR(normal_quantile(0.975), 1.959964, 1e-5);
    EXPECT_NEAR(normal_quantile(0.5), 0.0, 1e-9);
    EXPECT_NEAR(normal_quantile(0.05), -1.644854, 1e-5);
}

TEST(Trends, TheilSenRecoversAnExactLineAndIgnoresOutliers) {
    std::vector<double> y(50);
    for (std::size_t t = 0; t < y.size(); ++t) y[t] = 3 + 0.5 * static_cast<double>(t);
    y[10] = 1000, y[30] = -1000; // two wild values move neither slope nor intercept
    auto tr = theil_sen_trend(y, {});
    ASSERT_TRUE(tr);
    EXPECT_DOUBLE_EQ(tr->slope, 0.5);
    EXPECT_NEAR(tr->intercept, 3, 1e-9);
    EXPECT_EQ(tr->points, 50u);
    EXPECT_LE(tr->slope_lower, 0.5);
    EXPECT_GE(tr->slope_upper, 0.5);
}

TEST(Trends, TheSlopeIntervalCoversTheTrueSlopeAtItsLevel) {
    int covered = 0;
    const int trials = 200;
    for (int s = 0; s < trials; ++s) {
        auto tr = theil_sen_trend(noisy_line(60, 10, 0.2, 2, 100 + s), {}, 0.9);
        ASSERT_TRUE(tr);
        covered += tr->slope_lower <= 0.2 && 0.2 <= tr->slope_upper;
    }
    // Sen's interval is distribution-free; on 200 trials a 90 % interval covers 180 ± 3σ (≈ 13).
    EXPECT_NEAR(covered, 180, 13);
}

TEST(Trends, TheDirectionFromCountsIsTheSignOfTheSlopeInterval) {
    // Series with and without a trend, with ties (values rounded to a few levels), of 3-60 values:
    // the counting shortcut must decide exactly as the sorted slopes do.
    std::mt19937_64 rng(5);
    std::normal_distribution<double> noise(0, 1);
    int up = 0, down = 0, none = 0;
    for (int k = 0; k < 3000; ++k) {
        const std::size_t n = 3 + k % 58;
        const double slope = (k % 3 - 1) * 0.05 * (k % 7);
        std::vector<double> y;
        for (std::size_t i = 0; i < n; ++i) y.push_back(k % 2 ? std::round(slope * i + noise(rng)) : slope * i + noise(rng));
        const double level = k % 4 ? 0.95 : 0.8;
        const auto t = theil_sen_trend(y, {}, level);
        ASSERT_TRUE(t);
        const int expected = t->slope_lower > 0 ? 1 : t->slope_upper < 0 ? -1 : 0;
        ASSERT_EQ(theil_sen_direction(y, level), expected) << "n " << n << " case " << k;
        up += expected == 1, down += expected == -1, none += expected == 0;
    }
    EXPECT_GT(up, 300); // each answer is exercised
    EXPECT_GT(down, 300);
    EXPECT_GT(none, 300);
    EXPECT_EQ(theil_sen_direction({1, 2}), 0); // too few
}

TEST(Trends, TooFewValuesGiveNoTrendAndFilledOnesAreSkipped) {
    EXPECT_FALSE(theil_sen_trend({1, 2}, {}));
    EXPECT_FALSE(theil_sen_trend({1, 2, 3, 4}, {false, true, true, false}));
    auto tr = theil_sen_trend({0, 99, 2, 3}, {false, true, false, false});
    ASSERT_TRUE(tr);
    EXPECT_DOUBLE_EQ(tr->slope, 1);
}

TEST(Trends, LongSeriesAreThinnedAndKeepTheirSlope) {
    auto tr = theil_sen_trend(noisy_line(10000, 5, 0.01, 0.5, 3), {});
    ASSERT_TRUE(tr);
    EXPECT_EQ(tr->points, kTrendMaxPoints);
    EXPECT_NEAR(tr->slope, 0.01, 0.0005);
}

TEST(Trends, ProfilesFindTheBusiestHourAndWeekday) {
    // Hourly values for four weeks from Monday 2027-01-04 00:00 UTC: busy at 14:00, and on Wednesdays.
    const std::int64_t monday = 1799020800;
    std::vector<double> y(28 * 24);
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = (i % 24 == 14 ? 50 : 10) + (i / 24 % 7 == 2 ? 20 : 0);
    auto hours = profile(monday, 3600, y, {}, 3600, 24);
    EXPECT_EQ(std::max_element(hours.begin(), hours.end()) - hours.begin(), 14);
    auto days = profile(monday, 3600, y, {}, 86400, 7, 3 * 86400);
    EXPECT_EQ(std::max_element(days.begin(), days.end()) - days.begin(), 2); // Wednesday
    EXPECT_NEAR(days[0], (23 * 10 + 50) / 24.0, 1e-9);
}

TEST(Trends, PeaksAreTheHighestValuesApart) {
    std::vector<double> y(100, 0);
    y[10] = 9, y[11] = 10, y[50] = 7, y[90] = 8;
    EXPECT_EQ(top_peaks(y, 3, 5), (std::vector<std::size_t>{11, 90, 50}));
    EXPECT_EQ(top_peaks(y, 2, 1), (std::vector<std::size_t>{11, 10}));
}

TEST(Trends, TimeToALimitFollowsTheTrendAndTheGrowthAssumption) {
    // Daily peaks 40, 41, 42, ... : from 69 on day 29, 80 is 11 days off at one a day.
    std::vector<double> y(30);
    for (std::size_t t = 0; t < y.size(); ++t) y[t] = 40 + static_cast<double>(t);
    auto tr = theil_sen_trend(y, {});
    ASSERT_TRUE(tr);
    auto e = time_to_limit(*tr, 29, 80, 0, 90);
    EXPECT_DOUBLE_EQ(e.level, 69);
    ASSERT_TRUE(e.days);
    EXPECT_NEAR(*e.days, 11, 0.1);
    ASSERT_TRUE(e.earliest && e.latest);
    EXPECT_LE(*e.earliest, *e.days);
    EXPECT_GE(*e.latest, *e.days);
    // A flat series never gets there; with 50 % growth over 90 days it does: 60 · (1 + 0.5 d/90) = 80 at d = 60.
    std::vector<double> flat(30, 60);
    auto flat_trend = theil_sen_trend(flat, {});
    EXPECT_FALSE(time_to_limit(*flat_trend, 29, 80, 0, 90).days);
    auto grown = time_to_limit(*flat_trend, 29, 80, 0.5, 90);
    ASSERT_TRUE(grown.days);
    EXPECT_NEAR(*grown.days, 60, 0.1);
    EXPECT_DOUBLE_EQ(*time_to_limit(*tr, 29, 50, 0, 90).days, 0); // already past it
}

TEST(ForecastAhead, ContinuesAPureSeasonWithBoundsAroundIt) {
    const std::size_t day = 288;
    std::mt19937_64 rng(5);
    std::normal_distribution<double> gauss(0, 1);
    std::vector<double> y(10 * day);
    for (std::size_t t = 0; t < y.size(); ++t) y[t] = 50 + 20 * std::sin(2 * kPi * static_cast<double>(t % day) / day) + gauss(rng);
    BacktestResult r = backtest(y, {}, 300, {day, 72, 0.95});
    ASSERT_EQ(r.ahead.forecast.size(), day);
    EXPECT_EQ(r.ahead.origin, y.size());
    EXPECT_EQ(r.ahead.model, r.chosen);
    for (std::size_t j = 0; j < day; ++j) {
        const double truth = 50 + 20 * std::sin(2 * kPi * static_cast<double>(j) / day);
        EXPECT_NEAR(r.ahead.forecast[j], truth, 4.0) << j;
        ASSERT_FALSE(std::isnan(r.ahead.lower[j])) << j;
        EXPECT_LE(r.ahead.lower[j], r.ahead.forecast[j]);
        EXPECT_GE(r.ahead.upper[j], r.ahead.forecast[j]);
        EXPECT_LT(r.ahead.lower[j], truth + 1);
        EXPECT_GT(r.ahead.upper[j], truth - 1);
        EXPECT_LT(r.ahead.upper[j] - r.ahead.lower[j], 12.0); // about ±1.96 σ plus the model's error, not the season's swing
    }
}


RunRecord run_of(std::int64_t ended, double seconds, std::optional<double> cpu_cores, std::optional<double> memory_gib) {
    RunRecord r;
    r.allocation_id = "a" + std::to_string(ended);
    r.workflow_type = "build";
    r.started_at = ended - static_cast<std::int64_t>(seconds);
    r.ended_at = ended;
    r.wall_seconds = seconds;
    if (cpu_cores) r.cpu_seconds = *cpu_cores * seconds;
    if (memory_gib) r.memory_peak_bytes = static_cast<std::uint64_t>(*memory_gib * 1024 * 1024 * 1024);
    return r;
}

TEST(RunPrediction, OrderStatisticsGiveTheIntervalAndTheLevelTheRunsCanHold) {
    std::vector<RunRecord> runs;
    int end = 0;
    for (int seconds : {5, 1, 9, 3, 7, 2, 8, 4, 6}) runs.push_back(run_of(1000 * ++end, seconds, std::nullopt, std::nullopt));
    const auto p = predict_next_run(runs, 0.8);
    const auto& d = p.quantities[2];
    EXPECT_EQ(d.name, "duration_seconds");
    EXPECT_DOUBLE_EQ(*d.point, 5);
    EXPECT_DOUBLE_EQ(*d.lower, 1);
    EXPECT_DOUBLE_EQ(*d.upper, 9);
    EXPECT_DOUBLE_EQ(d.level, 0.8); // 9 runs: the 1st and 9th of 10 slots
    EXPECT_EQ(d.interval_method, IntervalMethod::order_statistics);
    // At 0.95, 9 runs cannot hold 95 % by order statistics: the log-normal interval at 95 %, wider than [1, 9].
    const auto wide = predict_next_run(runs, 0.95).quantities[2];
    EXPECT_DOUBLE_EQ(wide.level, 0.95);
    EXPECT_EQ(wide.interval_method, IntervalMethod::log_t);
    EXPECT_LT(*wide.lower, 1);
    EXPECT_GT(*wide.upper, 9);
    EXPECT_FALSE(p.quantities[0].point.has_value()); // CPU never measured
    EXPECT_NE(p.quantities[0].reason.find("0 run(s)"), std::string::npos) << p.quantities[0].reason;
    EXPECT_EQ(d.replayed, 6u);
    ASSERT_TRUE(d.slope_lower && d.slope_upper);
    EXPECT_LT(*d.slope_lower, 0); // no trend in that order
    EXPECT_GT(*d.slope_upper, 0);
}

TEST(RunPrediction, RunsThatDriftFollowTheirLineAndAreCoveredAtTheLevelAsked) {
    // 20 types of 150 runs whose durations grow 1 % a run with log-normal noise (σ 0.05): not
    // exchangeable, so the median of the last 50 lags ~25 runs (~28 %) behind. Along the line, the
    // 90 % intervals hold about 90 % (the standard error of the share over ~2,900 replays ~0.006;
    // the windows too short or too noisy to show the drift yet use the median, hence the margin).
    std::mt19937_64 rng(21);
    std::size_t inside = 0, replayed = 0, along = 0;
    double error = 0, last_run_error = 0;
    for (int type = 0; type < 20; ++type) {
        std::normal_distribution<double> noise(0, 0.05);
        std::vector<RunRecord> runs;
        for (int i = 0; i < 150; ++i) runs.push_back(run_of(1000 + 100 * i, 60 * std::exp(0.01 * i + noise(rng)), std::nullopt, std::nullopt));
        const auto d = predict_next_run(runs, 0.9).quantities[2];
        EXPECT_EQ(d.interval_method, IntervalMethod::log_trend);
        EXPECT_DOUBLE_EQ(d.level, 0.9);
        EXPECT_NEAR(*d.point, 60 * std::exp(0.01 * 150), 60 * std::exp(1.5) * 0.05); // the line's next value
        for (const auto& r : d.replays) inside += r.actual >= r.lower && r.actual <= r.upper;
        replayed += d.replayed;
        along += d.replays.back().point > d.replays.back().actual * 0.9; // the last replay kept up
        error += *d.median_ape, last_run_error += *d.last_run_median_ape;
    }
    EXPECT_EQ(along, 20u);
    EXPECT_NEAR(static_cast<double>(inside) / static_cast<double>(replayed), 0.9, 0.03);
    EXPECT_LT(error, 0.8 * last_run_error); // the line beats "same as the last run" (noise of two runs)
}

TEST(RunPrediction, StationaryRunsKeepTheirCoverageWithTheDriftTestOn) {
    // Stationary log-normal runs: a window shows a drift at 95 % only by chance (~5 %).
    std::mt19937_64 rng(22);
    std::lognormal_distribution<double> seconds(std::log(300), 0.2);
    std::vector<RunRecord> runs;
    for (int i = 0; i < 400; ++i) runs.push_back(run_of(1000 + 100 * i, seconds(rng), std::nullopt, std::nullopt));
    const auto d = predict_next_run(runs, 0.9).quantities[2];
    std::size_t inside = 0;
    for (const auto& r : d.replays) inside += r.actual >= r.lower && r.actual <= r.upper;
    EXPECT_NEAR(static_cast<double>(inside) / static_cast<double>(d.replayed), 0.9, 0.04);
}

TEST(RunPrediction, FewRunsGetTheLogNormalIntervalWithStudentsT) {
    // Durations e^-1, e^0, e^1: the logs have mean 0 and standard deviation 1, so at 90 % the
    // bounds are exp(±t(0.95, 2)·√(1 + 1/3)), t(0.95, 2) = 2.919986.
    std::vector<RunRecord> runs;
    for (int i = -1; i <= 1; ++i) runs.push_back(run_of(1000 * (i + 2), std::exp(i), std::nullopt, std::nullopt));
    const auto d = predict_next_run(runs, 0.9).quantities[2];
    const double half = 2.919986 * std::sqrt(4.0 / 3);
    EXPECT_NEAR(*d.lower, std::exp(-half), 1e-5);
    EXPECT_NEAR(*d.upper, std::exp(half), 1e-3);
    EXPECT_DOUBLE_EQ(d.level, 0.9);
    EXPECT_EQ(d.interval_method, IntervalMethod::log_t);
    EXPECT_DOUBLE_EQ(*d.point, 1);
}

// The fallback: [min, max] of n runs, at the level it holds, (n−1)/(n+1).
void expect_min_to_max(const QuantityPrediction& q, double min, double max) {
    EXPECT_EQ(q.interval_method, IntervalMethod::order_statistics) << q.name;
    EXPECT_DOUBLE_EQ(*q.lower, min) << q.name;
    EXPECT_DOUBLE_EQ(*q.upper, max) << q.name;
    EXPECT_DOUBLE_EQ(q.level, static_cast<double>(q.runs - 1) / static_cast<double>(q.runs + 1)) << q.name;
}

TEST(RunPrediction, EqualRunsKeepMinToMaxAndTheLevelItHolds) {
    // No spread: a zero-width interval at 90 % would claim what it cannot hold.
    std::vector<RunRecord> runs;
    for (int i = 0; i < 5; ++i) runs.push_back(run_of(1000 * (i + 1), 7, std::nullopt, std::nullopt));
    expect_min_to_max(predict_next_run(runs, 0.9).quantities[2], 7, 7);
}

TEST(RunPrediction, ARunThatMeasuredZeroLeavesMinToMaxAndTheLevelItHolds) {
    std::vector<RunRecord> runs;
    for (int i = 0; i < 4; ++i) runs.push_back(run_of(1000 * (i + 1), 10, 0.5 * i, std::nullopt)); // 0, 0.5, 1, 1.5 cores
    expect_min_to_max(predict_next_run(runs, 0.9).quantities[0], 0, 1.5);
}

TEST(RunPrediction, RunsSoFarApartThatTheBoundOverflowsKeepMinToMax) {
    // Cores whose logs are −460, 0, 460: exp(t·s·√(4/3)) with s = 460 is beyond a double.
    std::vector<RunRecord> runs;
    for (double cores : {1e-200, 1.0, 1e200}) runs.push_back(run_of(1000 * static_cast<std::int64_t>(runs.size() + 1), 8, cores, std::nullopt));
    expect_min_to_max(predict_next_run(runs, 0.9).quantities[0], 1e-200, 1e200);
}

TEST(RunPrediction, ShortHistoriesOfLogNormalRunsAreCoveredAtTheLevelAsked) {
    // 30 types of 200 log-normal runs, each from the 4th on predicted from the (at most) 5 before
    // it (window 5): 5,910 replays, all through the log-normal interval; its coverage is exact for
    // such runs, and the standard error of the share at 90 % is about 0.004.
    std::mt19937_64 rng(14);
    std::size_t inside = 0, replayed = 0;
    for (int type = 0; type < 30; ++type) {
        std::lognormal_distribution<double> seconds(std::log(60 + 10 * type), 0.1 + 0.02 * type);
        std::vector<RunRecord> runs;
        for (int i = 0; i < 200; ++i) runs.push_back(run_of(1000 + 100 * i, seconds(rng), std::nullopt, std::nullopt));
        const auto d = predict_next_run(runs, 0.9, 5).quantities[2];
        ASSERT_TRUE(d.coverage);
        EXPECT_EQ(d.replays.size(), d.replayed);
        for (const auto& r : d.replays) inside += r.actual >= r.lower && r.actual <= r.upper;
        replayed += d.replayed;
        EXPECT_NEAR(*d.claimed_level, 0.9, 1e-12);
    }
    EXPECT_EQ(replayed, 30u * 197);
    EXPECT_NEAR(static_cast<double>(inside) / static_cast<double>(replayed), 0.9, 0.015);
}

TEST(StudentT, QuantilesMatchTheTables) {
    EXPECT_NEAR(student_t_quantile(0.975, 1), 12.7062, 1e-4);
    EXPECT_NEAR(student_t_quantile(0.95, 2), 2.91999, 1e-4);
    EXPECT_NEAR(student_t_quantile(0.975, 3), 3.18245, 1e-4);
    EXPECT_NEAR(student_t_quantile(0.95, 10), 1.81246, 1e-4);
    EXPECT_NEAR(student_t_quantile(0.995, 30), 2.74999, 1e-4);
    EXPECT_NEAR(student_t_quantile(0.05, 10), -1.81246, 1e-4);
    EXPECT_NEAR(student_t_quantile(0.975, 1000), 1.96234, 1e-4);
}

TEST(RunPrediction, BacktestCoverageMatchesTheClaimedLevelAndTheMedianBeatsTheLastRun) {
    std::mt19937_64 rng(9);
    std::lognormal_distribution<double> seconds(std::log(600), 0.3), memory(std::log(2), 0.2);
    std::vector<RunRecord> runs;
    for (int i = 0; i < 300; ++i) runs.push_back(run_of(100000 + 3600 * i, seconds(rng), 1.5, memory(rng)));
    const auto p = predict_next_run(runs, 0.9);
    for (const auto& q : {p.quantities[1], p.quantities[2]}) {
        ASSERT_TRUE(q.coverage && q.claimed_level) << q.name;
        EXPECT_EQ(q.replayed, 297u);
        // 297 replays: the coverage's standard error is about 0.02.
        EXPECT_NEAR(*q.coverage, *q.claimed_level, 0.07) << q.name;
        EXPECT_DOUBLE_EQ(q.level, 47.0 / 51) << q.name; // the 2nd and 49th of 50: at least 0.9, as close as 50 runs allow
        ASSERT_TRUE(q.median_ape && q.last_run_median_ape);
        EXPECT_LT(*q.median_ape, 0.8 * *q.last_run_median_ape) << q.name;
        EXPECT_FALSE(q.slope_lower && *q.slope_lower > 0) << q.name << ": no growth in i.i.d. runs";
    }
    EXPECT_NEAR(*p.quantities[0].point, 1.5, 1e-9);
    EXPECT_NEAR(*p.quantities[2].point, 600, 60);
}

// Issue 14's error target for predict ("the median error >= 30 % below 'same as the last run'
// with 3 prior runs") against what exchangeable runs allow. Runs X = m·e^(σZ), σ small: the last
// run misses the next by about m·σ·|Z' − Z|, a normal of variance 2σ², and no predictor made
// from earlier runs does better than the true m itself (error m·σ·|Z|): the ratio of the median
// errors is at best 1/√2 = 0.707, 29.3 % below. The median of 3 prior runs (variance 0.449σ²)
// gives √(1.449/2) = 0.851; of 50, √(1 + π/100)/√2 = 0.718. So on runs that repeat the same
// work with noise the target is out of reach for any method; predict's point is as close to
// that bound as its window allows.
TEST(RunPrediction, OnExchangeableRunsNoPredictorBeatsTheLastRunByThirtyPercent) {
    std::mt19937_64 rng(31);
    const double m = 600, sigma = 0.05;
    std::lognormal_distribution<double> seconds(std::log(m), sigma);
    std::vector<double> oracle, last, median3, median50;
    for (int type = 0; type < 40; ++type) {
        std::vector<RunRecord> runs;
        for (int i = 0; i < 300; ++i) runs.push_back(run_of(1000 + 100 * i, seconds(rng), std::nullopt, std::nullopt));
        const auto three = predict_next_run(runs, 0.9, 3).quantities[2];
        const auto fifty = predict_next_run(runs, 0.9, 50).quantities[2];
        ASSERT_EQ(three.replays.size(), fifty.replays.size());
        for (std::size_t k = 0; k < three.replays.size(); ++k) {
            const double actual = three.replays[k].actual;
            oracle.push_back(std::abs(m - actual) / actual);
            last.push_back(std::abs(three.replays[k].last_run - actual) / actual);
            median3.push_back(std::abs(three.replays[k].point - actual) / actual);
            median50.push_back(std::abs(fifty.replays[k].point - actual) / actual);
        }
    }
    auto median = [](std::vector<double> v) {
        std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
        return v[v.size() / 2];
    };
    ASSERT_EQ(last.size(), 40u * 297);
    // 11,880 replays: each ratio's sampling error is about 0.01.
    EXPECT_NEAR(median(oracle) / median(last), 1 / std::sqrt(2.0), 0.02) << "the bound: even the true median is only ~29 % below";
    EXPECT_NEAR(median(median3) / median(last), 0.851, 0.03) << "predict with 3 prior runs";
    // With 50: 0.718 in theory; a window the drift test takes for a line now and then costs a little.
    EXPECT_LT(median(median50) / median(last), median(oracle) / median(last) + 0.03) << "predict with 50 prior runs: near the bound";
}

TEST(ForecastAhead, ACrossingIsDatedAndItsConfidenceCountedOnTheFolds) {
    // A daily wave between 30 and 70: every day it reaches 65, never 90.
    const std::size_t day = 288;
    std::vector<double> y(8 * day);
    for (std::size_t t = 0; t < y.size(); ++t) y[t] = 50 + 20 * std::sin(2 * kPi * static_cast<double>(t % day) / day);
    BacktestResult r = backtest(y, {}, 300, {day, 72, 0.95});
    const Crossing c = predicted_crossing(y, {}, r, 65);
    ASSERT_TRUE(c.at);
    EXPECT_NEAR(static_cast<double>(*c.at), 288 * std::asin(0.75) / (2 * kPi), 3); // where the sine first reaches 0.75
    EXPECT_EQ(c.folds_called, r.folds);
    EXPECT_EQ(c.folds_confirmed, r.folds);
    EXPECT_DOUBLE_EQ(*c.precision, 1.0);
    const Crossing never = predicted_crossing(y, {}, r, 90);
    EXPECT_FALSE(never.at);
    EXPECT_EQ(never.folds_called, 0u);
    EXPECT_FALSE(never.precision);
}

} // namespace
} // namespace resmgr::analytics
