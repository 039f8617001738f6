// Right-sizing on hand-built histories: steady, bursty, growing, throttled, OOM then recover, a
// 3 s job, too little history; and the back-test's coverage computed from the runs.
#include <gtest/gtest.h>

#include "analytics/sizing.hpp"

namespace resmgr::analytics {
namespace {

constexpr std::uint64_t kMiB = 1ULL << 20;
constexpr std::int64_t kT0 = 1'800'000'000;

RunRecord run(std::int64_t ended, double seconds, double cores, std::uint64_t peak, std::uint64_t limit = 4096 * kMiB) {
    RunRecord r;
    r.allocation_id = "a" + std::to_string(ended);
    r.workflow_type = "build";
    r.requested_cpu_cores = 4;
    r.requested_memory_bytes = limit;
    r.started_at = ended - static_cast<std::int64_t>(seconds);
    r.ended_at = ended;
    r.wall_seconds = seconds;
    r.cpu_seconds = cores * seconds;
    r.memory_peak_bytes = peak;
    return r;
}

std::vector<RunRecord> steady(int n, double cores, std::uint64_t peak) {
    std::vector<RunRecord> runs;
    for (int i = 0; i < n; ++i) runs.push_back(run(kT0 + i * 600, 300, cores, peak));
    return runs;
}

TEST(Sizing, ASteadyTypeGetsItsUsagePlusTheMargin) {
    auto runs = steady(10, 1.0, 500 * kMiB);
    Sizing s = recommend_size(runs, kT0 + 6000);
    ASSERT_TRUE(s.cpu_cores && s.memory_bytes) << s.reason;
    EXPECT_NEAR(*s.cpu_cores, 1.15, 0.001);
    EXPECT_NEAR(static_cast<double>(*s.memory_bytes), 500 * kMiB * 1.15, kMiB);
    EXPECT_EQ(s.cpu_runs, 10u);
    // Replayed: every run from the 4th on fits what the runs before it recommended.
    EXPECT_EQ(s.backtested, 7u);
    EXPECT_DOUBLE_EQ(*s.coverage, 1.0);
    EXPECT_DOUBLE_EQ(*s.oom_risk, 0.0);
    // Slack of the declared 4 cores / 4 GiB against what the runs used, and of the recommendation.
    EXPECT_NEAR(*cpu_slack(runs, 4), 0.75, 1e-9);
    EXPECT_LT(*memory_slack(runs, *s.memory_bytes), 0.14);
}

TEST(Sizing, ABurstyTypeIsSizedForItsBursts) {
    std::vector<RunRecord> runs;
    for (int i = 0; i < 20; ++i) runs.push_back(run(kT0 + i * 600, 300, i % 5 == 0 ? 3.0 : 0.5, (i % 5 == 0 ? 1500 : 400) * kMiB));
    Sizing s = recommend_size(runs, kT0 + 20 * 600);
    // One run in five bursts: memory (P98) covers the burst, CPU (P90) does too (20 % > 10 %).
    EXPECT_GE(*s.memory_bytes, 1500 * kMiB);
    EXPECT_GE(*s.cpu_cores, 3.0);
}

TEST(Sizing, GrowthIsMetWithinOneRun) {
    auto runs = steady(10, 1.0, 500 * kMiB);
    runs.push_back(run(kT0 + 6600, 300, 2.0, 1000 * kMiB)); // the type doubled
    Sizing s = recommend_size(runs, kT0 + 6600);
    EXPECT_GE(*s.cpu_cores, 2.0);
    EXPECT_GE(*s.memory_bytes, 1000 * kMiB);
}

// A run cpu.max held at `limit` cores while its threads wanted `wanted`: it ran the limit and
// stood throttled for the rest, as cpu.stat reports it (throttled time added up over the queues).
RunRecord throttled_run(std::int64_t ended, double limit, double wanted) {
    RunRecord r = run(ended, 300, limit, 500 * kMiB);
    r.requested_cpu_cores = limit;
    r.throttled_seconds = (wanted - limit) * 300;
    return r;
}

TEST(Sizing, AThrottledRunCountsAsTheCoresItWantedSoGrowthIsMetInOneRun) {
    auto runs = steady(10, 1.0, 500 * kMiB);
    runs.push_back(throttled_run(kT0 + 6600, 1.15, 2.0)); // the type doubled under a 1.15-core limit
    Sizing s = recommend_size(runs, kT0 + 6600);
    // What it ran (1.15) plus what it stood throttled (0.85), plus the margin; not 1.15 x 1.15.
    EXPECT_NEAR(*s.cpu_cores, 2.0 * 1.15, 0.001);
    // Replayed, the throttled run did not fit the size it was given.
    EXPECT_LT(*s.coverage, 1.0);
}

TEST(Sizing, AThrottledRunCountsAtMostThrottleBumpTimesWhatItRan) {
    auto runs = steady(10, 1.0, 500 * kMiB);
    // Threads queued on 16 CPUs: throttled time reads as 10 cores denied; it counts as 2 x 1.15.
    runs.push_back(throttled_run(kT0 + 6600, 1.15, 11.15));
    Sizing s = recommend_size(runs, kT0 + 6600);
    EXPECT_NEAR(*s.cpu_cores, 1.15 * 2.0 * 1.15, 0.001);
    // Still short: throttled again at that size, it grows again (geometrically, never stuck).
    runs.push_back(throttled_run(kT0 + 7200, *s.cpu_cores, 11.15));
    EXPECT_NEAR(*recommend_size(runs, kT0 + 7200).cpu_cores, *s.cpu_cores * 2.0 * 1.15, 0.002);
}

TEST(Sizing, AnOomKillRaisesTheNextSizeAtOnceAndNeverLoops) {
    auto runs = steady(5, 1.0, 500 * kMiB);
    // The type now needs 900 MiB; the run under a 600 MiB limit was killed at its limit.
    RunRecord killed = run(kT0 + 3600, 100, 1.0, 600 * kMiB, 600 * kMiB);
    killed.outcome = RunOutcome::oom_killed;
    killed.oom_kills = 1;
    runs.push_back(killed);
    Sizing after_one = recommend_size(runs, kT0 + 3600);
    EXPECT_GT(*after_one.memory_bytes, 600 * kMiB * 1.5); // above the killed limit, with room
    // Killed again at that size: the next is larger again, never the same.
    RunRecord again = run(kT0 + 4200, 100, 1.0, *after_one.memory_bytes, *after_one.memory_bytes);
    again.outcome = RunOutcome::oom_killed;
    runs.push_back(again);
    Sizing after_two = recommend_size(runs, kT0 + 4200);
    EXPECT_GT(*after_two.memory_bytes, *after_one.memory_bytes);
    // Then runs at the raised size succeed with their real peak: the size settles above it.
    for (int i = 0; i < 3; ++i) runs.push_back(run(kT0 + 4800 + i * 600, 300, 1.0, 900 * kMiB));
    Sizing recovered = recommend_size(runs, kT0 + 6600);
    EXPECT_GE(*recovered.memory_bytes, 900 * kMiB);
    EXPECT_GT(*recovered.oom_risk, 0.0); // the back-test saw the two kills
}

TEST(Sizing, AThreeSecondJobCountsAndGetsNoCoarseFloor) {
    std::vector<RunRecord> runs;
    for (int i = 0; i < 5; ++i) runs.push_back(run(kT0 + i * 10, 3, 0.5, 24 * kMiB));
    Sizing s = recommend_size(runs, kT0 + 60);
    ASSERT_TRUE(s.cpu_cores && s.memory_bytes) << s.reason;
    EXPECT_NEAR(*s.cpu_cores, 0.575, 0.001);
    EXPECT_LT(*s.memory_bytes, 32 * kMiB); // not VPA's 250 MiB floor
}

TEST(Sizing, TooLittleHistorySaysHowMuchThereIsAndIsNeeded) {
    auto runs = steady(2, 1.0, 500 * kMiB);
    runs[1].memory_peak_bytes.reset();
    Sizing s = recommend_size(runs, kT0 + 3600);
    EXPECT_FALSE(s.cpu_cores);
    EXPECT_FALSE(s.memory_bytes);
    EXPECT_EQ(s.runs_needed, 3u);
    EXPECT_EQ(s.cpu_runs, 2u);
    EXPECT_EQ(s.memory_runs, 1u);
    EXPECT_NE(s.reason.find("2 run(s) with measured CPU and 1 with a measured memory peak; 3 needed"), std::string::npos) << s.reason;
    EXPECT_FALSE(s.coverage);
    EXPECT_TRUE(recommend_size({}, kT0).reason.find("0 run(s)") != std::string::npos);
}

TEST(Sizing, OldRunsWeighLessThanNewOnes) {
    // Five days ago the type used 2 cores; for the last hour, 0.5.
    std::vector<RunRecord> runs;
    for (int i = 0; i < 10; ++i) runs.push_back(run(kT0 + i * 60, 50, 2.0, 500 * kMiB));
    for (int i = 0; i < 10; ++i) runs.push_back(run(kT0 + 5 * 86400 + i * 300, 250, 0.5, 500 * kMiB));
    Sizing s = recommend_size(runs, kT0 + 5 * 86400 + 3000);
    EXPECT_LT(*s.cpu_cores, 1.0); // five half-lives: the old runs weigh 1/32 each, 3 % in all
}

} // namespace
} // namespace resmgr::analytics
