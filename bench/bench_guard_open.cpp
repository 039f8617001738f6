// open()+close() of a 1-byte file, side by side in one run: unwatched; watched by a minimal
// allow-all FAN_OPEN_PERM listener (the kernel's floor for a permission check) and a minimal
// deny-all one (the floor for a refused open); watched by resmgrd's FileGuard (an outsider's
// read: allowed; the holder's write: allowed; an outsider's write: refused); and an unwatched
// file while the guard holds another. The listener and the guard run in a child process, as
// resmgrd does, so the opener pays the full round trip; with 2 or more CPUs the opener runs on
// CPU 0 and the watcher on CPU 1, so that rounds do not differ by where the scheduler put them.
// Needs root.
//   build/bench/bench_guard_open [OPENS-PER-ROUND] [ROUNDS] [ONLY]   (ONLY: run just the cases whose
//   name contains it, besides the baselines; for profiling one path)
// Prints the median over rounds of each round's mean ns per open+close, and the ratios.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/fanotify.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "conflicts/file_guard.hpp"
#include "monitor/node.hpp"
#include "monitor/proc.hpp"

using namespace resmgr;

namespace {

void pin_to_cpu(int cpu) {
    if (static_cast<int>(std::thread::hardware_concurrency()) <= cpu) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    ::sched_setaffinity(0, sizeof set, &set);
}

// A child process that watches the file (minimal listener or guard) until SIGTERM.
struct Watcher {
    pid_t pid = -1;

    static Watcher start(const std::function<void(int ready_fd)>& body) {
        int ready[2];
        if (::pipe(ready) != 0) std::exit(1);
        pid_t pid = ::fork();
        if (pid == 0) {
            pin_to_cpu(1);
            ::close(ready[0]);
            body(ready[1]); // writes one byte once it watches, then serves until killed
            ::_exit(0);
        }
        ::close(ready[1]);
        char byte = 0;
        if (::read(ready[0], &byte, 1) != 1) {
            std::fprintf(stderr, "the watcher failed to start\n");
            std::exit(1);
        }
        ::close(ready[0]);
        return Watcher{pid};
    }
    void finish() {
        ::kill(pid, SIGTERM); // a dead listener's marks go with its group
        ::waitpid(pid, nullptr, 0);
    }
};

void signal_ready(int ready_fd) {
    char byte = 1;
    if (::write(ready_fd, &byte, 1) != 1) ::_exit(1);
    ::close(ready_fd);
}

// The kernel's floor: answer everything the same way (FAN_ALLOW or FAN_DENY), as fast as the
// events come.
void minimal_listener(const std::string& path, std::uint32_t response, int ready_fd) {
    int fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE);
    if (fan < 0 || fanotify_mark(fan, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, path.c_str()) != 0) {
        std::perror("fanotify");
        ::_exit(1);
    }
    signal_ready(ready_fd);
    alignas(fanotify_event_metadata) char buffer[4096];
    for (;;) {
        ssize_t n = ::read(fan, buffer, sizeof buffer);
        if (n <= 0) break;
        for (auto* e = reinterpret_cast<fanotify_event_metadata*>(buffer); FAN_EVENT_OK(e, n); e = FAN_EVENT_NEXT(e, n)) {
            if (e->fd < 0) continue;
            fanotify_response r{e->fd, response};
            if (::write(fan, &r, sizeof r) < 0) ::_exit(1);
            ::close(e->fd);
        }
    }
}

// `owner`: the cgroup that holds the file ("/resmgr-bench-owner", where nobody runs: every opener
// is an outsider; or the benchmark's own cgroup: its opens are the holder's).
void guard_holding(const std::string& path, const std::string& owner, int ready_fd) {
    conflicts::GuardPolicy policy;
    policy.strategy = conflicts::Strategy::file_locking;
    conflicts::FileGuard guard(policy, {});
    guard.hold({path, "alloc_bench", "wf-bench", 50, owner, std::nullopt});
    signal_ready(ready_fd);
    // Reports are drained as the daemon's loop would, until SIGTERM.
    pollfd report{guard.reports().fd(), POLLIN, 0};
    for (;;)
        if (::poll(&report, 1, -1) > 0) guard.reports().take();
}

