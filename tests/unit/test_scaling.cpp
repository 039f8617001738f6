// scale's planner on struct literals: up capped by free capacity, down floored by live usage,
// auto to the recommendation, uncapped memory left alone.
#include <gtest/gtest.h>

#include "analytics/scaling.hpp"

namespace resmgr::analytics {
namespace {

constexpr std::uint64_t kMiB = 1ULL << 20;

ScaleInput two_cores_one_gib() {
    ScaleInput in;
    in.cpu_cores = 2;
    in.memory_bytes = 1024 * kMiB;
    in.cpu_free = 10;
    in.memory_free = 8192 * kMiB;
    return in;
}

TEST(Scaling, UpGrowsEachLimitByTheFactor) {
    const ScalePlan p = plan_scale(two_cores_one_gib(), ScaleDirection::up, ScaleResource::all);
    EXPECT_DOUBLE_EQ(p.cpu_cores, 3);
    EXPECT_EQ(p.memory_bytes, 1536 * kMiB);
    ASSERT_EQ(p.changes.size(), 2u);
    EXPECT_EQ(p.changes[0], "cpu_cores 2 -> 3 (up)");
}

TEST(Scaling, UpStopsAtWhatTheNodeHasFree) {
    ScaleInput in = two_cores_one_gib();
    in.cpu_free = 0.25;
    in.memory_free = 0;
    const ScalePlan p = plan_scale(in, ScaleDirection::up, ScaleResource::all);
    EXPECT_DOUBLE_EQ(p.cpu_cores, 2.25);
    EXPECT_EQ(p.memory_bytes, 1024 * kMiB);
    ASSERT_EQ(p.kept.size(), 1u);
    EXPECT_EQ(p.kept[0], "memory: the node has none free");
}

TEST(Scaling, DownNeverGoesBelowWhatTheGroupUsesNowPlusTheMargin) {
    ScaleInput in = two_cores_one_gib();
    in.cpu_used = 1.9;
    in.memory_used = 800 * kMiB;
    const ScalePlan p = plan_scale(in, ScaleDirection::down, ScaleResource::all);
    // CPU: 2 / 1.5 = 1.33 would starve a group using 1.9: kept.
    EXPECT_DOUBLE_EQ(p.cpu_cores, 2);
    // Memory: 1024 / 1.5 = 683 MiB is below 800 MiB in use; floored at 800 x 1.15 = 920 MiB.
    EXPECT_NEAR(static_cast<double>(p.memory_bytes), 920 * kMiB, 4096);
    EXPECT_EQ(p.memory_bytes % 4096, 0u);
    ASSERT_EQ(p.changes.size(), 1u);
    ASSERT_EQ(p.kept.size(), 1u);
    EXPECT_EQ(p.kept[0], "cpu_cores: already at what the group uses now plus the margin");
}

TEST(Scaling, DownOfAnIdleGroupDividesByTheFactorAndStopsAtTheFloors) {
    ScaleInput in = two_cores_one_gib();
    in.cpu_cores = 0.012;
    in.cpu_used = 0;
    in.memory_used = 0;
    ScaleOptions o;
    o.factor = 4;
    const ScalePlan p = plan_scale(in, ScaleDirection::down, ScaleResource::all, o);
    EXPECT_DOUBLE_EQ(p.cpu_cores, 0.01);
    EXPECT_EQ(p.memory_bytes, 256 * kMiB);
}

TEST(Scaling, AutoTakesTheRecommendationAndSaysWhatItCannotSize) {
    ScaleInput in = two_cores_one_gib();
    in.recommended_memory = 300 * kMiB;
    in.memory_used = 100 * kMiB;
    const ScalePlan p = plan_scale(in, ScaleDirection::automatic, ScaleResource::all);
    EXPECT_DOUBLE_EQ(p.cpu_cores, 2);
    EXPECT_EQ(p.memory_bytes, 300 * kMiB);
    ASSERT_EQ(p.kept.size(), 1u);
    EXPECT_EQ(p.kept[0], "cpu_cores: too few recorded runs to size it");
}

TEST(Scaling, UncappedMemoryIsNeverCappedAndOneResourceLeavesTheOther) {
    ScaleInput in = two_cores_one_gib();
    in.memory_bytes = 0;
    const ScalePlan all = plan_scale(in, ScaleDirection::up, ScaleResource::all);
    EXPECT_EQ(all.memory_bytes, 0u);
    EXPECT_EQ(all.kept.at(0), "memory: uncapped; scale does not add a cap (reallocate does)");
    const ScalePlan cpu_only = plan_scale(two_cores_one_gib(), ScaleDirection::up, ScaleResource::cpu);
    EXPECT_EQ(cpu_only.memory_bytes, 1024 * kMiB);
    EXPECT_EQ(cpu_only.changes.size(), 1u);
}

TEST(Scaling, WordsAreParsedStrictly) {
    EXPECT_EQ(scale_direction_from_string("auto"), ScaleDirection::automatic);
    EXPECT_FALSE(scale_direction_from_string("Up"));
    EXPECT_EQ(scale_resource_from_string(""), ScaleResource::all);
    EXPECT_FALSE(scale_resource_from_string("disk"));
}

} // namespace
} // namespace resmgr::analytics
