// A stored series on a regular grid (see series.hpp).
#include "history/series.hpp"

#include <limits>
#include <vector>

namespace resmgr::history {

analytics::RegularSeries read_regular(const HistoryStore& store, const std::string& name, Resolution resolution, std::int64_t span, Take take) {
    const auto buckets = store.series(name, resolution, 0, std::numeric_limits<std::int64_t>::max());
    std::vector<analytics::CsvSample> samples;
    for (const auto& b : buckets)
        if (b.ts > buckets.back().ts - span) samples.push_back({b.ts, take == Take::mean ? b.mean : take == Take::p95 ? b.p95 : b.max, 0});
    if (samples.size() < 2) return {};
    return analytics::to_regular_series(samples);
}

} // namespace resmgr::history
