// The agent slot queue (core/agent_slots) on struct literals and a fake clock: priority band
// first, then arrival; a freed slot goes to the first waiter of its allocation; the deadline
// answers how long it waited; one uid cannot queue more than kMaxPerUser; a hold makes starts
// wait (the default wait) until it is given back; a waiter that stops asking leaves; the p95 of
// the slot waits needs kWaitsNeeded starts.
#include <gtest/gtest.h>

#include "core/agent_slots.hpp"
#include "resmgr/protocol.hpp"

using namespace resmgr;
using core::SlotAsk;
using core::SlotGate;
using core::SlotQueue;
using core::SlotVerdict;
using std::chrono::seconds;

namespace {

const TimePoint kT0 = *parse_timestamp("2025-01-15T11:30:00Z");
const SlotGate kFull{false, ""};
const SlotGate kFree{true, ""};
const SlotGate kHeld{true, "agent_pool at 95 % (raised at 90 %)"};

SlotAsk ask(const std::string& allocation, const std::string& agent, int priority = 50, std::optional<Millis> wait = seconds(60),
            std::uint32_t uid = 1000) {
    return {allocation, agent, 4242, uid, Priority{priority}, wait};
}

std::vector<std::string> order(const SlotQueue& q) {
    std::vector<std::string> keys;
    for (const auto& w : q.ordered()) keys.push_back(w.key());
    return keys;
}

} // namespace

TEST(SlotQueue, HigherBandFirstThenArrival) {
    SlotQueue q;
    EXPECT_EQ(q.decide(ask("a1", "low", 20), kFull, kT0).position, 1u);
    EXPECT_EQ(q.decide(ask("a2", "high", 80), kFull, kT0 + seconds(1)).position, 1u);
    EXPECT_EQ(q.decide(ask("a3", "medium", 50), kFull, kT0 + seconds(2)).position, 2u);
    // 75 and 80 are both "high": arrival decides between them.
    EXPECT_EQ(q.decide(ask("a4", "high-later", 75), kFull, kT0 + seconds(3)).position, 2u);
    EXPECT_EQ(order(q), (std::vector<std::string>{"a2/high", "a4/high-later", "a3/medium", "a1/low"}));
}

TEST(SlotQueue, StartsAtOnceWhenASlotIsFreeAndRefusesWithoutAWait) {
    SlotQueue q;
    auto d = q.decide(ask("a1", "coder"), kFree, kT0);
    EXPECT_EQ(d.verdict, SlotVerdict::start);
    EXPECT_EQ(d.waited, Millis(0));
    EXPECT_EQ(q.decide(ask("a1", "reviewer", 50, std::nullopt), kFull, kT0).verdict, SlotVerdict::refuse);
    EXPECT_EQ(q.decide(ask("a1", "reviewer", 50, Millis(0)), kFull, kT0).verdict, SlotVerdict::refuse);
    EXPECT_EQ(q.size(), 0u);
    EXPECT_EQ(q.waits().starts, 1u);
}

TEST(SlotQueue, FreedSlotGoesToTheFirstWaiterOfTheAllocation) {
    SlotQueue q;
    ASSERT_EQ(q.decide(ask("a1", "first"), kFull, kT0).verdict, SlotVerdict::queued);
    ASSERT_EQ(q.decide(ask("a1", "second"), kFull, kT0 + seconds(1)).verdict, SlotVerdict::queued);
    // The slot frees; the second asks first but the first is ahead of it.
    auto second = q.decide(ask("a1", "second"), kFree, kT0 + seconds(3));
    EXPECT_EQ(second.verdict, SlotVerdict::queued);
    EXPECT_EQ(second.position, 2u);
    // A newcomer cannot overtake the waiters either.
    EXPECT_EQ(q.decide(ask("a1", "newcomer", 50, std::nullopt), kFree, kT0 + seconds(3)).verdict, SlotVerdict::refuse);
    auto first = q.decide(ask("a1", "first"), kFree, kT0 + seconds(3));
    EXPECT_EQ(first.verdict, SlotVerdict::start);
    EXPECT_EQ(first.waited, seconds(3));
    EXPECT_EQ(order(q), (std::vector<std::string>{"a1/second"}));
    // A waiter of another allocation is not held up by a1's queue.
    EXPECT_EQ(q.decide(ask("a2", "other"), kFree, kT0 + seconds(3)).verdict, SlotVerdict::start);
}

