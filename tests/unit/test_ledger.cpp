// Admission control: capacity minus reserve, per-workflow policy, ownership, reallocation.
#include <gtest/gtest.h>

#include <set>

#include "core/leaks.hpp"
#include "core/ledger.hpp"
#include "resmgr/protocol.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using namespace resmgr::core;

namespace {

const TimePoint kNow = *parse_timestamp("2025-01-15T11:30:00Z");
const Owner kAlice{1000, 10};
const Owner kBob{1001, 11};
const Owner kRoot{0, 1};

AllocationRequest request(const std::string& workflow, double cpu, double mem_gb, int agents = 0) {
    AllocationRequest r;
    r.workflow_id = workflow;
    r.resources.cpu_cores = cpu;
    r.resources.memory_bytes = static_cast<std::uint64_t>(mem_gb * kGiB);
    r.resources.agents = agents;
    return r;
}

// 8 cores, 16 GiB, default reserve (0.5 cores, 1 GiB): 7.5 cores / 15 GiB allocatable.
Ledger make_ledger() {
    int n = 0;
    return Ledger({8, 16 * kGiB}, Policy::defaults(), [n]() mutable { return "alloc_" + std::to_string(++n); });
}

} // namespace

TEST(Ledger, RandomIdsAreValidDistinctAndHeldInlineByStdString) {
    std::set<std::string> seen;
    for (int i = 0; i < 10000; ++i) {
        const std::string id = core::random_allocation_id();
        ASSERT_TRUE(id.starts_with("alloc_")) << id;
        ASSERT_TRUE(core::valid_allocation_id(id)) << id;
        ASSERT_LE(id.size(), std::string().capacity()) << id << ": a heap block for every copy"; // 15 in libstdc++
        seen.insert(id);
    }
    EXPECT_EQ(seen.size(), 10000u);
}

TEST(Ledger, AdmitsWithinCapacityAndRecordsOwner) {
    auto ledger = make_ledger();
    const auto& a = ledger.allocate(request("wf", 2, 4), kAlice, kNow);
    EXPECT_EQ(a.allocation_id, "alloc_1");
    EXPECT_EQ(a.status, AllocationStatus::active);
    EXPECT_EQ(a.owner, kAlice);
    EXPECT_EQ(a.timestamp, kNow);
    // No duration asked: it ends at the policy's max_duration (6h).
    EXPECT_EQ(a.expires_at, kNow + std::chrono::hours(6));
    auto v = ledger.admission().availability();
    EXPECT_DOUBLE_EQ(v.cpu_available, 5.5);
    EXPECT_EQ(v.memory_available, 11 * kGiB);
}

TEST(Ledger, DenialSaysWhatIsShortAndByHowMuch) {
    auto ledger = make_ledger();
    ledger.allocate(request("a", 4, 12), kAlice, kNow);
    try {
        ledger.allocate(request("b", 1, 8), kAlice, kNow);
        FAIL() << "admitted beyond memory";
    } catch (const ApiError& e) {
        EXPECT_EQ(e.code, ErrorCode::RESOURCE_EXHAUSTED);
        EXPECT_STREQ(e.what(), "Insufficient memory available for allocation");
        EXPECT_EQ(e.details, "Requested 8GB, only 3GB available");
        EXPECT_EQ(e.affected_resources, std::vector<std::string>{"memory"});
        ASSERT_FALSE(e.alternative_options.empty());
        EXPECT_NE(e.alternative_options[0].find("3GB"), std::string::npos) << e.alternative_options[0];
    }
    EXPECT_EQ(ledger.allocations().size(), 1u); // nothing half-admitted
}

TEST(Ledger, ExactFitIsAdmittedOneMoreIsNot) {
    auto ledger = make_ledger();
    ledger.allocate(request("a", 5.5, 10), kAlice, kNow);
    ledger.allocate(request("b", 2, 5), kAlice, kNow); // exactly 7.5 cores / 15 GiB
    EXPECT_DOUBLE_EQ(ledger.admission().availability().cpu_available, 0);
    EXPECT_EQ(code_of([&] { ledger.allocate(request("c", 0.01, 0), kAlice, kNow); }), ErrorCode::RESOURCE_EXHAUSTED);
}