double mean_ns_per_open(const std::string& path, int flags, int opens) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < opens; ++i) {
        int fd = ::open(path.c_str(), flags);
        if (fd >= 0) ::close(fd);
    }
    return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() / opens;
}

} // namespace

int main(int argc, char** argv) {
    if (::geteuid() != 0) {
        std::fprintf(stderr, "bench_guard_open needs root (fanotify permission events)\n");
        return 1;
    }
    const int opens = argc > 1 ? std::atoi(argv[1]) : 20000;
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 7;
    const std::string dir = "/var/tmp/resmgr-bench-guard-" + std::to_string(::getpid());
    std::filesystem::create_directories(dir);
    const std::string watched = dir + "/held", other = dir + "/unwatched";
    for (const auto& p : {watched, other}) std::ofstream(p) << "x";
    const std::string nobody = "/resmgr-bench-owner", self = monitor::parse_proc_cgroup_v2(monitor::read_text_file("/proc/self/cgroup"));

    struct Case {
        const char* name;
        std::function<void(int)> watcher; // null: nothing watches
        std::string path;
        int flags;
    };
    std::vector<Case> cases{
        {"unwatched file", nullptr, other, O_RDONLY},
        {"minimal allow-all FAN_OPEN_PERM listener", [&](int fd) { minimal_listener(watched, FAN_ALLOW, fd); }, watched, O_RDONLY},
        {"resmgrd guard, outside read (allowed)", [&](int fd) { guard_holding(watched, nobody, fd); }, watched, O_RDONLY},
        {"resmgrd guard, holder's write (allowed)", [&](int fd) { guard_holding(watched, self, fd); }, watched, O_WRONLY},
        {"minimal deny-all FAN_OPEN_PERM listener, write", [&](int fd) { minimal_listener(watched, FAN_DENY, fd); }, watched, O_WRONLY},
        {"resmgrd guard, outside write (refused)", [&](int fd) { guard_holding(watched, nobody, fd); }, watched, O_WRONLY},
        {"unwatched file while a minimal listener watches another", [&](int fd) { minimal_listener(watched, FAN_ALLOW, fd); }, other, O_RDONLY},
        {"unwatched file while the guard holds another", [&](int fd) { guard_holding(watched, nobody, fd); }, other, O_RDONLY},
    };
    pin_to_cpu(0);
    std::map<std::string, std::vector<double>> results;
    for (int round = 0; round < rounds; ++round) {
        for (auto& c : cases) {
            if (argc > 3 && c.watcher && std::string(c.name).find("minimal") == std::string::npos &&
                std::string(c.name).find(argv[3]) == std::string::npos)
                continue;
            Watcher w;
            if (c.watcher) w = Watcher::start(c.watcher);
            mean_ns_per_open(c.path, c.flags, opens / 10); // warm up
            results[c.name].push_back(mean_ns_per_open(c.path, c.flags, opens));
            if (c.watcher) w.finish();
        }
    }
    auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    const double base = median(results[cases[0].name]);
    const double allow_floor = median(results[cases[1].name]);
    const double deny_floor = median(results[cases[4].name]);
    std::printf("open()+close() of a 1-byte file, %d opens x %d rounds (median of round means)\n", opens, rounds);
    std::printf("%-58s %12s %15s %24s\n", "", "per open", "vs unwatched", "vs minimal listener");
    for (auto& c : cases) {
        if (results[c.name].empty()) continue;
        const double m = median(results[c.name]);
        const bool refused = std::string(c.name).find("refused") != std::string::npos || std::string(c.name).find("deny-all") != std::string::npos;
        std::printf("%-58s %9.2f us %14.2fx %14.2fx (%s)\n", c.name, m / 1000, m / base, m / (refused ? deny_floor : allow_floor),
                    refused ? "deny-all" : "allow-all");
    }
    std::filesystem::remove_all(dir);
    return 0;
}
