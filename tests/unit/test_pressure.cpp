// The pressure responder's planner on struct-literal scenarios: thresholds and hysteresis, which
// victim, which step, the hard floor, undo order, advisory and off modes; and its policy section.
#include <gtest/gtest.h>

#include "core/pressure.hpp"
#include "resmgr/protocol.hpp"

using namespace resmgr;
using namespace resmgr::core;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const TimePoint T0 = TimePoint(std::chrono::seconds(1'800'000'000));
constexpr std::uint64_t MiB = 1024 * 1024;

Policy::PressureResponse rules() { // the default rules, acting
    auto r = Policy::defaults().pressure_response;
    r.mode = "enforce";
    return r;
}

PressureGroup group(std::string id, int priority, std::uint64_t memory_mib, double cores = 0.5) {
    PressureGroup g;
    g.allocation_id = std::move(id);
    g.priority = priority;
    g.memory_current = memory_mib * MiB;
    g.cpu_cores_used = cores;
    g.memory_growth_bytes_per_s = 1.0 * MiB; // still growing: a memory freeze and a kill may reach it
    return g;
}

// A medium workflow that ranks last among the victims (priority 60, 10 MiB, not growing): the one
// a memory pause never reaches while the others are paused, so the tests' victims behave as alone.
PressureGroup keeper() {
    auto g = group("keeper", 60, 10);
    g.memory_growth_bytes_per_s = 0;
    return g;
}

// 16 GiB node with `available_percent` of it available and memory PSI some at `some`.
PressureSample memory_sample(double some, double available_percent = 50) {
    PressureSample s;
    s.memory_some = some;
    s.memory_full = 0;
    s.memory_total_bytes = 16 * kGiB;
    s.memory_available_bytes = static_cast<std::uint64_t>(16.0 * kGiB * available_percent / 100);
    return s;
}

struct Responder {
    Policy::PressureResponse policy = rules();
    std::vector<PressureGroup> groups;
    PressureState state;
    // One pass at T0 + t; keeps the state.
    PressurePlan at(Millis t, const PressureSample& sample) {
        auto plan = plan_pressure(sample, groups, policy, state, T0 + t);
        state = plan.state;
        return plan;
    }
};

std::vector<std::string> targets(const PressurePlan& plan, PressureAction action, bool undo = false) {
    std::vector<std::string> out;
    for (auto& s : plan.steps)
        if (s.action == action && s.undo == undo) out.push_back(s.allocation_id);
    return out;
}

} // namespace

// ---- thresholds ----

TEST(PressureSignal, RaisedOnlyAfterHoldingPastTheThreshold) {
    auto rule = rules().signals.at("memory_some"); // 20 %, hold 1s
    SignalState s = observe_signal(rule, 30.0, {}, T0);
    EXPECT_FALSE(s.raised);
    s = observe_signal(rule, 30.0, s, T0 + 500ms);
    EXPECT_FALSE(s.raised);
    s = observe_signal(rule, 12.0, s, T0 + 900ms); // dipped under: the hold starts over
    s = observe_signal(rule, 30.0, s, T0 + 1200ms);
    EXPECT_FALSE(s.raised);
    s = observe_signal(rule, 30.0, s, T0 + 2200ms);
    EXPECT_TRUE(s.raised);
    EXPECT_EQ(*s.raised_at, T0 + 2200ms);
}

TEST(PressureSignal, HysteresisDoesNotFlap) {
    auto rule = rules().signals.at("memory_some"); // raise 20, clear 5 held 10s
    SignalState s = observe_signal(rule, 25.0, {}, T0);
    s = observe_signal(rule, 25.0, s, T0 + 1s);
    ASSERT_TRUE(s.raised);
    // Hovering around the threshold and dipping under clear for short spells never clears it.
    for (int i = 2; i < 40; ++i) {
        double v = (i % 3 == 0) ? 4.0 : (i % 3 == 1 ? 15.0 : 21.0);
        s = observe_signal(rule, v, s, T0 + Seconds(i));
        EXPECT_TRUE(s.raised) << "second " << i << " value " << v;
    }
    // Under clear for clear_hold: cleared, and a single value past the threshold does not re-raise.
    for (int i = 40; i <= 50; ++i) s = observe_signal(rule, 3.0, s, T0 + Seconds(i));
    EXPECT_FALSE(s.raised);
    s = observe_signal(rule, 30.0, s, T0 + 51s);
    EXPECT_FALSE(s.raised);
}

TEST(PressureSignal, FallingSignalsAndUnknownValues) {
    auto rule = rules().signals.at("memory_available"); // raised at <= 10 %, cleared at >= 15 %
    SignalState s = observe_signal(rule, 8.0, {}, T0);
    s = observe_signal(rule, 8.0, s, T0 + 1s);
    EXPECT_TRUE(s.raised);
    s = observe_signal(rule, 12.0, s, T0 + 30s); // between: stays
    EXPECT_TRUE(s.raised);
    s = observe_signal(rule, std::nullopt, s, T0 + 31s); // the source went away: counts as good
    s = observe_signal(rule, std::nullopt, s, T0 + 41s);
    EXPECT_FALSE(s.raised);
    auto off = rule;
    off.enabled = false;
    EXPECT_FALSE(observe_signal(off, 1.0, {}, T0 + 1h).raised);
}

// ---- ranking ----

TEST(PressureRanking, LowestPriorityThenLargestOrFastestGrowing) {
    std::vector<PressureGroup> groups{group("medium-big", 50, 4000), group("low-small", 10, 100), group("low-big", 10, 3000),
                                      group("critical", 95, 9000), group("high", 80, 9000)};
    auto grower = group("low-growing", 10, 2500);
    grower.memory_growth_bytes_per_s = 100.0 * MiB; // 3.5 GiB in 10 s
    groups.push_back(grower);
    auto ranked = rank_victims(groups, rules(), "memory");
    std::vector<std::string> ids;
    for (auto* g : ranked) ids.push_back(g->allocation_id);
    EXPECT_EQ(ids, (std::vector<std::string>{"low-growing", "low-big", "low-small", "medium-big"}));
}

TEST(PressureRanking, NeverCriticalHighOnlyWhenAllowed) {
    std::vector<PressureGroup> groups{group("critical", 90, 9000), group("high", 75, 9000)};
    EXPECT_TRUE(rank_victims(groups, rules(), "memory").empty());
    auto policy = rules();
    policy.bands = {PriorityBand::low, PriorityBand::medium, PriorityBand::high, PriorityBand::critical};
    auto ranked = rank_victims(groups, policy, "cpu");
    ASSERT_EQ(ranked.size(), 1u); // critical is refused even if a band list names it
    EXPECT_EQ(ranked[0]->allocation_id, "high");
}

TEST(PressureRanking, OnlyActiveGroups) {
    auto paused = group("paused", 10, 5000);
    paused.status = AllocationStatus::paused;
    EXPECT_TRUE(rank_victims({paused}, rules(), "memory").empty());
}

// ---- whose stall it is ----

TEST(PressureSignal, AGroupAtItsOwnMemoryMaxIsNotNodePressure) {
    // One hog at 48 of its own 50 MiB stalls 60 %, and so does the node: the kernel reclaims the
    // hog and will OOM-kill it at its limit, as the limit asks. Nothing else stalls.
    PressureGroup hog = group("hog", 10, 48);
    hog.memory_max = 50 * MiB;
    hog.memory_pressure_some = 60;
    PressureGroup calm = group("calm", 10, 500);
    calm.memory_pressure_some = 0;
    PressureState none;
    auto values = signal_values(memory_sample(60), {hog, calm}, rules(), none);
    EXPECT_EQ(values.at("memory_some"), 0);
    Responder r;
    r.groups = {hog, calm};
    EXPECT_TRUE(r.at(0ms, memory_sample(60)).steps.empty());
    EXPECT_TRUE(r.at(5s, memory_sample(60)).steps.empty());
    EXPECT_FALSE(r.state.signals.at("memory_some").raised);
    // Without its own limit the same stall is the node's: the hog's memory.high is lowered.
    r.groups[0].memory_max.reset();
    EXPECT_EQ(signal_values(memory_sample(60), r.groups, rules(), none).at("memory_some"), 60);
    r.at(6s, memory_sample(60));
    EXPECT_EQ(targets(r.at(7s, memory_sample(60)), PressureAction::memory_high), std::vector<std::string>{"calm"}); // the larger
}

TEST(PressureSignal, AProtectedGroupsStallStillCountsBesideASelfLimitedOne) {
    PressureGroup hog = group("hog", 10, 95);
    hog.memory_high = 100 * MiB; // within 10 % of its own memory.high
    hog.memory_pressure_some = 70;
    PressureGroup probe = group("probe", 95, 50);
    probe.memory_pressure_some = 35;
    PressureState none;
    auto values = signal_values(memory_sample(70), {hog, probe}, rules(), none);
    EXPECT_EQ(values.at("memory_some"), 35); // the probe's, still past the 20 % threshold
    // The node stalls 80 %: at least 10 points of it are not the hog's (the probe's 35 are more).
    EXPECT_EQ(signal_values(memory_sample(80), {hog, probe}, rules(), none).at("memory_some"), 35);
    // With the probe calm, what the hog leaves unexplained is what counts: 30 points.
    probe.memory_pressure_some = 0;
    EXPECT_EQ(signal_values(memory_sample(100), {hog, probe}, rules(), none).at("memory_some"), 30);
}

TEST(PressureSignal, TwoSqueezedGroupsStallingInTurnExplainTheNodesStall) {
    // Each squeezed hog stalls half the time, one after the other: the node stalls all the time.
    PressureGroup a = group("hog-a", 10, 200), b = group("hog-b", 10, 200);
    a.memory_pressure_some = 50;
    b.memory_pressure_some = 50;
    PressureState squeezed;
    for (const char* id : {"hog-a", "hog-b"}) {
        PressureStep step;
        step.action = PressureAction::memory_high;
        step.resource = "memory";
        step.allocation_id = id;
        squeezed.held.push_back(step);
    }
    EXPECT_EQ(signal_values(memory_sample(100), {a, b}, rules(), squeezed).at("memory_some"), 0);
    // A calm critical probe beside them changes nothing; a stalling one counts in full.
    PressureGroup probe = group("probe", 95, 20);
    probe.memory_pressure_some = 0;
    EXPECT_EQ(signal_values(memory_sample(100), {a, b, probe}, rules(), squeezed).at("memory_some"), 0);
    probe.memory_pressure_some = 30;
    EXPECT_EQ(signal_values(memory_sample(100), {a, b, probe}, rules(), squeezed).at("memory_some"), 30);
}

TEST(PressureSignal, TheRespondersOwnSqueezeIsNotPressure) {
    // A hog whose memory.high the responder lowered stalls by design; once the others calm down,
    // that stall must not hold the signal up (the CPU ladder has the same rule: cpu_protected).
    PressureGroup hog = group("hog", 10, 2000);
    hog.memory_pressure_some = 50;
    PressureStep squeeze;
    squeeze.action = PressureAction::memory_high;
    squeeze.resource = "memory";
    squeeze.allocation_id = "hog";
    PressureState squeezed;
    squeezed.held = {squeeze};
    EXPECT_TRUE(self_limited(hog, squeezed));
    EXPECT_FALSE(self_limited(hog, PressureState{}));
    EXPECT_EQ(signal_values(memory_sample(50), {hog}, rules(), squeezed).at("memory_some"), 0);
    EXPECT_EQ(signal_values(memory_sample(50), {hog}, rules(), PressureState{}).at("memory_some"), 50);
}

// ---- the memory ladder ----

TEST(PressurePlan, MemoryLadderPausesBeforeAnythingIsKilled) {
    Responder r;
    r.groups = {group("low-a", 10, 3000), group("low-b", 20, 2000), group("medium", 50, 1000), group("critical", 95, 6000)};
    r.groups.push_back(keeper());
    auto hot = memory_sample(40);
    hot.memory_reclaim = true;
    EXPECT_TRUE(r.at(0ms, hot).steps.empty()); // past the threshold, not yet held for 1 s
    // Held: memory.high of the first victim lowered to 80 % of its use, with reclaim; one victim a
    // pass (a squeeze is a pause for anonymous memory: the others go on and finish).
    auto plan = r.at(1s, hot);
    EXPECT_EQ(targets(plan, PressureAction::memory_high), std::vector<std::string>{"low-a"});
    ASSERT_EQ(plan.steps.size(), 1u);
    EXPECT_DOUBLE_EQ(*plan.steps[0].value, std::floor(3000.0 * MiB * 0.8));
    EXPECT_EQ(plan.steps[0].reclaim_bytes, 3000 * MiB - static_cast<std::uint64_t>(std::floor(3000.0 * MiB * 0.8)));
    EXPECT_FALSE(plan.steps[0].previous.has_value());
    EXPECT_EQ(plan.steps[0].signal, "memory_some");
    EXPECT_EQ(*plan.steps[0].seen, 40);
    EXPECT_EQ(plan.steps[0].threshold, 20);
    EXPECT_EQ(plan.steps[0].signal_crossed, T0); // past the threshold since the first pass: 1 s to act
    EXPECT_EQ(PressureStep::from_json(plan.steps[0].to_json()).signal_crossed, T0);
    EXPECT_EQ(plan.steps[0].to_json()["time_to_act_ms"], 1000);
    EXPECT_TRUE(plan.steps[0].enforced);
    // Before escalate_after (2 s) nothing more; then the next victims' memory.high, one a pass.
    EXPECT_TRUE(r.at(2500ms, hot).steps.empty());
    EXPECT_EQ(targets(r.at(3s, hot), PressureAction::memory_high), std::vector<std::string>{"low-b"});
    EXPECT_EQ(targets(r.at(5s, hot), PressureAction::memory_high), std::vector<std::string>{"medium"});
    // Then one freeze a pass, lowest priority first.
    EXPECT_EQ(targets(r.at(7s, hot), PressureAction::freeze), std::vector<std::string>{"low-a"});
    EXPECT_EQ(targets(r.at(9s, hot), PressureAction::freeze), std::vector<std::string>{"low-b"});
    EXPECT_EQ(targets(r.at(11s, hot), PressureAction::freeze), std::vector<std::string>{"medium"});
    // Every rung short of kill is taken: with MemAvailable above the floor nothing is killed.
    plan = r.at(13s, hot);
    EXPECT_TRUE(plan.steps.empty());
    ASSERT_FALSE(plan.notes.empty());
    EXPECT_NE(plan.notes[0].find("kill waits"), std::string::npos);
    for (auto& s : r.state.held) EXPECT_NE(s.allocation_id, "critical");
}

TEST(PressurePlan, KillOnlyUnderTheHardFloorAndNotWaiting) {
    Responder r;
    r.groups = {group("low", 10, 3000), group("medium", 50, 5000), group("critical", 95, 6000)};
    r.groups.push_back(keeper());
    // MemAvailable 2 % (floor 3 %): no hold, no wait between rungs, and kill is allowed. So short
    // that squeezing (then freezing) one victim leaves it short: each rung reaches both in a pass.
    auto floor = memory_sample(0, 2);
    EXPECT_EQ(targets(r.at(0ms, floor), PressureAction::memory_high), (std::vector<std::string>{"low", "medium"}));
    EXPECT_EQ(targets(r.at(100ms, floor), PressureAction::freeze), (std::vector<std::string>{"low", "medium"}));
    auto plan = r.at(200ms, floor);
    ASSERT_EQ(targets(plan, PressureAction::kill), std::vector<std::string>{"low"});
    EXPECT_EQ(plan.steps[0].signal, "memory_available");
    EXPECT_EQ(plan.steps[0].threshold, 3);
    EXPECT_NEAR(*plan.steps[0].seen, 2, 1e-6); // bytes rounded in memory_sample
    EXPECT_EQ(targets(r.at(300ms, floor), PressureAction::kill), std::vector<std::string>{"medium"}); // one a pass
    EXPECT_EQ(targets(r.at(400ms, floor), PressureAction::kill), std::vector<std::string>{"keeper"}); // never paused, still a victim
    // The critical group is never killed, even under the floor.
    plan = r.at(500ms, floor);
    EXPECT_TRUE(plan.steps.empty());
}

TEST(PressurePlan, AMemoryFreezeAndAKillNeedAGroupThatStillGrows) {
    Responder r;
    r.groups = {group("low-done", 10, 3000), group("low-growing", 10, 1000)};
    r.groups.push_back(keeper());
    r.groups[0].memory_growth_bytes_per_s = 0; // done growing, or held at its lowered memory.high
    auto floor = memory_sample(0, 2);
    EXPECT_EQ(targets(r.at(0ms, floor), PressureAction::memory_high), (std::vector<std::string>{"low-done", "low-growing"}));
    // The larger group ranks first, but freezing it would stop nothing: the grower is frozen.
    EXPECT_EQ(targets(r.at(100ms, floor), PressureAction::freeze), std::vector<std::string>{"low-growing"});
    // Under the floor with something growing, the kill comes (lowest priority, largest first) ...
    EXPECT_EQ(targets(r.at(200ms, floor), PressureAction::kill), std::vector<std::string>{"low-done"});
    // ... but with nothing growing any more, nothing is about to run out: no kill.
    r.groups = {group("low-growing", 10, 1000)};
    r.groups.push_back(keeper());
    r.groups[0].memory_growth_bytes_per_s = 0;
    auto plan = r.at(300ms, floor);
    EXPECT_TRUE(targets(plan, PressureAction::kill).empty());
}

TEST(PressurePlan, MemoryShortByTheOthersGrowthTakesJustEnoughVictims) {
    // Three hogs growing 40 MiB/s each in a slice capped at 700 MiB with 130 MiB free; one pass
    // (1 s) ahead 10 MiB would be left, under the 10 % (70 MiB) threshold. Pausing one leaves the
    // other two's 80 MiB/s: still short (50 MiB). Pausing two leaves 90 MiB: enough, the third goes on.
    Responder r;
    for (const char* id : {"hog-a", "hog-b", "hog-c"}) {
        r.groups.push_back(group(id, 10, 190));
        r.groups.back().memory_growth_bytes_per_s = 40.0 * MiB;
    }
    PressureSample s;
    s.memory_total_bytes = 700 * MiB;
    s.memory_available_bytes = 130 * MiB;
    s.memory_lookahead = 1000ms;
    s.memory_bound = "/sys/fs/cgroup/resmgr.slice";
    auto plan = r.at(0ms, s);
    EXPECT_EQ(targets(plan, PressureAction::memory_high), (std::vector<std::string>{"hog-a", "hog-b"}));
    EXPECT_EQ(plan.steps[0].signal, "memory_available");
    ASSERT_TRUE(plan.steps[0].signal_crossed);
    EXPECT_EQ(plan.steps[0].to_json()["time_to_act_ms"], 0); // no hold: acted in the pass that saw it
    // With 250 MiB free, a pass of everyone's growth leaves 130 MiB: nothing to do.
    Responder calm;
    calm.groups = r.groups;
    s.memory_available_bytes = 250 * MiB;
    EXPECT_TRUE(calm.at(0ms, s).steps.empty());
}

TEST(PressurePlan, AMemoryPauseNeverReachesTheLastWorkflowStillGoing) {
    // Far short: pausing every hog would be "enough", but then none finishes to give memory back.
    Responder r;
    for (const char* id : {"hog-a", "hog-b", "hog-c"}) {
        r.groups.push_back(group(id, 10, 200));
        r.groups.back().memory_growth_bytes_per_s = 40.0 * MiB;
    }
    auto short_of_memory = memory_sample(0, 5);
    EXPECT_EQ(targets(r.at(0ms, short_of_memory), PressureAction::memory_high), (std::vector<std::string>{"hog-a", "hog-b"}));
    EXPECT_EQ(targets(r.at(3s, short_of_memory), PressureAction::freeze), (std::vector<std::string>{"hog-a", "hog-b"}));
    auto plan = r.at(6s, short_of_memory);
    EXPECT_TRUE(plan.steps.empty());
    for (auto& s : r.state.held) EXPECT_NE(s.allocation_id, "hog-c");
}

TEST(PressureSignal, MemoryAvailableLooksAheadAtTheGroupsGrowth) {
    auto hog = group("hog", 10, 500);
    hog.memory_growth_bytes_per_s = 120.0 * MiB;
    auto sample = memory_sample(0, 12); // 12 % of 16 GiB free now: over the 10 % threshold
    auto now = signal_values(sample, {hog}, rules(), {}).at("memory_available");
    ASSERT_TRUE(now);
    EXPECT_NEAR(*now, 12, 1e-6);
    sample.memory_lookahead = 3000ms; // 360 MiB more within the next pass: 9.8 % left
    auto ahead = signal_values(sample, {hog}, rules(), {}).at("memory_available");
    ASSERT_TRUE(ahead);
    EXPECT_NEAR(*ahead, 12 - 100.0 * 360 / (16 * 1024), 1e-6);
    hog.memory_growth_bytes_per_s = -50.0 * MiB; // shrinking groups do not give credit
    EXPECT_NEAR(*signal_values(sample, {hog}, rules(), {}).at("memory_available"), 12, 1e-6);
}

TEST(PressurePlan, OnlyCriticalGroupsMeansNothingToDo) {
    Responder r;
    r.groups = {group("critical", 95, 12000)};
    auto plan = r.at(0ms, memory_sample(0, 1));
    EXPECT_TRUE(plan.steps.empty());
    ASSERT_FALSE(plan.notes.empty());
    EXPECT_NE(plan.notes.back().find("no allocation in the bands"), std::string::npos);
}

TEST(PressurePlan, HighOnlyWhenThePolicyAllows) {
    Responder r;
    r.groups = {group("high", 80, 3000)};
    r.groups.push_back(keeper());
    r.at(0ms, memory_sample(40));
    EXPECT_TRUE(r.at(1s, memory_sample(40)).steps.empty());
    Responder allowed;
    allowed.policy.bands = {PriorityBand::low, PriorityBand::medium, PriorityBand::high};
    allowed.groups = r.groups;
    allowed.at(0ms, memory_sample(40));
    EXPECT_EQ(targets(allowed.at(1s, memory_sample(40)), PressureAction::memory_high), std::vector<std::string>{"high"});
}

TEST(PressurePlan, UndoInReverseHighestPriorityFirst) {
    Responder r;
    r.groups = {group("low", 10, 3000), group("medium", 50, 2000)};
    r.groups.push_back(keeper());
    r.groups[1].memory_high = 1900 * MiB;
    auto hot = memory_sample(40);
    r.at(0ms, hot);
    r.at(1s, hot); // memory_high low
    r.at(3s, hot); // memory_high medium
    r.at(5s, hot); // freeze low
    r.at(7s, hot); // freeze medium
    ASSERT_EQ(r.state.held.size(), 4u);
    // Pressure falls under the clear level (5 %): held 10 s before anything is given back.
    auto cool = memory_sample(2);
    for (int t = 8; t < 18; ++t) EXPECT_TRUE(r.at(Seconds(t), cool).steps.empty()) << t;
    auto plan = r.at(18s, cool); // cleared: the last rung (freeze) first, highest priority first
    EXPECT_EQ(targets(plan, PressureAction::freeze, true), (std::vector<std::string>{"medium", "low"}));
    EXPECT_TRUE(r.at(18500ms, cool).steps.empty()); // undo_interval 1 s
    plan = r.at(19s, cool);
    EXPECT_EQ(targets(plan, PressureAction::memory_high, true), (std::vector<std::string>{"medium", "low"}));
    // Undo puts back what was there: medium's own memory.high, low's "max".
    ASSERT_EQ(plan.steps.size(), 2u);
    EXPECT_DOUBLE_EQ(*plan.steps[0].value, 1900.0 * MiB);
    EXPECT_FALSE(plan.steps[1].value.has_value());
    EXPECT_TRUE(r.state.held.empty());
    EXPECT_TRUE(r.at(20s, cool).steps.empty());
}

TEST(PressurePlan, NoFlappingAroundTheThreshold) {
    Responder r;
    r.groups = {group("low", 10, 3000)};
    int taken = 0, given_back = 0;
    for (int t = 0; t < 60; ++t) {
        double some = (t % 2) ? 22 : 12; // crosses 20 every other second, never under clear (5)
        for (auto& s : r.at(Seconds(t), memory_sample(some)).steps) (s.undo ? given_back : taken)++;
    }
    EXPECT_EQ(given_back, 0);
    EXPECT_EQ(taken, 0); // never held past the threshold for 1 s
}

TEST(PressurePlan, AdvisoryPlansButEnforcesNothing) {
    Responder r;
    r.policy.mode = "advisory";
    r.groups = {group("low", 10, 3000)};
    r.groups.push_back(keeper());
    r.at(0ms, memory_sample(40));
    auto plan = r.at(1s, memory_sample(40));
    ASSERT_EQ(plan.steps.size(), 1u);
    EXPECT_FALSE(plan.steps[0].enforced);
    plan = r.at(3s, memory_sample(40)); // the ladder still climbs, to say what it would do
    ASSERT_EQ(targets(plan, PressureAction::freeze), std::vector<std::string>{"low"});
    EXPECT_FALSE(plan.steps[0].enforced);
}

TEST(PressurePlan, OffGivesEverythingBack) {
    Responder r;
    r.groups = {group("low", 10, 3000), group("medium", 50, 2000)};
    r.groups.push_back(keeper());
    r.at(0ms, memory_sample(40));
    r.at(1s, memory_sample(40)); // memory_high low
    r.at(3s, memory_sample(40)); // memory_high medium
    r.at(5s, memory_sample(40)); // freeze low
    r.policy.mode = "off";
    auto plan = r.at(6s, memory_sample(40));
    ASSERT_EQ(plan.steps.size(), 3u);
    EXPECT_EQ(plan.steps[0].action, PressureAction::freeze);
    for (auto& s : plan.steps) EXPECT_TRUE(s.undo);
    EXPECT_EQ(targets(plan, PressureAction::memory_high, true), (std::vector<std::string>{"medium", "low"}));
    EXPECT_TRUE(r.state.held.empty());
    EXPECT_TRUE(r.at(7s, memory_sample(40)).steps.empty());
}

TEST(PressurePlan, VanishedAllocationsAreDropped) {
    Responder r;
    r.groups = {group("low", 10, 3000)};
    r.groups.push_back(keeper());
    r.at(0ms, memory_sample(40));
    r.at(1s, memory_sample(40));
    ASSERT_EQ(r.state.held.size(), 1u);
    r.groups.clear();
    auto plan = r.at(2s, memory_sample(2));
    EXPECT_TRUE(r.state.held.empty());
    EXPECT_TRUE(plan.steps.empty());
}

// ---- the CPU ladder ----

TEST(PressurePlan, CpuJudgedByTheProtectedGroupsOnly) {
    Responder r;
    auto critical = group("critical", 95, 500, 1.0);
    auto spinner = group("spinner", 10, 100, 1.8);
    spinner.cpu_pressure_some = 90; // throttled groups stall by design: not counted
    critical.cpu_pressure_some = 5;
    r.groups = {critical, spinner};
    for (int t = 0; t < 5; ++t) EXPECT_TRUE(r.at(Seconds(t), memory_sample(0)).steps.empty());
    r.groups[0].cpu_pressure_some = 35;
    auto plan = r.at(5s, memory_sample(0)); // no hold: the first rung takes nothing from an idle group
    ASSERT_EQ(targets(plan, PressureAction::cpu_weight), std::vector<std::string>{"spinner"});
    EXPECT_EQ(*plan.steps[0].value, 5); // 100 * 0.05
    EXPECT_EQ(plan.steps[0].signal, "cpu_protected");
    EXPECT_TRUE(r.at(6s, memory_sample(0)).steps.empty()); // the next rung waits escalate_after (2 s)
    plan = r.at(7s, memory_sample(0));
    ASSERT_EQ(targets(plan, PressureAction::cpu_max), std::vector<std::string>{"spinner"});
    EXPECT_DOUBLE_EQ(*plan.steps[0].value, 0.9); // half the 1.8 cores it uses
    EXPECT_EQ(targets(r.at(9s, memory_sample(0)), PressureAction::freeze), std::vector<std::string>{"spinner"});
    EXPECT_TRUE(r.at(11s, memory_sample(0)).steps.empty()); // no kill on the CPU ladder
}

namespace {
// A critical group stalling 50 % on CPU beside a low spinner: at the first pass the spinner's
// cpu_weight is lowered (the first CPU rung, no hold).
Responder critical_stalling_beside_a_spinner() {
    Responder r;
    auto critical = group("critical", 95, 500, 1.0);
    critical.cpu_pressure_some = 50;
    r.groups = {critical, group("spinner", 10, 100, 1.8)};
    r.at(0ms, memory_sample(0)); // cpu_weight
    return r;
}
} // namespace

TEST(PressurePlan, NothingLeftToProtectGivesTheCpuBackAtOnce) {
    Responder r = critical_stalling_beside_a_spinner();
    r.at(4s, memory_sample(0)); // cpu_max
    ASSERT_EQ(r.state.held.size(), 2u);
    // The critical step ends: both rungs come back in this pass, not after clear_hold.
    r.groups = {group("spinner", 10, 100, 1.8)};
    auto plan = r.at(5s, memory_sample(0));
    EXPECT_EQ(targets(plan, PressureAction::cpu_max, true), std::vector<std::string>{"spinner"});
    EXPECT_EQ(targets(plan, PressureAction::cpu_weight, true), std::vector<std::string>{"spinner"});
    EXPECT_TRUE(r.state.held.empty());
    EXPECT_FALSE(r.state.signals.at("cpu_protected").raised);
}

TEST(PressurePlan, BackUnderTheThresholdClimbsNoFurther) {
    Responder r = critical_stalling_beside_a_spinner();
    // Between the clear level (5) and the threshold (20): what is taken stays, nothing more.
    r.groups[0].cpu_pressure_some = 10;
    for (int t = 3; t < 30; ++t) EXPECT_TRUE(r.at(Seconds(t), memory_sample(0)).steps.empty()) << t;
    ASSERT_EQ(r.state.held.size(), 1u);
    // Under the clear level for clear_hold (10 s): given back.
    r.groups[0].cpu_pressure_some = 1;
    std::vector<std::string> given;
    for (int t = 30; t <= 41; ++t)
        for (auto& id : targets(r.at(Seconds(t), memory_sample(0)), PressureAction::cpu_weight, true)) given.push_back(id);
    EXPECT_EQ(given, std::vector<std::string>{"spinner"});
}

TEST(PressurePlan, SharedFreezeIsThawedWithTheLastResource) {
    Responder r;
    r.policy.ladder = {{"memory", {"freeze"}}, {"cpu", {"freeze"}}};
    r.policy.signals.at("cpu_protected").hold = 2s; // both signals raised in the same pass
    auto critical = group("critical", 95, 500, 1.0);
    critical.cpu_pressure_some = 50;
    r.groups = {critical, group("low", 10, 3000, 1.5)};
    r.groups.push_back(keeper());
    r.at(0ms, memory_sample(40));
    auto plan = r.at(2s, memory_sample(40));
    // Both resources freeze "low": the second taken over at no cost, so CPU's one freeze of the
    // pass goes on to the next victim (the keeper, which memory never pauses).
    EXPECT_EQ(targets(plan, PressureAction::freeze), (std::vector<std::string>{"low", "low", "keeper"}));
    // CPU clears first: "low" stays frozen for memory (the keeper's CPU freeze is given back).
    r.groups[0].cpu_pressure_some = 1;
    for (int t = 3; t <= 13; ++t) {
        plan = r.at(Seconds(t), memory_sample(40));
        for (auto& id : targets(plan, PressureAction::freeze, true)) EXPECT_NE(id, "low") << t;
    }
    // Memory clears too: now it is thawed.
    std::vector<std::string> thawed;
    for (int t = 14; t <= 30; ++t)
        for (auto& id : targets(r.at(Seconds(t), memory_sample(1)), PressureAction::freeze, true)) thawed.push_back(id);
    EXPECT_EQ(thawed, std::vector<std::string>{"low"});
}

TEST(PressurePlan, AgentPoolAndStorageAreNodeWide) {
    Responder r;
    auto s = memory_sample(0);
    s.agent_pool_percent = 95;
    s.storage_free_percent = 5;
    auto plan = r.at(0ms, s);
    ASSERT_EQ(plan.steps.size(), 2u);
    EXPECT_EQ(plan.steps[0].action, PressureAction::queue_agents);
    EXPECT_EQ(plan.steps[1].action, PressureAction::refuse_storage);
    EXPECT_TRUE(r.at(1s, s).steps.empty()); // once
    s.agent_pool_percent = 50;
    r.at(2s, s);
    plan = r.at(12s, s);
    ASSERT_EQ(plan.steps.size(), 1u);
    EXPECT_TRUE(plan.steps[0].undo);
    EXPECT_EQ(plan.steps[0].action, PressureAction::queue_agents);
}

TEST(PressurePlan, StateAndStepsSerialise) {
    Responder r;
    r.groups = {group("low", 10, 3000)};
    r.groups.push_back(keeper());
    r.at(0ms, memory_sample(40));
    auto plan = r.at(1s, memory_sample(40));
    auto j = plan.steps.at(0).to_json();
    EXPECT_EQ(j["action"], "memory_high");
    EXPECT_EQ(j["allocation_id"], "low");
    EXPECT_EQ(j["signal"], "memory_some");
    auto state = r.state.to_json();
    EXPECT_EQ(state["held"].size(), 1u);
    EXPECT_TRUE(state["signals"]["memory_some"]["raised"].get<bool>());
}

// ---- policy ----

TEST(PressurePolicy, DefaultsRoundTripAndOverlay) {
    Policy p = parse_policy(json::parse(R"({"resource_policies": {"pressure_response": {
        "mode": "advisory", "signals": {"memory_some": {"threshold": 30, "clear": 10, "hold": "500ms"}},
        "ladder": {"memory": ["memory_high", "freeze"]}, "bands": ["low", "medium", "high"],
        "hard_floors": {"memory_available_percent": 2}, "escalate_after": "1s"},
        "resource_leak_detection": {"monitoring_interval": "10m", "auto_cleanup": false}}})"));
    auto& r = p.pressure_response;
    EXPECT_EQ(r.mode, "advisory");
    EXPECT_EQ(r.signals.at("memory_some").threshold, 30);
    EXPECT_EQ(r.signals.at("memory_some").hold, 500ms);
    EXPECT_EQ(r.signals.at("memory_some").clear_hold, 10s); // untouched keys keep defaults
    EXPECT_EQ(r.ladder.at("memory"), (std::vector<std::string>{"memory_high", "freeze"}));
    EXPECT_EQ(r.ladder.at("cpu").size(), 3u);
    EXPECT_EQ(r.bands.size(), 3u);
    EXPECT_EQ(r.escalate_after, 1s);
    EXPECT_EQ(p.resource_leak_detection.monitoring_interval, std::chrono::minutes(10));
    EXPECT_FALSE(p.resource_leak_detection.auto_cleanup);
    EXPECT_EQ(parse_policy(p.to_json()).to_json(), p.to_json());
    EXPECT_EQ(Policy::defaults().pressure_response.mode, "enforce");
    EXPECT_EQ(Policy::defaults().resource_leak_detection.monitoring_interval, std::chrono::minutes(5));
}

