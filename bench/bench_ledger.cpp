// Ledger decision throughput: allocate+release pairs with N live allocations already admitted.
// Run: build/bench/bench_ledger
#include <benchmark/benchmark.h>

#include "core/ledger.hpp"

using namespace resmgr;
using namespace resmgr::core;

namespace {

Policy roomy_policy() {
    Policy p = Policy::defaults();
    p.max_agents = 1'000'000;
    return p;
}

AllocationRequest small_request(int workflow) {
    AllocationRequest r;
    r.workflow_id = "wf-" + std::to_string(workflow);
    r.resources.cpu_cores = 0.01;
    r.resources.memory_bytes = 1 << 20;
    r.resources.agents = 1;
    return r;
}

void BM_AllocateRelease(benchmark::State& state) {
    const int live = static_cast<int>(state.range(0));
    Ledger ledger({1024, 4096 * kGiB}, roomy_policy());
    const TimePoint now = Clock::now();
    const Owner owner{1000, 1};
    for (int i = 0; i < live; ++i) ledger.allocate(small_request(i % 2000), owner, now);
    const AllocationRequest probe = small_request(7);
    for (auto _ : state) {
        std::string id = ledger.allocate(probe, owner, now).allocation_id;
        benchmark::DoNotOptimize(ledger.release(id, owner));
        ledger.clear_changed(); // what Lifecycle::persist does once the change is recorded
    }
    state.SetItemsProcessed(state.iterations() * 2); // two decisions per iteration
    state.counters["live_allocations"] = live;
}
BENCHMARK(BM_AllocateRelease)->Arg(0)->Arg(100)->Arg(1000)->Arg(10000);

void BM_DeniedRequest(benchmark::State& state) {
    const int live = static_cast<int>(state.range(0));
    // Exactly full on CPU: the reserve plus `live` allocations of 0.01 cores.
    Ledger full({0.5 + live * 0.01, 4096 * kGiB}, roomy_policy());
    const Owner owner{1000, 1};
    for (int i = 0; i < live; ++i) full.allocate(small_request(i % 2000), owner, Clock::now());
    AllocationRequest huge = small_request(1);
    huge.resources.cpu_cores = 5;
    huge.workflow_id = "wf-huge";
    for (auto _ : state) {
        try {
            full.allocate(huge, owner, Clock::now());
        } catch (const std::exception& e) {
            benchmark::DoNotOptimize(e.what());
        }
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DeniedRequest)->Arg(1000);

} // namespace

BENCHMARK_MAIN();
