#include "conflicts/open_mode.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <array>
#include <cstdio>
#include <charconv>
#include <string>

#include "monitor/proc.hpp"

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

// The mode from one /proc/<tid>/syscall text; openat2 reads its open_how from the task's memory.
OpenMode mode_from_syscall_text(pid_t tid, const char* buffer, ssize_t n) {
    if (n <= 0) return OpenMode::unknown;
    SyscallOpen call = parse_syscall_open(std::string_view(buffer, static_cast<size_t>(n)));
    if (!call.open_how_address) return call.mode;
    char path[64];
    // struct open_how starts with the u64 flags.
    std::snprintf(path, sizeof path, "/proc/%d/mem", static_cast<int>(tid));
    std::uint64_t flags = 0;
    if (read_proc(path, reinterpret_cast<char*>(&flags), sizeof flags, static_cast<off_t>(*call.open_how_address)) !=
        static_cast<ssize_t>(sizeof flags))
        return OpenMode::unknown;
    return mode_of_open_flags(flags);
}

} // namespace

ssize_t read_syscall_text(const std::function<ssize_t(char* buffer, size_t size)>& read, char* buffer, size_t size) {
    constexpr std::string_view kRunning = "running";
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(5);
    for (int attempt = 0;; ++attempt) {
        ssize_t n = read(buffer, size);
        // At least a few looks whatever the clock says: on a loaded machine one yield can take
        // longer than the whole 5 ms.
        constexpr int kMinAttempts = 8;
        if (n < static_cast<ssize_t>(kRunning.size()) || std::string_view(buffer, kRunning.size()) != kRunning ||
            (attempt >= kMinAttempts && std::chrono::steady_clock::now() >= give_up))
            return n;
        // Yield first (the opener is about to sleep); then short sleeps, so a task that stays
        // on a CPU does not make this thread spin.
        if (attempt < 16) ::sched_yield();
        else ::usleep(50);
    }
}

OpenMode read_open_mode(pid_t tid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/syscall", static_cast<int>(tid));
    char buffer[256];
    const ssize_t n = read_syscall_text([&](char* b, size_t size) { return read_proc(path, b, size); }, buffer, sizeof buffer - 1);
    return mode_from_syscall_text(tid, buffer, n);
}

ssize_t TaskProcReader::read(pid_t tid, File file, char* buffer, size_t size) {
    static constexpr const char* kNames[file_count] = {"syscall", "cgroup", "comm"};
    auto task = std::find_if(tasks_.begin(), tasks_.end(), [&](const Task& t) { return t.tid == tid; });
    if (task != tasks_.end() && task->fds[file] >= 0) {
        ssize_t n = ::pread(task->fds[file], buffer, size, 0);
        if (n > 0) return n;
        // The task is gone: this tid may be someone else's by now.
        for (int fd : task->fds)
            if (fd >= 0) ::close(fd);
        tasks_.erase(task);
        task = tasks_.end();
    }
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/%s", static_cast<int>(tid), kNames[file]);
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (task == tasks_.end()) {
        if (tasks_.size() >= capacity_) {
            for (int old : tasks_.front().fds)
                if (old >= 0) ::close(old);
            tasks_.erase(tasks_.begin());
        }
        tasks_.push_back({tid, {-1, -1, -1}, {}});
        task = tasks_.end() - 1;
    }
    task->fds[file] = fd;
    return ::pread(fd, buffer, size, 0);
}

OpenMode TaskProcReader::open_mode(pid_t tid) {
    char buffer[256];
    const ssize_t n = read_syscall_text([&](char* b, size_t size) { return read(tid, syscall_file, b, size); }, buffer, sizeof buffer - 1);
    return mode_from_syscall_text(tid, buffer, n);
}

std::string TaskProcReader::cgroup(pid_t tid, std::uint64_t migrations) {
    char buffer[4096];
    ssize_t n = read(tid, cgroup_file, buffer, sizeof buffer);
    if (n <= 0) return {};
    std::string cgroup;
    try {
        cgroup = monitor::parse_proc_cgroup_v2(std::string_view(buffer, static_cast<size_t>(n)));
    } catch (const std::exception&) {
        // no v2 line: an outsider as far as the guard can tell
    }
    auto task = std::find_if(tasks_.begin(), tasks_.end(), [&](const Task& t) { return t.tid == tid; });
    if (task != tasks_.end()) task->cgroup = CgroupSeen{cgroup, migrations};
    return cgroup;
}

const TaskProcReader::CgroupSeen* TaskProcReader::last_cgroup(pid_t tid) const {
    auto task = std::find_if(tasks_.begin(), tasks_.end(), [&](const Task& t) { return t.tid == tid; });
    return task != tasks_.end() && task->cgroup ? &*task->cgroup : nullptr;
}

std::string TaskProcReader::comm(pid_t tid) {
    char buffer[64];
    ssize_t n = read(tid, comm_file, buffer, sizeof buffer);
    if (n <= 0) return {};
    std::string comm(buffer, static_cast<size_t>(n));
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    return comm;
}

void TaskProcReader::clear() {
    for (auto& task : tasks_)
        for (int fd : task.fds)
            if (fd >= 0) ::close(fd);
    tasks_.clear();
}

Opener describe_from_proc(pid_t tid) {
    Opener opener;
    opener.pid = tid;
    const std::string dir = "/proc/" + std::to_string(tid);
    char buffer[4096];
    ssize_t n = read_proc((dir + "/comm").c_str(), buffer, sizeof buffer);
    if (n > 0) opener.comm.assign(buffer, static_cast<size_t>(n));
    if (!opener.comm.empty() && opener.comm.back() == '\n') opener.comm.pop_back();
    n = read_proc((dir + "/cgroup").c_str(), buffer, sizeof buffer);
    try {
        opener.cgroup = monitor::parse_proc_cgroup_v2(n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string());
    } catch (const std::exception&) {
        opener.cgroup.clear(); // gone, or no v2 hierarchy: an outsider as far as the guard can tell
    }
    opener.mode = read_open_mode(tid);
    return opener;
}

} // namespace resmgr::conflicts
