// Right-sizing from run records (see sizing.hpp for the method).
#include "analytics/sizing.hpp"

#include <algorithm>
#include <cmath>

namespace resmgr::analytics {
namespace {

struct Weighted {
    double value;
    double weight;
};

// The smallest value whose cumulative weight reaches p of the total.
double weighted_percentile(std::vector<Weighted> xs, double p) {
    std::sort(xs.begin(), xs.end(), [](const Weighted& a, const Weighted& b) { return a.value < b.value; });
    double total = 0;
    for (const auto& x : xs) total += x.weight;
    double seen = 0;
    for (const auto& x : xs) {
        seen += x.weight;
        if (seen >= p * total) return x.value;
    }
    return xs.back().value;
}

std::optional<double> run_cores(const RunRecord& r) {
    const double wall = r.duration_seconds();
    if (!r.cpu_seconds || wall <= 0.01) return std::nullopt;
    return *r.cpu_seconds / wall;
}

// What a run needed in cores: what it ran, and for a run cpu.max throttled, more than it got.
// cpu.stat throttled_usec adds up the time each CPU's queue of the group stood throttled, so
// throttled / wall is in cores: threads that wanted c cores under a limit L ran L and stood c − L.
std::optional<double> run_cpu_demand(const RunRecord& r, double throttle_bump) {
    const auto cores = run_cores(r);
    if (!cores || !r.throttled_seconds || *r.throttled_seconds <= 0) return cores;
    const double denied = *r.throttled_seconds / r.duration_seconds();
    return std::min(*cores + denied, *cores * throttle_bump);
}

// What a run needed: its peak, or for an OOM-killed run (capped at its limit) more than it got.
std::optional<double> run_memory_demand(const RunRecord& r, double oom_bump) {
    if (r.outcome == RunOutcome::oom_killed) {
        const double capped = std::max<double>(static_cast<double>(r.memory_peak_bytes.value_or(0)), static_cast<double>(r.requested_memory_bytes));
        if (capped <= 0) return std::nullopt;
        return capped * oom_bump;
    }
    if (!r.memory_peak_bytes) return std::nullopt;
    return static_cast<double>(*r.memory_peak_bytes);
}

// One figure from oldest-first values: the weighted percentile, raised to the newest ones.
double size_from(const std::vector<Weighted>& oldest_first, double percentile, std::size_t recent, double margin) {
    double target = weighted_percentile(oldest_first, percentile);
    for (std::size_t i = 0; i < std::min(recent, oldest_first.size()); ++i)
        target = std::max(target, oldest_first[oldest_first.size() - 1 - i].value);
    return target * (1 + margin);
}

// The sizing of the runs in [begin, end) of an oldest-first list, at `now`; no back-test.
Sizing size_only(const std::vector<const RunRecord*>& runs, std::size_t begin, std::size_t end, std::int64_t now, const SizingOptions& o) {
    std::vector<Weighted> cpu, memory;
    for (std::size_t i = begin; i < end; ++i) {
        const RunRecord& r = *runs[i];
        const double age = static_cast<double>(std::max<std::int64_t>(0, now - r.ended_at));
        const double weight = std::pow(0.5, age / static_cast<double>(o.half_life.count()));
        if (auto cores = run_cpu_demand(r, o.throttle_bump)) cpu.push_back({*cores, weight});
        // Memory also counts runs that never ran long enough for a CPU figure.
        if (auto demand = run_memory_demand(r, o.oom_bump)) memory.push_back({*demand, weight});
    }
    Sizing s;
    s.cpu_runs = cpu.size();
    s.memory_runs = memory.size();
    if (cpu.size() >= o.min_runs)
        s.cpu_cores = std::max(o.min_cpu_cores, std::round(size_from(cpu, o.cpu_percentile, o.recent_runs, o.margin) * 1000) / 1000);
    if (memory.size() >= o.min_runs)
        s.memory_bytes = std::max<std::uint64_t>(o.min_memory_bytes,
                                                 static_cast<std::uint64_t>(std::ceil(size_from(memory, o.memory_percentile, o.recent_runs, o.margin))));
    return s;
}

} // namespace

Sizing recommend_size(const std::vector<RunRecord>& all, std::int64_t now, const SizingOptions& o) {
    std::vector<const RunRecord*> runs;
    for (const auto& r : all)
        if (r.ended_at <= now) runs.push_back(&r);
    std::sort(runs.begin(), runs.end(), [](const RunRecord* a, const RunRecord* b) { return a->ended_at < b->ended_at; });
    if (runs.size() > o.max_runs) runs.erase(runs.begin(), runs.end() - static_cast<std::ptrdiff_t>(o.max_runs));

    Sizing s = size_only(runs, 0, runs.size(), now, o);
    s.runs_needed = o.min_runs;
    std::string missing;
    if (!s.cpu_cores) missing += std::to_string(s.cpu_runs) + " run(s) with measured CPU";
    if (!s.memory_bytes) missing += (missing.empty() ? "" : " and ") + std::to_string(s.memory_runs) + " with a measured memory peak";
    if (!missing.empty()) s.reason = missing + "; " + std::to_string(o.min_runs) + " needed for a recommendation";

    // Rolling-origin back-test: run j sized from the runs before it, as the node would have.
    const std::size_t first = runs.size() > o.backtest_runs ? runs.size() - o.backtest_runs : 0;
    std::size_t fit = 0, oom = 0;
    for (std::size_t j = std::max(first, o.min_runs); j < runs.size(); ++j) {
        const RunRecord& r = *runs[j];
        const Sizing before = size_only(runs, 0, j, r.started_at, o);
        if (!before.cpu_cores && !before.memory_bytes) continue;
        ++s.backtested;
        // A throttled run fits only a size that would have let it run unthrottled.
        const auto cores = run_cpu_demand(r, o.throttle_bump);
        const bool cpu_fit = !before.cpu_cores || !cores || *cores <= *before.cpu_cores;
        bool memory_fit = true;
        if (before.memory_bytes) {
            // An OOM-killed run needed more than it got: it fits only a size above what killed it.
            if (r.outcome == RunOutcome::oom_killed) memory_fit = static_cast<double>(*before.memory_bytes) > *run_memory_demand(r, 1.0);
            else if (r.memory_peak_bytes) memory_fit = *r.memory_peak_bytes <= *before.memory_bytes;
        }
        if (!memory_fit) ++oom;
        if (cpu_fit && memory_fit) ++fit;
    }
    if (s.backtested > 0) {
        s.coverage = static_cast<double>(fit) / static_cast<double>(s.backtested);
        s.oom_risk = static_cast<double>(oom) / static_cast<double>(s.backtested);
    }
    return s;
}

std::optional<double> memory_slack(const std::vector<RunRecord>& runs, std::uint64_t limit) {
    double given = 0, unused = 0;
    for (const auto& r : runs) {
        if (!r.memory_peak_bytes || limit == 0) continue;
        given += static_cast<double>(limit);
        unused += static_cast<double>(limit) - std::min<double>(static_cast<double>(limit), static_cast<double>(*r.memory_peak_bytes));
    }
    if (given == 0) return std::nullopt;
    return unused / given;
}

std::optional<double> cpu_slack(const std::vector<RunRecord>& runs, double limit) {
    double given = 0, unused = 0;
    for (const auto& r : runs) {
        auto cores = run_cores(r);
        if (!cores || limit <= 0) continue;
        const double wall = r.duration_seconds();
        given += limit * wall;
        unused += (limit - std::min(limit, *cores)) * wall;
    }
    if (given == 0) return std::nullopt;
    return unused / given;
}

} // namespace resmgr::analytics
