// /proc and flat-keyed cgroup file parsers.
#include "monitor/node.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace resmgr::monitor {
namespace detail {

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> out;
    while (!text.empty()) {
        auto nl = text.find('\n');
        out.push_back(text.substr(0, nl));
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return out;
}

std::vector<std::string_view> split_fields(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        if (line[i] == ' ' || line[i] == '\t') {
            ++i;
            continue;
        }
        auto end = line.find_first_of(" \t", i);
        if (end == std::string_view::npos) end = line.size();
        out.push_back(line.substr(i, end - i));
        i = end;
    }
    return out;
}

std::optional<std::uint64_t> parse_u64(std::string_view digits) {
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
    return value;
}

std::string printable(std::string_view raw, std::size_t max_bytes) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : raw.substr(0, max_bytes)) {
        if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        }
    }
    if (raw.size() > max_bytes) out += "...";
    return out;
}

void fail(const std::string& name, int line_number, const std::string& reason, std::string_view line) {
    throw ParseError(name + ":" + std::to_string(line_number) + ": " + reason + ": '" + printable(line) + "'");
}

std::optional<std::uint64_t> parse_key_value(std::string_view line, std::string_view& key) {
    const auto space = line.find(' ');
    if (space == std::string_view::npos || space == 0) return std::nullopt;
    key = line.substr(0, space);
    return parse_u64(line.substr(space + 1));
}

void fail_flat_keyed(const std::string& name, int line_number, std::string_view line) {
    throw ParseError(name + ":" + std::to_string(line_number) + ": expected 'key value', got '" + std::string(line) + "'");
}

} // namespace detail

using detail::parse_u64;
using detail::split_lines;

// Plain read(2): every sampling pass reads seven small files per group, and ifstream with a
// stringstream costs several times more CPU for them.
std::optional<std::string> read_text_at(int dir_fd, const std::string& name, std::string& why) {
    const int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        why = "cannot read " + name + ": " + std::strerror(errno);
        return std::nullopt;
    }
    std::string text;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            text.append(buf, static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            why = "cannot read " + name + ": " + std::strerror(errno);
            ::close(fd);
            return std::nullopt;
        }
        break;
    }
    ::close(fd);
    return text;
}

DirFd::~DirFd() {
    if (fd >= 0) ::close(fd);
}

std::string read_text_file(const std::string& path) {
    std::string why;
    auto text = read_text_at(AT_FDCWD, path, why);
    if (!text) throw ParseError(why);
    return std::move(*text);
}

int parse_proc_stat_cpu_count(std::string_view proc_stat) {
    int count = 0;
    for (auto line : split_lines(proc_stat)) {
        if (line.size() > 3 && line.substr(0, 3) == "cpu" && line[3] >= '0' && line[3] <= '9') ++count;
    }
    if (count == 0) throw ParseError("/proc/stat: no 'cpuN' lines found");
    return count;
}

std::uint64_t parse_meminfo_total(std::string_view meminfo) {
    for (auto line : split_lines(meminfo)) {
        if (line.substr(0, 9) != "MemTotal:") continue;
        auto rest = line.substr(9);
        while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
        auto space = rest.find(' ');
        auto value = parse_u64(rest.substr(0, space));
        if (!value || space == std::string_view::npos || rest.substr(space + 1) != "kB")
            throw ParseError("/proc/meminfo: malformed MemTotal line '" + std::string(line) + "'");
        return *value * 1024;
    }
    throw ParseError("/proc/meminfo: no MemTotal line");
}

core::NodeCapacity read_node_capacity(const std::string& proc_root) {
    core::NodeCapacity c;
    c.cpu_cores = parse_proc_stat_cpu_count(read_text_file(proc_root + "/stat"));
    c.memory_bytes = parse_meminfo_total(read_text_file(proc_root + "/meminfo"));
    return c;
}

std::map<std::string, std::uint64_t> parse_flat_keyed(std::string_view text, const std::string& name) {
    std::map<std::string, std::uint64_t> out;
    scan_flat_keyed(text, name, [&](std::string_view key, std::uint64_t value) { out.emplace(std::string(key), value); });
    return out;
}

std::map<std::string, std::uint64_t> read_flat_keyed(const std::string& path) {
    return parse_flat_keyed(read_text_file(path), path);
}

} // namespace resmgr::monitor
