// Terminal text: UTF-8 checking, column widths, cutting and colour.
#include "cli/text.hpp"

#include <langinfo.h>

#include <algorithm>
#include <array>
#include <clocale>
#include <cstdint>
#include <utility>

namespace resmgr::cli {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD"; // U+FFFD

// One decoded character: its code point and how many bytes it took, or length 0 when the bytes
// at the start are not valid UTF-8 (then one byte is skipped).
struct Decoded {
    char32_t code = 0;
    std::size_t length = 0;
};

Decoded decode(std::string_view s) {
    const auto b0 = static_cast<unsigned char>(s[0]);
    if (b0 < 0x80) return {b0, 1};
    std::size_t n;
    char32_t code, min;
    if ((b0 & 0xE0) == 0xC0) n = 2, code = b0 & 0x1F, min = 0x80;
    else if ((b0 & 0xF0) == 0xE0) n = 3, code = b0 & 0x0F, min = 0x800;
    else if ((b0 & 0xF8) == 0xF0) n = 4, code = b0 & 0x07, min = 0x10000;
    else return {};
    if (s.size() < n) return {};
    for (std::size_t i = 1; i < n; ++i) {
        const auto b = static_cast<unsigned char>(s[i]);
        if ((b & 0xC0) != 0x80) return {};
        code = (code << 6) | (b & 0x3F);
    }
    if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return {};
    return {code, n};
}

bool is_control(char32_t c) { return c < 0x20 || (c >= 0x7F && c < 0xA0); }

// Unicode ranges (from the Unicode 15 data, general category Mn/Me/Cf and East Asian Width W/F),
// reduced to the blocks a workflow id or path is likely to hold.
constexpr std::array<std::pair<char32_t, char32_t>, 14> kZeroWidth{{
    {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x0610, 0x061A}, {0x064B, 0x065F}, {0x0E31, 0x0E3A},
    {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF}, {0x200B, 0x200F}, {0x202A, 0x202E}, {0x2060, 0x2064}, {0x20D0, 0x20FF},
    {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F},
}};
constexpr std::array<std::pair<char32_t, char32_t>, 17> kWide{{
    {0x1100, 0x115F}, {0x231A, 0x231B}, {0x2E80, 0x303E}, {0x3041, 0x33FF}, {0x3400, 0x4DBF}, {0x4E00, 0x9FFF},
    {0xA000, 0xA4CF}, {0xAC00, 0xD7A3}, {0xF900, 0xFAFF}, {0xFE30, 0xFE4F}, {0xFF00, 0xFF60}, {0xFFE0, 0xFFE6},
    {0x1F300, 0x1F64F}, {0x1F680, 0x1F6FF}, {0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
}};

template <std::size_t N>
bool in(const std::array<std::pair<char32_t, char32_t>, N>& ranges, char32_t c) {
    return std::any_of(ranges.begin(), ranges.end(), [c](const auto& r) { return c >= r.first && c <= r.second; });
}

std::size_t char_width(char32_t c) {
    if (in(kZeroWidth, c)) return 0;
    return in(kWide, c) ? 2 : 1;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               auto lower = [](char ch) { return ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a') : ch; };
               return lower(x) == lower(y);
           });
}

} // namespace

Charset charset_for_codeset(std::string_view codeset) {
    return equals_ignoring_case(codeset, "UTF-8") || equals_ignoring_case(codeset, "utf8") ? Charset::utf8 : Charset::ascii;
}

Charset locale_charset() {
    static const Charset charset = [] {
        std::setlocale(LC_CTYPE, "");
        return charset_for_codeset(nl_langinfo(CODESET));
    }();
    return charset;
}

bool colour_wanted(bool is_tty, const char* no_color, const char* term) {
    if (!is_tty) return false;
    if (no_color && *no_color) return false;
    return term && *term && std::string_view(term) != "dumb";
}

std::string sanitize(std::string_view text, Charset charset) {
    std::string out;
    out.reserve(text.size());
    const std::string_view bad = charset == Charset::utf8 ? kReplacement : "?";
    while (!text.empty()) {
        const Decoded d = decode(text);
        if (d.length == 0 || is_control(d.code)) {
            out += bad;
            text.remove_prefix(d.length == 0 ? 1 : d.length);
            continue;
        }
        if (charset == Charset::ascii && d.code >= 0x80) out += '?';
        else out += text.substr(0, d.length);
        text.remove_prefix(d.length);
    }
    return out;
}

std::size_t display_width(std::string_view text) {
    std::size_t width = 0;
    while (!text.empty()) {
        const Decoded d = decode(text);
        width += d.length == 0 ? 1 : char_width(d.code);
        text.remove_prefix(d.length == 0 ? 1 : d.length);
    }
    return width;
}

std::string fit(std::string_view text, std::size_t width, Charset charset) {
    if (display_width(text) <= width) return std::string(text);
    const std::string_view ellipsis = charset == Charset::utf8 ? "\xE2\x80\xA6" : "...";
    const std::size_t ellipsis_width = charset == Charset::utf8 ? 1 : std::min<std::size_t>(3, width);
    if (charset == Charset::ascii && width <= 3) return std::string(width, '.');
    if (width == 0) return "";
    std::string out;
    std::size_t used = 0;
    while (!text.empty()) {
        const Decoded d = decode(text);
        const std::size_t length = d.length == 0 ? 1 : d.length;
        const std::size_t w = d.length == 0 ? 1 : char_width(d.code);
        if (used + w + ellipsis_width > width) break;
        out += text.substr(0, length);
        used += w;
        text.remove_prefix(length);
    }
    // Combining marks that belong to the last character kept stay with it.
    while (!text.empty()) {
        const Decoded d = decode(text);
        if (d.length == 0 || char_width(d.code) != 0) break;
        out += text.substr(0, d.length);
        text.remove_prefix(d.length);
    }
    return out + std::string(ellipsis);
}

std::string pad_right(std::string_view text, std::size_t width, Charset charset) {
    std::string out = fit(text, width, charset);
    out.append(width - display_width(out), ' ');
    return out;
}

std::string pad_left(std::string_view text, std::size_t width, Charset charset) {
    std::string cut = fit(text, width, charset);
    return std::string(width - display_width(cut), ' ') + cut;
}

std::string paint(std::string_view text, Colour colour, bool on) {
    // Nothing to colour: no escapes either (an empty header would be a bare bold-and-reset).
    if (!on || colour == Colour::none || text.empty()) return std::string(text);
    const char* sgr = "";
    switch (colour) {
    case Colour::red: sgr = "\x1b[31m"; break;
    case Colour::yellow: sgr = "\x1b[33m"; break;
    case Colour::green: sgr = "\x1b[32m"; break;
    case Colour::dim: sgr = "\x1b[2m"; break;
    case Colour::bold: sgr = "\x1b[1m"; break;
    case Colour::none: break;
    }
    return sgr + std::string(text) + "\x1b[0m";
}

} // namespace resmgr::cli
