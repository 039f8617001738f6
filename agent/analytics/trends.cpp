// Trends, profiles, peaks and time to exhaustion (see trends.hpp).
#include "analytics/trends.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <utility>

namespace resmgr::analytics {

double normal_quantile(double p) {
    // Bisection on Φ(z) = erfc(−z/√2)/2, monotone; 80 halvings of [−40, 40] reach double precision.
    double lo = -40, hi = 40;
    for (int i = 0; i < 80; ++i) {
        const double mid = (lo + hi) / 2;
        (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
    }
    return (lo + hi) / 2;
}

namespace {

// P(|T| ≤ √ν·tan θ) for T ~ t(ν), θ in [0, π/2): a finite series in cos θ for whole ν.
double t_two_sided_probability(double theta, std::size_t degrees) {
    const double s = std::sin(theta), c2 = std::cos(theta) * std::cos(theta);
    if (degrees == 1) return 2 * theta / std::numbers::pi;
    const bool even = degrees % 2 == 0;
    double term = even ? 1 : std::cos(theta), sum = term;
    for (std::size_t k = even ? 2 : 3; k < degrees; k += 2) {
        term *= static_cast<double>(k - 1) / static_cast<double>(k) * c2;
        sum += term;
    }
    return even ? s * sum : 2 / std::numbers::pi * (theta + s * sum);
}

} // namespace

double student_t_quantile(double p, std::size_t degrees) {
    if (p < 0.5) return -student_t_quantile(1 - p, degrees);
    const std::size_t nu = std::max<std::size_t>(degrees, 1);
    // The two-sided probability rises with θ; 80 halvings of [0, π/2) reach double precision.
    double lo = 0, hi = std::numbers::pi / 2;
    for (int i = 0; i < 80; ++i) {
        const double mid = (lo + hi) / 2;
        (t_two_sided_probability(mid, nu) < 2 * p - 1 ? lo : hi) = mid;
    }
    return std::sqrt(static_cast<double>(nu)) * std::tan((lo + hi) / 2);
}

namespace {

// Sen's confidence interval as the 1-based ranks (clamped to [1, N]) of the sorted pairwise slopes
// of n points: N = n(n−1)/2, c = z·√Var(S) with Kendall's S under no trend.
std::pair<std::size_t, std::size_t> sen_ranks(std::size_t n, double confidence) {
    const double nn = static_cast<double>(n), N = nn * (nn - 1) / 2;
    const double c = normal_quantile(1 - (1 - confidence) / 2) * std::sqrt(nn * (nn - 1) * (2 * nn + 5) / 18);
    auto clamped = [&](double rank) { return static_cast<std::size_t>(std::clamp(rank, 1.0, N)); };
    return {clamped(std::floor((N - c) / 2)), clamped(std::ceil((N + c) / 2) + 1)};
}

} // namespace

int theil_sen_direction(const std::vector<double>& y, double confidence) {
    if (y.size() > kTrendMaxPoints || !std::all_of(y.begin(), y.end(), [](double v) { return std::isfinite(v); })) {
        const auto t = theil_sen_trend(y, {}, confidence);
        return !t ? 0 : t->slope_lower > 0 ? 1 : t->slope_upper < 0 ? -1 : 0;
    }
    if (y.size() < kTrendMinPoints) return 0;
    // The sorted slopes are the negative ones, then the zeros, then the positive: only the counts matter.
    std::size_t negative = 0, zero = 0;
    for (std::size_t i = 0; i < y.size(); ++i)
        for (std::size_t j = i + 1; j < y.size(); ++j) negative += y[j] < y[i], zero += y[j] == y[i];
    const auto [lower, upper] = sen_ranks(y.size(), confidence);
    if (lower > negative + zero) return 1;
    if (upper <= negative) return -1;
    return 0;
}

std::optional<Trend> theil_sen_trend(const std::vector<double>& y, const std::vector<bool>& filled, double confidence) {
    std::vector<double> t, v;
    for (std::size_t i = 0; i < y.size(); ++i)
        if ((filled.empty() || !filled[i]) && std::isfinite(y[i])) t.push_back(static_cast<double>(i)), v.push_back(y[i]);
    if (t.size() > kTrendMaxPoints) { // thinned evenly, first and last kept
        std::vector<double> tt, vv;
        for (std::size_t k = 0; k < kTrendMaxPoints; ++k) {
            const std::size_t i = k * (t.size() - 1) / (kTrendMaxPoints - 1);
            tt.push_back(t[i]), vv.push_back(v[i]);
        }
        t.swap(tt), v.swap(vv);
    }
    const std::size_t n = t.size();
    if (n < kTrendMinPoints) return std::nullopt;
    std::vector<double> slopes;
    slopes.reserve(n * (n - 1) / 2);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = i + 1; j < n; ++j) slopes.push_back((v[j] - v[i]) / (t[j] - t[i]));
    std::sort(slopes.begin(), slopes.end());
    const std::size_t N = slopes.size();
    Trend tr;
    tr.points = n;
    tr.confidence = confidence;
    tr.slope = N % 2 ? slopes[N / 2] : (slopes[N / 2 - 1] + slopes[N / 2]) / 2;
    const auto [lower, upper] = sen_ranks(n, confidence);
    tr.slope_lower = slopes[lower - 1];
    tr.slope_upper = slopes[upper - 1];
    std::vector<double> residual(n);
    for (std::size_t i = 0; i < n; ++i) residual[i] = v[i] - tr.slope * t[i];
    std::nth_element(residual.begin(), residual.begin() + static_cast<std::ptrdiff_t>(n / 2), residual.end());
    const double upper_mid = residual[n / 2];
    if (n % 2) {
        tr.intercept = upper_mid;
    } else {
        const double lower_mid = *std::max_element(residual.begin(), residual.begin() + static_cast<std::ptrdiff_t>(n / 2));
        tr.intercept = (lower_mid + upper_mid) / 2;
    }
    return tr;
}

std::vector<double> profile(std::int64_t start, std::int64_t step, const std::vector<double>& y, const std::vector<bool>& filled,
                            std::int64_t slot_seconds, std::size_t slots, std::int64_t offset) {
    std::vector<double> sum(slots, 0.0);
    std::vector<std::size_t> count(slots, 0);
    const auto period = static_cast<std::int64_t>(slots);
    for (std::size_t i = 0; i < y.size(); ++i) {
        if (!filled.empty() && filled[i]) continue;
        const std::int64_t ts = start + static_cast<std::int64_t>(i) * step + offset;
        const std::int64_t slot = ((ts / slot_seconds) % period + period) % period;
        sum[static_cast<std::size_t>(slot)] += y[i];
        ++count[static_cast<std::size_t>(slot)];
    }
    std::vector<double> out(slots);
    for (std::size_t s = 0; s < slots; ++s)
        out[s] = count[s] ? sum[s] / static_cast<double>(count[s]) : std::numeric_limits<double>::quiet_NaN();
    return out;
}

std::vector<std::size_t> top_peaks(const std::vector<double>& y, std::size_t count, std::size_t separation) {
    std::vector<std::size_t> order(y.size());
    for (std::size_t i = 0; i < y.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return y[a] > y[b]; });
    std::vector<std::size_t> out;
    for (std::size_t i : order) {
        if (out.size() >= count) break;
        if (!std::isfinite(y[i])) continue;
        const bool apart = std::all_of(out.begin(), out.end(), [&](std::size_t j) { return (i > j ? i - j : j - i) >= separation; });
        if (apart) out.push_back(i);
    }
    return out;
}

double project(const Trend& trend, double slope, std::size_t last, double days, double growth, double horizon_days) {
    const double level = trend.fitted(static_cast<double>(last));
    return (level + slope * days) * (1 + (horizon_days > 0 ? growth * days / horizon_days : 0));
}

Exhaustion time_to_limit(const Trend& trend, std::size_t last, double limit, double growth, double horizon_days, double max_days) {
    Exhaustion e;
    e.level = trend.fitted(static_cast<double>(last));
    auto first_day = [&](double slope) -> std::optional<double> {
        // Day by day; the projection is a quadratic at most, so a tenth of a day is refined last.
        for (double d = 0; d <= max_days; d += 1)
            if (project(trend, slope, last, d, growth, horizon_days) >= limit) {
                double at = d;
                while (at > 0 && project(trend, slope, last, at - 0.1, growth, horizon_days) >= limit) at -= 0.1;
                return std::max(0.0, std::round(at * 10) / 10);
            }
        return std::nullopt;
    };
    e.days = first_day(trend.slope);
    e.earliest = first_day(trend.slope_upper);
    e.latest = first_day(trend.slope_lower);
    return e;
}

} // namespace resmgr::analytics
