// A time series as monitors export it: CSV text in, (timestamp, value) samples out, and the same
// samples laid on a regular grid for the forecasting models. Pure: streams in, data out; the
// history import (agent/history) and `resmgr backtest` (agent/cli) both read CSVs through this.
//
// CSV: "timestamp,value" first on each row, further columns ignored; a first line that is not
// a timestamp is a header. Timestamps: ISO 8601 / RFC 3339, "YYYY-MM-DD HH:MM:SS" (UTC), or
// seconds since the epoch. A row that is not that (a bad time, a value that is not a finite
// number, a missing field) is a SeriesCsvError naming its line.
//
// The grid (to_regular_series): the step is the median spacing of the timestamps. Refused with
// the line: a timestamp earlier than the one before it (unordered). Handled and reported:
// duplicate timestamps, and samples off the grid that land in the same slot, are averaged
// ("merged"); empty slots (gaps) are filled by linear interpolation between their neighbours and
// marked, so a back-test never scores a forecast against a filled value.
// May call: model (timestamp parsing).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace resmgr::analytics {

struct SeriesCsvError : std::runtime_error {
    SeriesCsvError(std::size_t line, const std::string& what);
    std::size_t line; // 1-based line of the file
};

struct CsvSample {
    std::int64_t ts = 0; // seconds since the epoch
    double value = 0;
    std::size_t line = 0;
};

// "2014-04-01 00:05:00", "2014-04-01T00:05:00Z", "+02:00" offsets, or epoch seconds (1970-2200).
std::optional<std::int64_t> parse_csv_time(std::string_view field);

// All the rows of `in`, in file order. Throws SeriesCsvError on the first bad row.
std::vector<CsvSample> read_series_csv(std::istream& in);

struct RegularSeries {
    std::int64_t start = 0;   // timestamp of values[0]
    std::int64_t step = 0;    // seconds between values
    std::vector<double> values;
    std::vector<bool> filled; // true where a gap was interpolated
    std::size_t samples = 0;  // rows read
    std::size_t merged = 0;   // rows averaged into a slot another row already had (duplicates, jitter)
    std::size_t duplicate_timestamps = 0; // of which exactly the same timestamp
    std::size_t first_duplicate_line = 0; // 0 when none
    std::size_t gaps = 0, gap_points = 0, longest_gap = 0; // runs of filled slots, their points, the longest run
    std::int64_t ts(std::size_t i) const { return start + static_cast<std::int64_t>(i) * step; }
};

// Lays `samples` (in file order) on a regular grid, as described above. Throws SeriesCsvError
// for an unordered timestamp (naming its line), for fewer than 2 samples, or when the grid would
// be absurd (more than 10 million slots).
RegularSeries to_regular_series(const std::vector<CsvSample>& samples);

} // namespace resmgr::analytics
