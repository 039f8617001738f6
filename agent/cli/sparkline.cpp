// Sparklines and bars.
#include "cli/sparkline.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <string_view>

namespace resmgr::cli {
namespace {

constexpr std::array<std::string_view, 8> kBlocks{"\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588"};
constexpr std::string_view kAsciiLevels = "_.-:=+*#";
// Left-aligned eighths of a cell, 1/8 to 7/8.
constexpr std::array<std::string_view, 7> kEighths{"\u258F", "\u258E", "\u258D", "\u258C", "\u258B", "\u258A", "\u2589"};

} // namespace

std::string sparkline(std::span<const double> values, std::size_t width, Charset charset, std::optional<double> low,
                      std::optional<double> high) {
    if (values.size() > width) values = values.subspan(values.size() - width);
    double lo = INFINITY, hi = -INFINITY;
    for (double v : values)
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (low) lo = *low;
    if (high) hi = *high;
    std::string out;
    for (double v : values) {
        if (!std::isfinite(v)) {
            out += ' ';
            continue;
        }
        std::size_t level = 0;
        if (hi > lo) level = static_cast<std::size_t>(std::lround(std::clamp((v - lo) / (hi - lo), 0.0, 1.0) * 7));
        if (charset == Charset::utf8) out += kBlocks[level];
        else out += kAsciiLevels[level];
    }
    return out;
}

std::string bar(double used, double allocated, std::size_t width, Charset charset) {
    if (allocated <= 0 || width == 0 || !std::isfinite(used)) return "";
    const bool over = used > allocated;
    const double share = std::clamp(used / allocated, 0.0, 1.0);
    const auto eighths = static_cast<std::size_t>(std::lround(share * static_cast<double>(width * 8)));
    std::string out;
    std::size_t cells = 0;
    const std::string_view full = charset == Charset::utf8 ? "\u2588" : "#";
    const std::string_view empty = charset == Charset::utf8 ? "\u2591" : ".";
    for (; cells < eighths / 8; ++cells) out += (over && cells + 1 == width) ? "!" : full;
    if (cells < width && eighths % 8 != 0) {
        out += charset == Charset::utf8 ? kEighths[eighths % 8 - 1] : (eighths % 8 >= 4 ? full : empty);
        ++cells;
    }
    for (; cells < width; ++cells) out += empty;
    return out;
}

} // namespace resmgr::cli