TEST(SlotQueue, DeadlineAnswersHowLongItWaited) {
    SlotQueue q;
    ASSERT_EQ(q.decide(ask("a1", "late", 50, seconds(10)), kFull, kT0).verdict, SlotVerdict::queued);
    // It keeps asking (a gap of kGoneAfter would make it a waiter that left).
    for (int at : {3, 6, 9}) EXPECT_EQ(q.decide(ask("a1", "late", 50, seconds(10)), kFull, kT0 + seconds(at)).verdict, SlotVerdict::queued);
    auto d = q.decide(ask("a1", "late", 50, seconds(10)), kFull, kT0 + seconds(10));
    EXPECT_EQ(d.verdict, SlotVerdict::expired);
    EXPECT_EQ(d.waited, seconds(10));
    EXPECT_EQ(q.size(), 0u);
    EXPECT_EQ(q.waits().starts, 0u); // an expired wait is no start
}

TEST(SlotQueue, OneUserCannotFillTheQueue) {
    SlotQueue q;
    for (std::size_t i = 0; i < SlotQueue::kMaxPerUser; ++i)
        ASSERT_EQ(q.decide(ask("a1", "n" + std::to_string(i)), kFull, kT0).verdict, SlotVerdict::queued);
    try {
        q.decide(ask("a1", "one-more"), kFull, kT0);
        FAIL() << "the 65th queued start of one uid was taken";
    } catch (const ApiError& e) {
        EXPECT_EQ(e.code, ErrorCode::RESOURCE_EXHAUSTED);
        EXPECT_NE(e.details.find("at most 64 per user"), std::string::npos) << e.details;
    }
    EXPECT_EQ(q.decide(ask("a2", "bob", 50, seconds(60), 1001), kFull, kT0).verdict, SlotVerdict::queued);
}

TEST(SlotQueue, HoldMakesStartsWaitUntilGivenBack) {
    SlotQueue q;
    // Held: a start that asked for no wait at all is refused; wait_held (resmgr-run's default)
    // waits; an explicit wait_slot of 0 refuses even with wait_held.
    EXPECT_EQ(q.decide(ask("a0", "raw", 50, std::nullopt), kHeld, kT0).verdict, SlotVerdict::refuse);
    SlotAsk patient = ask("a1", "coder", 50, std::nullopt);
    patient.wait_held = std::chrono::minutes(5);
    auto d = q.decide(patient, kHeld, kT0);
    ASSERT_EQ(d.verdict, SlotVerdict::queued);
    EXPECT_EQ(q.ordered()[0].deadline, kT0 + std::chrono::minutes(5));
    SlotAsk never = ask("a2", "never", 50, Millis(0));
    never.wait_held = std::chrono::minutes(5);
    EXPECT_EQ(q.decide(never, kHeld, kT0).verdict, SlotVerdict::refuse);
    EXPECT_EQ(q.decide(patient, kHeld, kT0 + seconds(2)).verdict, SlotVerdict::queued);
    // Given back: the next ask starts it.
    auto started = q.decide(patient, kFree, kT0 + seconds(4));
    EXPECT_EQ(started.verdict, SlotVerdict::start);
    EXPECT_EQ(started.waited, seconds(4));
    // Not held and no free slot: wait_held alone does not make a start wait.
    EXPECT_EQ(q.decide(patient, kFull, kT0 + seconds(5)).verdict, SlotVerdict::refuse);
}

