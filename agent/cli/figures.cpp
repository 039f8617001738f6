// Figures for a terminal.
#include "cli/figures.hpp"

#include <cstdio>

#include "cli/json_read.hpp"

namespace resmgr::cli {

std::string format(const char* fmt, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v);
    return buf;
}

std::string cores(double v) {
    std::string s = format(v < 10 ? "%.2f" : "%.1f", v);
    while (s.find('.') != std::string::npos && (s.back() == '0' || s.back() == '.')) {
        const bool dot = s.back() == '.';
        s.pop_back();
        if (dot) break;
    }
    return s;
}

std::string bytes(double v) {
    constexpr double K = 1024, M = K * 1024, G = M * 1024, T = G * 1024;
    if (v >= T) return format("%.1fT", v / T);
    if (v >= G) return format("%.1fG", v / G);
    if (v >= M) return format("%.0fM", v / M);
    return format("%.0fK", v / K);
}

std::string microseconds(double us) {
    if (us >= 1e6) return format("%.1fs", us / 1e6);
    if (us >= 1e3) return format("%.1fms", us / 1e3);
    return format("%.0fus", us);
}

std::string unknown(Charset charset) { return charset == Charset::utf8 ? "\u2013" : "-"; }

std::string percent(const nlohmann::json& j, Charset charset) {
    auto v = number(j);
    return v ? format("%.1f%%", *v) : unknown(charset);
}

} // namespace resmgr::cli
