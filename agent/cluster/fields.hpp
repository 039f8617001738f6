// Reading the records nodes write to etcd: any process that can write to etcd can write one, so
// each field is checked for presence, kind and range; a bad one throws std::invalid_argument
// naming it. Shared by the node records (membership) and the bookings (placement).
// May call: model.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "resmgr/model.hpp"

namespace resmgr::cluster {

struct Amounts;

namespace fields {

const nlohmann::json& field(const nlohmann::json& j, const char* key);
double number(const nlohmann::json& j, const char* key);
// A number within [min, max].
double number_in(const nlohmann::json& j, const char* key, double min, double max);
std::string string(const nlohmann::json& j, const char* key);
TimePoint time(const nlohmann::json& j, const char* key);
Amounts amounts(const nlohmann::json& j, const char* key);
nlohmann::json amounts_json(const Amounts& a);

} // namespace fields
} // namespace resmgr::cluster
