// Right-sizing replayed against two anchors (issue 13): the sizes users declared, a faithful
// Kubernetes VPA recommender, and resmgr's recommender (analytics::recommend_size), over the same
// runs. A bench program: prints tables, no Google Benchmark.
//
// (a) Replay of a generated trace (seeded std::mt19937_64, the same every run). Six workflow types,
// 200 runs each, each type's runs 20-60 min apart (its own clock): steady; bursty (one run in five
// spikes to 3 cores); heavy-tailed memory (lognormal, sigma 0.35); growing (linear); short jobs of
// 2-10 s; and "doubling", whose CPU and memory double from its 100th run. Before each run every
// sizer sets the run's limits (request = limit) from what IT observed of the runs before it: a run
// whose true peak is above its memory limit is OOM-killed and that sizer sees peak = its limit
// with outcome oom_killed; CPU above the limit is throttled, so it sees the limit as the cores used
// and, as cpu.stat's throttled_usec does (the time each CPU's queue of the group stood throttled,
// added up), (mean cores − limit) × duration of throttled time. Each sizer keeps its own history.
// (Simplification, the same for every sizer: a killed or throttled run is recorded with its whole
// duration, unstretched, and a run's CPU is flat at its mean.)
// Reported per sizer: memory slack Σ(limit − used) / Σ limit (used = min(peak, limit)), CPU slack
// the same per run (used = min(mean cores, limit)), the share of runs OOM-killed, the share of
// runs throttled (mean cores above the CPU limit: slowed, not killed), and the
// reaction to the doubling: the runs from the change up to the last one whose limit does not
// cover the new usage (memory: OOM-killed; CPU: limit below the mean cores), "never" when the last
// run still is not covered. Seed 1 is the one anyone tuning may look at; seed 2 is held out.
// Nothing in agent/analytics was tuned on either for this bench.
//
// (b) Real runs: the run records of a resmgrd state directory (argv[1], default /var/lib/resmgr,
// monitoring/history.db) or of a history database itself (argv[1] a file, as
// bench/vm_record_runs.sh copies one out of the VM), read-only, each type replayed in time order
// with every sizer learning from the records as they were recorded (under the declared limits),
// judged against each run's recorded peak and mean cores. Skipped, with the reason, when there is
// no readable history.
//
// VPA as its recommender does it (kubernetes/autoscaler, vertical-pod-autoscaler/pkg/recommender):
//   - util/decaying_histogram.go: each sample weighs 2^((t − reference) / half-life), half-life 24 h;
//   - util/histogram_options.go: exponential buckets, the first 0.01 cores (CPU, max 1000 cores) or
//     1e7 bytes (memory, max 1e12), each bucket 5 % wider than the one before; bucket i starts at
//     first × (1.05^i − 1) / 0.05; util/histogram.go: a percentile is the END of the bucket where
//     the cumulative weight reaches it;
//   - model/aggregate_container_state.go: CPU: one usage sample per minute of metrics, weighted by
//     the container's CPU request (at least minSampleWeight 0.1); memory: the peak of each
//     aggregation interval (here: of each run), weight 1; on an OOM a memory sample of
//     max(used + 100 MiB, used × 1.2), used = max(request, memory at the OOM);
//   - logic/recommender.go: target = P90 of each histogram, + 15 % safety margin, at least
//     25 millicores and 250 MiB (the pod minimums, one container here).
// Run: build-bench/bench/bench_rightsizing [state-dir | history.db]
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "analytics/sizing.hpp"
#include "history/history_store.hpp"

using namespace resmgr::analytics;

