// Text for a terminal: what arrives from outside (workflow ids, paths, messages) made safe to
// print, measured in columns, cut to a width with an ellipsis; and whether to use colour and
// UTF-8 at all. Pure: the locale and the environment are read by the callers and passed in.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace resmgr::cli {

// What the terminal can show: UTF-8, or plain ASCII (a locale that is not UTF-8).
enum class Charset { utf8, ascii };

// From nl_langinfo(CODESET) after setlocale(LC_CTYPE, ""): "UTF-8" (any case, "utf8" too) or not.
Charset charset_for_codeset(std::string_view codeset);
// The charset of this process's locale (calls setlocale(LC_CTYPE, "") once).
Charset locale_charset();

// Colour when stdout is a terminal, NO_COLOR is unset or empty (no-color.org), and TERM is set
// and not "dumb". `no_color` / `term` are the variables' values, nullptr when unset.
bool colour_wanted(bool is_tty, const char* no_color, const char* term);

// Text safe to print on a terminal: each byte sequence that is not valid UTF-8 (overlong,
// surrogates, above U+10FFFF, cut short) becomes U+FFFD, each control character (C0, DEL, C1:
// escape sequences, newlines, tabs) becomes U+FFFD too; in ASCII every non-ASCII character
// becomes '?'. The result has a display width equal to its column count.
std::string sanitize(std::string_view text, Charset charset);

// Columns `text` (already sanitized) takes: 0 for combining marks and zero-width characters,
// 2 for East Asian wide and fullwidth characters and emoji, 1 otherwise.
std::size_t display_width(std::string_view text);

// `text` (sanitized) cut to at most `width` columns; when cut, it ends in "…" (ASCII: "...",
// or as many dots as fit).
std::string fit(std::string_view text, std::size_t width, Charset charset);

// `text` (sanitized) cut with fit() and padded with spaces to exactly `width` columns.
std::string pad_right(std::string_view text, std::size_t width, Charset charset);
std::string pad_left(std::string_view text, std::size_t width, Charset charset);

// SGR colours used in tables.
enum class Colour { none, red, yellow, green, dim, bold };
// `text` wrapped in the colour's escape sequence and a reset, or unchanged when `on` is false
// or the colour is none.
std::string paint(std::string_view text, Colour colour, bool on);

} // namespace resmgr::cli
