// Forecasting models (see forecast_models.hpp).
#include "analytics/forecast_models.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace resmgr::analytics {
namespace {

double median_of(std::vector<double>& v) {
    const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
    std::nth_element(v.begin(), mid, v.end());
    if (v.size() % 2 == 1) return *mid;
    return (*mid + *std::max_element(v.begin(), mid)) / 2;
}

// Autocorrelation of x (mean already removed) at `lag`.
double autocorrelation(const std::vector<double>& x, std::size_t lag) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        den += x[i] * x[i];
        if (i + lag < x.size()) num += x[i] * x[i + lag];
    }
    return den > 0 ? num / den : 0;
}

// y minus its least-squares line.
std::vector<double> detrended(const std::vector<double>& y) {
    const double n = static_cast<double>(y.size());
    double st = 0, sy = 0, stt = 0, sty = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
        const double t = static_cast<double>(i);
        st += t, sy += y[i], stt += t * t, sty += t * y[i];
    }
    const double den = n * stt - st * st;
    const double slope = den > 0 ? (n * sty - st * sy) / den : 0, intercept = (sy - slope * st) / n;
    std::vector<double> out(y.size());
    for (std::size_t i = 0; i < y.size(); ++i) out[i] = y[i] - intercept - slope * static_cast<double>(i);
    return out;
}

} // namespace

std::vector<Season> detect_seasons(const std::vector<double>& y, std::int64_t step_seconds) {
    std::vector<Season> out;
    std::vector<double> x = detrended(y);
    std::size_t day = 0;
    for (const auto& [name, seconds] : {std::pair<const char*, std::int64_t>{"1d", 86400}, {"1w", 7 * 86400}}) {
        Season s;
        s.name = name;
        if (step_seconds <= 0 || seconds % step_seconds != 0 || seconds / step_seconds < 2) {
            s.reason = "not a whole number of steps of " + std::to_string(step_seconds) + " s";
            out.push_back(s);
            continue;
        }
        s.period = static_cast<std::size_t>(seconds / step_seconds);
        if (y.size() < 2 * s.period) {
            s.reason = "needs 2 periods (" + std::to_string(2 * s.period) + " points), the series has " + std::to_string(y.size());
            out.push_back(s);
            continue;
        }
        std::vector<double> z = x;
        if (s.name == "1w" && day > 0) { // take the mean daily profile out first
            std::vector<double> sum(day, 0.0);
            std::vector<std::size_t> count(day, 0);
            for (std::size_t i = 0; i < z.size(); ++i) sum[i % day] += z[i], ++count[i % day];
            for (std::size_t i = 0; i < z.size(); ++i) z[i] -= sum[i % day] / static_cast<double>(count[i % day]);
        }
        // Nothing but rounding left once the line is out (a straight line, a constant): no season.
        double energy = 0, residual = 0;
        for (std::size_t i = 0; i < y.size(); ++i) energy += y[i] * y[i], residual += z[i] * z[i];
        if (residual <= 1e-18 * energy) {
            s.reason = "no variation around the trend";
            out.push_back(s);
            continue;
        }
        s.autocorrelation = autocorrelation(z, s.period);
        s.found = s.autocorrelation >= kSeasonMinAutocorrelation;
        if (!s.found) {
            char why[96];
            std::snprintf(why, sizeof why, "autocorrelation %.2f below %.2f", s.autocorrelation, kSeasonMinAutocorrelation);
            s.reason = why;
        }
        if (s.name == "1d" && s.found) day = s.period;
        out.push_back(s);
    }
    return out;
}

void seasonal_naive_forecast(const std::vector<double>& y, std::size_t o, std::size_t m, std::size_t h, double* out) {
    m = std::max<std::size_t>(m, 1);
    for (std::size_t j = 0; j < h; ++j) out[j] = y[o - m + j % m];
}

void drift_forecast(const std::vector<double>& y, std::size_t o, std::size_t h, double* out) {
    const double slope = o > 1 ? (y[o - 1] - y[0]) / static_cast<double>(o - 1) : 0;
    for (std::size_t j = 0; j < h; ++j) out[j] = y[o - 1] + slope * static_cast<double>(j + 1);
}

void linear_fit_forecast(const std::vector<double>& y, std::size_t o, std::size_t window, std::size_t h, double* out) {
    const std::size_t w = std::clamp<std::size_t>(window, 1, o), from = o - w;
    double st = 0, sy = 0, stt = 0, sty = 0;
    for (std::size_t i = from; i < o; ++i) {
        const double t = static_cast<double>(i - from);
        st += t, sy += y[i], stt += t * t, sty += t * y[i];
    }
    const double n = static_cast<double>(w), den = n * stt - st * st;
    const double slope = den > 0 ? (n * sty - st * sy) / den : 0, intercept = (sy - slope * st) / n;
    for (std::size_t j = 0; j < h; ++j) out[j] = intercept + slope * static_cast<double>(w - 1 + j + 1);
}