namespace {

constexpr double kMiB = 1024.0 * 1024.0;
constexpr int kRuns = 200;      // per type
constexpr int kDoublesAt = 100; // the doubling type's first doubled run (0-based)
constexpr std::int64_t kEpoch = 1'800'000'000;
constexpr double kSlackTarget = 0.20, kOomTarget = 0.005; // issue 13's targets

struct Limits {
    double cores = 0, memory = 0;
};

// One run as the work really is: what it needs, whatever limits it gets.
struct TrueRun {
    std::string type;
    int index = 0; // within its type
    std::int64_t start = 0;
    double seconds = 0, cores = 0, peak = 0;
};

std::vector<TrueRun> trace(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> n(0, 1);
    std::uniform_real_distribution<double> u(0, 1);
    std::map<std::string, std::int64_t> clock;
    std::vector<TrueRun> runs;
    // Every draw in its own statement: the order of draws, hence the trace, is the same with any compiler.
    auto add = [&](const char* type, int i, double seconds, double cores, double peak) {
        std::int64_t& t = clock.try_emplace(type, kEpoch).first->second;
        t += static_cast<std::int64_t>(60 * (20 + 40 * u(rng))); // 20-60 min after its last run
        runs.push_back({type, i, t, seconds, std::max(0.01, cores), std::max(8 * kMiB, peak)});
    };
    auto around = [&](double mean, double cv) { return mean * (1 + cv * n(rng)); };
    for (int i = 0; i < kRuns; ++i) {
        double seconds = around(600, 0.05), cores = around(1.0, 0.05);
        add("steady", i, seconds, cores, around(800 * kMiB, 0.03));
        seconds = 300 * (1 + 0.2 * u(rng));
        cores = u(rng) < 0.2 ? 3.0 : around(0.5, 0.1); // one run in five spikes
        add("bursty", i, seconds, cores, around(500 * kMiB, 0.1));
        cores = around(1.5, 0.05);
        add("heavy_tailed", i, 900, cores, 600 * kMiB * std::exp(0.35 * n(rng)));
        add("growing", i, 600, 0.8 + 0.005 * i, around((400 + 2.0 * i) * kMiB, 0.02));
        seconds = 2 + 8 * u(rng);
        cores = around(0.3, 0.1);
        add("short", i, seconds, cores, around(60 * kMiB, 0.05));
        const double grown = i >= kDoublesAt ? 2.0 : 1.0;
        cores = around(grown, 0.05);
        add("doubling", i, 600, cores, around(grown * 1024 * kMiB, 0.03));
    }
    std::stable_sort(runs.begin(), runs.end(), [](const TrueRun& a, const TrueRun& b) { return a.start < b.start; });
    return runs;
}

// What users declare: round, generous numbers, fixed for good.
Limits declared(const std::string& type) {
    static const std::map<std::string, Limits> sizes{
        {"steady", {2, 2048 * kMiB}},  {"bursty", {4, 1024 * kMiB}}, {"heavy_tailed", {2, 2048 * kMiB}},
        {"growing", {2, 1024 * kMiB}}, {"short", {1, 512 * kMiB}},   {"doubling", {2, 2048 * kMiB}},
    };
    return sizes.at(type);
}

// What a sizer observes of a run it gave `l`: the kernel's view under those limits.
RunRecord observed(const TrueRun& run, const Limits& l) {
    RunRecord r;
    r.workflow_type = run.type;
    r.requested_cpu_cores = l.cores;
    r.requested_memory_bytes = static_cast<std::uint64_t>(l.memory);
    r.started_at = run.start;
    r.wall_seconds = run.seconds;
    r.ended_at = run.start + static_cast<std::int64_t>(std::ceil(run.seconds));
    r.cpu_seconds = std::min(run.cores, l.cores) * run.seconds;
    r.throttled_seconds = std::max(0.0, run.cores - l.cores) * run.seconds;
    r.memory_peak_bytes = static_cast<std::uint64_t>(std::min(run.peak, l.memory));
    r.outcome = run.peak > l.memory ? RunOutcome::oom_killed : RunOutcome::completed;
    return r;
}

// VPA's decaying histogram with its exponential buckets (see the header comment).
class DecayingHistogram {
public:
    DecayingHistogram(double max_value, double first_bucket)
        : first_(first_bucket),
          weights_(static_cast<std::size_t>(std::ceil(std::log(max_value * (kRatio - 1) / first_bucket + 1) / std::log(kRatio))) + 1, 0.0) {}
    void add(double value, double weight, std::int64_t t) {
        weights_[find_bucket(value)] += weight * std::exp2(static_cast<double>(t - kEpoch) / kHalfLife);
    }
    std::optional<double> percentile(double p) const {
        double total = 0;
        for (double w : weights_) total += w;
        if (total <= 0) return std::nullopt;
        double seen = 0;
        std::size_t b = 0;
        for (; b + 1 < weights_.size(); ++b) {
            seen += weights_[b];
            if (seen >= p * total) break;
        }
        return b + 1 < weights_.size() ? bucket_start(b + 1) : bucket_start(b); // the bucket's end
    }

private:
    static constexpr double kRatio = 1.05;
    static constexpr double kHalfLife = 24 * 3600;
    double bucket_start(std::size_t b) const { return b == 0 ? 0 : first_ * (std::pow(kRatio, static_cast<double>(b)) - 1) / (kRatio - 1); }
    std::size_t find_bucket(double v) const {
        if (v < first_) return 0;
        const auto b = static_cast<std::size_t>(std::floor(std::log(v * (kRatio - 1) / first_ + 1) / std::log(kRatio)));
        return std::min(b, weights_.size() - 1);
    }
    double first_;
    std::vector<double> weights_;
};

class Sizer {
public:
    virtual ~Sizer() = default;
    // The limits of a run about to start at `now`; `declared` where the sizer has nothing yet.
    virtual Limits limits(const Limits& declared, std::int64_t now) const = 0;
    virtual void observe(const RunRecord&) {}
};

class DeclaredSizer : public Sizer {
public:
    Limits limits(const Limits& declared, std::int64_t) const override { return declared; }
};

class VpaSizer : public Sizer {
public:
    Limits limits(const Limits& declared, std::int64_t) const override {
        const auto cpu = cpu_.percentile(0.9);
        const auto memory = memory_.percentile(0.9);
        return {cpu ? std::max(0.025, *cpu * 1.15) : declared.cores, memory ? std::max(250 * kMiB, *memory * 1.15) : declared.memory};
    }
    void observe(const RunRecord& r) override {
        const double seconds = r.duration_seconds();
        if (r.cpu_seconds && seconds > 0) {
            const double weight = std::max(r.requested_cpu_cores, 0.1);
            for (double s = 0; s < seconds; s += 60) cpu_.add(*r.cpu_seconds / seconds, weight, r.started_at + static_cast<std::int64_t>(s));
        }
        if (r.outcome == RunOutcome::oom_killed) {
            const double used = std::max(static_cast<double>(r.requested_memory_bytes), static_cast<double>(r.memory_peak_bytes.value_or(0)));
            memory_.add(std::max(used + 100 * kMiB, used * 1.2), 1, r.ended_at);
        } else if (r.memory_peak_bytes) {
            memory_.add(static_cast<double>(*r.memory_peak_bytes), 1, r.ended_at);
        }
    }

private:
    DecayingHistogram cpu_{1000, 0.01}, memory_{1e12, 1e7};
};

class ResmgrSizer : public Sizer {
public:
    Limits limits(const Limits& declared, std::int64_t now) const override {
        const Sizing s = recommend_size(seen_, now);
        return {s.cpu_cores.value_or(declared.cores), s.memory_bytes ? static_cast<double>(*s.memory_bytes) : declared.memory};
    }
    void observe(const RunRecord& r) override { seen_.push_back(r); }

private:
    std::vector<RunRecord> seen_;
};

constexpr std::array<const char*, 3> kSizers{"declared", "VPA", "resmgr"};
constexpr std::size_t kVpa = 1, kResmgr = 2;

std::unique_ptr<Sizer> make_sizer(std::size_t k) {
    if (k == 0) return std::make_unique<DeclaredSizer>();
    if (k == kVpa) return std::make_unique<VpaSizer>();
    return std::make_unique<ResmgrSizer>();
}
using Sizers = std::array<std::unique_ptr<Sizer>, kSizers.size()>;
Sizers make_sizers() {
    Sizers s;
    for (std::size_t k = 0; k < s.size(); ++k) s[k] = make_sizer(k);
    return s;
}

struct Tally {
    double mem_limit = 0, mem_unused = 0, cpu_limit = 0, cpu_unused = 0;
    int runs = 0, ooms = 0, throttled = 0;
    void add(const Limits& l, double cores, double peak, bool oom) {
        runs++;
        ooms += oom;
        throttled += cores > l.cores;
        mem_limit += l.memory;
        mem_unused += oom ? 0 : l.memory - std::min(peak, l.memory);
        cpu_limit += l.cores;
        cpu_unused += l.cores - std::min(cores, l.cores);
    }
    double mem_slack() const { return mem_unused / mem_limit; }
    double cpu_slack() const { return cpu_unused / cpu_limit; }
    double oom_share() const { return static_cast<double>(ooms) / runs; }
    double throttled_share() const { return static_cast<double>(throttled) / runs; }
};

// The figures of every type but one: where the slack is without it.
Tally all_but(const std::map<std::string, Tally>& by_type, const std::string& left_out) {
    Tally sum;
    for (const auto& [type, t] : by_type)
        if (type != left_out) {
            sum.mem_limit += t.mem_limit;
            sum.mem_unused += t.mem_unused;
            sum.cpu_limit += t.cpu_limit;
            sum.cpu_unused += t.cpu_unused;
            sum.runs += t.runs;
            sum.ooms += t.ooms;
            sum.throttled += t.throttled;
        }
    return sum;
}

struct Result {
    std::array<Tally, kSizers.size()> total;
    std::array<std::map<std::string, Tally>, kSizers.size()> by_type;
    // The doubling type's last run (index in type) from the change whose limit fell short; -1: none.
    std::array<int, kSizers.size()> memory_short{-1, -1, -1}, cpu_short{-1, -1, -1};
    std::vector<double> heavy_tailed_peaks; // the true peaks, for heavy_tail_bound
    std::vector<double> bursty_cores;       // the true mean cores, for bursty_cpu_bound
};

Result replay(std::uint64_t seed) {
    Result out;
    std::map<std::string, Sizers> sizers;
    for (const TrueRun& run : trace(seed)) {
        Sizers& s = sizers.try_emplace(run.type, make_sizers()).first->second;
        if (run.type == "heavy_tailed") out.heavy_tailed_peaks.push_back(run.peak);
        if (run.type == "bursty") out.bursty_cores.push_back(run.cores);
        for (std::size_t k = 0; k < s.size(); ++k) {
            const Limits l = s[k]->limits(declared(run.type), run.start);
            const RunRecord seen = observed(run, l);
            const bool oom = seen.outcome == RunOutcome::oom_killed;
            out.total[k].add(l, run.cores, run.peak, oom);
            out.by_type[k][run.type].add(l, run.cores, run.peak, oom);
            if (run.type == "doubling" && run.index >= kDoublesAt) {
                if (oom) out.memory_short[k] = run.index;
                if (l.cores < run.cores) out.cpu_short[k] = run.index;
            }
            s[k]->observe(seen);
        }
    }
    return out;
}

// Runs from the doubling until the limit covers it for good; nullopt: never within the trace.
std::optional<int> reaction(int last_short) {
    if (last_short == kRuns - 1) return std::nullopt;
    return last_short < 0 ? 0 : last_short - kDoublesAt + 1;
}
std::string runs_text(std::optional<int> n) { return n ? std::to_string(*n) : "never"; }

void print_tallies(const std::array<Tally, kSizers.size()>& t, const Result* r) {
    std::printf("  %-9s %12s %10s %19s %10s", "sizer", "memory slack", "CPU slack", "OOM-killed", "throttled");
    if (r) std::printf(" %14s %11s", "react memory", "react CPU");
    std::printf("\n");
    for (std::size_t k = 0; k < t.size(); ++k) {
        std::printf("  %-9s %11.1f%% %9.1f%% %7.2f%% (%4d/%4d) %9.1f%%", kSizers[k], 100 * t[k].mem_slack(), 100 * t[k].cpu_slack(),
                    100 * t[k].oom_share(), t[k].ooms, t[k].runs, 100 * t[k].throttled_share());
        if (r) std::printf(" %14s %11s", runs_text(reaction(r->memory_short[k])).c_str(), runs_text(reaction(r->cpu_short[k])).c_str());
        std::printf("\n");
    }
    const Tally &v = t[kVpa], &m = t[kResmgr];
    std::printf("  resmgr / VPA: memory slack %.2fx, CPU slack %.2fx, OOM-killed runs %d vs %d", m.mem_slack() / v.mem_slack(), m.cpu_slack() / v.cpu_slack(),
                m.ooms, v.ooms);
    if (r)
        std::printf(", reaction memory %s vs %s runs, CPU %s vs %s", runs_text(reaction(r->memory_short[kResmgr])).c_str(),
                    runs_text(reaction(r->memory_short[kVpa])).c_str(), runs_text(reaction(r->cpu_short[kResmgr])).c_str(),
                    runs_text(reaction(r->cpu_short[kVpa])).c_str());
    std::printf("\n");
}

const char* verdict(bool met) { return met ? "met" : "MISSED"; }

struct HeavyTailBound {
    int budget = 0;        // OOM-killed runs the whole trace may have (the OOM target)
    double limit = 0;      // the smallest fixed limit that kills no more than that
    double percentile = 0; // of the type's peaks, that limit
    double median = 0;     // the type's median peak
    Tally tally;           // its runs under that limit
};

// The best any sizer can do for the heavy-tailed type: its peaks are independent draws, so no
// history foresees the next and one fixed limit is the best there is. Chosen here knowing every
// peak in advance (an oracle, better than any sizer), it is the smallest limit that kills no more
// of its runs than the whole trace may lose, all the other types losing none.
HeavyTailBound heavy_tail_bound(std::vector<double> peaks, int all_runs) {
    HeavyTailBound b;
    b.budget = static_cast<int>(std::floor(kOomTarget * all_runs));
    std::sort(peaks.begin(), peaks.end());
    const std::size_t killed = std::min<std::size_t>(static_cast<std::size_t>(b.budget), peaks.size() - 1);
    b.limit = peaks[peaks.size() - 1 - killed];
    b.percentile = 1 - static_cast<double>(killed) / static_cast<double>(peaks.size());
    b.median = peaks[peaks.size() / 2];
    for (double peak : peaks) b.tally.add({0, b.limit}, 0, peak, peak > b.limit);
    return b;
}

struct BurstyCpuBound {
    double limit = 0; // the largest fixed CPU limit for the bursty type that meets the target
    Tally tally;      // its runs under that limit
};

// What total CPU slack <= 20 % asks of the bursty type, the other types sized as `others` were: the
// largest fixed limit (any sizer's limits average no better, its runs being independent draws)
// that brings the total to the target, and the runs it throttles. nullopt: none does.
std::optional<BurstyCpuBound> bursty_cpu_bound(const std::vector<double>& cores, const Tally& others) {
    std::optional<BurstyCpuBound> best;
    for (double limit = 0.01; limit <= *std::max_element(cores.begin(), cores.end()); limit += 0.01) {
        Tally t;
        for (double c : cores) t.add({limit, 0}, c, 0, false);
        if (others.cpu_unused + t.cpu_unused <= kSlackTarget * (others.cpu_limit + t.cpu_limit)) best = BurstyCpuBound{limit, t};
    }
    return best;
}

void print(const char* title, const Result& r) {
    std::printf("%s\n", title);
    print_tallies(r.total, &r);
    std::printf("  by type, memory slack / CPU slack / OOM-killed runs / throttled runs (VPA | resmgr):\n");
    for (const auto& [type, m] : r.by_type[kResmgr]) {
        const Tally& v = r.by_type[kVpa].at(type);
        std::printf("    %-12s %3.0f%% / %3.0f%% / %2d / %3d  |  %3.0f%% / %3.0f%% / %2d / %3d\n", type.c_str(), 100 * v.mem_slack(), 100 * v.cpu_slack(),
                    v.ooms, v.throttled, 100 * m.mem_slack(), 100 * m.cpu_slack(), m.ooms, m.throttled);
    }
    // Where the slack is: the same figures without the heavy-tailed type.
    const Tally vpa_others = all_but(r.by_type[kVpa], "heavy_tailed"), others = all_but(r.by_type[kResmgr], "heavy_tailed");
    std::printf("  without heavy_tailed, memory / CPU slack: VPA %.1f%% / %.1f%%, resmgr %.1f%% / %.1f%%\n", 100 * vpa_others.mem_slack(),
                100 * vpa_others.cpu_slack(), 100 * others.mem_slack(), 100 * others.cpu_slack());
    // What total memory slack <= 20 % would ask of the other types, the heavy-tailed one at its bound.
    const HeavyTailBound bound = heavy_tail_bound(r.heavy_tailed_peaks, r.total[kResmgr].runs);
    const double others_allowed = (kSlackTarget * (others.mem_limit + bound.tally.mem_limit) - bound.tally.mem_unused) / others.mem_limit;
    std::printf("  heavy_tailed at its bound (one fixed limit chosen knowing all %zu peaks, killing %d = the OOM target's %d of all runs):\n"
                "    %.2fx its median peak (P%.1f), %.1f%% slack on it; total memory slack <= 20 %% would then need the other types at\n"
                "    <= %.1f%% slack (at their present total limits) with no OOM-killed run (resmgr gives them %.1f%%)\n",
                r.heavy_tailed_peaks.size(), bound.tally.ooms, bound.budget, bound.limit / bound.median, 100 * bound.percentile,
                100 * bound.tally.mem_slack(), 100 * others_allowed, 100 * others.mem_slack());
    if (const auto cpu_bound = bursty_cpu_bound(r.bursty_cores, all_but(r.by_type[kResmgr], "bursty")))
        std::printf("  CPU slack <= 20 %% with the other types as resmgr sizes them needs the bursty type at <= %.2f cores (a fixed limit),\n"
                    "    throttling %d of its %d runs (its spikes: one run in five at 3 cores)\n",
                    cpu_bound->limit, cpu_bound->tally.throttled, cpu_bound->tally.runs);
    else
        std::printf("  CPU slack <= 20 %%: out of reach with the other types as resmgr sizes them, whatever the bursty type's limit\n");
    const Tally &m = r.total[kResmgr], &v = r.total[kVpa];
    const auto react_memory = reaction(r.memory_short[kResmgr]), react_cpu = reaction(r.cpu_short[kResmgr]);
    auto within_two = [](std::optional<int> runs) { return runs && *runs <= 2; };
    std::printf("  targets for resmgr: memory slack <= 20 %%: %s (%.1f %%); CPU slack <= 20 %%: %s (%.1f %%); OOM-killed <= 0.5 %%: %s (%.2f %%); "
                "OOM-killed never more than VPA: %s (%d vs %d); reaction <= 2 runs: memory %s (%s), CPU %s (%s)\n\n",
                verdict(m.mem_slack() <= kSlackTarget), 100 * m.mem_slack(), verdict(m.cpu_slack() <= kSlackTarget), 100 * m.cpu_slack(),
                verdict(m.oom_share() <= kOomTarget),
                100 * m.oom_share(), verdict(m.ooms <= v.ooms), m.ooms, v.ooms, verdict(within_two(react_memory)), runs_text(react_memory).c_str(),
                verdict(within_two(react_cpu)), runs_text(react_cpu).c_str());
}

// (b) The run records of a real state directory or history database, replayed per type; never made up.
void real_runs(const std::filesystem::path& where) {
    std::printf("Real runs from %s:\n", where.c_str());
    std::error_code ec;
    const bool is_db = std::filesystem::is_regular_file(where, ec);
    const auto db = is_db ? where : where / "monitoring" / "history.db";
    if (!is_db && !std::filesystem::is_directory(where, ec)) {
        std::printf("  skipped: %s is not a directory on this host (no resmgrd state here), so there are no real runs to replay\n", where.c_str());
        return;
    }
    if (!std::filesystem::exists(db, ec) || ::access(db.c_str(), R_OK) != 0) {
        std::printf("  skipped: %s is missing or not readable by this user\n", db.c_str());
        return;
    }
    std::vector<RunRecord> runs;
    try {
        resmgr::history::HistoryStore store(db.string(), {}, resmgr::history::Access::read_only);
        resmgr::history::RunQuery query;
        query.limit = 1'000'000;
        runs = store.runs(query);
    } catch (const std::exception& e) {
        std::printf("  skipped: %s\n", e.what());
        return;
    }
    std::sort(runs.begin(), runs.end(), [](const RunRecord& a, const RunRecord& b) { return a.ended_at < b.ended_at; });
    std::map<std::string, Sizers> sizers;
    std::array<Tally, kSizers.size()> total;
    std::map<std::string, std::vector<double>> peaks; // of the judged runs, by type
    std::size_t skipped = 0;
    for (const RunRecord& r : runs) {
        const double seconds = r.duration_seconds();
        const bool judged = !r.workflow_type.empty() && r.requested_cpu_cores > 0 && r.requested_memory_bytes > 0 && r.memory_peak_bytes && r.cpu_seconds &&
                            seconds > 0.01;
        if (!judged) {
            ++skipped;
            continue;
        }
        Sizers& s = sizers.try_emplace(r.workflow_type, make_sizers()).first->second;
        const Limits asked{r.requested_cpu_cores, static_cast<double>(r.requested_memory_bytes)};
        const double peak = static_cast<double>(*r.memory_peak_bytes), cores = *r.cpu_seconds / seconds;
        peaks[r.workflow_type].push_back(peak);
        for (std::size_t k = 0; k < s.size(); ++k) {
            const Limits l = s[k]->limits(asked, r.started_at);
            // A run the OOM killer hit needed more than it was given: any limit up to that is short.
            const bool oom = r.outcome == RunOutcome::oom_killed ? l.memory <= asked.memory : peak > l.memory;
            total[k].add(l, cores, peak, oom);
            s[k]->observe(r);
        }
    }
    if (total[0].runs == 0) {
        std::printf("  skipped: %zu run record(s), none with a workflow type, declared limits and measured CPU and memory\n", runs.size());
        return;
    }
    std::printf("  %d runs of %zu types judged (%zu records without a type, limits or measurements left out); every sizer learns from\n"
                "  the records as recorded under the declared limits\n",
                total[0].runs, sizers.size(), skipped);
    print_tallies(total, nullptr);
    // The hindsight bound: one fixed limit per type chosen knowing all its peaks, as low as the OOM
    // target lets it (the ⌈(1 − target)·n⌉-th smallest peak; below 200 runs of a type, the
    // highest). A sizer that sets each run's limit before the run, knowing only the runs before
    // it, can beat it on a sequence where sizes follow from earlier ones; where they do not (a
    // build's size follows its commit, not the builds before it), it cannot on average.
    // Records the OOM killer hit count as needing only their recorded peak here.
    double limit_sum = 0, used_sum = 0;
    std::size_t killed = 0;
    std::printf("  hindsight bound (one fixed limit per type, knowing all its peaks, killing at most %.1f %% of its runs):", 100 * kOomTarget);
    for (auto& [type, v] : peaks) {
        std::sort(v.begin(), v.end());
        const std::size_t keep = std::min(v.size(), static_cast<std::size_t>(std::ceil((1 - kOomTarget) * static_cast<double>(v.size()) - 1e-9)));
        const double limit = v[keep - 1];
        double used = 0;
        for (double x : v) used += std::min(x, limit);
        limit_sum += limit * static_cast<double>(v.size()), used_sum += used, killed += v.size() - keep;
        std::printf(" %s %.0f MiB (%.0f %% slack)", type.c_str(), limit / kMiB, 100 * (1 - used / (limit * static_cast<double>(v.size()))));
    }
    const double bound = 1 - used_sum / limit_sum;
    std::printf("\n    memory slack %.1f %% with %zu run(s) killed: the target (<= %.0f %% with <= %.1f %% killed) is %s on these runs\n", 100 * bound,
                killed, 100 * kSlackTarget, 100 * kOomTarget, bound > kSlackTarget ? "beyond this bound" : "within this bound");
}

} // namespace

int main(int argc, char** argv) {
    std::printf("Right-sizing replay (issue 13): %d runs of each of 6 types, each type's runs 20-60 min apart; 'doubling' doubles its CPU\n"
                "and memory at its run %d. Limits = request = each sizer's figure; each sizer learns only from what it observed.\n\n",
                kRuns, kDoublesAt + 1);
    print("seed 1 (may be looked at while tuning)", replay(1));
    print("seed 2 (HELD OUT: never looked at for tuning)", replay(2));
    real_runs(argc > 1 ? argv[1] : "/var/lib/resmgr");
    return 0;
}
