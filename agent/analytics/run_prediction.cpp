// The next run of a workflow type (see run_prediction.hpp).
#include "analytics/run_prediction.hpp"

#include <algorithm>
#include <cmath>

#include "analytics/trends.hpp"

namespace resmgr::analytics {
namespace {

struct Interval {
    double point = 0, lower = 0, upper = 0, level = 0;
    IntervalMethod method = IntervalMethod::order_statistics;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Median and interval of `v` (at least two values), see run_prediction.hpp.
Interval interval_of(std::vector<double> v, double confidence) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    const double alpha = 1 - confidence, np1 = static_cast<double>(n + 1);
    Interval out;
    out.point = median(v);
    // The ranks, with a tolerance for the rounding of α: 1 − 0.8 is 0.19999999999999996, and 9 runs
    // at 80 % would otherwise miss their 1st and 9th of 10 slots.
    const auto lo = static_cast<std::size_t>(std::floor(np1 * alpha / 2 + 1e-9));
    const auto hi = static_cast<std::size_t>(std::ceil(np1 * (1 - alpha / 2) - 1e-9));
    if (lo >= 1 && hi <= n) {
        out.lower = v[lo - 1];
        out.upper = v[hi - 1];
        out.level = static_cast<double>(hi - lo) / np1;
        return out;
    }
    if (v.front() > 0) {
        double mean = 0, squares = 0;
        for (double x : v) mean += std::log(x);
        mean /= static_cast<double>(n);
        for (double x : v) squares += (std::log(x) - mean) * (std::log(x) - mean);
        const double sd = std::sqrt(squares / static_cast<double>(n - 1));
        const double half = student_t_quantile(1 - alpha / 2, n - 1) * sd * std::sqrt(1 + 1 / static_cast<double>(n));
        const double lower = std::exp(mean - half), upper = std::exp(mean + half);
        // Equal runs give no spread to scale (a zero-width interval would claim the level), and
        // runs orders of magnitude apart can overflow: both keep [min, max] and its level.
        if (v.front() < v.back() && std::isfinite(upper)) {
            out.lower = lower, out.upper = upper, out.level = confidence, out.method = IntervalMethod::log_t;
            return out;
        }
    }
    out.lower = v.front();
    out.upper = v.back();
    out.level = (np1 - 2) / np1;
    return out;
}

// Runs whose size drifts, see run_prediction.hpp. nullopt: no drift shown, or no line to use.
std::optional<Interval> drift_interval_of(const std::vector<double>& v, double confidence) {
    const std::size_t n = v.size();
    if (n < kDriftMinRuns) return std::nullopt;
    std::vector<double> logs;
    logs.reserve(n);
    for (double x : v) {
        if (!(x > 0)) return std::nullopt;
        logs.push_back(std::log(x));
    }
    if (theil_sen_direction(logs, kDriftTestLevel) == 0) return std::nullopt;
    const auto line = theil_sen_trend(logs, {}, kDriftTestLevel);
    if (!line || line->points != n) return std::nullopt;
    const double count = static_cast<double>(n), mean_index = (count - 1) / 2;
    double sxx = 0, squares = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double x = static_cast<double>(i);
        sxx += (x - mean_index) * (x - mean_index);
        squares += (logs[i] - line->fitted(x)) * (logs[i] - line->fitted(x));
    }
    const double sd = std::sqrt(squares / (count - 2));
    if (!(sd > 0)) return std::nullopt; // on the line exactly: no spread to scale
    const double centre = line->fitted(count);
    const double half = student_t_quantile(1 - (1 - confidence) / 2, n - 2) * sd *
                        std::sqrt(1 + 1 / count + (count - mean_index) * (count - mean_index) / sxx);
    Interval out{std::exp(centre), std::exp(centre - half), std::exp(centre + half), confidence, IntervalMethod::log_trend};
    if (!std::isfinite(out.upper) || !(out.lower > 0)) return std::nullopt;
    return out;
}

// The prediction from the runs of a window: along their drift when they drift, else their median.
Interval predict_from(std::vector<double> v, double confidence, bool follow_drift) {
    if (auto drift = follow_drift ? drift_interval_of(v, confidence) : std::nullopt) return *drift;
    return interval_of(std::move(v), confidence);
}

std::optional<double> median_of(std::vector<double> v) { return v.empty() ? std::nullopt : std::optional<double>(median(std::move(v))); }

QuantityPrediction predict_quantity(const std::string& name, const std::vector<double>& all, double confidence, std::size_t window,
                                    bool follow_drift) {
    QuantityPrediction q;
    q.name = name;
    const std::size_t from = all.size() > window ? all.size() - window : 0;
    const std::vector<double> recent(all.begin() + static_cast<std::ptrdiff_t>(from), all.end());
    q.runs = recent.size();
    if (recent.size() < kMinPriorRuns) {
        q.reason = std::to_string(recent.size()) + " run(s) measured " + name + ", " + std::to_string(kMinPriorRuns) + " needed";
        return q;
    }
    const Interval now = predict_from(recent, confidence, follow_drift);
    q.point = now.point, q.lower = now.lower, q.upper = now.upper, q.level = now.level, q.interval_method = now.method;
    std::vector<double> ape, last_ape;
    std::size_t inside = 0;
    double claimed = 0;
    for (std::size_t k = kMinPriorRuns; k < all.size(); ++k) {
        const std::size_t begin = k > window ? k - window : 0;
        const Interval before = predict_from({all.begin() + static_cast<std::ptrdiff_t>(begin), all.begin() + static_cast<std::ptrdiff_t>(k)}, confidence, follow_drift);
        const double actual = all[k];
        ++q.replayed;
        inside += actual >= before.lower && actual <= before.upper;
        claimed += before.level;
        q.replays.push_back({actual, before.point, before.lower, before.upper, all[k - 1]});
        if (std::abs(actual) > 0) {
            ape.push_back(std::abs(before.point - actual) / std::abs(actual));
            last_ape.push_back(std::abs(all[k - 1] - actual) / std::abs(actual));
        }
    }
    if (q.replayed > 0) {
        q.coverage = static_cast<double>(inside) / static_cast<double>(q.replayed);
        q.claimed_level = claimed / static_cast<double>(q.replayed);
    }
    q.median_ape = median_of(ape);
    q.last_run_median_ape = median_of(last_ape);
    if (auto t = theil_sen_trend(recent, {}, confidence)) q.slope_per_run = t->slope, q.slope_lower = t->slope_lower, q.slope_upper = t->slope_upper;
    return q;
}

} // namespace