void theil_sen_forecast(const std::vector<double>& y, std::size_t o, std::size_t m, std::size_t window, std::size_t h, double* out) {
    const std::size_t w = std::clamp<std::size_t>(window, 2, o), from = o - w;
    // Pairs a whole number of "lag units" apart: the season, or (no season) a 16th of the window.
    const std::size_t unit = m > 1 ? m : std::max<std::size_t>(1, w / 16);
    const std::size_t lags = std::min<std::size_t>(w / unit - (w % unit == 0 ? 1 : 0), 15);
    const std::size_t stride = std::max<std::size_t>(1, w / 128);
    std::vector<double> slopes;
    for (std::size_t k = 1; k <= lags; ++k) {
        const std::size_t lag = k * unit;
        for (std::size_t i = from; i + lag < o; i += stride) slopes.push_back((y[i + lag] - y[i]) / static_cast<double>(lag));
    }
    const double slope = slopes.empty() ? 0 : median_of(slopes);
    // The level: the last few values at the same phase (seasons back, or steps back), moved along the trend.
    const std::size_t back = m > 1 ? m : 1, count = std::min<std::size_t>(m > 1 ? 3 : 6, o / back);
    std::vector<double> anchors(count);
    for (std::size_t j = 0; j < h; ++j) {
        const std::size_t target = o + j;
        const std::size_t src = m > 1 ? o - m + j % m : o - 1;
        for (std::size_t r = 0; r < count; ++r) {
            const std::size_t at = src - r * back;
            anchors[r] = y[at] + slope * static_cast<double>(target - at);
        }
        out[j] = median_of(anchors);
    }
}

std::string EtsParams::describe() const {
    char text[224];
    int n = std::snprintf(text, sizeof text, "alpha %.3g", alpha);
    if (beta > 0) n += std::snprintf(text + n, sizeof text - static_cast<std::size_t>(n), ", beta %.3g, phi %.3g", beta, phi);
    else n += std::snprintf(text + n, sizeof text - static_cast<std::size_t>(n), ", no trend");
    if (gamma1 > 0) n += std::snprintf(text + n, sizeof text - static_cast<std::size_t>(n), ", gamma %.3g", gamma1);
    if (gamma2 > 0) n += std::snprintf(text + n, sizeof text - static_cast<std::size_t>(n), ", gamma2 %.3g", gamma2);
    if (clip > 0) n += std::snprintf(text + n, sizeof text - static_cast<std::size_t>(n), ", errors clipped at %.3g scales", clip);
    if (clip > 0 && shift_run > 0)
        std::snprintf(text + n, sizeof text - static_cast<std::size_t>(n), ", level restarted after %zu in a row beyond", shift_run);
    return text;
}

std::vector<EtsParams> ets_grid(bool season1, bool season2, std::size_t shift_run) {
    std::vector<EtsParams> grid;
    const std::vector<double> none{0.0}, seasonal{0.1, 0.3};
    for (double alpha : {0.01, 0.03, 0.1, 0.3, 0.6}) {
        std::vector<std::pair<double, double>> trends{{0.0, 1.0}};
        for (double b : {0.01, 0.1})
            for (double phi : {0.98, 0.995}) trends.push_back({alpha * b, phi});
        for (auto [beta, phi] : trends)
            for (double g1 : season1 ? seasonal : none)
                for (double g2 : season2 ? seasonal : none)
                    for (std::size_t run : {shift_run, std::size_t{0}}) {
                        grid.push_back({alpha, beta, phi, g1 * (1 - alpha), g2 * (1 - alpha), 3, run});
                        if (shift_run == 0) break; // no twin without detection
                    }
    }
    return grid;
}

