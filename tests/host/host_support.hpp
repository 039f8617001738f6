// Helpers for host tests: run the project's binaries as child processes, and skip with a
// printed reason when this machine lacks what a test needs.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/syscall.h>

#include "resmgr/client.hpp"

namespace resmgr::host {

struct RunResult {
    int status = -1; // exit code, or 128+signal
    std::string out, err;
};

inline int decode_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

// What a terminal shows of `text`: CSI escape sequences (colour, erase, cursor) and carriage
// returns taken out.
inline std::string without_escapes(const std::string& text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\x1b' && i + 1 < text.size() && text[i + 1] == '[') {
            i += 2;
            while (i < text.size() && !(text[i] >= 0x40 && text[i] <= 0x7E)) ++i;
            continue;
        }
        if (text[i] != '\r') out += text[i];
    }
    return out;
}

inline std::string slurp(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), {}};
}

// Runs argv to completion, capturing stdout and stderr through temp files (no pipe deadlocks).
inline RunResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {}) {
    char out_tmpl[] = "/tmp/resmgr-host-out-XXXXXX", err_tmpl[] = "/tmp/resmgr-host-err-XXXXXX";
    int out_fd = ::mkstemp(out_tmpl), err_fd = ::mkstemp(err_tmpl);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out_fd, 1);
        ::dup2(err_fd, 2);
        for (auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    RunResult r{decode_status(status), slurp(out_tmpl), slurp(err_tmpl)};
    ::close(out_fd);
    ::close(err_fd);
    ::unlink(out_tmpl);
    ::unlink(err_tmpl);
    return r;
}

// Starts argv in the background with output to `log`; returns its pid.
inline pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
    pid_t pid = ::fork();
    if (pid == 0) {
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    return pid;
}

inline bool wait_until(const std::function<bool()>& ready, std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (ready()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return ready();
}

// Before a test's resmgrd stops: every allocation released through it (forced), so it removes
// its groups. Best effort: the daemon may be gone.
inline void release_all(const std::string& socket) {
    try {
        Client c(socket);
        const nlohmann::json st = c.call({"status", "", nlohmann::json::object()});
        for (auto& a : st["result"]["allocations"]) c.call({"release", "", {{"allocation_id", a["allocation_id"]}, {"force", true}}});
    } catch (const std::exception&) {
    }
}

// A test's cgroup root and its groups with their leaves, whatever a failed test left there.
inline void remove_group_tree(const std::string& root) {
    std::error_code ec;
    if (root.empty() || !std::filesystem::exists(root, ec)) return;
    for (auto& entry : std::filesystem::directory_iterator(root, ec)) {
        if (!entry.is_directory()) continue;
        for (auto& leaf : std::filesystem::directory_iterator(entry.path(), ec))
            if (leaf.is_directory()) ::rmdir(leaf.path().c_str());
        ::rmdir(entry.path().c_str());
    }
    ::rmdir(root.c_str());
}

// A resmgrd just spawned serves `socket` within `limit`.
inline bool socket_answers(const std::string& socket, std::chrono::milliseconds limit) {
    return wait_until([&] {
        try {
            Client c(socket);
            return true;
        } catch (const ClientError&) {
            return false;
        }
    }, limit);
}

// utime+stime of `pid` in clock ticks, from /proc/PID/stat (fields 14 and 15).
inline long cpu_ticks(pid_t pid) {
    std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size()) return -1;
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::stol(field);
        if (i == 15) stime = std::stol(field);
    }
    return utime + stime;
}

// Why this host cannot run cgroup2 host tests, or nullopt when it can.
inline std::optional<std::string> cgroup2_unavailable(const std::string& dir) {
    if (::geteuid() != 0) return "needs root";
    struct statfs fs{};
    if (::statfs(dir.c_str(), &fs) != 0) return dir + " does not exist";
    if (fs.f_type != CGROUP2_SUPER_MAGIC) return dir + " is not a cgroup2 mount";
    return std::nullopt;
}

