// Run records from ended allocations: the outcome from the end's reason and the OOM count, the
// figures from the final counters, and what was not measured left unmeasured.
#include <gtest/gtest.h>

#include "lifecycle/run_records.hpp"

namespace resmgr::lifecycle {
namespace {

using nlohmann::json;
using analytics::RunOutcome;

Allocation ended() {
    Allocation a;
    a.allocation_id = "alloc_1";
    a.workflow_id = "wf";
    a.workflow_type = "build";
    a.owner.uid = 1000;
    a.priority.value = 75;
    a.resources.cpu_cores = 2;
    a.resources.memory_bytes = 4 * kGiB;
    a.timestamp = TimePoint(std::chrono::seconds(1'800'000'000));
    return a;
}

const TimePoint kEnd = TimePoint(std::chrono::seconds(1'800'000'000) + std::chrono::milliseconds(1500));

TEST(RunRecords, FiguresComeFromTheFinalCounters) {
    json counters = {{"oom_kills", 0},
                     {"usage", {{"cpu_seconds", 2.25}, {"memory_peak_bytes", 512u << 20}, {"throttled_usec", 300000}}},
                     {"kernel", {{"processes", {{"execs", 7}}}, {"tool_instances_started", {{"bash_shells", 2}}},
                                 {"runq_latency", {{"p50_us", 12.0}, {"p99_us", 900.0}}}}}};
    auto r = run_record_of(ended(), "completed: its group is empty", counters, kEnd);
    EXPECT_EQ(r.outcome, RunOutcome::completed);
    EXPECT_EQ(r.workflow_type, "build");
    EXPECT_EQ(r.owner_uid, 1000u);
    EXPECT_EQ(r.priority, 75);
    EXPECT_DOUBLE_EQ(r.duration_seconds(), 1.5); // not rounded to whole seconds
    EXPECT_DOUBLE_EQ(*r.cpu_seconds, 2.25);
    EXPECT_EQ(*r.memory_peak_bytes, 512u << 20);
    EXPECT_DOUBLE_EQ(*r.throttled_seconds, 0.3);
    EXPECT_EQ(*r.execs, 7u);
    EXPECT_DOUBLE_EQ(*r.runq_latency_p99_us, 900);
    EXPECT_EQ(r.tool_counts_json, R"({"bash_shells":2})");
}

TEST(RunRecords, TheSampledPeakStandsInWhereTheKernelKeepsNone) {
    json counters = {{"usage", {{"memory_peak_bytes", nullptr}, {"memory_peak_sampled_bytes", 300u << 20}}}};
    auto r = run_record_of(ended(), "released", counters, kEnd);
    EXPECT_EQ(*r.memory_peak_bytes, 300u << 20);
    EXPECT_EQ(r.outcome, RunOutcome::released);
}

TEST(RunRecords, WhatWasNotMeasuredStaysUnmeasured) {
    auto r = run_record_of(ended(), "released", json::object(), kEnd);
    EXPECT_FALSE(r.cpu_seconds);
    EXPECT_FALSE(r.memory_peak_bytes);
    EXPECT_FALSE(r.oom_kills);
    EXPECT_FALSE(r.execs);
    EXPECT_TRUE(r.tool_counts_json.empty());
}

// A wrapper's exit status after the run ended: nonzero fails a completed run; an OOM kill or an
// expiry keeps its outcome.
TEST(RunRecords, ALaterExitStatusFailsOnlyACompletedRun) {
    auto completed = run_record_of(ended(), "completed: its group is empty", json::object(), kEnd);
    analytics::set_exit(completed, 0);
    EXPECT_EQ(completed.outcome, RunOutcome::completed);
    EXPECT_EQ(completed.exit_code, 0);
    analytics::set_exit(completed, 2);
    EXPECT_EQ(completed.outcome, RunOutcome::failed);
    EXPECT_EQ(completed.exit_code, 2);
    auto oom = run_record_of(ended(), "failed", {{"oom_kills", 1}}, kEnd);
    analytics::set_exit(oom, 137);
    EXPECT_EQ(oom.outcome, RunOutcome::oom_killed);
    auto expired = run_record_of(ended(), "expired", json::object(), kEnd);
    analytics::set_exit(expired, 143);
    EXPECT_EQ(expired.outcome, RunOutcome::expired);
}

TEST(RunRecords, AnOomKillMakesTheRunOomKilledWhateverItsEnd) {
    EXPECT_EQ(run_record_of(ended(), "failed", {{"oom_kills", 1}}, kEnd).outcome, RunOutcome::oom_killed);
    EXPECT_EQ(run_record_of(ended(), "completed: its group is empty", {{"oom_kills", 2}}, kEnd).outcome, RunOutcome::oom_killed);
    EXPECT_EQ(run_record_of(ended(), "expired", json::object(), kEnd).outcome, RunOutcome::expired);
    EXPECT_EQ(run_record_of(ended(), "failed", {{"oom_kills", 0}}, kEnd).outcome, RunOutcome::failed);
}

} // namespace
} // namespace resmgr::lifecycle