TEST(SlotQueue, WhenAHoldIsGivenBackStartsGoInPriorityOrderNodeWide) {
    SlotQueue q;
    SlotAsk low = ask("a1", "low", 20), high = ask("a2", "high", 80);
    ASSERT_EQ(q.decide(low, kHeld, kT0).verdict, SlotVerdict::queued);
    ASSERT_EQ(q.decide(high, kHeld, kT0 + seconds(1)).verdict, SlotVerdict::queued);
    // Given back, both allocations have a free slot: the low one asks first but waits for the high one.
    SlotGate given_back = kFree;
    given_back.free_slots_in = {"a1", "a2"};
    EXPECT_EQ(q.decide(low, given_back, kT0 + seconds(2)).verdict, SlotVerdict::queued);
    // A newcomer of a third allocation does not overtake the high one either.
    EXPECT_EQ(q.decide(ask("a3", "new", 50), given_back, kT0 + seconds(2)).verdict, SlotVerdict::queued);
    // One that would not wait is not held back: it takes no other allocation's slot.
    EXPECT_EQ(q.decide(ask("a6", "now", 50, Millis(0)), given_back, kT0 + seconds(2)).verdict, SlotVerdict::start);
    EXPECT_EQ(q.decide(high, given_back, kT0 + seconds(2)).verdict, SlotVerdict::start);
    given_back.free_slots_in = {"a1", "a3"};
    EXPECT_EQ(q.decide(ask("a3", "new", 50), given_back, kT0 + seconds(2)).verdict, SlotVerdict::start);
    EXPECT_EQ(q.decide(low, given_back, kT0 + seconds(2)).verdict, SlotVerdict::start);
    // One ahead whose allocation has no free slot does not hold others back.
    ASSERT_EQ(q.decide(ask("a4", "high", 80), kFull, kT0 + seconds(3)).verdict, SlotVerdict::queued);
    SlotGate only_a5 = kFree;
    only_a5.free_slots_in = {"a5"};
    EXPECT_EQ(q.decide(ask("a5", "low", 20), only_a5, kT0 + seconds(3)).verdict, SlotVerdict::start);
}

TEST(SlotQueue, WaiterThatStopsAskingLeaves) {
    SlotQueue q;
    ASSERT_EQ(q.decide(ask("a1", "gone"), kFull, kT0).verdict, SlotVerdict::queued);
    ASSERT_EQ(q.decide(ask("a1", "stays"), kFull, kT0 + seconds(1)).position, 2u);
    auto d = q.decide(ask("a1", "stays"), kFull, kT0 + SlotQueue::kGoneAfter + seconds(1));
    EXPECT_EQ(d.position, 1u);
    EXPECT_EQ(order(q), (std::vector<std::string>{"a1/stays"}));
}

TEST(SlotQueue, AnotherProcessCannotTakeAWaitersPlace) {
    SlotQueue q;
    ASSERT_EQ(q.decide(ask("a1", "coder"), kFull, kT0).verdict, SlotVerdict::queued);
    SlotAsk other = ask("a1", "coder");
    other.pid = 99;
    try {
        q.decide(other, kFree, kT0);
        FAIL() << "a second pid took the waiter's place";
    } catch (const ApiError& e) {
        EXPECT_EQ(e.code, ErrorCode::CONFLICT);
    }
}

TEST(SlotQueue, P95OfSlotWaitsNeedsEnoughStarts) {
    SlotQueue q;
    for (int i = 1; i < static_cast<int>(SlotQueue::kWaitsNeeded); ++i) {
        const std::string name = "n" + std::to_string(i);
        ASSERT_EQ(q.decide(ask("a1", name), kFull, kT0).verdict, SlotVerdict::queued);
        ASSERT_EQ(q.decide(ask("a1", name), kFree, kT0 + Millis(200 * i)).verdict, SlotVerdict::start);
    }
    auto few = q.waits();
    EXPECT_EQ(few.starts, SlotQueue::kWaitsNeeded - 1);
    EXPECT_FALSE(few.p95_seconds);
    EXPECT_DOUBLE_EQ(*few.max_seconds, 3.8);
    EXPECT_NE(few.to_json()["insufficient"].get<std::string>().find("19 start(s) recorded, 20 needed"), std::string::npos);
    ASSERT_EQ(q.decide(ask("a1", "instant"), kFree, kT0).verdict, SlotVerdict::start); // waited 0
    // 20 waits 0, 0.2 .. 3.8 s: nearest rank ceil(0.95 * 20) = the 19th smallest = 3.6 s.
    auto enough = q.waits();
    ASSERT_TRUE(enough.p95_seconds);
    EXPECT_DOUBLE_EQ(*enough.p95_seconds, 3.6);
}
