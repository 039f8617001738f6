// Causal anomaly detection (see anomalies.hpp).
#include "analytics/anomalies.hpp"

#include <algorithm>
#include <cmath>
#include <deque>

#include "analytics/forecast_models.hpp"

namespace resmgr::analytics {

std::vector<Anomaly> detect_anomalies(const std::vector<double>& y, const std::vector<bool>& filled, std::int64_t step_seconds,
                                      const AnomalyOptions& options) {
    std::size_t m1 = 0, m2 = 0;
    for (const Season& s : detect_seasons(y, step_seconds))
        if (s.found) (m1 == 0 ? m1 : m2) = s.period;
    const double alpha = 0.1, gamma = 0.1 * (1 - alpha);
    const std::size_t start = std::max<std::size_t>(std::max(m1, m2), 1);
    std::vector<Anomaly> out;
    if (y.size() <= start) return out;
    // The state, started from the first season as EtsFilter does, updated with clipped errors.
    double level = 0;
    for (std::size_t i = 0; i < start; ++i) level += y[i];
    level /= static_cast<double>(start);
    std::vector<double> s1(std::max<std::size_t>(m1, 1), 0.0), s2(std::max<std::size_t>(m2, 1), 0.0);
    if (m1 > 0) {
        std::vector<std::size_t> count(m1, 0);
        for (std::size_t i = 0; i < start; ++i) s1[i % m1] += y[i] - level, ++count[i % m1];
        for (std::size_t p = 0; p < m1; ++p) s1[p] /= static_cast<double>(std::max<std::size_t>(count[p], 1));
    }
    if (m2 > 0)
        for (std::size_t i = 0; i < start; ++i) s2[i % m2] = y[i] - level - s1[i % m1];
    std::deque<double> recent; // absolute one-step errors of the last `window` values
    std::vector<double> sorted;
    for (std::size_t t = start; t < y.size(); ++t) {
        double& a = s1[m1 > 0 ? t % m1 : 0];
        double& b = s2[m2 > 0 ? t % m2 : 0];
        const double forecast = level + a + b, e = y[t] - forecast;
        double clip = std::abs(e);
        if (recent.size() >= options.window) {
            sorted.assign(recent.begin(), recent.end());
            const auto mid = sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2);
            std::nth_element(sorted.begin(), mid, sorted.end());
            // A floor keeps a flat series' scale above zero: a millionth of the level.
            const double scale = std::max(1.4826 * *mid, 1e-6 * std::max(std::abs(level), 1e-3));
            const double score = std::abs(e) / scale;
            if (score >= options.threshold && (filled.empty() || !filled[t])) out.push_back({t, y[t], forecast, score});
            clip = 3 * scale;
        }
        const double used = std::clamp(e, -clip, clip);
        level += alpha * used;
        a += gamma * used;
        b += gamma * used;
        recent.push_back(std::abs(e));
        if (recent.size() > options.window) recent.pop_front();
    }
    return out;
}

} // namespace resmgr::analytics
