// The pressure responder's cost per sampling pass, its two parts apart:
//   BM_PlanPressure  the pure planner (core/pressure) over N groups, calm and under pressure;
//   BM_PsiRead       one PSI file read and parsed (monitor::read_pressure): a pass reads the
//                    node's, plus each group's memory.pressure only while the node stalls.
// The budget: a pass at 1 s sampling within 0.5 % of a core is 5 ms. The whole daemon's cost with
// and without the responder is bench/daemon_cpu.sh with RESMGR_PRESSURE_MODE=off / advisory.
// Run: build/bench/bench_pressure
#include <benchmark/benchmark.h>

#include <filesystem>

#include "core/pressure.hpp"
#include "monitor/proc.hpp"

using namespace resmgr;
using namespace resmgr::core;

namespace {

std::vector<PressureGroup> groups_of_size(int n) {
    std::vector<PressureGroup> groups;
    for (int i = 0; i < n; ++i) {
        PressureGroup g;
        g.allocation_id = "alloc_" + std::to_string(i);
        g.priority = (i % 4) * 25 + 10; // low, medium, high, critical in turn
        g.memory_current = (64ULL + static_cast<unsigned>(i % 50)) << 20;
        g.memory_growth_bytes_per_s = (i % 7) * 1e6;
        g.cpu_cores_used = 0.1 * (i % 10);
        g.cpu_pressure_some = (i % 4 == 3) ? 5.0 : 0.0;
        groups.push_back(std::move(g));
    }
    return groups;
}

void BM_PlanPressure(benchmark::State& state) {
    const auto groups = groups_of_size(static_cast<int>(state.range(0)));
    const bool hot = state.range(1) != 0;
    auto policy = Policy::defaults().pressure_response;
    policy.mode = "enforce";
    PressureSample sample;
    sample.memory_some = hot ? 40 : 0;
    sample.memory_full = 0;
    sample.memory_total_bytes = 16 * kGiB;
    sample.memory_available_bytes = hot ? kGiB : 8 * kGiB;
    sample.memory_lookahead = Millis(1000);
    PressureState state_in;
    TimePoint now = Clock::now();
    for (auto _ : state) {
        // Each pass carries the state on, as the responder does: hot passes climb the ladder.
        PressurePlan plan = plan_pressure(sample, groups, policy, state_in, now);
        state_in = std::move(plan.state);
        now += Millis(1000);
        benchmark::DoNotOptimize(plan.steps.data());
    }
    state.counters["groups"] = static_cast<double>(groups.size());
}
BENCHMARK(BM_PlanPressure)->ArgsProduct({{10, 100, 1000}, {0, 1}})->ArgNames({"groups", "hot"})->Unit(benchmark::kMicrosecond);

void BM_PsiRead(benchmark::State& state) {
    const std::string path = "/proc/pressure/memory";
    if (!std::filesystem::exists(path)) {
        state.SkipWithError("no /proc/pressure/memory on this kernel");
        return;
    }
    for (auto _ : state) benchmark::DoNotOptimize(monitor::read_pressure(path));
}
BENCHMARK(BM_PsiRead)->Unit(benchmark::kMicrosecond);

} // namespace

BENCHMARK_MAIN();
