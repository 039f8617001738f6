// Priority preemption: victim choice, pause -> thaw order, degrade, kill, and who may preempt.
#include <gtest/gtest.h>

#include "core/ledger.hpp"
#include "fake_backend.hpp"
#include "resmgr/protocol.hpp"
#include "server/service.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using namespace resmgr::core;
using nlohmann::json;
using std::chrono::minutes;

namespace {

const TimePoint kNow = *parse_timestamp("2025-01-15T11:00:00Z");
const Owner kAlice{1000, 10};
const Owner kOps{0, 11}; // critical preempts, so it is root's (or priority_privileges')

AllocationRequest req(const std::string& wf, double cores, int priority, double mem_gb = 0) {
    AllocationRequest r;
    r.workflow_id = wf;
    r.priority = Priority{priority};
    r.resources.cpu_cores = cores;
    r.resources.memory_bytes = static_cast<std::uint64_t>(mem_gb * kGiB);
    return r;
}

// Workflow limits above the node, so only node capacity (and preemption) decides.
Policy with_mode(const std::string& mode) {
    Policy p = Policy::defaults();
    p.preemption_mode = mode;
    p.max_cpu_per_workflow = 64;
    p.max_memory_gb_per_workflow = 1024;
    return p;
}

// 8.5 cores: 8 allocatable.
Ledger node(const std::string& mode = "pause") { return Ledger({8.5, 64 * kGiB}, with_mode(mode)); }

} // namespace

TEST(Preemption, FewestVictimsThenLowestPriorityThenYoungest) {
    auto l = node();
    std::string old_low = l.allocate(req("a", 2, 10), kAlice, kNow).allocation_id;
    std::string young_low = l.allocate(req("b", 2, 10), kAlice, kNow + minutes(1)).allocation_id;
    std::string medium_big = l.allocate(req("c", 4, 50), kAlice, kNow).allocation_id;
    // Needs 3 cores: one victim suffices only if it has >= 3: the medium one, despite its priority.
    auto plan = l.admission().plan_preemption(req("crit", 3, 95));
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->victims, std::vector<std::string>{medium_big});
    // Needs 2: the lowest priority, youngest first.
    plan = l.admission().plan_preemption(req("crit", 2, 95));
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->victims, std::vector<std::string>{young_low});
    // Needs 5: two victims; the lowest-priority pair that covers it comes first in candidate order.
    plan = l.admission().plan_preemption(req("crit", 5, 95));
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->victims, (std::vector<std::string>{young_low, medium_big}));
    (void)old_low;
}

TEST(Preemption, OnlyHighEnoughPriorityAndOnlyLowerBands) {
    auto l = node();
    l.allocate(req("a", 8, 80), kAlice, kNow); // high band fills the node
    EXPECT_FALSE(l.admission().plan_preemption(req("low", 1, 10)));   // low never preempts
    EXPECT_FALSE(l.admission().plan_preemption(req("high", 1, 85)));  // below min_priority 90
    EXPECT_TRUE(l.admission().plan_preemption(req("crit", 1, 95)));   // critical over high
    auto l2 = node();
    l2.allocate(req("a", 8, 92), kAlice, kNow); // critical victims are never taken by critical
    EXPECT_FALSE(l2.admission().plan_preemption(req("crit", 1, 99)));
    auto none = node("none");
    none.allocate(req("a", 8, 10), kAlice, kNow);
    EXPECT_FALSE(none.admission().plan_preemption(req("crit", 1, 99)));
}

TEST(Preemption, PausingFreesCpuButNotMemory) {
    auto l = node();
    l.allocate(req("a", 4, 10, 60), kAlice, kNow); // most of the memory
    EXPECT_TRUE(l.admission().plan_preemption(req("crit", 6, 95)));       // CPU short: pause helps
    EXPECT_FALSE(l.admission().plan_preemption(req("crit", 1, 95, 10)));  // memory short: pause cannot help
    auto k = node("kill");
    k.allocate(req("a", 4, 10, 60), kAlice, kNow);
    EXPECT_TRUE(k.admission().plan_preemption(req("crit", 1, 95, 10)));   // kill frees memory too
}