// The cgroup2 hierarchy host tests may create groups in: the pure v2 root, or the hybrid one.
inline std::string cgroup2_mount() {
    struct statfs fs{};
    if (::statfs("/sys/fs/cgroup", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) return "/sys/fs/cgroup";
    return "/sys/fs/cgroup/unified";
}

// Exit codes of try_open's child.
constexpr int kOpened = 0, kDenied = 1, kOtherError = 2;

// Moves the calling (forked) process into `cgroup_dir`; async-signal-safe.
inline void join_cgroup(const std::string& cgroup_dir) {
    if (cgroup_dir.empty()) return;
    int fd = ::open((cgroup_dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, "0", 1) != 1) ::_exit(3);
    ::close(fd);
}

// A user and group id to become (the child of try_open drops to them).
struct RunAs {
    uid_t uid;
    gid_t gid;
};

// A child that joins `cgroup_dir` (empty: stays outside), becomes `as` if given, and opens `path`
// with `flags`. Exit 0 opened, 1 EPERM, 2 another error.
inline pid_t try_open(const std::string& path, int flags, const std::string& cgroup_dir = {}, bool use_openat2 = false,
                      std::optional<RunAs> as = std::nullopt) {
    pid_t pid = ::fork();
    if (pid == 0) {
        join_cgroup(cgroup_dir);
        if (as && (::setgroups(1, &as->gid) != 0 || ::setgid(as->gid) != 0 || ::setuid(as->uid) != 0)) ::_exit(3);
        int fd = -1;
        if (use_openat2) {
            open_how how{};
            how.flags = static_cast<std::uint64_t>(flags);
            fd = static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof how));
        } else {
            fd = ::open(path.c_str(), flags, 0644);
        }
        if (fd >= 0) ::_exit(kOpened);
        ::_exit(errno == EPERM ? kDenied : kOtherError);
    }
    return pid;
}

// The child's exit code, or -1 if it has not exited within `limit` (then it is killed).
inline int exit_within(pid_t pid, std::chrono::milliseconds limit) {
    int status = 0;
    bool done = wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, limit);
    if (!done) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        return -1;
    }
    return decode_status(status);
}

// A crowd of `count` children, each opening files[i % files.size()] in a loop for `run_for`
// (every third one for reading, the rest for writing), `pause` between opens. Each exits kOpened
// if every open succeeded or failed with EPERM, kOtherError at the first other failure.
inline std::vector<pid_t> spawn_openers(const std::vector<std::string>& files, int count, std::chrono::milliseconds run_for,
                                        std::chrono::microseconds pause) {
    std::vector<pid_t> openers;
    for (int i = 0; i < count; ++i) {
        pid_t pid = ::fork();
        if (pid == 0) {
            auto until = std::chrono::steady_clock::now() + run_for;
            const std::string& target = files[static_cast<size_t>(i) % files.size()];
            const int flags = i % 3 == 0 ? O_RDONLY : O_WRONLY;
            while (std::chrono::steady_clock::now() < until) {
                int fd = ::open(target.c_str(), flags);
                if (fd >= 0) ::close(fd);
                else if (errno != EPERM) ::_exit(kOtherError);
                if (pause.count() > 0) ::usleep(static_cast<useconds_t>(pause.count()));
            }
            ::_exit(kOpened);
        }
        openers.push_back(pid);
    }
    return openers;
}

// How a crowd of opener children ended: not answered within `limit` (killed), or exited with
// anything but kOpened.
struct OpenerOutcome {
    int stuck = 0;
    int failed = 0;
};
inline OpenerOutcome wait_openers(const std::vector<pid_t>& openers, std::chrono::milliseconds limit) {
    OpenerOutcome outcome;
    for (pid_t pid : openers) {
        int code = exit_within(pid, limit);
        outcome.stuck += code == -1;
        outcome.failed += code != kOpened && code != -1;
    }
    return outcome;
}

inline bool still_running(pid_t pid) { return ::waitpid(pid, nullptr, WNOHANG) == 0; }

// What the process's fds point at, one per line.
inline std::string open_fds(pid_t pid) {
    std::vector<std::string> targets;
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec))
        targets.push_back(std::filesystem::read_symlink(e.path(), ec).string());
    std::sort(targets.begin(), targets.end());
    std::string out;
    for (auto& t : targets) out += t + "\n";
    return out;
}

// The daemon's fds once they stop changing: a client that just exited may still have its
// connection open in the daemon until the loop sees the hangup.
inline std::string settled_fds(pid_t pid) {
    std::string fds = open_fds(pid);
    wait_until(
        [&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            std::string now = open_fds(pid);
            return std::exchange(fds, now) == now;
        },
        std::chrono::seconds(3));
    return fds;
}

} // namespace resmgr::host
