// Charts of a series and its forecast: history, the forecast (or fitted trend, or projection)
// and its interval band, as lines of text for a terminal (block/ASCII plot fitted to a width)
// and as a standalone SVG document (axes with time and value labels, legend). Pure: the points
// come in as a struct, text comes out (write_svg_file aside). Titles and labels come from outside (metric names) and
// are sanitized for the terminal and XML-escaped for the SVG.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/table.hpp"

namespace resmgr::cli {

struct ChartPoint {
    std::int64_t t = 0;  // seconds since the epoch (UTC)
    double value = NAN;  // NaN: no value here
    double lower = NAN;  // the interval; NaN: none at this point
    double upper = NAN;
};

struct Chart {
    std::string title;                       // e.g. "imported/ec2_cpu: forecast next 24h"
    std::vector<ChartPoint> history;         // what was measured (lower/upper unused)
    std::vector<ChartPoint> forecast;        // what is expected, with its interval where it has one
    std::string forecast_label = "forecast"; // "forecast", "Theil-Sen trend", "projected daily peak"
    double level = NAN;                      // the interval's level (0.95); NaN: the band is unlabelled
};

constexpr std::size_t kChartHeight = 10; // rows of the plot on a terminal

// The chart in lines of at most `width` columns: value labels on the left, the plot (history
// "•"/"*", forecast "×"/"x", band "░"/":"), the time axis with the first and last time, and a
// legend. Colour (forecast yellow, band dim) only when style.colour. No lines when there is no
// finite value to draw or the width leaves no room for a plot (below kChartMinWidth).
constexpr std::size_t kChartMinWidth = 16;
std::vector<std::string> render_chart(const Chart& chart, std::size_t width, TableStyle style, std::size_t height = kChartHeight);

// A standalone SVG 1.1 document, the charts one under another (800 x 360 each): history as a
// dark line, the forecast as a red line, the interval as a shaded band, value and time (UTC)
// axes with labels, a legend and the title. With nothing to draw, the axes frame a note that
// says so.
std::string render_svg(const std::vector<Chart>& charts);

// render_svg(charts) written to `path` (replaced): the reason ("cannot write F: ...") when it
// cannot be, else nullopt. The one function here that touches the file system.
std::optional<std::string> write_svg_file(const std::string& path, const std::vector<Chart>& charts);

// `text` safe inside XML character data and attribute values: invalid UTF-8 and control
// characters become U+FFFD (XML 1.0 forbids most of them), & < > " ' become entities.
std::string xml_escape(std::string_view text);

} // namespace resmgr::cli