TEST(Ledger, FractionalCoresDoNotLoseToRounding) {
    auto ledger = Ledger({1.3, 16 * kGiB}, [] { auto p = Policy::defaults(); p.system_reserve_cpu = 1.0; return p; }());
    ledger.allocate(request("a", 0.1, 0), kAlice, kNow);
    ledger.allocate(request("b", 0.2, 0), kAlice, kNow); // 0.1 + 0.2 == 0.3 must fit
    EXPECT_EQ(code_of([&] { ledger.allocate(request("c", 0.001, 0), kAlice, kNow); }), ErrorCode::RESOURCE_EXHAUSTED);
}

TEST(Ledger, SeveralShortResourcesAreAllNamed) {
    auto ledger = make_ledger();
    try {
        ledger.allocate(request("w", 6, 12, 0), kAlice, kNow);
        ledger.allocate(request("x", 3, 5), kAlice, kNow);
        FAIL();
    } catch (const ApiError& e) {
        EXPECT_EQ(e.code, ErrorCode::RESOURCE_EXHAUSTED);
        EXPECT_EQ(e.affected_resources, (std::vector<std::string>{"cpu", "memory"}));
        EXPECT_STREQ(e.what(), "Insufficient CPU and memory available for allocation");
    }
}

TEST(Ledger, PerWorkflowPolicyLimitsAreSummedAcrossAllocations) {
    auto ledger = make_ledger();
    ledger.allocate(request("wf", 4, 2), kAlice, kNow);
    try {
        ledger.allocate(request("wf", 3, 2), kAlice, kNow); // 7 > max_cpu_per_workflow 6
        FAIL();
    } catch (const ApiError& e) {
        EXPECT_EQ(e.code, ErrorCode::POLICY_VIOLATION);
        EXPECT_EQ(e.affected_resources, std::vector<std::string>{"cpu"});
        EXPECT_NE(e.details.find("max_cpu_per_workflow is 6"), std::string::npos) << e.details;
    }
    ledger.allocate(request("other", 3, 2), kAlice, kNow); // another workflow has its own allowance
}

TEST(Ledger, PolicyAgentsAndDuration) {
    auto ledger = make_ledger();
    EXPECT_EQ(code_of([&] { ledger.allocate(request("wf", 0, 0, 16), kAlice, kNow); }), ErrorCode::POLICY_VIOLATION);
    auto r = request("wf", 1, 1);
    r.constraints.max_duration = std::chrono::hours(7);
    EXPECT_EQ(code_of([&] { ledger.allocate(r, kAlice, kNow); }), ErrorCode::POLICY_VIOLATION);
    r.constraints.max_duration = std::chrono::hours(2);
    EXPECT_EQ(ledger.allocate(r, kAlice, kNow).expires_at, kNow + std::chrono::hours(2));
}

TEST(Ledger, AgentPoolIsNodeWide) {
    auto ledger = make_ledger();
    ledger.allocate(request("a", 0, 0, 15), kAlice, kNow);
    EXPECT_EQ(code_of([&] { ledger.allocate(request("b", 0, 0, 6), kAlice, kNow); }), ErrorCode::RESOURCE_EXHAUSTED);
    ledger.allocate(request("b", 0, 0, 5), kAlice, kNow);
    EXPECT_EQ(ledger.admission().availability().agents_available, 0);
}

TEST(Ledger, ReleaseOnlyByOwnerOrRoot) {
    auto ledger = make_ledger();
    std::string id = ledger.allocate(request("wf", 2, 4), kAlice, kNow).allocation_id;
    EXPECT_EQ(code_of([&] { ledger.release(id, kBob); }), ErrorCode::PERMISSION_DENIED);
    EXPECT_EQ(code_of([&] { ledger.release("alloc_nope", kAlice); }), ErrorCode::NOT_FOUND);
    EXPECT_EQ(ledger.release(id, kRoot).status, AllocationStatus::released);
    EXPECT_EQ(ledger.admission().availability().cpu_available, 7.5);
    EXPECT_EQ(code_of([&] { ledger.release(id, kAlice); }), ErrorCode::NOT_FOUND);
}

