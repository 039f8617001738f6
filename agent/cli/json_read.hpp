// Reading resmgrd's answers defensively in the client's views (top, resmgr-run's progress): a
// field that is missing, or a parent that is not an object, reads as null, never a throw.
#pragma once

#include <cmath>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace resmgr::cli {

// j[key] when j is an object holding it, else null.
inline const nlohmann::json& at(const nlohmann::json& j, const char* key) {
    static const nlohmann::json null_value;
    if (!j.is_object()) return null_value;
    auto it = j.find(key);
    return it == j.end() ? null_value : *it;
}

// A finite number, else nullopt.
inline std::optional<double> number(const nlohmann::json& j) {
    if (!j.is_number()) return std::nullopt;
    const double v = j.get<double>();
    return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

// A count (a whole, non-negative, plausible number), else nullopt.
inline std::optional<long long> count(const nlohmann::json& j) {
    if (!j.is_number()) return std::nullopt;
    const double v = j.get<double>();
    if (!std::isfinite(v) || v < 0 || v > 1e15) return std::nullopt;
    return static_cast<long long>(v);
}

// A string, else `fallback`.
inline std::string text(const nlohmann::json& j, const std::string& fallback = "") { return j.is_string() ? j.get<std::string>() : fallback; }

} // namespace resmgr::cli
