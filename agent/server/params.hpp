// Request-parameter helpers shared by the Service's operation files: each throws the seed's
// INVALID_REQUEST envelope naming the field.
#pragma once

#include <initializer_list>
#include <string>

#include <nlohmann/json.hpp>

namespace resmgr::server {

std::string string_param(const nlohmann::json& params, const char* key, bool required);
bool bool_param(const nlohmann::json& params, const char* key);
void only_params(const nlohmann::json& params, std::initializer_list<const char*> known);
// "resp_1a2b…", "conf_…": the seed's id style.
std::string random_id(const char* prefix);

} // namespace resmgr::server
