// Reading resmgrd's answers defensively in the client's views (top, resmgr-run's progress): a
// field that is missing, or a parent that is not an object, reads as null, never a throw.
#pragma once

#include <nlohmann/json.hpp>

namespace resmgr::cli {

// j[key] when j is an object holding it, else null.
inline const nlohmann::json& at(const nlohmann::json& j, const char* key) {
    static const nlohmann::json null_value;
    if (!j.is_object()) return null_value;
    auto it = j.find(key);
    return it == j.end() ? null_value : *it;
}

} // namespace resmgr::cli
