// Small pictures in one line of text: a sparkline of a series (▁▂▃▄▅▆▇█, or "_.-:=+*#" where the
// locale is not UTF-8) and a bar of used against allocated.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>

#include "cli/text.hpp"

namespace resmgr::cli {

// The last `width` values of `values`, one character each, scaled from `low` to `high` (by
// default the smallest and largest finite value shown); a NaN (no sample) is a space. A flat
// series sits on the lowest level.
std::string sparkline(std::span<const double> values, std::size_t width, Charset charset, std::optional<double> low = std::nullopt,
                      std::optional<double> high = std::nullopt);

// `width` cells filled in proportion to used / allocated (UTF-8: in eighths of a cell); over
// the allocation every cell is full and the last one is "!". Empty when allocated <= 0 (nothing
// to compare with) or width is 0.
std::string bar(double used, double allocated, std::size_t width, Charset charset);

} // namespace resmgr::cli
