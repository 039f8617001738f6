// Right-sizing replayed against the anchors (issue 13): the sizes users declared, a faithful
// Kubernetes VPA recommender, and resmgr's recommender (analytics/sizing), over the same runs.
// Each sizer sets a run's limits from what it observed of the runs before it, and observes each
// run the way the kernel would have shown it under its own limits: a run whose true peak is
// above its memory limit is OOM-killed (seen at the limit, outcome oom_killed), CPU is capped at
// the limit (throttled). Reported per sizer: memory and CPU slack Σ(limit − used) / Σ limit, the
// share of runs OOM-killed, and the runs it takes to cover a type whose usage doubles.
//
// The trace is generated (seeded, the same every run): steady, bursty CPU, heavy-tailed memory,
// growing, short jobs (2-10 s) and a type that doubles at its 100th run; one run of each type
// every 30 min, 200 runs each. Seed 1 is the one anyone tuning may look at; seed 2 is held out.
// Nothing in agent/analytics was tuned on either.
//
// VPA, as its recommender does it (kubernetes/autoscaler vertical-pod-autoscaler/pkg/recommender):
// decaying histograms with a 24 h half-life, buckets from 0.01 cores / 10 MB growing by 5 %;
// CPU: one usage sample per minute of a run; memory: the peak of each run; target = P90 of each
// histogram + 15 % safety margin, at least 25 millicores and 250 MiB; an OOM adds a memory sample
// of max(peak + 100 MiB, peak × 1.2). The target is used as the limit (request = limit).
// Run: build-release/bench/bench_rightsizing
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "analytics/sizing.hpp"

using namespace resmgr::analytics;

