// Priorities, statuses, and the text forms of sizes, durations and timestamps.
#include "resmgr/model.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>
#include <limits>

namespace resmgr {

PriorityBand Priority::band() const {
    if (value >= 90) return PriorityBand::critical;
    if (value >= 70) return PriorityBand::high;
    if (value >= 40) return PriorityBand::medium;
    return PriorityBand::low;
}

std::string band_name(PriorityBand band) {
    switch (band) {
    case PriorityBand::critical: return "critical";
    case PriorityBand::high: return "high";
    case PriorityBand::medium: return "medium";
    case PriorityBand::low: return "low";
    }
    return "medium";
}

std::string Priority::band_name() const { return resmgr::band_name(band()); }

Priority Priority::of_band(PriorityBand band) {
    // Each band's anchor sits inside the band, so a named priority orders sensibly against
    // numeric ones of the same band.
    switch (band) {
    case PriorityBand::critical: return {95};
    case PriorityBand::high: return {80};
    case PriorityBand::medium: return {50};
    case PriorityBand::low: return {20};
    }
    return {50};
}

std::optional<Priority> Priority::parse(std::string_view text) {
    for (auto band : {PriorityBand::critical, PriorityBand::high, PriorityBand::medium, PriorityBand::low})
        if (text == resmgr::band_name(band)) return of_band(band);
    int value = -1;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value < 0 || value > 100) return std::nullopt;
    return Priority{value};
}

std::string to_string(AllocationStatus status) {
    switch (status) {
    case AllocationStatus::active: return "active";
    case AllocationStatus::reserved: return "reserved";
    case AllocationStatus::queued: return "queued";
    case AllocationStatus::paused: return "paused";
    case AllocationStatus::expired: return "expired";
    case AllocationStatus::released: return "released";
    }
    return "active";
}

std::optional<AllocationStatus> parse_status(std::string_view text) {
    for (auto s : {AllocationStatus::active, AllocationStatus::reserved, AllocationStatus::queued,
                   AllocationStatus::paused, AllocationStatus::expired, AllocationStatus::released})
        if (text == to_string(s)) return s;
    return std::nullopt;
}

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// Reads a non-negative decimal number (with optional fraction) from the front of `s`.
std::optional<double> take_number(std::string_view& s) {
    size_t i = 0;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (i == 0) return std::nullopt;
    double value = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + i, value);
    if (ec != std::errc() || end != s.data() + i || !std::isfinite(value) || value < 0) return std::nullopt;
    s.remove_prefix(i);
    return value;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

} // namespace