TEST(PressurePolicy, ErrorsNameTheField) {
    const std::string pr = "resource_policies.pressure_response.";
    struct Case { const char* section; std::string field; };
    for (const auto& [section, field] : std::initializer_list<Case>{
             {R"({"mode": "kill"})", pr + "mode"},
             {R"({"bands": ["low", "critical"]})", pr + "bands"},
             {R"({"bands": ["20"]})", pr + "bands"},
             {R"({"signals": {"memory_some": {"threshold": 20, "clear": 25}}})", pr + "signals.memory_some.clear"},
             {R"({"signals": {"memory_available": {"threshold": 10, "clear": 5}}})", pr + "signals.memory_available.clear"},
             {R"({"signals": {"memory_some": {"hold": "soon"}}})", pr + "signals.memory_some.hold"},
             {R"({"signals": {"load": {}}})", pr + "signals.load"},
             {R"({"ladder": {"memory": ["freeze", "memory_high"]}})", pr + "ladder.memory"},
             {R"({"ladder": {"cpu": ["kill"]}})", pr + "ladder.cpu"},
             {R"({"ladder": {"io": []}})", pr + "ladder.io"},
             {R"({"hard_floors": {"memory_available_percent": 12}})", pr + "hard_floors.memory_available_percent"},
             {R"({"trigger_window": "100ms"})", pr + "trigger_window"},
             {R"({"cpu_weight_ratio": 1.5})", pr + "cpu_weight_ratio"},
             {R"({"memory_lookahead_passes": 11})", pr + "memory_lookahead_passes"},
             {R"({"memory_lookahead_passes": 1.5})", pr + "memory_lookahead_passes"},
             {R"([])", "resource_policies.pressure_response"},
         }) {
        auto doc = json::parse(std::string(R"({"resource_policies": {"pressure_response": )") + section + "}}");
        try {
            parse_policy(doc);
            ADD_FAILURE() << "accepted " << section;
        } catch (const ApiError& e) {
            ASSERT_FALSE(e.affected_resources.empty()) << section;
            EXPECT_EQ(e.affected_resources[0], field) << section;
        }
    }
    EXPECT_THROW(parse_policy(json::parse(R"({"resource_policies": {"resource_leak_detection": {"auto_cleanup": 1}}})")), ApiError);
    EXPECT_THROW(parse_policy(json::parse(R"({"resource_policies": {"resource_leak_detection": {"interval": "5m"}}})")), ApiError);
}