TEST(Preemption, PauseThenThawInPriorityOrder) {
    auto l = node();
    std::string p10 = l.allocate(req("a", 4, 10), kAlice, kNow).allocation_id;
    std::string p30 = l.allocate(req("b", 4, 30), kAlice, kNow).allocation_id;
    l.pause(p10);
    l.pause(p30);
    EXPECT_DOUBLE_EQ(l.admission().availability().cpu_available, 8);
    std::string crit = l.allocate(req("crit", 6, 95), kAlice, kNow).allocation_id;
    EXPECT_TRUE(l.restore_preempted().empty()); // 2 cores free: neither fits back
    Resources small;
    small.cpu_cores = 2;
    l.reallocate(crit, small, kAlice, kNow); // 6 free now: room for one, the higher priority first
    EXPECT_EQ(l.restore_preempted(), std::vector<std::string>{p30});
    EXPECT_EQ(l.find(p10)->status, AllocationStatus::paused);
    l.release(crit, kAlice);
    EXPECT_EQ(l.restore_preempted(), std::vector<std::string>{p10});
}

TEST(Preemption, DegradeShrinksAndRestores) {
    auto l = node("degrade");
    std::string v = l.allocate(req("a", 8, 10), kAlice, kNow).allocation_id;
    auto plan = l.admission().plan_preemption(req("crit", 4, 95));
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->mode, "degrade");
    l.degrade(v);
    EXPECT_DOUBLE_EQ(l.find(v)->resources.cpu_cores, 2); // 25 % of 8
    EXPECT_EQ(l.find(v)->degraded_from_cpu, 8);
    std::string crit = l.allocate(req("crit", 4, 95), kAlice, kNow).allocation_id;
    l.release(crit, kAlice);
    EXPECT_EQ(l.restore_preempted(), std::vector<std::string>{v});
    EXPECT_DOUBLE_EQ(l.find(v)->resources.cpu_cores, 8);
}

TEST(Preemption, ServiceFreezesVictimsAndThawsThemOnRelease) {
    TempDir dir;
    FakeBackend backend;
    state::StateStore store(dir.path());
    Ledger ledger({2, 16 * kGiB}, Policy::defaults()); // 1.5 allocatable
    TimePoint now = kNow;
    server::Service s(ledger, backend, store, [&] { return now; }, json::object(), json::object());
    std::string low = s.router().handle_line(R"({"operation":"allocate","params":{"workflow_id":"bg","priority":"low","resources":{"cpu_cores":1.5}}})",
                                    kAlice)["result"]["allocation_id"];
    json crit = s.router().handle_line(R"({"operation":"allocate","params":{"workflow_id":"fix","priority":"critical","resources":{"cpu_cores":1}}})", kOps);
    ASSERT_EQ(crit["status"], "success") << crit.dump(2);
    EXPECT_EQ(ledger.find(low)->status, AllocationStatus::paused);
    EXPECT_EQ(store.load_allocations().size(), 2u);
    // A kill -9 now would restart with the victim paused (its cgroup stays frozen in the kernel).
    Allocation stored_low;
    for (auto& a : store.load_allocations())
        if (a.allocation_id == low) stored_low = a;
    EXPECT_EQ(stored_low.status, AllocationStatus::paused);
    s.router().handle_line(json{{"operation", "release"}, {"params", {{"allocation_id", crit["result"]["allocation_id"]}}}}.dump(), kOps);
    EXPECT_EQ(ledger.find(low)->status, AllocationStatus::active);
    // High priority below critical cannot preempt.
    json high = s.router().handle_line(R"({"operation":"allocate","params":{"workflow_id":"h","priority":"high","resources":{"cpu_cores":1}}})", kAlice);
    EXPECT_EQ(high["error"]["code"], "RESOURCE_EXHAUSTED");
}

