// balance's planner and tune's step on struct literals: who lends, who borrows, by priority,
// capped at the node, loans taken back when a lender needs its CPU; the step's dead band and bounds.
#include <gtest/gtest.h>

#include "analytics/balance.hpp"
#include "analytics/tuning.hpp"

namespace resmgr::analytics {
namespace {

BalanceOptions on_node(double cores) {
    BalanceOptions o;
    o.node_cores = cores;
    return o;
}

TEST(Balance, IdleCpuOfALenderGoesToTheBusyAllocation) {
    // A uses 0.2 of 2 cores: it keeps 0.25 and lends 1.75. B is held at its 1 core.
    const BalancePlan p = plan_balance({{"A", 50, 2, 0, 0.2}, {"B", 50, 1, 0, 1.0}}, on_node(8));
    EXPECT_EQ(p.entries[0].role, BalanceRole::lender);
    EXPECT_NEAR(p.entries[0].idle, 1.75, 1e-9);
    EXPECT_EQ(p.entries[0].loan, 0);
    EXPECT_EQ(p.entries[1].role, BalanceRole::borrower);
    EXPECT_NEAR(p.entries[1].loan, 1.75, 1e-9);
    EXPECT_NEAR(p.pool, 1.75, 1e-9);
    EXPECT_NEAR(p.lent, 1.75, 1e-9);
}

TEST(Balance, BorrowersShareThePoolByPriorityOrEvenly) {
    const std::vector<BalanceMember> m{{"idle", 50, 4, 0, 0.0}, {"high", 75, 1, 0, 1.0}, {"low", 25, 1, 0, 0.95}};
    const BalancePlan weighted = plan_balance(m, on_node(16));
    EXPECT_NEAR(weighted.entries[1].loan, 3.0, 1e-9); // 4 x 75 / 100
    EXPECT_NEAR(weighted.entries[2].loan, 1.0, 1e-9);
    BalanceOptions even = on_node(16);
    even.strategy = BalanceStrategy::even;
    const BalancePlan shared = plan_balance(m, even);
    EXPECT_NEAR(shared.entries[1].loan, 2.0, 1e-9);
    EXPECT_NEAR(shared.entries[2].loan, 2.0, 1e-9);
}

TEST(Balance, NoCpuMaxAboveTheNodeAndWhatACapLeavesIsSharedAgain) {
    // On a 2-core node "big" (size 1.5) can borrow 0.5 at most; the rest goes to "small".
    const BalancePlan p = plan_balance({{"idle", 50, 3, 0, 0.0}, {"big", 90, 1.5, 0, 1.5}, {"small", 10, 0.5, 0, 0.5}}, on_node(2));
    EXPECT_NEAR(p.entries[1].loan, 0.5, 1e-9);
    EXPECT_NEAR(p.entries[2].loan, 1.5, 1e-9);
}

TEST(Balance, ALenderThatNeedsItsCpuAgainTakesItBackAtTheNextPass) {
    // Pass 1: A idle, B borrows 1.75. Pass 2: A uses 1.5 of its 2: nothing to lend; B, still busy
    // on 2.75 cores of cpu.max, is back to its own core.
    const BalancePlan first = plan_balance({{"A", 50, 2, 0, 0.2}, {"B", 50, 1, 0, 1.0}}, on_node(8));
    const double loan = first.entries[1].loan;
    const BalancePlan second = plan_balance({{"A", 50, 2, 0, 1.5}, {"B", 50, 1, loan, 2.7}}, on_node(8));
    EXPECT_EQ(second.entries[0].role, BalanceRole::neither);
    EXPECT_EQ(second.pool, 0);
    EXPECT_EQ(second.entries[1].loan, 0);
}

TEST(Balance, AFormerBorrowerKeepsOnlyTheLoanItUses) {
    // B had 1.75 lent, now uses 1.4 of its 2.75: it keeps 1.4 x 1.25 - 1 = 0.75.
    const BalancePlan p = plan_balance({{"A", 50, 2, 0, 0.2}, {"B", 50, 1, 1.75, 1.4}}, on_node(8));
    EXPECT_EQ(p.entries[1].role, BalanceRole::keeps_loan);
    EXPECT_NEAR(p.entries[1].loan, 0.75, 1e-9);
}

TEST(Balance, UnsampledAndUncappedAllocationsNeitherLendNorBorrow) {
    const BalancePlan p = plan_balance({{"new", 50, 2, 0, std::nullopt}, {"uncapped", 50, 0, 0, 3.0}, {"busy", 50, 1, 0, 1.0}}, on_node(8));
    EXPECT_EQ(p.entries[0].role, BalanceRole::neither);
    EXPECT_EQ(p.entries[1].role, BalanceRole::neither);
    EXPECT_EQ(p.entries[2].role, BalanceRole::borrower);
    EXPECT_EQ(p.lent, 0); // nobody lends
}

} // namespace
} // namespace resmgr::analytics

namespace resmgr::analytics {
namespace {

TEST(Tuning, AboveTheTargetTheKnobStepsUpToItsCeiling) {
    const TuneKnob knob{1, 1, 2};
    TuneStep s = tune_step(30.0, 10, knob);
    EXPECT_EQ(s.progress, TuneProgress::adjusting);
    EXPECT_DOUBLE_EQ(s.value, 1.5);
    s = tune_step(30.0, 10, {1.5, 1, 2});
    EXPECT_DOUBLE_EQ(s.value, 2);
    s = tune_step(30.0, 10, {2, 1, 2});
    EXPECT_EQ(s.progress, TuneProgress::bound_reached);
    EXPECT_DOUBLE_EQ(s.value, 2);
}

TEST(Tuning, ADeadBandHoldsAndWellBelowTheTargetTheRoomIsGivenBack) {
    EXPECT_EQ(tune_step(8.0, 10, {2, 1, 4}).progress, TuneProgress::holding); // between half and the target
    const TuneStep back = tune_step(2.0, 10, {2, 1, 4});
    EXPECT_EQ(back.progress, TuneProgress::adjusting);
    EXPECT_NEAR(back.value, 2 / 1.5, 1e-12);
    EXPECT_EQ(tune_step(2.0, 10, {1, 1, 4}).progress, TuneProgress::holding); // at its floor already
}

TEST(Tuning, NoMeasurementMovesNothing) {
    const TuneStep s = tune_step(std::nullopt, 10, {1.5, 1, 4});
    EXPECT_EQ(s.progress, TuneProgress::no_data);
    EXPECT_DOUBLE_EQ(s.value, 1.5);
}

} // namespace
} // namespace resmgr::analytics
