// Anomalies found causally: each value judged only from the values before it, as a live
// monitor would have judged it. Pure: values in, anomalies out.
//
// Method (kAnomalyMethod): a one-step forecast from ETS(A,N,A) with fixed parameters (alpha 0.1,
// gamma 0.1·(1−alpha) per season; the seasons from detect_seasons), whose state is updated with the
// error clipped to ±3 scales (so a spike does not drag the level or the seasonal profile with it).
// The scale is 1.4826 × the median absolute one-step error of the last `window` values (a robust
// standard deviation). Score = |error| / scale; a value is an anomaly at score ≥ threshold.
// Nothing is judged before one longest season plus `window` values have been seen. Look-ahead,
// said plainly: which seasons there are is detected on the whole series.
// May call: forecast_models.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace resmgr::analytics {

inline constexpr const char* kAnomalyMethod =
    "causal one-step ETS(A,N,A) forecast (alpha 0.1, gamma 0.09, errors clipped at 3 scales when updating); "
    "score = |error| / (1.4826 x median absolute error of the previous window)";

struct AnomalyOptions {
    double threshold = 6;     // score at and above which a value is an anomaly
    std::size_t window = 288; // one-step errors the scale is measured over
};

struct Anomaly {
    std::size_t index = 0;
    double value = 0, forecast = 0, score = 0;
};

// `filled`: values interpolated into gaps (never reported); may be empty.
std::vector<Anomaly> detect_anomalies(const std::vector<double>& y, const std::vector<bool>& filled, std::int64_t step_seconds,
                                      const AnomalyOptions& options = {});

} // namespace resmgr::analytics
