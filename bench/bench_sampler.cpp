// One sampling pass (monitor::Sampler::sample) over N real, empty cgroups, as resmgrd's pass
// reads its allocations' groups (issue 12: 10,000 live allocations). Reported per pass, with the
// cost per group and the process's RSS after the passes. Needs root and a cgroup2 mount; the
// groups are made under it and removed at the end.
// Run: build/bench/bench_sampler [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "cgroup2_mount.hpp"
#include "monitor/sampler.hpp"

using namespace resmgr;

namespace {

long rss_kib() {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    return -1;
}

// N empty groups named as resmgrd names allocations, made once per size and removed at exit.
class Groups {
public:
    explicit Groups(int n) {
        const std::string mount = cgroup2_mount();
        if (mount.empty()) return;
        root_ = mount + "/resmgr-bench-sampler-" + std::to_string(::getpid());
        if (::mkdir(root_.c_str(), 0755) != 0) {
            root_.clear();
            return;
        }
        for (int i = 0; i < n; ++i) {
            char id[32];
            std::snprintf(id, sizeof id, "alloc_%012x", i);
            const std::string dir = root_ + "/" + id;
            if (::mkdir(dir.c_str(), 0755) != 0) break;
            probes_.push_back({id, dir});
        }
    }
    ~Groups() {
        for (const auto& p : probes_) ::rmdir(p.dir.c_str());
        if (!root_.empty()) ::rmdir(root_.c_str());
    }
    const std::vector<monitor::GroupProbe>& probes() const { return probes_; }
    bool ok(int n) const { return static_cast<int>(probes_.size()) == n; }

private:
    std::string root_;
    std::vector<monitor::GroupProbe> probes_;
};

void BM_SamplerPass(benchmark::State& state) {
    const int n = static_cast<int>(state.range(0));
    Groups groups(n);
    if (!groups.ok(n)) {
        state.SkipWithError("needs root and a cgroup2 mount to make the groups");
        return;
    }
    monitor::Sampler sampler(monitor::NodeSources{});
    // Passes one second apart, as at resmgrd's shortest interval, so the rates are computed.
    TimePoint now = Clock::now();
    monitor::Snapshot snap;
    sampler.sample(groups.probes(), now, snap); // first pass: files opened, nothing to rate yet
    for (auto _ : state) {
        now += std::chrono::seconds(1);
        sampler.sample(groups.probes(), now, snap);
        benchmark::DoNotOptimize(snap);
    }
    state.counters["us_per_group"] =
        benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
    state.counters["rss_mib"] = static_cast<double>(rss_kib()) / 1024.0;
}
BENCHMARK(BM_SamplerPass)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->MinTime(3);

} // namespace

BENCHMARK_MAIN();
