// The history's costs (issue 13): one sampling pass written at 100 allocations, side by side with
// appending the same pass to a JSONL file (the seed's usage_history.jsonl, what a user scripting
// it would do); the database's disk cost per simulated day; and the analytics operations over
// 30 days of history (node and 100 allocations' series every 30 s, the default sampling
// interval; 100 runs a day over 10 workflow types; 100 live allocations), each through the router as a client's request would go.
// Run: build-release/bench/bench_history
#include <benchmark/benchmark.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cgroup/accounting_backend.hpp"
#include "core/ledger.hpp"
#include "history/history.hpp"
#include "server/service.hpp"
#include "state/state_store.hpp"

using namespace resmgr;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kDay = 86400;
constexpr std::int64_t kT0 = 1'800'000'000; // the simulated history's start

fs::path scratch(const std::string& name) {
    fs::path dir = fs::temp_directory_path() / ("resmgr-bench-history-" + std::to_string(getpid())) / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

// The points Monitoring::record_history writes per pass: 8 node series and 4 per allocation.
std::vector<history::Point> pass_points(int allocations, std::mt19937_64& rng) {
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<history::Point> points;
    for (const char* s : {"cpu_percent", "memory_percent", "memory_available_bytes", "cpu_pressure_some_avg10", "memory_pressure_some_avg10",
                          "io_pressure_some_avg10", "live_agents", "allocations"})
        points.push_back({std::string("node/") + s, 100 * u(rng)});
    for (int a = 0; a < allocations; ++a) {
        const std::string prefix = "alloc/alloc_" + std::to_string(100000 + a) + "/";
        points.push_back({prefix + "cpu_cores", 2 * u(rng)});
        points.push_back({prefix + "memory_bytes", std::floor(1e9 * u(rng))});
        points.push_back({prefix + "pids", std::floor(50 * u(rng))});
        points.push_back({prefix + "throttled_usec", std::floor(1e6 * u(rng))});
    }
    return points;
}

void BM_SamplingPass_HistoryDb(benchmark::State& state) {
    const int allocations = static_cast<int>(state.range(0));
    const fs::path dir = scratch("pass-db");
    history::HistoryStore store((dir / "history.db").string());
    std::mt19937_64 rng(1);
    std::int64_t ts = kT0;
    for (auto _ : state) {
        auto points = pass_points(allocations, rng);
        store.add_samples(ts, points);
        store.maintain(ts);
        ++ts; // 1 s sampling
    }
    state.counters["points_per_pass"] = static_cast<double>(pass_points(allocations, rng).size());
    state.counters["db_bytes_per_pass"] = static_cast<double>(store.footprint().file_bytes) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_SamplingPass_HistoryDb)->Arg(100)->Unit(benchmark::kMicrosecond);

// The same pass as one JSON line appended to a file, flushed (no fsync, as usage_history.jsonl).
void BM_SamplingPass_Jsonl(benchmark::State& state) {
    const int allocations = static_cast<int>(state.range(0));
    const fs::path dir = scratch("pass-jsonl");
    std::ofstream out(dir / "usage_history.jsonl", std::ios::app);
    std::mt19937_64 rng(1);
    std::int64_t ts = kT0;
    for (auto _ : state) {
        auto points = pass_points(allocations, rng);
        json line{{"time", ts++}};
        for (const auto& p : points) line[p.series] = p.value;
        out << line.dump() << '\n';
        out.flush();
    }
}
BENCHMARK(BM_SamplingPass_Jsonl)->Arg(100)->Unit(benchmark::kMicrosecond);

// Disk: one simulated day of 100 allocations at the sampling interval (seconds), rolled up as
// resmgrd does; raw samples are kept 48 h, so the steady state is two such days of raw rows plus
// the rollups. Reported per day.
void BM_DiskPerDay(benchmark::State& state) {
    const std::int64_t interval = state.range(0);
    for (auto _ : state) {
        const fs::path dir = scratch("disk");
        history::HistoryStore store((dir / "history.db").string());
        std::mt19937_64 rng(2);
        for (std::int64_t ts = kT0; ts < kT0 + kDay; ts += interval) {
            store.add_samples(ts, pass_points(100, rng));
            store.maintain(ts);
        }
        const auto f = store.footprint();
        state.counters["MiB_per_day"] = static_cast<double>(f.file_bytes) / (1 << 20);
        state.counters["raw_rows"] = static_cast<double>(f.raw_rows);
        state.counters["rollup_rows"] = static_cast<double>(f.rollup_rows);
    }
}
BENCHMARK(BM_DiskPerDay)->Arg(30)->Arg(10)->Iterations(1)->Unit(benchmark::kSecond);

// A daemon's router over 30 days of history, built once.
struct ThirtyDays {
    fs::path dir = scratch("thirty-days");
    cgroup::AccountingBackend backend{"bench: no groups"};
    state::StateStore store{dir / "state"};
    core::Ledger ledger{core::NodeCapacity{64, 256 * kGiB}, core::Policy::defaults()};
    TimePoint now = TimePoint(std::chrono::seconds(kT0 + 30 * kDay));
    server::Service service{ledger, backend, store, [this] { return now; }, json::object(), json::object()};
    history::History history{(dir / "history.db").string()};

    ThirtyDays() {
        spdlog::set_level(spdlog::level::warn); // 100 "allocated" lines are not the benchmark
        service.set_history(&history);
        std::mt19937_64 rng(3);
        std::uniform_real_distribution<double> u(0, 1);
        auto* db = history.store();
        for (std::int64_t ts = kT0; ts < kT0 + 30 * kDay; ts += 30) {
            db->add_samples(ts, pass_points(100, rng));
            if (ts % 3600 == 0) db->maintain(ts);
        }
        db->maintain(kT0 + 30 * kDay);
        for (int i = 0; i < 30 * 100; ++i) {
            analytics::RunRecord r;
            r.allocation_id = "alloc_run" + std::to_string(i);
            r.workflow_type = "type-" + std::to_string(i % 10);
            r.workflow_id = "wf-" + std::to_string(i);
            r.requested_cpu_cores = 2;
            r.requested_memory_bytes = 4ULL << 30;
            r.ended_at = kT0 + i * (30 * kDay / 3000);
            r.started_at = r.ended_at - 600;
            r.wall_seconds = 600;
            r.cpu_seconds = 600 * (0.3 + u(rng));
            r.memory_peak_bytes = static_cast<std::uint64_t>((0.5 + u(rng)) * (1 << 30));
            db->add_run(r);
        }
        for (int a = 0; a < 100; ++a) {
            json r = service.router().handle_line(
                json{{"operation", "allocate"},
                     {"params", {{"workflow_id", "live-" + std::to_string(a)}, {"workflow_type", "type-" + std::to_string(a % 10)},
                                 {"resources", {{"cpu_cores", 0.5}, {"memory", "2G"}}}}}}
                    .dump(),
                Owner{0, 0});
            if (r["status"] != "success") throw std::runtime_error(r.dump());
        }
    }
};

ThirtyDays& thirty_days() {
    static ThirtyDays node;
    return node;
}

void analytics_call(benchmark::State& state, const char* operation, const char* params) {
    auto& node = thirty_days();
    const std::string line = json{{"operation", operation}, {"params", json::parse(params)}}.dump();
    for (auto _ : state) {
        json r = node.service.router().handle_line(line, Owner{0, 0});
        if (r["status"] != "success") {
            state.SkipWithError(r.dump().c_str());
            break;
        }
        benchmark::DoNotOptimize(r);
    }
}
BENCHMARK_CAPTURE(analytics_call, analyze_utilization_24h, "analyze-utilization", R"({"time_period":"24h"})")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(analytics_call, analyze_utilization_30d, "analyze-utilization", R"({"time_period":"30d"})")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(analytics_call, optimize_100_live, "optimize", R"({"target":"efficiency"})")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(analytics_call, scale_auto_dry_run, "scale", R"({"workflow_id":"live-7","direction":"auto","dry_run":true})")->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