std::optional<std::uint64_t> parse_size(std::string_view text) {
    auto s = trim(text);
    auto number = take_number(s);
    if (!number) return std::nullopt;
    auto unit = lower(trim(s));
    static const std::array<std::pair<const char*, double>, 13> units{{
        {"", 1}, {"b", 1},
        {"k", 1024.0}, {"kb", 1024.0}, {"kib", 1024.0},
        {"m", 1048576.0}, {"mb", 1048576.0}, {"mib", 1048576.0},
        {"g", 1073741824.0}, {"gb", 1073741824.0}, {"gib", 1073741824.0},
        {"t", 1099511627776.0}, {"tib", 1099511627776.0},
    }};
    for (auto& [name, factor] : units) {
        if (unit != name) continue;
        double bytes = *number * factor;
        if (bytes >= static_cast<double>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
        return static_cast<std::uint64_t>(std::llround(bytes));
    }
    return std::nullopt;
}

constexpr double kMaxDurationMs = 100.0 * 365.25 * 86'400'000;

std::optional<Millis> parse_duration(std::string_view text) {
    auto s = trim(text);
    if (s.empty()) return std::nullopt;
    bool iso = false;
    if (s.size() > 2 && (s[0] == 'P' || s[0] == 'p') && (s[1] == 'T' || s[1] == 't')) {
        iso = true; // ISO 8601 time part: PT2H30M15S
        s.remove_prefix(2);
    }
    double total_ms = 0;
    bool any = false;
    while (!s.empty()) {
        auto number = take_number(s);
        if (!number) return std::nullopt;
        size_t i = 0;
        while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
        auto unit = lower(s.substr(0, i));
        s.remove_prefix(i);
        double factor;
        if (unit.empty() && !any && s.empty() && !iso) factor = 1000; // bare number: seconds
        else if (unit == "ms") factor = 1;
        else if (unit == "s" || unit == "sec") factor = 1000;
        else if (unit == "m" || unit == "min") factor = 60'000;
        else if (unit == "h") factor = 3'600'000;
        else if (unit == "d" && !iso) factor = 86'400'000;
        else if (unit == "w" && !iso) factor = 604'800'000;
        else return std::nullopt;
        total_ms += *number * factor;
        any = true;
    }
    // Past a century a duration added to a time point would leave the clock's range (2262).
    if (!any || total_ms > kMaxDurationMs) return std::nullopt;
    return Millis(static_cast<Millis::rep>(std::llround(total_ms)));
}

std::string format_duration(Millis d) {
    auto ms = d.count();
    if (ms == 0) return "0s";
    if (ms % 1000 != 0 && ms < 60'000) return std::to_string(ms) + "ms";
    std::string out;
    auto seconds = ms / 1000;
    for (auto [unit, size] : {std::pair{"d", 86400LL}, {"h", 3600LL}, {"m", 60LL}, {"s", 1LL}}) {
        if (seconds >= size) {
            out += std::to_string(seconds / size) + unit;
            seconds %= size;
        }
    }
    return out;
}

std::string format_size(std::uint64_t bytes) {
    // The largest unit that fits; exact when it divides, two decimals otherwise ("23.54G").
    for (auto [unit, size] : {std::pair{"T", 1ULL << 40}, {"G", 1ULL << 30}, {"M", 1ULL << 20}, {"K", 1ULL << 10}}) {
        if (bytes < size) continue;
        if (bytes % size == 0) return std::to_string(bytes / size) + unit;
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.2f%s", static_cast<double>(bytes) / static_cast<double>(size), unit);
        return buf;
    }
    return std::to_string(bytes) + "B";
}

std::string format_timestamp(TimePoint t) {
    std::time_t secs = Clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::optional<TimePoint> parse_timestamp(std::string_view text) {
    std::tm tm{};
    std::string s(trim(text));
    const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end) return std::nullopt;
    std::string_view rest(end);
    if (!rest.empty() && rest.front() == '.') { // fractional seconds are accepted and dropped
        rest.remove_prefix(1);
        while (!rest.empty() && std::isdigit(static_cast<unsigned char>(rest.front()))) rest.remove_prefix(1);
    }
    long offset = 0;
    if (rest == "Z" || rest == "z") {
    } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
        int hh = 0, mm = 0;
        auto two_digits = [](std::string_view d) { return std::isdigit(static_cast<unsigned char>(d[0])) && std::isdigit(static_cast<unsigned char>(d[1])); };
        if (!two_digits(rest.substr(1, 2)) || !two_digits(rest.substr(4, 2))) return std::nullopt;
        std::from_chars(rest.data() + 1, rest.data() + 3, hh);
        std::from_chars(rest.data() + 4, rest.data() + 6, mm);
        if (hh > 23 || mm > 59) return std::nullopt;
        offset = (hh * 3600L + mm * 60L) * (rest[0] == '+' ? 1 : -1);
    } else {
        return std::nullopt;
    }
    // Within what the clock can hold (to 2262), and a real date: strptime takes Feb 30, which
    // timegm would quietly turn into Mar 2.
    if (tm.tm_year + 1900 < 1970 || tm.tm_year + 1900 > 2200) return std::nullopt;
    const std::tm asked = tm;
    std::time_t secs = timegm(&tm);
    std::tm back{};
    if (secs == -1 || !gmtime_r(&secs, &back) || back.tm_year != asked.tm_year || back.tm_mon != asked.tm_mon ||
        back.tm_mday != asked.tm_mday || back.tm_hour != asked.tm_hour || back.tm_min != asked.tm_min || back.tm_sec != asked.tm_sec)
        return std::nullopt;
    return Clock::from_time_t(secs - offset);
}

} // namespace resmgr