namespace {

constexpr double kMiB = 1 << 20;
constexpr std::int64_t kStep = 1800; // one run of each type every 30 min
constexpr int kRuns = 200;
constexpr int kDoublesAt = 100;

struct TrueRun {
    std::string type;
    std::int64_t start = 0;
    double seconds = 0, cores = 0, peak = 0; // what the work really needs
};

struct Limits {
    double cores = 0, memory = 0;
};

std::vector<TrueRun> trace(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> noise(0, 1);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<TrueRun> runs;
    for (int i = 0; i < kRuns; ++i) {
        const std::int64_t t = 1'800'000'000 + i * kStep;
        auto add = [&](const char* type, double seconds, double cores, double peak) {
            runs.push_back({type, t, seconds, std::max(0.01, cores), std::max(8 * kMiB, peak)});
        };
        add("steady", 600 * (1 + 0.05 * noise(rng)), 1.0 * (1 + 0.05 * noise(rng)), 800 * kMiB * (1 + 0.03 * noise(rng)));
        add("bursty", 300 * (1 + 0.2 * u(rng)), u(rng) < 0.2 ? 3.0 : 0.5 * (1 + 0.1 * noise(rng)), 500 * kMiB * (1 + 0.1 * noise(rng)));
        add("heavy_tailed", 900, 1.5 * (1 + 0.05 * noise(rng)), 600 * kMiB * std::exp(0.35 * noise(rng)));
        add("growing", 600, 0.8 + 0.005 * i, (400 + 2.0 * i) * kMiB * (1 + 0.02 * noise(rng)));
        add("short", 2 + 8 * u(rng), 0.3 * (1 + 0.1 * noise(rng)), 60 * kMiB * (1 + 0.05 * noise(rng)));
        const double grown = i >= kDoublesAt ? 2.0 : 1.0;
        add("doubling", 600, grown * (1 + 0.05 * noise(rng)), grown * 1024 * kMiB * (1 + 0.03 * noise(rng)));
    }
    return runs;
}

// What users declare: round, generous numbers, fixed for good.
Limits declared(const std::string& type) {
    static const std::map<std::string, Limits> sizes{
        {"steady", {2, 2048 * kMiB}}, {"bursty", {4, 1024 * kMiB}},   {"heavy_tailed", {2, 2048 * kMiB}},
        {"growing", {2, 1024 * kMiB}}, {"short", {1, 512 * kMiB}},    {"doubling", {2, 2048 * kMiB}},
    };
    return sizes.at(type);
}

// VPA's decaying histogram (util/decaying_histogram.go): exponential buckets, sample weights
// growing as 2^(t / half-life) from a reference time, so that old samples count less.
class DecayingHistogram {
public:
    DecayingHistogram(double first_bucket, double max_value) : first_(first_bucket) {
        for (double b = first_bucket; b < max_value; b *= kRatio) bounds_.push_back(b);
        weights_.assign(bounds_.size() + 1, 0);
    }
    void add(double value, double weight, std::int64_t t) {
        weights_[bucket(value)] += weight * std::exp2(static_cast<double>(t - kReference) / kHalfLife);
    }
    std::optional<double> percentile(double p) const {
        double total = 0;
        for (double w : weights_) total += w;
        if (total <= 0) return std::nullopt;
        double seen = 0;
        for (std::size_t i = 0; i < weights_.size(); ++i) {
            seen += weights_[i];
            if (seen >= p * total) return i < bounds_.size() ? bounds_[i] : bounds_.back() * kRatio; // the bucket's upper end
        }
        return bounds_.back();
    }

private:
    static constexpr double kRatio = 1.05;
    static constexpr double kHalfLife = 24 * 3600;
    static constexpr std::int64_t kReference = 1'800'000'000;
    std::size_t bucket(double v) const {
        const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
        return static_cast<std::size_t>(it - bounds_.begin());
    }
    double first_;
    std::vector<double> bounds_;
    std::vector<double> weights_;
};

class Vpa {
public:
    Vpa() : cpu_(0.01, 1000), memory_(10e6, 1e12) {}
    void observe(const TrueRun& run, const Limits& limits, bool oom) {
        const std::int64_t end = run.start + static_cast<std::int64_t>(run.seconds);
        const double used = std::min(run.cores, limits.cores);
        for (double s = 0; s < run.seconds; s += 60) cpu_.add(used, 1, run.start + static_cast<std::int64_t>(s));
        if (oom) {
            const double at = limits.memory;
            memory_.add(std::max(at + 100 * kMiB, at * 1.2), 1, end);
        } else {
            memory_.add(run.peak, 1, end);
        }
        seen_ = true;
    }
    std::optional<Limits> size() const {
        if (!seen_) return std::nullopt;
        return Limits{std::max(0.025, *cpu_.percentile(0.9) * 1.15), std::max(250 * kMiB, *memory_.percentile(0.9) * 1.15)};
    }

private:
    DecayingHistogram cpu_, memory_;
    bool seen_ = false;
};

class Resmgr {
public:
    void observe(const TrueRun& run, const Limits& limits, bool oom) {
        RunRecord r;
        r.allocation_id = "run" + std::to_string(runs_.size());
        r.workflow_type = run.type;
        r.requested_cpu_cores = limits.cores;
        r.requested_memory_bytes = static_cast<std::uint64_t>(limits.memory);
        r.started_at = run.start;
        r.wall_seconds = run.seconds;
        r.ended_at = run.start + static_cast<std::int64_t>(std::ceil(run.seconds));
        r.cpu_seconds = std::min(run.cores, limits.cores) * run.seconds;
        r.memory_peak_bytes = static_cast<std::uint64_t>(std::min(run.peak, limits.memory));
        r.outcome = oom ? RunOutcome::oom_killed : RunOutcome::completed;
        runs_.push_back(r);
    }
    std::optional<Limits> size(std::int64_t now) const {
        const Sizing s = recommend_size(runs_, now);
        if (!s.cpu_cores || !s.memory_bytes) return std::nullopt;
        return Limits{*s.cpu_cores, static_cast<double>(*s.memory_bytes)};
    }

private:
    std::vector<RunRecord> runs_;
};

struct Tally {
    double mem_limit = 0, mem_used = 0, cpu_limit = 0, cpu_used = 0;
    int runs = 0, ooms = 0;
    int doubling_uncovered = 0; // runs of the doubled type, from its change, before one fits
    bool doubling_covered = false;
    double mem_slack() const { return (mem_limit - mem_used) / mem_limit; }
    double cpu_slack() const { return (cpu_limit - cpu_used) / cpu_limit; }
    double oom_share() const { return static_cast<double>(ooms) / runs; }
};

void account(Tally& t, const TrueRun& run, const Limits& l, int index_in_type) {
    const bool oom = run.peak > l.memory;
    t.runs++;
    t.ooms += oom;
    t.mem_limit += l.memory;
    t.mem_used += std::min(run.peak, l.memory);
    t.cpu_limit += l.cores * run.seconds;
    t.cpu_used += std::min(run.cores, l.cores) * run.seconds;
    if (run.type == "doubling" && index_in_type >= kDoublesAt && !t.doubling_covered) {
        if (oom) t.doubling_uncovered++;
        else t.doubling_covered = true;
    }
}

struct Result {
    Tally declared, vpa, resmgr;
    std::map<std::string, Tally> vpa_by_type, resmgr_by_type; // where the slack and the OOMs are
};

Result replay(std::uint64_t seed) {
    Result out;
    std::map<std::string, Vpa> vpa;
    std::map<std::string, Resmgr> ours;
    std::map<std::string, int> index;
    for (const TrueRun& run : trace(seed)) {
        const int i = index[run.type]++;
        const Limits d = declared(run.type);
        account(out.declared, run, d, i);
        const Limits v = vpa[run.type].size().value_or(d);
        account(out.vpa, run, v, i);
        account(out.vpa_by_type[run.type], run, v, i);
        vpa[run.type].observe(run, v, run.peak > v.memory);
        const Limits r = ours[run.type].size(run.start).value_or(d);
        account(out.resmgr, run, r, i);
        account(out.resmgr_by_type[run.type], run, r, i);
        ours[run.type].observe(run, r, run.peak > r.memory);
    }
    return out;
}

void print(const char* title, const Result& r) {
    std::printf("%s\n", title);
    std::printf("  %-10s %14s %14s %14s %22s\n", "sizer", "memory slack", "CPU slack", "OOM-killed", "runs to react (x2)");
    auto row = [&](const char* name, const Tally& t) {
        std::printf("  %-10s %13.1f%% %13.1f%% %12.2f%% (%d/%d) %10d%s\n", name, 100 * t.mem_slack(), 100 * t.cpu_slack(), 100 * t.oom_share(), t.ooms,
                    t.runs, t.doubling_uncovered, t.doubling_covered ? "" : " (never)");
    };
    row("declared", r.declared);
    row("VPA", r.vpa);
    row("resmgr", r.resmgr);
    std::printf("  resmgr / VPA: memory slack %.2fx, CPU slack %.2fx, OOM-killed runs %d vs %d\n", r.resmgr.mem_slack() / r.vpa.mem_slack(),
                r.resmgr.cpu_slack() / r.vpa.cpu_slack(), r.resmgr.ooms, r.vpa.ooms);
    std::printf("  by type, memory slack / OOM-killed runs, VPA vs resmgr:");
    for (const auto& [type, t] : r.resmgr_by_type) {
        const Tally& v = r.vpa_by_type.at(type);
        std::printf(" %s %.0f%%/%d vs %.0f%%/%d;", type.c_str(), 100 * v.mem_slack(), v.ooms, 100 * t.mem_slack(), t.ooms);
    }
    std::printf("\n");
    const bool met = r.resmgr.mem_slack() <= 0.20 && r.resmgr.oom_share() <= 0.005 && r.resmgr.ooms <= r.vpa.ooms && r.resmgr.doubling_uncovered <= 2;
    std::printf("  targets (memory slack <= 20 %%, OOM-killed <= 0.5 %% and never more than VPA, react <= 2 runs): %s\n\n", met ? "met" : "NOT met");
}

} // namespace

int main() {
    std::printf("Right-sizing replay: %d runs of each of 6 types, one every 30 min; usage of 'doubling' doubles at run %d.\n\n", kRuns, kDoublesAt);
    print("seed 1 (may be looked at while tuning)", replay(1));
    print("seed 2 (held out: never used for tuning)", replay(2));
    return 0;
}
