// A stored series read back the way the forecasting models want it: the buckets of one resolution
// over a span that ends at the series' own newest bucket (so a trace imported from 2014 is read
// where it lies in time), laid on a regular grid with gaps interpolated and marked. The planning
// operations and the predictive alerts read the history through this.
// May call: history_store, analytics (series_csv).
#pragma once

#include <cstdint>
#include <string>

#include "analytics/series_csv.hpp"
#include "history/history_store.hpp"

namespace resmgr::history {

enum class Take { mean, p95, max };

// Empty (no values) when the span holds fewer than two buckets.
analytics::RegularSeries read_regular(const HistoryStore& store, const std::string& name, Resolution resolution, std::int64_t span, Take take);

} // namespace resmgr::history
