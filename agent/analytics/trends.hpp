// Trends, profiles, peaks and time to exhaustion of a regular series: what analyze-trends and
// plan-capacity compute, and the peaks a forecast shows. Pure: values in, figures out.
//
// Named methods (kTrendMethod, kExhaustionMethod say the same in every answer):
//   - trend: Theil-Sen slope (the median of all pairwise slopes; Theil 1950, Sen 1968) with its
//     confidence interval from the ranks of the pairwise slopes (Sen 1968: C = z·√(n(n−1)(2n+5)/18),
//     bounds the ((N−C)/2)-th and ((N+C)/2+1)-th of the N sorted slopes); the intercept is the
//     median of y − slope·t. Series longer than kTrendMaxPoints are thinned evenly first.
//   - profiles: the mean of the values per hour of the day and per day of the week (UTC).
//   - peaks: the highest values at least `separation` steps apart, greedily, highest first.
//   - time to a limit: the trend line from the last value's fitted level, optionally scaled by a
//     growth assumption rising linearly to (1 + growth) at the end of the horizon; the first day
//     the projection reaches the limit, for the slope and for both ends of its interval.
// May call: nothing outside analytics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace resmgr::analytics {

inline constexpr const char* kTrendMethod =
    "Theil-Sen slope (median of pairwise slopes) with Sen's rank confidence interval; intercept the median of y - slope*t";
inline constexpr const char* kExhaustionMethod =
    "the Theil-Sen trend of the daily peaks projected from today's fitted level (times the growth assumption, rising "
    "linearly over the horizon) until it reaches the limit; earliest/latest from the slope's confidence interval";
inline constexpr std::size_t kTrendMaxPoints = 2000;
inline constexpr std::size_t kTrendMinPoints = 3;

// The quantile of the standard normal distribution at p in (0, 1).
double normal_quantile(double p);

// The quantile of Student's t with `degrees` degrees of freedom (0 is taken as 1) at p in (0, 1):
// bisection on the closed form of P(|T| ≤ t) for whole degrees (Abramowitz & Stegun 26.7.3-4).
double student_t_quantile(double p, std::size_t degrees);

struct Trend {
    double slope = 0;            // per step
    double slope_lower = 0, slope_upper = 0; // the confidence interval of the slope
    double intercept = 0;        // fitted value at index 0
    double confidence = 0.95;
    std::size_t points = 0;      // values used (after dropping filled ones and thinning)
    double fitted(double index) const { return intercept + slope * index; }
};

// nullopt with fewer than kTrendMinPoints unfilled values. `filled` may be empty.
std::optional<Trend> theil_sen_trend(const std::vector<double>& y, const std::vector<bool>& filled, double confidence = 0.95);
// The sign of theil_sen_trend(y, {}, confidence)'s slope interval: 1 above 0, -1 below, 0 across
// it (or too few values). The same decision from the counts of rising and falling pairs, without
// making and sorting the n(n−1)/2 slopes (predict asks it of every window it back-tests).
int theil_sen_direction(const std::vector<double>& y, double confidence = 0.95);

// Mean of the values per slot: slot = ((ts + offset) / slot_seconds) mod slots; NaN for a slot
// without values. Day of week: slot_seconds 86400, slots 7, offset 3 days (slot 0 = Monday).
std::vector<double> profile(std::int64_t start, std::int64_t step, const std::vector<double>& y, const std::vector<bool>& filled,
                            std::int64_t slot_seconds, std::size_t slots, std::int64_t offset = 0);

// Indices of at most `count` highest values at least `separation` indices apart, highest first.
std::vector<std::size_t> top_peaks(const std::vector<double>& y, std::size_t count, std::size_t separation);

struct Exhaustion {
    // Days from the last value until the projection reaches the limit: 0 when it is already
    // there, nullopt when it does not within max_days.
    std::optional<double> days, earliest, latest;
    double level = 0; // the fitted level at the last value
};

// `trend` fitted on daily values (slope per day), the last value at index last; growth: the
// fraction added by the end of horizon_days (0: none).
Exhaustion time_to_limit(const Trend& trend, std::size_t last, double limit, double growth, double horizon_days, double max_days = 730);

// The projected value `days` after the last value (same projection as time_to_limit).
double project(const Trend& trend, double slope, std::size_t last, double days, double growth, double horizon_days);

} // namespace resmgr::analytics
