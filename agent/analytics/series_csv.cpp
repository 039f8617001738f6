// CSV time series and their regular grid (see series_csv.hpp).
#include "analytics/series_csv.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <istream>

#include "resmgr/model.hpp"

namespace resmgr::analytics {
namespace {

std::string_view trim(std::string_view s) {
    const char* space = " \t\r";
    const auto first = s.find_first_not_of(space);
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(space) - first + 1);
}

std::string when(std::int64_t ts) { return format_timestamp(TimePoint(std::chrono::seconds(ts))); }

} // namespace

SeriesCsvError::SeriesCsvError(std::size_t line_number, const std::string& what)
    : std::runtime_error("line " + std::to_string(line_number) + ": " + what), line(line_number) {}

std::optional<std::int64_t> parse_csv_time(std::string_view field) {
    if (field.empty()) return std::nullopt;
    if (field.find_first_not_of("0123456789.") == std::string_view::npos) {
        const std::string text(field);
        char* end = nullptr;
        double seconds = std::strtod(text.c_str(), &end);
        // 1970-2200, as the protocol's timestamps.
        if (*end != '\0' || !std::isfinite(seconds) || seconds < 0 || seconds > 7258118400.0) return std::nullopt;
        return static_cast<std::int64_t>(seconds);
    }
    // "2014-04-01 00:05:00" (what many monitors export): ISO 8601 with a space and no zone, read as UTC.
    std::string iso(field);
    if (iso.size() == 19 && (iso[10] == ' ' || iso[10] == 'T')) iso[10] = 'T', iso += 'Z';
    auto t = parse_timestamp(iso);
    if (!t) return std::nullopt;
    return std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count();
}

std::vector<CsvSample> read_series_csv(std::istream& in) {
    std::vector<CsvSample> out;
    std::string raw;
    std::size_t number = 0;
    while (std::getline(in, raw)) {
        ++number;
        const std::string_view line = trim(raw);
        if (line.empty()) continue;
        const auto comma = line.find(',');
        if (comma == std::string_view::npos) throw SeriesCsvError(number, "expected timestamp,value");
        const auto next = line.find(',', comma + 1);
        const std::string_view when = trim(line.substr(0, comma));
        const std::string what(trim(line.substr(comma + 1, next == std::string_view::npos ? std::string_view::npos : next - comma - 1)));
        auto ts = parse_csv_time(when);
        if (!ts && number == 1) continue; // a header line
        if (!ts)
            throw SeriesCsvError(number, "'" + std::string(when.substr(0, 64)) + "' is not a timestamp (ISO 8601 or seconds since the epoch)");
        char* end = nullptr;
        const double value = std::strtod(what.c_str(), &end);
        if (what.empty() || *end != '\0' || !std::isfinite(value))
            throw SeriesCsvError(number, "'" + what.substr(0, 64) + "' is not a finite number");
        out.push_back({*ts, value, number});
    }
    return out;
}

RegularSeries to_regular_series(const std::vector<CsvSample>& samples) {
    if (samples.size() < 2)
        throw SeriesCsvError(samples.empty() ? 1 : samples.front().line,
                             "a series needs at least 2 rows, the file has " + std::to_string(samples.size()));
    std::vector<std::int64_t> spacing;
    spacing.reserve(samples.size());
    for (std::size_t i = 1; i < samples.size(); ++i) {
        const std::int64_t d = samples[i].ts - samples[i - 1].ts;
        if (d < 0)
            throw SeriesCsvError(samples[i].line, "timestamps out of order: " + when(samples[i].ts) + " is before line " +
                                                      std::to_string(samples[i - 1].line) + "'s " + when(samples[i - 1].ts) +
                                                      " (sort the file by time)");
        if (d > 0) spacing.push_back(d);
    }
    if (spacing.empty()) throw SeriesCsvError(samples.back().line, "every row has the same timestamp");
    std::nth_element(spacing.begin(), spacing.begin() + static_cast<std::ptrdiff_t>(spacing.size() / 2), spacing.end());
    RegularSeries s;
    s.step = spacing[spacing.size() / 2];
    s.start = samples.front().ts;
    s.samples = samples.size();
    const std::int64_t slots = (samples.back().ts - s.start + s.step / 2) / s.step + 1;
    if (slots > 10'000'000)
        throw SeriesCsvError(samples.back().line, "the series spans " + std::to_string(slots) + " steps of " + std::to_string(s.step) +
                                                      " s (more than 10 million): too sparse or too long to lay on a grid");
    std::vector<double> sum(static_cast<std::size_t>(slots), 0.0);
    std::vector<std::size_t> count(static_cast<std::size_t>(slots), 0);
    for (std::size_t i = 0; i < samples.size(); ++i) {
        const auto slot = static_cast<std::size_t>((samples[i].ts - s.start + s.step / 2) / s.step);
        if (count[slot] > 0) ++s.merged;
        if (i > 0 && samples[i].ts == samples[i - 1].ts) {
            ++s.duplicate_timestamps;
            if (s.first_duplicate_line == 0) s.first_duplicate_line = samples[i].line;
        }
        sum[slot] += samples[i].value;
        ++count[slot];
    }
    s.values.resize(sum.size());
    s.filled.assign(sum.size(), false);
    for (std::size_t i = 0; i < sum.size();) {
        if (count[i] > 0) {
            s.values[i] = sum[i] / static_cast<double>(count[i]);
            ++i;
            continue;
        }
        // A gap [i, j): interpolated between the slots either side (the first and last are never empty).
        std::size_t j = i;
        while (count[j] == 0) ++j;
        const double before = s.values[i - 1], after = sum[j] / static_cast<double>(count[j]);
        const double span = static_cast<double>(j - i + 1);
        for (std::size_t k = i; k < j; ++k) {
            s.values[k] = before + (after - before) * static_cast<double>(k - i + 1) / span;
            s.filled[k] = true;
        }
        ++s.gaps;
        s.gap_points += j - i;
        s.longest_gap = std::max(s.longest_gap, j - i);
        i = j;
    }
    return s;
}

} // namespace resmgr::analytics
