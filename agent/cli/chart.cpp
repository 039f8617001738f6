// Terminal and SVG charts of history, forecast and interval.
#include "cli/chart.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <cstdio>
#include <ctime>
#include <limits>

#include "cli/figures.hpp"

namespace resmgr::cli {
namespace {

struct Range {
    double lo = INFINITY, hi = -INFINITY;
    std::int64_t t0 = std::numeric_limits<std::int64_t>::max(), t1 = std::numeric_limits<std::int64_t>::min();
    bool empty() const { return !(hi >= lo); }
    void add(double v) {
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    }
};

// The extent of every finite value, bound and time; a flat series gets room above and below.
Range range_of(const Chart& c) {
    Range r;
    for (const auto* points : {&c.history, &c.forecast})
        for (const auto& p : *points) {
            const bool any = std::isfinite(p.value) || std::isfinite(p.lower) || std::isfinite(p.upper);
            r.add(p.value), r.add(p.lower), r.add(p.upper);
            if (any) r.t0 = std::min(r.t0, p.t), r.t1 = std::max(r.t1, p.t);
        }
    if (!r.empty() && r.hi - r.lo < 1e-9 * std::max(1.0, std::abs(r.hi))) {
        const double pad = std::max(1.0, std::abs(r.hi) * 0.1);
        r.lo -= pad, r.hi += pad;
    }
    return r;
}

bool has_band(const Chart& c) {
    return std::any_of(c.forecast.begin(), c.forecast.end(), [](const ChartPoint& p) { return std::isfinite(p.lower) && std::isfinite(p.upper); });
}

std::string utc(std::int64_t t, const char* fmt) {
    const std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[40];
    return std::strftime(buf, sizeof buf, fmt, &tm) ? buf : "?";
}

std::string band_name(const Chart& c) {
    return std::isfinite(c.level) ? format("%.0f", c.level * 100) + " % interval" : std::string("interval");
}

// ---- terminal ----

enum class Mark { none, band, history, forecast };

struct Bucket {
    double history = 0, forecast = 0, lower = INFINITY, upper = -INFINITY;
    int history_n = 0, forecast_n = 0;
};

} // namespace

std::vector<std::string> render_chart(const Chart& chart, std::size_t width, TableStyle style, std::size_t height) {
    const Range r = range_of(chart);
    if (r.empty() || width < kChartMinWidth || height < 2) return {};
    const Charset cs = style.charset;
    const std::string top = format("%.4g", r.hi), bottom = format("%.4g", r.lo), middle = format("%.4g", (r.hi + r.lo) / 2);
    const std::size_t label = std::max({top.size(), bottom.size(), middle.size()});
    const std::size_t plot = width - label - 2;
    // Each point falls in a column by its time: a column holds the mean of its values and the
    // widest of its intervals.
    std::vector<Bucket> columns(plot);
    const double span = static_cast<double>(r.t1 - r.t0);
    auto column_of = [&](std::int64_t t) {
        if (span <= 0) return std::size_t{0};
        return static_cast<std::size_t>(std::lround(static_cast<double>(t - r.t0) / span * static_cast<double>(plot - 1)));
    };
    for (const auto& p : chart.history)
        if (std::isfinite(p.value)) columns[column_of(p.t)].history += p.value, ++columns[column_of(p.t)].history_n;
    for (const auto& p : chart.forecast) {
        Bucket& c = columns[column_of(p.t)];
        if (std::isfinite(p.value)) c.forecast += p.value, ++c.forecast_n;
        if (std::isfinite(p.lower) && std::isfinite(p.upper)) c.lower = std::min(c.lower, p.lower), c.upper = std::max(c.upper, p.upper);
    }
    auto row_of = [&](double v) {
        return static_cast<std::size_t>(std::lround(std::clamp((r.hi - v) / (r.hi - r.lo), 0.0, 1.0) * static_cast<double>(height - 1)));
    };
    std::vector<std::vector<Mark>> grid(height, std::vector<Mark>(plot, Mark::none));
    for (std::size_t x = 0; x < plot; ++x) {
        const Bucket& c = columns[x];
        if (c.lower <= c.upper)
            for (std::size_t y = row_of(c.upper); y <= row_of(c.lower); ++y) grid[y][x] = Mark::band;
        if (c.forecast_n) grid[row_of(c.forecast / c.forecast_n)][x] = Mark::forecast;
        if (c.history_n) grid[row_of(c.history / c.history_n)][x] = Mark::history;
    }
    const bool utf8 = cs == Charset::utf8;
    std::vector<std::string> lines;
    for (std::size_t y = 0; y < height; ++y) {
        const bool labelled = y == 0 || y + 1 == height || (height >= 5 && y == (height - 1) / 2);
        const std::string& text = y == 0 ? top : y + 1 == height ? bottom : middle;
        std::string line = pad_left(labelled ? text : "", label, cs) + (labelled ? (utf8 ? " \u2524" : " +") : (utf8 ? " \u2502" : " |"));
        for (Mark m : grid[y]) {
            switch (m) {
            case Mark::none: line += ' '; break;
            case Mark::band: line += paint(utf8 ? "\u2591" : ":", Colour::dim, style.colour); break;
            case Mark::history: line += utf8 ? "\u2022" : "*"; break;
            case Mark::forecast: line += paint(utf8 ? "\u00d7" : "x", Colour::yellow, style.colour); break;
            }
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        lines.push_back(std::move(line));
    }
    std::string axis = std::string(label + 1, ' ') + (utf8 ? "\u2514" : "+");
    for (std::size_t x = 0; x < plot; ++x) axis += utf8 ? "\u2500" : "-";
    lines.push_back(axis);
    // The first and last time under the plot, as long as both fit.
    for (const char* fmt : {"%Y-%m-%d %H:%M", "%m-%d %H:%M", "%H:%M"}) {
        const std::string from = utc(r.t0, fmt), to = utc(r.t1, fmt);
        if (from.size() + to.size() + 1 > plot) continue;
        lines.push_back(std::string(label + 2, ' ') + from + std::string(plot - from.size() - to.size(), ' ') + to);
        break;
    }
    // The legend, cut to the width as plain text; coloured only when it fits whole.
    struct Entry {
        const char* mark;
        Colour colour;
        std::string label;
    };
    std::vector<Entry> entries;
    if (!chart.history.empty()) entries.push_back({utf8 ? "\u2022" : "*", Colour::none, "history"});
    if (!chart.forecast.empty()) entries.push_back({utf8 ? "\u00d7" : "x", Colour::yellow, sanitize(chart.forecast_label, cs)});
    if (has_band(chart)) entries.push_back({utf8 ? "\u2591" : ":", Colour::dim, band_name(chart)});
    std::string plain = std::string(label + 2, ' '), painted = plain;
    for (const auto& e : entries) {
        plain += std::string(e.mark) + " " + e.label + "  ";
        painted += paint(e.mark, e.colour, style.colour) + " " + e.label + "  ";
    }
    plain += "(times UTC)";
    painted += "(times UTC)";
    lines.push_back(display_width(plain) <= width ? painted : fit(plain, width, cs));
    return lines;
}

namespace {

// ---- SVG ----

constexpr double kWidth = 800, kHeight = 360, kLeft = 70, kRight = 20, kTop = 40, kBottom = 80;
constexpr std::size_t kTicks = 5;

std::string coord(double v) { return format("%.1f", v); }

struct Frame {
    Range r;
    double x(std::int64_t t) const {
        const double span = static_cast<double>(r.t1 - r.t0);
        return kLeft + (span > 0 ? static_cast<double>(t - r.t0) / span : 0.5) * (kWidth - kLeft - kRight);
    }
    double y(double v) const { return kTop + (r.hi - v) / (r.hi - r.lo) * (kHeight - kTop - kBottom); }
};

// The runs of consecutive points where `value_of` is finite, as SVG "x,y" lists.
template <typename F>
std::vector<std::string> runs(const std::vector<ChartPoint>& points, const Frame& f, F value_of) {
    std::vector<std::string> out;
    std::string run;
    for (const auto& p : points) {
        const double v = value_of(p);
        if (!std::isfinite(v)) {
            if (!run.empty()) out.push_back(std::move(run)), run.clear();
            continue;
        }
        run += (run.empty() ? "" : " ") + coord(f.x(p.t)) + "," + coord(f.y(v));
    }
    if (!run.empty()) out.push_back(std::move(run));
    return out;
}

void line_of(std::string& svg, const std::vector<ChartPoint>& points, const Frame& f, const char* colour) {
    for (const auto& run : runs(points, f, [](const ChartPoint& p) { return p.value; })) {
        if (run.find(' ') == std::string::npos) { // a lone point: a dot
            const auto comma = run.find(',');
            svg += "<circle cx=\"" + run.substr(0, comma) + "\" cy=\"" + run.substr(comma + 1) + "\" r=\"2\" fill=\"" + colour + "\"/>\n";
            continue;
        }
        svg += std::string("<polyline fill=\"none\" stroke=\"") + colour + "\" stroke-width=\"1.5\" points=\"" + run + "\"/>\n";
    }
}

void band_of(std::string& svg, const std::vector<ChartPoint>& points, const Frame& f) {
    std::vector<ChartPoint> run;
    auto flush = [&] {
        if (run.empty()) return;
        std::string pts;
        for (const auto& p : run) pts += coord(f.x(p.t)) + "," + coord(f.y(p.upper)) + " ";
        for (auto it = run.rbegin(); it != run.rend(); ++it) pts += coord(f.x(it->t)) + "," + coord(f.y(it->lower)) + " ";
        pts.pop_back();
        svg += "<polygon fill=\"#4a90d9\" fill-opacity=\"0.25\" stroke=\"none\" points=\"" + pts + "\"/>\n";
        run.clear();
    };
    for (const auto& p : points) {
        if (std::isfinite(p.lower) && std::isfinite(p.upper)) run.push_back(p);
        else flush();
    }
    flush();
}

std::string text_at(double x, double y, const std::string& anchor, const std::string& text, const char* extra = "") {
    return "<text x=\"" + coord(x) + "\" y=\"" + coord(y) + "\" text-anchor=\"" + anchor + "\"" + extra + ">" + xml_escape(text) + "</text>\n";
}

// One chart's panel, kHeight tall, `offset` down the document.
void svg_panel(std::string& svg, const Chart& chart, double offset) {
    const double right = kWidth - kRight, bottom = kHeight - kBottom;
    svg += "<g transform=\"translate(0," + coord(offset) + ")\">\n";
    svg += text_at(kWidth / 2, 20, "middle", chart.title, " font-size=\"14\" font-weight=\"bold\"");
    svg += "<g stroke=\"#444\" stroke-width=\"1\">\n<line x1=\"" + coord(kLeft) + "\" y1=\"" + coord(bottom) + "\" x2=\"" + coord(right) + "\" y2=\"" +
           coord(bottom) + "\"/>\n<line x1=\"" + coord(kLeft) + "\" y1=\"" + coord(kTop) + "\" x2=\"" + coord(kLeft) + "\" y2=\"" + coord(bottom) +
           "\"/>\n</g>\n";
    const Range r = range_of(chart);
    if (r.empty()) {
        svg += text_at((kLeft + right) / 2, (kTop + bottom) / 2, "middle", "no values to draw");
        svg += "</g>\n";
        return;
    }
    const Frame f{r};
    // Value ticks with grid lines, time ticks with labels (UTC).
    const bool long_span = r.t1 - r.t0 > 3 * 86400;
    for (std::size_t i = 0; i < kTicks; ++i) {
        const double share = static_cast<double>(i) / (kTicks - 1);
        const double v = r.lo + share * (r.hi - r.lo), y = f.y(v);
        svg += "<line x1=\"" + coord(kLeft) + "\" y1=\"" + coord(y) + "\" x2=\"" + coord(right) + "\" y2=\"" + coord(y) +
               "\" stroke=\"#ddd\" stroke-width=\"1\"/>\n";
        svg += text_at(kLeft - 6, y + 4, "end", format("%.4g", v));
        const auto t = r.t0 + static_cast<std::int64_t>(std::llround(share * static_cast<double>(r.t1 - r.t0)));
        const double x = f.x(t);
        svg += "<line x1=\"" + coord(x) + "\" y1=\"" + coord(bottom) + "\" x2=\"" + coord(x) + "\" y2=\"" + coord(bottom + 5) +
               "\" stroke=\"#444\" stroke-width=\"1\"/>\n";
        // The last label ends at the axis' end: centred there, a browser cut it at the edge.
        svg += text_at(x, bottom + 18, i + 1 == kTicks ? "end" : "middle", utc(t, long_span ? "%Y-%m-%d" : "%m-%d %H:%M"));
        if (r.t1 == r.t0) break; // one time: one tick
    }
    svg += text_at((kLeft + right) / 2, bottom + 34, "middle", "time (UTC)");
    band_of(svg, chart.forecast, f);
    line_of(svg, chart.history, f, "#333333");
    line_of(svg, chart.forecast, f, "#d62728");
    // The legend: one entry per part drawn.
    double x = kLeft;
    const double y = kHeight - 22;
    auto entry = [&](const std::string& swatch, const std::string& label) {
        svg += swatch + text_at(x + 24, y + 4, "start", label);
        x += 40 + 7 * static_cast<double>(display_width(sanitize(label, Charset::utf8)));
    };
    auto stroke = [&](const char* colour) {
        return "<line x1=\"" + coord(x) + "\" y1=\"" + coord(y) + "\" x2=\"" + coord(x + 18) + "\" y2=\"" + coord(y) + "\" stroke=\"" + colour +
               "\" stroke-width=\"2\"/>\n";
    };
    if (!chart.history.empty()) entry(stroke("#333333"), "history");
    if (!chart.forecast.empty()) entry(stroke("#d62728"), chart.forecast_label);
    if (has_band(chart))
        entry("<rect x=\"" + coord(x) + "\" y=\"" + coord(y - 6) + "\" width=\"18\" height=\"12\" fill=\"#4a90d9\" fill-opacity=\"0.25\"/>\n",
              band_name(chart));
    svg += "</g>\n";
}

} // namespace

std::string render_svg(const std::vector<Chart>& charts) {
    const double height = kHeight * static_cast<double>(std::max<std::size_t>(1, charts.size()));
    std::string svg = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                      "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" + coord(kWidth) + "\" height=\"" + coord(height) +
                      "\" viewBox=\"0 0 " + coord(kWidth) + " " + coord(height) + "\" font-family=\"sans-serif\" font-size=\"11\">\n";
    std::string title;
    for (const auto& c : charts) title += (title.empty() ? "" : "; ") + c.title;
    svg += "<title>" + xml_escape(title.empty() ? "no chart" : title) + "</title>\n";
    svg += "<rect x=\"0\" y=\"0\" width=\"" + coord(kWidth) + "\" height=\"" + coord(height) + "\" fill=\"white\"/>\n";
    if (charts.empty()) svg_panel(svg, Chart{}, 0);
    for (std::size_t i = 0; i < charts.size(); ++i) svg_panel(svg, charts[i], kHeight * static_cast<double>(i));
    return svg + "</svg>\n";
}

std::optional<std::string> write_svg_file(const std::string& path, const std::vector<Chart>& charts) {
    std::ofstream out(path, std::ios::trunc);
    out << render_svg(charts);
    out.close();
    if (!out) return "cannot write the SVG to " + path + ": " + std::strerror(errno);
    return std::nullopt;
}

std::string xml_escape(std::string_view text) {
    const std::string clean = sanitize(text, Charset::utf8);
    std::string out;
    out.reserve(clean.size());
    for (char c : clean) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        default: out += c;
        }
    }
    return out;
}

} // namespace resmgr::cli