TEST(Ledger, ReallocateGrowsOnlyWithinCapacityShrinksAlways) {
    auto ledger = make_ledger();
    std::string id = ledger.allocate(request("a", 2, 4), kAlice, kNow).allocation_id;
    ledger.allocate(request("b", 4, 8), kAlice, kNow);
    Resources grow;
    grow.cpu_cores = 3.5; // 1.5 free + own 2 = 3.5: fits exactly
    grow.memory_bytes = 4 * kGiB;
    EXPECT_DOUBLE_EQ(ledger.reallocate(id, grow, kAlice, kNow).resources.cpu_cores, 3.5);
    grow.cpu_cores = 3.6;
    EXPECT_EQ(code_of([&] { ledger.reallocate(id, grow, kAlice, kNow); }), ErrorCode::RESOURCE_EXHAUSTED);
    EXPECT_DOUBLE_EQ(ledger.find(id)->resources.cpu_cores, 3.5); // unchanged by the refusal
    Resources shrink;
    shrink.cpu_cores = 0.5;
    EXPECT_DOUBLE_EQ(ledger.reallocate(id, shrink, kAlice, kNow).resources.cpu_cores, 0.5);
    EXPECT_EQ(code_of([&] { ledger.reallocate(id, shrink, kBob, kNow); }), ErrorCode::PERMISSION_DENIED);
}

TEST(Ledger, RestoreSkipsAdmission) {
    auto ledger = make_ledger();
    Allocation a;
    a.allocation_id = "alloc_big";
    a.workflow_id = "wf";
    a.resources.cpu_cores = 100; // more than the node: it was admitted on a bigger one
    ledger.restore(a);
    EXPECT_NE(ledger.find("alloc_big"), nullptr);
    EXPECT_DOUBLE_EQ(ledger.admission().availability().cpu_available, 0);
}

TEST(Limits, FromAllocation) {
    Allocation a;
    a.resources.cpu_cores = 2;
    a.resources.memory_bytes = 4 * kGiB;
    a.resources.pids = 64;
    a.priority = Priority{80};
    auto l = limits_for(a, Policy::defaults());
    EXPECT_EQ(l.cpu_quota_us, 200000u);
    EXPECT_EQ(l.cpu_period_us, 100000u);
    EXPECT_EQ(l.memory_max, 4 * kGiB);
    EXPECT_EQ(l.memory_high, static_cast<std::uint64_t>(4 * kGiB * 0.9));
    EXPECT_EQ(l.pids_max, 64u);
    EXPECT_EQ(l.cpu_weight, 133u); // high 0.8 / medium 0.6 of the default 100
    a.priority = Priority{95};
    EXPECT_EQ(limits_for(a, Policy::defaults()).cpu_weight, 167u);
    a.priority = Priority{10};
    EXPECT_EQ(limits_for(a, Policy::defaults()).cpu_weight, 67u);
}

TEST(Limits, UncappedAndTinyQuota) {
    Allocation a;
    auto l = limits_for(a, Policy::defaults());
    EXPECT_FALSE(l.cpu_quota_us);
    EXPECT_FALSE(l.memory_max);
    EXPECT_FALSE(l.memory_high);
    EXPECT_FALSE(l.pids_max);
    a.resources.cpu_cores = 0.001; // the kernel's floor is 1 ms per period
    EXPECT_EQ(limits_for(a, Policy::defaults()).cpu_quota_us, 1000u);
}

TEST(Ledger, WorkflowNamesBelongToTheirOwner) {
    Ledger ledger({32, 64 * kGiB}, Policy::defaults());
    ledger.allocate(request("ci", 4, 10), kAlice, kNow);
    // Root's "ci" is another workflow: Alice's 10 GiB do not count against its 12 GiB.
    EXPECT_NO_THROW(ledger.allocate(request("ci", 4, 10), kRoot, kNow));
    try {
        ledger.allocate(request("ci", 1, 4), kAlice, kNow);
        FAIL() << "Alice's own ci went past max_memory_per_workflow";
    } catch (const ApiError& e) {
        EXPECT_EQ(e.code, ErrorCode::POLICY_VIOLATION);
    }
    // conflict_avoidance names the asker's own workflows; root's names anyone's.
    AllocationRequest avoid = request("mine", 0, 0);
    avoid.constraints.conflict_avoidance = {"deploy"};
    ledger.allocate(avoid, kBob, kNow);
    EXPECT_NO_THROW(ledger.allocate(request("deploy", 0, 0), kRoot, kNow)) << "Bob's avoidance stopped root's deploy";
    EXPECT_THROW(ledger.allocate(request("deploy", 0, 0), kBob, kNow), ApiError) << "but it stops Bob's own";
    AllocationRequest root_avoids = request("release", 0, 0);
    root_avoids.constraints.conflict_avoidance = {"tests"};
    ledger.allocate(root_avoids, kRoot, kNow);
    EXPECT_THROW(ledger.allocate(request("tests", 0, 0), kAlice, kNow), ApiError);
}
