// agent/monitor owns reading the node and its groups from /proc and cgroup files. Every parser
// takes the file's text (so fixtures test it) and throws ParseError naming file and line on
// malformed input; callers degrade that source, they never crash.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <optional>
#include <vector>

#include "core/ledger.hpp"

namespace resmgr::monitor {

struct ParseError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Online CPUs from /proc/stat ("cpuN" lines) and MemTotal from /proc/meminfo.
int parse_proc_stat_cpu_count(std::string_view proc_stat);
std::uint64_t parse_meminfo_total(std::string_view meminfo);
core::NodeCapacity read_node_capacity(const std::string& proc_root = "/proc");

// Flat-keyed cgroup files (memory.events, cpu.stat, pids...): "key value" per line.
std::map<std::string, std::uint64_t> parse_flat_keyed(std::string_view text, const std::string& name);
// The same lines handed to on_pair(key, value) in order, with the same ParseError, and no
// allocation: the sampling pass parses two such files per group.
template <class OnPair>
void scan_flat_keyed(std::string_view text, const std::string& name, OnPair&& on_pair);
// Reads and parses one; throws ParseError (missing file, unreadable, malformed).
std::map<std::string, std::uint64_t> read_flat_keyed(const std::string& path);

std::string read_text_file(const std::string& path); // throws ParseError with strerror
// The text of `name` in the directory open at `dir_fd` (AT_FDCWD: `name` is a path), or nullopt
// with `why` ("cannot read NAME: strerror"). For a group's files at release: one path walk for
// them all, and no exception for each file a hybrid host lacks (both were most of the event
// loop's final read of a group under 16 busy clients).
std::optional<std::string> read_text_at(int dir_fd, const std::string& name, std::string& why);
// A group's directory, open for the length of one read (closed however the read ends); -1 when
// it could not be opened.
struct DirFd {
    int fd = -1;
    explicit DirFd(int opened) : fd(opened) {}
    DirFd(const DirFd&) = delete;
    DirFd& operator=(const DirFd&) = delete;
    ~DirFd();
};

namespace detail {
// Shared by the monitor parsers.
std::vector<std::string_view> split_lines(std::string_view text);
std::vector<std::string_view> split_fields(std::string_view line); // on runs of spaces and tabs
std::optional<std::uint64_t> parse_u64(std::string_view digits);
// Text fit for a log line or JSON: printable ASCII (other bytes as \xNN), cut at max_bytes.
std::string printable(std::string_view raw, std::size_t max_bytes = 80);
[[noreturn]] void fail(const std::string& name, int line_number, const std::string& reason,
                       std::string_view line);
std::optional<std::uint64_t> parse_key_value(std::string_view line, std::string_view& key);
[[noreturn]] void fail_flat_keyed(const std::string& name, int line_number, std::string_view line);

} // namespace detail

template <class OnPair>
void scan_flat_keyed(std::string_view text, const std::string& name, OnPair&& on_pair) {
    int number = 0;
    // Lines as detail::split_lines cuts them: a trailing newline ends the last, it opens none.
    while (!text.empty()) {
        const auto nl = text.find('\n');
        const auto line = text.substr(0, nl);
        ++number;
        if (!line.empty()) {
            std::string_view key;
            const auto value = detail::parse_key_value(line, key);
            if (!value) detail::fail_flat_keyed(name, number, line);
            on_pair(key, *value);
        }
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
}

} // namespace resmgr::monitor
