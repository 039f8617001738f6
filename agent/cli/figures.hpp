// Figures as a person reads them on a terminal (cores, bytes in free -h's units, times,
// percentages), shared by resmgr top and the readable output of every operation.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/text.hpp"

namespace resmgr::cli {

std::string format(const char* fmt, double v); // snprintf of one double
std::string cores(double v);                   // 0.413 -> "0.41", 12 -> "12", 1.5 -> "1.5"
std::string bytes(double v);                   // 512K, 256M, 1.5G
std::string microseconds(double us);           // 850us, 1.2ms, 3.4s
// "–" (ASCII "-"): resmgrd does not report it.
std::string unknown(Charset charset);
// "37.5%" of a JSON number, else unknown().
std::string percent(const nlohmann::json& j, Charset charset);

} // namespace resmgr::cli
