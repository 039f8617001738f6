#include "server/params.hpp"

#include <algorithm>
#include <cstdio>
#include <random>

#include "resmgr/protocol.hpp"

namespace resmgr::server {

using nlohmann::json;

std::string string_param(const json& params, const char* key, bool required) {
    auto it = params.find(key);
    if (it == params.end() || it->is_null()) {
        if (required) throw ApiError(ErrorCode::INVALID_REQUEST, std::string("missing required field '") + key + "'", {}, {key});
        return {};
    }
    if (!it->is_string() || it->get_ref<const std::string&>().empty())
        throw ApiError(ErrorCode::INVALID_REQUEST, std::string("'") + key + "' must be a non-empty string", "got " + it->dump(), {key});
    return it->get<std::string>();
}

bool bool_param(const json& params, const char* key) {
    auto it = params.find(key);
    if (it == params.end() || it->is_null()) return false;
    if (!it->is_boolean()) throw ApiError(ErrorCode::INVALID_REQUEST, std::string("'") + key + "' must be true or false", "got " + it->dump(), {key});
    return it->get<bool>();
}

void only_params(const json& params, std::initializer_list<const char*> known) {
    for (auto& [key, _] : params.items())
        if (std::none_of(known.begin(), known.end(), [&](const char* k) { return key == k; }))
            throw ApiError(ErrorCode::INVALID_REQUEST, "unknown parameter '" + key + "'", {}, {key});
}

std::string random_id(const char* prefix) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    char buf[40];
    std::snprintf(buf, sizeof buf, "%s_%016llx", prefix, static_cast<unsigned long long>(rng()));
    return buf;
}

} // namespace resmgr::server
