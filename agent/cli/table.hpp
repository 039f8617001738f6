// Tables that fit a terminal's width: columns keep their natural width while they fit; when the
// line is too long the flexible columns (names, texts) are cut with an ellipsis, the widest first,
// down to their minimum, then whole columns are dropped, the least important first. Cells come
// from outside and are sanitized here; colour is applied after the widths are settled, so
// escapes never count.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "cli/text.hpp"

namespace resmgr::cli {

struct Cell {
    std::string text;
    Colour colour = Colour::none;
};

struct Column {
    std::string header;
    bool right = false;    // numbers align right
    bool flexible = false; // cut first when the line is too long
    std::size_t min = 4;   // a flexible column is never cut narrower (nor below its header)
    int keep = 0;          // when columns must go, the lowest `keep` goes first (the rightmost of equals)
};

struct TableStyle {
    Charset charset = Charset::utf8;
    bool colour = false;
};

// Where readable output goes: its width in columns, what it can show, whether to colour.
struct Display {
    std::size_t width = 100;
    TableStyle style{};
};

// The header line and one line per row, each at most `width` columns wide, without trailing
// spaces. A row shorter than the columns is padded with empty cells.
std::vector<std::string> render_table(const std::vector<Column>& columns, const std::vector<std::vector<Cell>>& rows, std::size_t width,
                                      TableStyle style);

} // namespace resmgr::cli