TEST(Preemption, RestartMakesTheFreezerMatchTheLedger) {
    TempDir dir;
    FakeBackend backend;
    TimePoint now = kNow;
    std::string low, crit;
    {
        state::StateStore store(dir.path());
        Ledger ledger({2, 16 * kGiB}, Policy::defaults());
        server::Service s(ledger, backend, store, [&] { return now; }, json::object(), json::object());
        low = s.router().handle_line(R"({"operation":"allocate","params":{"workflow_id":"bg","priority":"low","resources":{"cpu_cores":1.5}}})",
                            kAlice)["result"]["allocation_id"];
        backend.fail.insert("freeze"); // the daemon "dies" between recording the pause and freezing
        json r = s.router().handle_line(R"({"operation":"allocate","params":{"workflow_id":"fix","priority":"critical","resources":{"cpu_cores":1}}})", kOps);
        EXPECT_EQ(r["error"]["code"], "BACKEND_ERROR");
        EXPECT_EQ(ledger.find(low)->status, AllocationStatus::active); // given back at once
    }
    backend.fail.clear();
    {
        state::StateStore store(dir.path());
        Ledger ledger({2, 16 * kGiB}, Policy::defaults());
        auto stored = store.load_allocations();
        ASSERT_EQ(stored.size(), 1u);
        // As if the crash came right after the pause was written, with the critical one admitted.
        stored[0].status = AllocationStatus::paused;
        Allocation critical = stored[0];
        critical.allocation_id = "alloc_critical";
        critical.workflow_id = "fix";
        critical.priority = Priority{95};
        critical.status = AllocationStatus::active;
        critical.resources.cpu_cores = 1;
        stored.push_back(critical);
        for (auto& a : stored) ledger.restore(a);
        server::Service s(ledger, backend, store, [&] { return now; }, json::object(), json::object());
        s.completion().reconcile();
        EXPECT_TRUE(backend.frozen[low]); // the kernel now matches the state
        EXPECT_FALSE(backend.frozen["alloc_critical"]);
        EXPECT_EQ(ledger.find(low)->status, AllocationStatus::paused); // still no room to come back
    }
}

TEST(Preemption, PrioritiesThatPreemptAreAPrivilege) {
    TempDir dir;
    FakeBackend backend;
    state::StateStore store(dir.path());
    Policy policy = parse_policy({{"resource_policies", {{"priority_privileges", {{"users", {"oncall"}}, {"groups", {"release-eng"}}}}}}});
    Ledger ledger({2, 16 * kGiB}, policy);
    server::Service s(ledger, backend, store, [] { return kNow; }, json::object(), json::object());
    s.set_user_lookup([](std::uint32_t uid) {
        core::UserIdentity who{uid, "user" + std::to_string(uid), {"users"}, {100}};
        if (uid == 1001) who.name = "oncall";
        if (uid == 1002) who.groups = {"users", "release-eng"}, who.gids = {100, 500};
        return who;
    });
    std::string low = s.router().handle_line(R"({"operation":"allocate","params":{"workflow_id":"bg","priority":"low","resources":{"cpu_cores":1.5}}})",
                                    kAlice)["result"]["allocation_id"];
    const std::string critical = R"({"operation":"allocate","params":{"workflow_id":"fix","priority":"critical","resources":{"cpu_cores":1}}})";
    json refused = s.router().handle_line(critical, Owner{1003, 20});
    ASSERT_EQ(refused["error"]["code"], "PERMISSION_DENIED") << refused.dump(2);
    EXPECT_NE(refused["error"]["details"].get<std::string>().find("at most 89 (high)"), std::string::npos) << refused.dump(2);
    EXPECT_EQ(ledger.find(low)->status, AllocationStatus::active) << "nothing was frozen for it";
    json reserve = s.router().handle_line(R"({"operation":"reserve","params":{"start_time":"2025-01-15T12:00:00Z","duration":"1h","priority":95,"resources":{"cpu_cores":0.1}}})",
                                 Owner{1003, 20});
    EXPECT_EQ(reserve["error"]["code"], "PERMISSION_DENIED") << reserve.dump(2);
    EXPECT_EQ(s.router().handle_line(R"({"operation":"allocate","params":{"workflow_id":"ok","priority":"high","resources":{"agents":1}}})",
                            Owner{1003, 20})["status"], "success");
    json by_user = s.router().handle_line(critical, Owner{1001, 21}); // listed by name
    ASSERT_EQ(by_user["status"], "success") << by_user.dump(2);
    EXPECT_EQ(ledger.find(low)->status, AllocationStatus::paused);
    s.router().handle_line(json{{"operation", "release"}, {"params", {{"allocation_id", by_user["result"]["allocation_id"]}}}}.dump(), Owner{1001, 21});
    EXPECT_EQ(s.router().handle_line(critical, Owner{1002, 22})["status"], "success") << "listed by group";
}