const char* to_string(IntervalMethod method) {
    switch (method) {
    case IntervalMethod::log_t: return "log_normal_t";
    case IntervalMethod::log_trend: return "log_linear_trend";
    case IntervalMethod::order_statistics: break;
    }
    return "order_statistics";
}

RunPrediction predict_next_run(std::vector<RunRecord> runs, double confidence, std::size_t window, bool follow_drift) {
    std::stable_sort(runs.begin(), runs.end(), [](const RunRecord& a, const RunRecord& b) { return a.ended_at < b.ended_at; });
    RunPrediction p;
    p.runs = runs.size();
    std::vector<double> cpu, memory, duration;
    for (const auto& r : runs) {
        p.oom_killed += r.outcome == RunOutcome::oom_killed;
        p.failed += r.outcome == RunOutcome::failed;
        const double seconds = r.duration_seconds();
        if (r.cpu_seconds && seconds > 0) cpu.push_back(*r.cpu_seconds / seconds);
        if (r.memory_peak_bytes) memory.push_back(static_cast<double>(*r.memory_peak_bytes) / (1024.0 * 1024 * 1024));
        if (seconds > 0) duration.push_back(seconds);
    }
    window = std::max(window, kMinPriorRuns);
    p.quantities.push_back(predict_quantity("cpu_cores", cpu, confidence, window, follow_drift));
    p.quantities.push_back(predict_quantity("memory_gb", memory, confidence, window, follow_drift));
    p.quantities.push_back(predict_quantity("duration_seconds", duration, confidence, window, follow_drift));
    return p;
}

} // namespace resmgr::analytics
