// Fitting a table to a width.
#include "cli/table.hpp"

#include <algorithm>

namespace resmgr::cli {
namespace {

constexpr std::size_t kGap = 2; // spaces between columns

std::size_t line_width(const std::vector<std::size_t>& widths, const std::vector<bool>& shown) {
    std::size_t total = 0, count = 0;
    for (std::size_t i = 0; i < widths.size(); ++i)
        if (shown[i]) total += widths[i], ++count;
    return count ? total + kGap * (count - 1) : 0;
}

// The column to drop next: the lowest `keep`, the rightmost among equals; -1 when one is left.
int next_to_drop(const std::vector<Column>& columns, const std::vector<bool>& shown) {
    if (std::count(shown.begin(), shown.end(), true) <= 1) return -1;
    int victim = -1;
    for (std::size_t i = 0; i < columns.size(); ++i)
        if (shown[i] && (victim < 0 || columns[i].keep <= columns[static_cast<std::size_t>(victim)].keep)) victim = static_cast<int>(i);
    return victim;
}

std::string trim_right(std::string s) {
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

} // namespace

std::vector<std::string> render_table(const std::vector<Column>& columns, const std::vector<std::vector<Cell>>& rows, std::size_t width,
                                      TableStyle style) {
    const std::size_t n = columns.size();
    std::vector<std::string> headers(n);
    std::vector<std::vector<std::string>> text(rows.size(), std::vector<std::string>(n));
    std::vector<std::size_t> natural(n);
    for (std::size_t c = 0; c < n; ++c) {
        headers[c] = sanitize(columns[c].header, style.charset);
        natural[c] = display_width(headers[c]);
    }
    for (std::size_t r = 0; r < rows.size(); ++r)
        for (std::size_t c = 0; c < n && c < rows[r].size(); ++c) {
            text[r][c] = sanitize(rows[r][c].text, style.charset);
            natural[c] = std::max(natural[c], display_width(text[r][c]));
        }

    std::vector<bool> shown(n, true);
    std::vector<std::size_t> widths = natural;
    for (;;) {
        widths = natural;
        std::size_t total = line_width(widths, shown);
        // The widest flexible column is cut first, a character at a time, so a long description
        // gives way before a date or a name beside it does.
        while (total > width) {
            int widest = -1;
            for (std::size_t c = 0; c < n; ++c) {
                if (!shown[c] || !columns[c].flexible || widths[c] <= std::max(columns[c].min, display_width(headers[c]))) continue;
                if (widest < 0 || widths[c] > widths[static_cast<std::size_t>(widest)]) widest = static_cast<int>(c);
            }
            if (widest < 0) break;
            --widths[static_cast<std::size_t>(widest)];
            --total;
        }
        if (total <= width) break;
        const int victim = next_to_drop(columns, shown);
        if (victim < 0) { // one column left, wider than the line: cut it
            for (std::size_t c = 0; c < n; ++c)
                if (shown[c]) widths[c] = width;
            break;
        }
        shown[static_cast<std::size_t>(victim)] = false;
    }

    auto render_line = [&](auto cell_text, auto cell_colour) {
        std::string line;
        bool first = true;
        for (std::size_t c = 0; c < n; ++c) {
            if (!shown[c]) continue;
            if (!first) line.append(kGap, ' ');
            first = false;
            const std::string cut = fit(cell_text(c), widths[c], style.charset);
            const std::string padding(widths[c] - display_width(cut), ' ');
            const std::string painted = paint(cut, cell_colour(c), style.colour);
            line += columns[c].right ? padding + painted : painted + padding;
        }
        return trim_right(std::move(line));
    };
    std::vector<std::string> lines;
    lines.push_back(render_line([&](std::size_t c) { return headers[c]; }, [](std::size_t) { return Colour::bold; }));
    for (std::size_t r = 0; r < rows.size(); ++r)
        lines.push_back(render_line([&](std::size_t c) { return text[r][c]; },
                                    [&](std::size_t c) { return c < rows[r].size() ? rows[r][c].colour : Colour::none; }));
    return lines;
}

} // namespace resmgr::cli