EtsFilter::EtsFilter(const std::vector<double>& y, std::size_t m1, std::size_t m2, const EtsParams& params)
    : y_(y), m1_(m1 > 1 ? m1 : 0), m2_(m2 > 1 ? m2 : 0), p_(params) {
    if (m1_ == 0 && m2_ > 0) std::swap(m1_, m2_);
    s1_.assign(std::max<std::size_t>(m1_, 1), 0.0);
    s2_.assign(std::max<std::size_t>(m2_, 1), 0.0);
    start_ = std::min(y.size(), m2_ > 0 ? m2_ : m1_ > 0 ? m1_ : std::size_t{16});
    if (start_ == 0) return;
    double sum = 0;
    for (std::size_t i = 0; i < start_; ++i) sum += y[i];
    level_ = sum / static_cast<double>(start_);
    if (m1_ > 0) { // the mean profile of the first season(s)
        std::vector<std::size_t> count(m1_, 0);
        for (std::size_t i = 0; i < start_; ++i) s1_[i % m1_] += y[i] - level_, ++count[i % m1_];
        for (std::size_t p = 0; p < m1_; ++p) s1_[p] /= static_cast<double>(std::max<std::size_t>(count[p], 1));
    }
    if (m2_ > 0)
        for (std::size_t i = 0; i < start_; ++i) s2_[i % m2_] = y[i] - level_ - s1_[i % m1_];
    t_ = start_;
}

void EtsFilter::advance(std::size_t o) {
    const double alpha = p_.alpha, beta = p_.beta, phi = p_.phi, g1 = p_.gamma1, g2 = p_.gamma2, clip = p_.clip;
    double level = level_, trend = trend_, sse = sse_, scale = scale_;
    Run& run = run_;
    for (std::size_t t = t_; t < o; ++t) {
        double& s1 = s1_[m1_ > 0 ? t % m1_ : 0];
        double& s2 = s2_[m2_ > 0 ? t % m2_ : 0];
        const double raw = y_[t] - (level + phi * trend + s1 + s2);
        double e = raw;
        int side = 0;
        if (clip > 0) { // Huber-style: the state moves by at most clip scales at a time
            // Never below a thousandth of the level: a noise-free series still follows a shift.
            const double bound = clip * std::max(scale, 1e-3 * std::abs(level));
            if (scale > 0) e = std::clamp(raw, -bound, bound);
            if (scale > 0 && std::abs(raw) > bound) side = raw > 0 ? 1 : -1;
        }
        if (p_.shift_run > 0 && t >= replay_until_) {
            if (side != run.side) { // a run ends, or a new one begins here
                run.side = side;
                run.errors.clear(), run.s1_undo.clear(), run.s2_undo.clear();
                run.start = t, run.level = level, run.trend = trend, run.sse = sse, run.scale = scale;
            }
            if (side != 0) {
                run.errors.push_back(raw);
                run.s1_undo.push_back({m1_ > 0 ? t % m1_ : 0, s1});
                run.s2_undo.push_back({m2_ > 0 ? t % m2_ : 0, s2});
            }
        }
        sse += raw * raw;
        if (clip > 0) scale = scale > 0 ? 0.99 * scale + 0.01 * 1.25 * std::abs(e) : 1.25 * std::abs(raw);
        level += phi * trend + alpha * e;
        if (fresh_active_) { // after a restart: the median of the values since the shift (seasons removed)
            fresh_.push_back(y_[t] - s1 - s2);
            sorted_ = fresh_;
            level = median_of(sorted_);
            fresh_active_ = static_cast<double>(fresh_.size()) * alpha < 1;
        }
        trend = phi * trend + beta * e;
        s1 += g1 * e;
        s2 += g2 * e;
        if (run.side != 0 && run.errors.size() >= p_.shift_run) {
            // A level shift at run.start: back to the state before it, the level moved by the
            // median of the run's errors, and the run's values filtered again from there.
            for (auto it = run.s1_undo.rbegin(); it != run.s1_undo.rend(); ++it) s1_[it->first] = it->second;
            for (auto it = run.s2_undo.rbegin(); it != run.s2_undo.rend(); ++it) s2_[it->first] = it->second;
            level = run.level + median_of(run.errors), trend = run.trend, sse = run.sse, scale = run.scale;
            replay_until_ = t + 1;
            detected_at_ = t + 1;
            fresh_.clear();
            fresh_active_ = true;
            t = run.start - 1; // the loop's ++t: the run's first value again
            run = Run{};
            ++shifts_;
        }
    }
    level_ = level, trend_ = trend, sse_ = sse, scale_ = scale;
    t_ = std::max(t_, o);
}

void EtsFilter::forecast_from(std::size_t o, std::size_t h, double* out) {
    advance(o);
    double damped = 0, power = 1;
    for (std::size_t j = 0; j < h; ++j) {
        power *= p_.phi;
        damped += power;
        const std::size_t t = o + j;
        out[j] = level_ + damped * trend_ + s1_[m1_ > 0 ? t % m1_ : 0] + s2_[m2_ > 0 ? t % m2_ : 0];
    }
}

} // namespace resmgr::analytics
