// allocate -> enforced latency with the cgroupfs backend on this host, side by side with the
// baseline a user would otherwise script (mkdir of a cgroup + rmdir). Needs root and a cgroup2
// mount. Prints p50/p99 per stage and the ratios.
//   build/bench/bench_enforce [ITERATIONS] [PATH-TO-resmgrd]
// With the resmgrd path it also measures the full client round trip over the Unix socket.
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/magic.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "cgroup2_mount.hpp"
#include "cgroup/cgroupfs_backend.hpp"
#include "resmgr/client.hpp"
#include "server/service.hpp"

#include <spdlog/spdlog.h>

using namespace resmgr;
using Us = std::chrono::duration<double, std::micro>;

namespace {

struct Stats {
    double p50, p99;
};

Stats measure(int n, const std::function<void()>& op, const std::function<void()>& undo) {
    std::vector<double> t;
    t.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
        auto start = std::chrono::steady_clock::now();
        op();
        t.push_back(Us(std::chrono::steady_clock::now() - start).count());
        undo();
    }
    std::sort(t.begin(), t.end());
    return {t[t.size() / 2], t[std::min(t.size() - 1, t.size() * 99 / 100)]};
}

void row(const char* name, Stats s, Stats base) {
    std::printf("%-52s p50 %8.1f us  p99 %8.1f us  ratio(p50) %6.2fx\n", name, s.p50, s.p99, s.p50 / base.p50);
}

} // namespace

int main(int argc, char** argv) {
    int n = argc > 1 ? std::atoi(argv[1]) : 1000;
    spdlog::set_level(spdlog::level::warn); // per-allocation info lines would be measured too
    std::string mount = cgroup2_mount();
    if (::geteuid() != 0 || mount.empty()) {
        std::printf("bench_enforce: needs root and a cgroup2 mount\n");
        return 77;
    }
    std::string root = mount + "/resmgr-bench-" + std::to_string(::getpid());
    std::string state = "/tmp/resmgr-bench-state-" + std::to_string(::getpid());
    std::printf("bench_enforce: %d iterations, groups under %s\n", n, root.c_str());

    {
        cgroup::CgroupfsBackend backend(root);
        Stats mkdir_only = measure(n, [&] { ::mkdir((root + "/baseline").c_str(), 0755); },
                                   [&] { ::rmdir((root + "/baseline").c_str()); });
        Stats create = measure(n, [&] { backend.create("alloc_bench", cgroup::Limits{}); }, [&] { backend.destroy("alloc_bench"); });

        state::StateStore store(state);
        core::Ledger ledger(core::NodeCapacity{4096, 4096 * kGiB}, core::Policy::defaults());
        server::Service service(ledger, backend, store, [] { return Clock::now(); }, nlohmann::json::object(), nlohmann::json::object());
        const Owner root_peer{0, ::getpid()};
        const std::string request =
            R"({"operation":"allocate","params":{"workflow_id":"wf-bench","priority":"high","resources":{"cpu_cores":0.5,"memory_gb":"64M","pids":64}}})";
        std::string last_id;
        Stats allocate = measure(n, [&] { last_id = service.router().handle_line(request, root_peer)["result"]["allocation_id"]; },
                                 [&] { service.router().handle_line(R"({"operation":"release","params":{"allocation_id":")" + last_id + "\"}}", root_peer); });

        std::printf("\nbaseline: mkdir of a cgroup (what a script would do)\n");
        row("mkdir <cgroup>", mkdir_only, mkdir_only);
        row("backend.create (mkdir + limit files)", create, mkdir_only);
        row("Service allocate (decide + cgroup + fsync'd state)", allocate, mkdir_only);

        if (argc > 2) {
            std::string socket = state + "/bench.sock";
            pid_t daemon = ::fork();
            if (daemon == 0) {
                ::execl(argv[2], argv[2], "--state-dir", (state + "/daemon").c_str(), "--socket", socket.c_str(), "--cgroup-root",
                        (root + "-daemon").c_str(), "--backend", "cgroupfs", "--log-level", "warn", nullptr);
                ::_exit(127);
            }
            for (int i = 0; i < 500 && ::access(socket.c_str(), F_OK) != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
            Client client(socket);
            Request alloc{"allocate", "", nlohmann::json::parse(request)["params"]};
            Stats socket_allocate = measure(n, [&] { last_id = client.call(alloc)["result"]["allocation_id"]; },
                                            [&] { client.call({"release", "", {{"allocation_id", last_id}}}); });
            row("resmgr socket round trip: allocate", socket_allocate, mkdir_only);
            ::kill(daemon, SIGTERM);
            ::waitpid(daemon, nullptr, 0);
            ::rmdir((root + "-daemon").c_str());
        }
    }
    ::rmdir(root.c_str());
    std::filesystem::remove_all(state);
    return 0;
}
