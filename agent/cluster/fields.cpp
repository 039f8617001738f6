#include "cluster/fields.hpp"

#include <stdexcept>

#include "cluster/membership.hpp"

namespace resmgr::cluster::fields {

using nlohmann::json;

const json& field(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end()) throw std::invalid_argument(std::string("no \"") + key + "\"");
    return *it;
}

double number(const json& j, const char* key) {
    const json& v = field(j, key);
    if (!v.is_number()) throw std::invalid_argument(std::string("\"") + key + "\" is not a number");
    return v.get<double>();
}

double number_in(const json& j, const char* key, double min, double max) {
    const double v = number(j, key);
    if (!(v >= min && v <= max)) throw std::invalid_argument(std::string("\"") + key + "\" is out of range");
    return v;
}

std::string string(const json& j, const char* key) {
    const json& v = field(j, key);
    if (!v.is_string()) throw std::invalid_argument(std::string("\"") + key + "\" is not a string");
    return v.get<std::string>();
}

TimePoint time(const json& j, const char* key) {
    auto t = parse_timestamp(string(j, key));
    if (!t) throw std::invalid_argument(std::string("\"") + key + "\" is not an RFC 3339 time");
    return *t;
}

Amounts amounts(const json& j, const char* key) {
    const json& v = field(j, key);
    if (!v.is_object()) throw std::invalid_argument(std::string("\"") + key + "\" is not an object");
    // Bounds no machine reaches: a record claiming more is hostile or broken, not big.
    return {number_in(v, "cpu_cores", -1e6, 1e6), number_in(v, "memory_gb", -1e9, 1e9), static_cast<int>(number_in(v, "agents", 0, 1e6))};
}

json amounts_json(const Amounts& a) { return {{"cpu_cores", a.cpu_cores}, {"memory_gb", a.memory_gb}, {"agents", a.agents}}; }

} // namespace resmgr::cluster::fields
