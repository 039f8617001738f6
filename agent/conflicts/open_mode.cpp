#include "conflicts/open_mode.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <charconv>
#include <string>

namespace resmgr::conflicts {
namespace {

// Syscall numbers and the index of the argument holding the open flags on this architecture.
struct OpenCall {
    long nr;
    int flags_arg; // -1: always a write (creat)
    bool open_how; // the argument is a pointer to struct open_how
};
#if defined(__x86_64__)
constexpr std::array<OpenCall, 5> kOpenCalls{{{2, 1, false}, {257, 2, false}, {85, -1, false}, {437, 2, true}, {304, 2, false}}};
#elif defined(__aarch64__)
constexpr std::array<OpenCall, 3> kOpenCalls{{{56, 2, false}, {437, 2, true}, {265, 2, false}}};
#else
constexpr std::array<OpenCall, 0> kOpenCalls{};
#endif

std::optional<std::uint64_t> parse_hex(std::string_view word) {
    if (word.size() > 2 && word[0] == '0' && (word[1] == 'x' || word[1] == 'X')) word.remove_prefix(2);
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), value, 16);
    if (ec != std::errc() || end != word.data() + word.size() || word.empty()) return std::nullopt;
    return value;
}

} // namespace

OpenMode mode_of_open_flags(std::uint64_t flags) {
    if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND)) != 0) return OpenMode::write;
    return OpenMode::read;
}

SyscallOpen parse_syscall_open(std::string_view text) {
    std::array<std::string_view, 7> words{};
    size_t count = 0;
    while (count < words.size()) {
        size_t start = text.find_first_not_of(" \t\n");
        if (start == std::string_view::npos) break;
        text.remove_prefix(start);
        size_t end = text.find_first_of(" \t\n");
        words[count++] = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end);
    }
    if (count == 0) return {};
    long nr = 0;
    auto [end, ec] = std::from_chars(words[0].data(), words[0].data() + words[0].size(), nr);
    if (ec != std::errc() || end != words[0].data() + words[0].size()) return {}; // "running" or garbage
    for (const auto& call : kOpenCalls) {
        if (call.nr != nr) continue;
        if (call.flags_arg < 0) return {OpenMode::write, std::nullopt};
        if (static_cast<size_t>(call.flags_arg) + 1 >= count) return {};
        auto value = parse_hex(words[call.flags_arg + 1]);
        if (!value) return {};
        if (call.open_how) return {OpenMode::unknown, *value};
        return {mode_of_open_flags(*value), std::nullopt};
    }
    return {};
}

namespace {

// One read(2) into a fixed buffer: the decision path allocates as little as it can.
ssize_t read_proc(const char* path, char* buffer, size_t size, off_t offset = -1) {
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = offset < 0 ? ::read(fd, buffer, size) : ::pread(fd, buffer, size, offset);
    ::close(fd);
    return n;
}

} // namespace

OpenMode read_open_mode(pid_t tid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/syscall", static_cast<int>(tid));
    char buffer[256];
    ssize_t n = read_proc(path, buffer, sizeof buffer - 1);
    if (n <= 0) return OpenMode::unknown;
    SyscallOpen call = parse_syscall_open(std::string_view(buffer, static_cast<size_t>(n)));
    if (!call.open_how_address) return call.mode;
    // struct open_how starts with the u64 flags.
    std::snprintf(path, sizeof path, "/proc/%d/mem", static_cast<int>(tid));
    std::uint64_t flags = 0;
    if (read_proc(path, reinterpret_cast<char*>(&flags), sizeof flags, static_cast<off_t>(*call.open_how_address)) !=
        static_cast<ssize_t>(sizeof flags))
        return OpenMode::unknown;
    return mode_of_open_flags(flags);
}

} // namespace resmgr::conflicts
