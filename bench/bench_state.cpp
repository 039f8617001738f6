// allocate latency against the number of live allocations (issue 12): Service allocate (decide +
// cgroup + durable state) with the cgroupfs backend, N allocations already live. Needs root and
// a cgroup2 mount. Uses only the Service and the ledger, so the same file measures the
// state store before and after the journal.
//   build/bench/bench_state [ITERATIONS] [LIVE,LIVE,...]    (default 1000 100,1000)
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "cgroup2_mount.hpp"
#include "cgroup/cgroupfs_backend.hpp"
#include "server/service.hpp"

using namespace resmgr;
using Us = std::chrono::duration<double, std::micro>;

int main(int argc, char** argv) {
    const int n = argc > 1 ? std::atoi(argv[1]) : 1000;
    std::vector<int> lives;
    {
        std::stringstream list(argc > 2 ? argv[2] : "100,1000");
        for (std::string item; std::getline(list, item, ',');) lives.push_back(std::atoi(item.c_str()));
    }
    spdlog::set_level(spdlog::level::warn);
    const std::string mount = cgroup2_mount();
    if (::geteuid() != 0 || mount.empty()) {
        std::printf("bench_state: needs root and a cgroup2 mount\n");
        return 77;
    }
    std::printf("bench_state: %d allocates per row (each followed by its release, not timed)\n", n);
    for (int live : lives) {
        const std::string root = mount + "/resmgr-bench-state-" + std::to_string(::getpid());
        const std::string state = "/var/tmp/resmgr-bench-state-" + std::to_string(::getpid());
        {
            cgroup::CgroupfsBackend backend(root);
            state::StateStore store(state);
            core::Ledger ledger(core::NodeCapacity{65536, 65536 * kGiB}, core::Policy::defaults());
            const Owner root_peer{0, ::getpid()};
            // The live ones: admitted in the ledger directly and written once (no groups: they are
            // not what allocate touches).
            AllocationRequest filler;
            filler.workflow_id = "wf-live";
            filler.resources.cpu_cores = 0.01;
            filler.resources.memory_bytes = 1 << 20;
            for (int i = 0; i < live; ++i) {
                filler.workflow_id = "wf-live-" + std::to_string(i);
                ledger.allocate(filler, root_peer, Clock::now());
            }
            std::vector<Allocation> all;
            for (auto& [_, a] : ledger.allocations()) all.push_back(a);
            store.save_allocations(all, Clock::now());
            server::Service service(ledger, backend, store, [] { return Clock::now(); }, nlohmann::json::object(), nlohmann::json::object());
            const std::string request =
                R"({"operation":"allocate","params":{"workflow_id":"wf-bench","priority":"high","resources":{"cpu_cores":0.5,"memory_gb":"64M","pids":64}}})";
            std::vector<double> t;
            for (int i = -5; i < n; ++i) { // 5 untimed: the first write of a fresh store
                auto start = std::chrono::steady_clock::now();
                nlohmann::json r = service.router().handle_line(request, root_peer);
                double us = Us(std::chrono::steady_clock::now() - start).count();
                if (r["status"] != "success") {
                    std::printf("allocate failed: %s\n", r.dump().c_str());
                    return 1;
                }
                if (i >= 0) t.push_back(us);
                service.router().handle_line(
                    R"({"operation":"release","params":{"allocation_id":")" + r["result"]["allocation_id"].get<std::string>() + "\"}}",
                    root_peer);
            }
            std::sort(t.begin(), t.end());
            double mean = 0;
            for (double x : t) mean += x;
            mean /= static_cast<double>(t.size());
            std::printf("live %6d: Service allocate p50 %9.1f us  p99 %9.1f us  mean %9.1f us\n", live, t[t.size() / 2],
                        t[std::min(t.size() - 1, t.size() * 99 / 100)], mean);
            std::fflush(stdout);
        }
        ::rmdir(root.c_str());
        std::filesystem::remove_all(state);
    }
    return 0;
}
