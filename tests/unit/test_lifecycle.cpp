// Allocation lifecycle with a fake clock and backend: durations (SIGTERM, grace, kill),
// auto_release on completion and failure, supervision by resmgr-run, restarts mid-transition.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <signal.h>

#include "fake_backend.hpp"
#include "server/service.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using nlohmann::json;
using std::chrono::seconds;

namespace {

const Owner kAlice{1000, 100};

struct Node {
    TempDir dir;
    TempDir groups;
    FakeBackend backend;
    std::unique_ptr<state::StateStore> store;
    std::unique_ptr<core::Ledger> ledger;
    std::unique_ptr<server::Service> service;
    std::vector<std::optional<TimePoint>> scheduled;
    TimePoint now = *parse_timestamp("2025-01-15T11:30:00Z");

    Node() {
        backend.root = groups.path().string();
        start();
    }
    void start() {
        store = std::make_unique<state::StateStore>(dir.path() / "state");
        ledger = std::make_unique<core::Ledger>(core::NodeCapacity{8, 16 * kGiB}, core::Policy::defaults());
        for (auto& a : store->load_allocations()) ledger->restore(a);
        service = std::make_unique<server::Service>(*ledger, backend, *store, [this] { return now; }, json::object(), json::object());
        lifecycle::LoopHooks hooks;
        hooks.schedule = [this](std::optional<TimePoint> t) { scheduled.push_back(t); };
        service->lifecycle().set_hooks(hooks);
    }
    json call(const json& request, const Owner& peer = kAlice) { return service->router().handle_line(request.dump(), peer); }
    std::string allocate(const json& extra = json::object(), const Owner& peer = kAlice) {
        json params{{"workflow_id", "wf"}, {"resources", {{"cpu_cores", 1}}}};
        params.update(extra);
        json r = call({{"operation", "allocate"}, {"params", params}}, peer);
        EXPECT_EQ(r["status"], "success") << r.dump(2);
        return r["result"].value("allocation_id", "");
    }
    void set_populated(const std::string& id, int populated) {
        std::filesystem::create_directories(groups.path() / id);
        std::ofstream(groups.path() / id / "cgroup.events") << "populated " << populated << "\nfrozen 0\n";
        service->completion().on_group_event(id);
    }
    bool live(const std::string& id) { return ledger->find(id) != nullptr; }
    int sigterms(const std::string& id) {
        int n = 0;
        for (auto& [gid, sig] : backend.signals) n += gid == id && sig == SIGTERM;
        return n;
    }
};

} // namespace

TEST(Lifecycle, DurationEndsWithSigtermThenKillAfterGrace) {
    Node n;
    std::string id = n.allocate({{"duration", "10s"}, {"auto_release", {{"grace_period", "5s"}}}});
    ASSERT_FALSE(n.scheduled.empty());
    EXPECT_EQ(n.scheduled.back(), n.now + seconds(10)); // the loop is asked to wake at expiry
    n.now += seconds(9);
    n.service->completion().on_timer();
    EXPECT_EQ(n.sigterms(id), 0);
    n.now += seconds(1);
    n.service->completion().on_timer();
    EXPECT_EQ(n.sigterms(id), 1);
    EXPECT_TRUE(n.live(id));
    EXPECT_EQ(n.scheduled.back(), n.now + seconds(5)); // next wake: end of grace
    n.now += seconds(4);
    n.service->completion().on_timer();
    EXPECT_TRUE(n.live(id));
    n.now += seconds(1);
    n.service->completion().on_timer();
    EXPECT_FALSE(n.live(id));
    EXPECT_EQ(n.backend.destroyed, std::vector<std::string>{id}); // cgroup.kill + rmdir
    EXPECT_TRUE(n.store->load_allocations().empty());
    // The wrapper's late release still learns what happened.
    json r = n.call({{"operation", "release"}, {"params", {{"allocation_id", id}, {"exit_status", 143}}}});
    EXPECT_EQ(r["result"]["reason"], "expired");
    EXPECT_EQ(r["result"]["allocation"]["status"], "expired");
    EXPECT_TRUE(r["result"]["already_ended"].get<bool>());
}

TEST(Lifecycle, GroupEmptiedBySigtermEndsTheExpiryAtOnce) {
    Node n;
    std::string id = n.allocate({{"duration", "10s"}});
    n.set_populated(id, 1);
    n.now += seconds(10);
    n.service->completion().on_timer();
    ASSERT_EQ(n.sigterms(id), 1);
    n.set_populated(id, 0); // the processes honoured SIGTERM
    EXPECT_FALSE(n.live(id));
}

TEST(Lifecycle, OnTimeoutFalseRecordsExpiryAndLeavesItRunning) {
    Node n;
    std::string id = n.allocate({{"duration", "10s"}, {"auto_release", {{"on_timeout", false}}}});
    n.now += seconds(11);
    n.service->completion().on_timer();
    EXPECT_EQ(n.sigterms(id), 0);
    ASSERT_TRUE(n.live(id));
    EXPECT_EQ(n.ledger->find(id)->status, AllocationStatus::expired);
    EXPECT_EQ(n.store->load_allocations()[0].status, AllocationStatus::expired);
}

TEST(Lifecycle, RestartDuringGraceKeepsTheDeadline) {
    Node n;
    std::string id = n.allocate({{"duration", "10s"}, {"auto_release", {{"grace_period", "30s"}}}});
    n.now += seconds(10);
    n.service->completion().on_timer();
    ASSERT_EQ(n.sigterms(id), 1);
    n.start(); // kill -9 and restart: state says "terminating since T"
    n.now += seconds(20);
    n.service->completion().reconcile();
    EXPECT_TRUE(n.live(id));
    EXPECT_EQ(n.sigterms(id), 1); // not signalled again
    n.now += seconds(10);
    n.service->completion().on_timer();
    EXPECT_FALSE(n.live(id));
}

TEST(Lifecycle, ExpiredWhileDownIsActedOnAtStart) {
    Node n;
    std::string a = n.allocate({{"duration", "10s"}, {"auto_release", {{"grace_period", "5s"}}}});
    std::string b = n.allocate({{"duration", "1h"}, {"auto_release", {{"grace_period", "5m"}}}});
    n.start();
    n.now += seconds(3600 + 60); // down for an hour and a minute
    n.service->completion().reconcile();
    EXPECT_FALSE(n.live(a)); // long past expiry and grace: killed at once
    ASSERT_TRUE(n.live(b));  // just expired: SIGTERM now, the full grace from now
    EXPECT_EQ(n.sigterms(b), 1);
    EXPECT_EQ(*n.ledger->find(b)->terminating_since, n.now);
}

// A restart that finds an allocation's processes in another layout takes them over before it
// watches the group, and says so; a take-over that fails is reported, and the allocation is still
// adopted and kept.
TEST(Lifecycle, ARestartTakesOverTheOtherLayoutAndAFailedTakeOverStillAdopts) {
    Node n;
    std::string a = n.allocate(), b = n.allocate();
    n.start();
    n.backend.elsewhere[a] = 2;
    json report = n.service->completion().reconcile();
    EXPECT_EQ(report["taken_over"], json::array({{{"allocation_id", a}, {"processes", 2}}})) << report.dump();
    EXPECT_EQ(report["adopted"].size(), 2u) << report.dump();
    EXPECT_TRUE(report["failed"].empty()) << report.dump();

    n.start();
    n.backend.fail.insert("take_over");
    report = n.service->completion().reconcile();
    EXPECT_EQ(report["adopted"].size(), 2u) << report.dump();
    ASSERT_EQ(report["failed"].size(), 2u) << report.dump();
    EXPECT_NE(report["failed"][0]["error"].get<std::string>().find("taking its processes over from the other layout: injected take_over failure"),
              std::string::npos)
        << report.dump();
    EXPECT_TRUE(n.live(a));
    EXPECT_TRUE(n.live(b));
}

// A wrapper's allocation whose processes were not all taken over: its wrapper's exit and its own
// group's emptying do not complete it (the work may run on in the other layout's group); a later
// start that takes everything over watches it as any other.
TEST(Lifecycle, AStrandedAllocationIsNotCompletedByItsWrappersExitOrAnEmptyGroup) {
    Node n;
    const std::string id = n.allocate({{"supervised", true}});
    n.set_populated(id, 1);
    n.start();
    n.backend.fail.insert("take_over");
    ASSERT_EQ(n.service->completion().reconcile()["failed"].size(), 1u);
    n.service->completion().on_supervisor_exit(id);
    n.set_populated(id, 0);
    EXPECT_TRUE(n.live(id)) << "its processes may run on in the other layout";
    ASSERT_TRUE(n.ledger->find(id));
    EXPECT_EQ(n.ledger->find(id)->supervisor_pid, 0) << "the wrapper's exit is still recorded";

    n.start();
    n.backend.fail.erase("take_over");
    ASSERT_TRUE(n.service->completion().reconcile()["failed"].empty());
    n.set_populated(id, 1);
    n.set_populated(id, 0);
    EXPECT_FALSE(n.live(id)) << "taken over: empty now means done";
}

TEST(Lifecycle, EmptyGroupCompletesOnlyAfterItHeldProcesses) {
    Node n;
    std::string id = n.allocate({{"supervised", true}});
    n.set_populated(id, 0); // never used yet: not "done"
    EXPECT_TRUE(n.live(id));
    n.set_populated(id, 1);
    EXPECT_TRUE(n.ledger->find(id)->populated_once);
    n.service->completion().on_supervisor_exit(id);
    n.set_populated(id, 0); // the wrapper's own allocation: done when empty
    EXPECT_FALSE(n.live(id));
}

TEST(Lifecycle, AnAllocationOutlivesItsStepsAndCompletesAfterItsGraceEmpty) {
    Node n;
    std::string id = n.allocate({{"auto_release", {{"grace_period", "5m"}}}});
    n.set_populated(id, 1); // step 1 runs
    n.set_populated(id, 0); // and ends
    ASSERT_TRUE(n.live(id));
    ASSERT_TRUE(n.ledger->find(id)->idle_since);
    EXPECT_EQ(*n.ledger->find(id)->idle_since, n.now);
    EXPECT_EQ(n.scheduled.back(), n.now + std::chrono::minutes(5)); // the loop wakes to complete it
    json st = n.call({{"operation", "status"}, {"params", {{"allocation_id", id}}}});
    EXPECT_EQ(st["result"]["allocations"][0]["idle_since"], format_timestamp(n.now)) << st.dump(2);
    EXPECT_EQ(st["result"]["allocations"][0]["completes_at"], format_timestamp(n.now + std::chrono::minutes(5)));
    EXPECT_TRUE(n.store->load_allocations()[0].idle_since); // a restart keeps the clock running

    n.now += std::chrono::minutes(4);
    n.service->completion().on_timer();
    n.set_populated(id, 1); // step 2 joins within the grace period: no longer idle
    EXPECT_FALSE(n.ledger->find(id)->idle_since);
    n.now += std::chrono::minutes(2);
    n.service->completion().on_timer();
    ASSERT_TRUE(n.live(id)); // 6 minutes after step 1, but busy

    n.set_populated(id, 0); // step 2 ends
    n.now += std::chrono::minutes(5) - seconds(1);
    n.service->completion().on_timer();
    EXPECT_TRUE(n.live(id));
    n.now += seconds(1);
    n.service->completion().on_timer();
    EXPECT_FALSE(n.live(id));
    EXPECT_EQ(n.backend.destroyed, std::vector<std::string>{id});
    EXPECT_TRUE(n.store->load_allocations().empty());
}

TEST(Lifecycle, AProcessThatJoinedBeforeItsEventArrivedCancelsTheCompletion) {
    Node n;
    std::string id = n.allocate({{"auto_release", {{"grace_period", "1m"}}}});
    n.set_populated(id, 1);
    n.set_populated(id, 0);
    std::ofstream(n.groups.path() / id / "cgroup.events") << "populated 1\nfrozen 0\n"; // no event yet
    n.now += std::chrono::minutes(1);
    n.service->completion().on_timer();
    EXPECT_TRUE(n.live(id));
    EXPECT_FALSE(n.ledger->find(id)->idle_since);
}

TEST(Lifecycle, OnCompletionFalseKeepsAnEmptiedGroup) {
    Node n;
    std::string id = n.allocate({{"auto_release", {{"on_completion", false}}}});
    n.set_populated(id, 1);
    n.set_populated(id, 0);
    EXPECT_TRUE(n.live(id));
}

TEST(Lifecycle, SupervisedAllocationWaitsForTheWrappersReport) {
    Node n;
    std::string id = n.allocate({{"supervised", true}, {"auto_release", {{"on_failure", false}}}});
    EXPECT_EQ(n.ledger->find(id)->supervisor_pid, kAlice.pid);
    n.set_populated(id, 1);
    n.set_populated(id, 0); // command exited; resmgr-run has not reported yet
    EXPECT_TRUE(n.live(id));
    json r = n.call({{"operation", "release"}, {"params", {{"allocation_id", id}, {"exit_status", 2}}}});
    EXPECT_TRUE(r["result"]["kept"].get<bool>()) << r.dump(2); // failed, and on_failure is false
    EXPECT_TRUE(n.live(id));
    EXPECT_EQ(n.ledger->find(id)->supervisor_pid, 0);
}

TEST(Lifecycle, FailureIsRecordedAndReleased) {
    Node n;
    std::string id = n.allocate({{"supervised", true}});
    json r = n.call({{"operation", "release"}, {"params", {{"allocation_id", id}, {"exit_status", 1}}}});
    EXPECT_EQ(r["result"]["reason"], "failed");
    EXPECT_EQ(r["result"]["exit_status"], 1);
    EXPECT_FALSE(n.live(id));
}

TEST(Lifecycle, DeadSupervisorHandsOverToTheGroupWatch) {
    Node n;
    std::string id = n.allocate({{"supervised", true}});
    n.set_populated(id, 1);
    n.set_populated(id, 0);
    EXPECT_TRUE(n.live(id));
    n.service->completion().on_supervisor_exit(id); // resmgr-run was killed before reporting
    EXPECT_FALSE(n.live(id));
}

TEST(Lifecycle, ConflictAvoidanceRefusesBothWays) {
    Node n;
    n.allocate({{"workflow_id", "wf_456"}});
    json params{{"workflow_id", "wf_new"}, {"resources", json::object()}, {"constraints", {{"conflict_avoidance", {"wf_456"}}}}};
    json r = n.call({{"operation", "allocate"}, {"params", params}});
    EXPECT_EQ(r["error"]["code"], "CONFLICT");
    EXPECT_EQ(r["error"]["affected_resources"], json({"workflow:wf_456"}));
    n.allocate({{"workflow_id", "wf_a"}, {"constraints", {{"conflict_avoidance", {"wf_b"}}}}});
    json back = n.call({{"operation", "allocate"}, {"params", {{"workflow_id", "wf_b"}, {"resources", json::object()}}}});
    EXPECT_EQ(back["error"]["code"], "CONFLICT");
    n.allocate({{"workflow_id", "wf_c"}}); // unrelated workflows are unaffected
}

TEST(Lifecycle, ReservationWhoseStartPassedWhileDownActivatesAtStart) {
    Node n;
    json r = n.call({{"operation", "reserve"},
                     {"params", {{"reservation_id", "res_down"}, {"start_time", "2025-01-15T12:00:00Z"}, {"duration", "2h"},
                                 {"resources", {{"cpu_cores", 1}}}}}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    n.start();
    n.now = *parse_timestamp("2025-01-15T12:30:00Z"); // down across the start time
    n.service->completion().reconcile();
    ASSERT_TRUE(n.live("res_down"));
    EXPECT_EQ(n.ledger->find("res_down")->status, AllocationStatus::active);
    EXPECT_TRUE(n.backend.groups.count("res_down"));
    EXPECT_EQ(n.store->load_allocations()[0].status, AllocationStatus::active);
}

TEST(Lifecycle, CrashBetweenRemovingTheGroupAndRecordingTheReleaseEndsReleased) {
    Node n;
    std::string id = n.allocate();
    n.set_populated(id, 1);
    // The group went (release in progress) but the state still lists the allocation; the group
    // re-created at restart is empty, as the kernel's cgroup.events then says.
    n.backend.groups.erase(id);
    std::ofstream(n.groups.path() / id / "cgroup.events") << "populated 0\nfrozen 0\n";
    n.start();
    lifecycle::LoopHooks hooks;
    hooks.watch_group = [&](const std::string& gid, const std::string&, bool may_have_changed) {
        EXPECT_TRUE(may_have_changed) << "a group found at restart may have changed before its watch";
        n.service->completion().on_group_event(gid);
    };
    n.service->lifecycle().set_hooks(hooks);
    n.service->completion().reconcile(); // re-adopts an empty group of an allocation that had processes: idle
    ASSERT_TRUE(n.live(id));
    n.now += n.ledger->find(id)->auto_release.grace_period;
    n.service->completion().on_timer(); // and completed once its grace period passed empty
    EXPECT_FALSE(n.live(id));
    EXPECT_TRUE(n.store->load_allocations().empty());
}

TEST(Lifecycle, AGroupMadeEmptyIsWatchedWithoutAFirstLookAndAnAdoptedOneWithIt) {
    Node n;
    std::vector<std::pair<std::string, bool>> watched;
    lifecycle::LoopHooks hooks;
    hooks.watch_group = [&](const std::string& gid, const std::string&, bool may_have_changed) { watched.emplace_back(gid, may_have_changed); };
    n.service->lifecycle().set_hooks(hooks);
    // Made by the allocate that watches it, with nothing placed: no one else knows of it yet, so
    // a first read of its cgroup.events could only say "empty".
    const std::string id = n.allocate();
    ASSERT_EQ(watched, (std::vector<std::pair<std::string, bool>>{{id, false}}));
    // Found at a restart: it may have filled or emptied while resmgrd was away.
    n.start();
    n.service->lifecycle().set_hooks(hooks);
    n.service->completion().reconcile();
    ASSERT_EQ(watched.size(), 2u);
    EXPECT_EQ(watched[1], std::make_pair(id, true));
}

TEST(Lifecycle, AGracePeriodPastThePolicysBoundIsRefused) {
    Node n;
    json r = n.call({{"operation", "allocate"},
                     {"params", {{"workflow_id", "wf"}, {"resources", json::object()}, {"auto_release", {{"grace_period", "1000000h"}}}}}});
    EXPECT_EQ(r["error"]["code"], "INVALID_REQUEST") << "past a century is no duration at all: " << r.dump(2);
    json over = n.call({{"operation", "allocate"},
                        {"params", {{"workflow_id", "wf"}, {"resources", json::object()}, {"auto_release", {{"grace_period", "2h"}}}}}});
    ASSERT_EQ(over["error"]["code"], "POLICY_VIOLATION") << over.dump(2);
    EXPECT_NE(over["error"]["details"].get<std::string>().find("max_grace_period is 1h"), std::string::npos) << over.dump(2);
    n.allocate({{"auto_release", {{"grace_period", "1h"}}}});
}

TEST(Lifecycle, AReleaseThatCannotBeRecordedChangesNothing) {
    Node n;
    std::string id = n.allocate();
    n.set_populated(id, 1);
    // The state directory stops taking writes, as a full filesystem does.
    const auto current = n.dir.path() / "state" / "current_state";
    std::filesystem::rename(current, n.dir.path() / "aside");
    std::ofstream(current) << "";
    json r = n.call({{"operation", "release"}, {"params", {{"allocation_id", id}}}});
    ASSERT_EQ(r["error"]["code"], "INTERNAL_ERROR") << r.dump(2);
    EXPECT_NE(r["error"]["message"].get<std::string>().find("kept"), std::string::npos) << r.dump(2);
    EXPECT_TRUE(n.live(id));
    EXPECT_TRUE(n.backend.destroyed.empty()) << "the group (and its processes) went although the release was not recorded";
    // The disk comes back; a restart finds the allocation as it was, with its group.
    std::filesystem::remove(current);
    std::filesystem::rename(n.dir.path() / "aside", current);
    n.start();
    n.service->completion().reconcile();
    ASSERT_TRUE(n.live(id));
    EXPECT_EQ(n.ledger->find(id)->status, AllocationStatus::active);
    EXPECT_TRUE(n.backend.destroyed.empty());
    EXPECT_EQ(n.call({{"operation", "release"}, {"params", {{"allocation_id", id}}}})["status"], "success");
    EXPECT_FALSE(n.live(id));
    EXPECT_TRUE(n.store->load_allocations().empty());
}

TEST(Lifecycle, OneUserCannotHoldMoreThanThePolicysLimits) {
    Node n;
    n.ledger = std::make_unique<core::Ledger>(core::NodeCapacity{8, 16 * kGiB},
                                              core::parse_policy({{"resource_policies", {{"limits", {{"allocations_per_user", 2}, {"queued_per_user", 1},
                                                                                                       {"reservations_per_user", 1}, {"files_per_allocation", 1}}}}}}));
    n.service = std::make_unique<server::Service>(*n.ledger, n.backend, *n.store, [&n] { return n.now; }, json::object(), json::object());
    auto allocate = [&](json params, const Owner& who) {
        json base{{"workflow_id", "wf"}, {"resources", json::object()}};
        if (params.is_object()) base.update(params); // {} arrives as null
        return n.call({{"operation", "allocate"}, {"params", base}}, who);
    };
    ASSERT_EQ(allocate({}, kAlice)["status"], "success");
    ASSERT_EQ(allocate({}, kAlice)["status"], "success");
    json third = allocate({}, kAlice);
    ASSERT_EQ(third["error"]["code"], "RESOURCE_EXHAUSTED") << third.dump(2);
    EXPECT_NE(third["error"]["details"].get<std::string>().find("limits.allocations_per_user is 2"), std::string::npos);
    EXPECT_EQ(allocate({}, Owner{1001, 7})["status"], "success") << "another user is not affected";
    EXPECT_EQ(allocate({}, Owner{0, 1})["status"], "success") << "root is exempt by default";
    // Queued requests and reservations have limits of their own.
    const Owner bob{1002, 8};
    ASSERT_EQ(allocate({{"resources", {{"cpu_cores", 6}}}}, bob)["status"], "success");
    json queued = allocate({{"workflow_id", "wf2"}, {"resources", {{"cpu_cores", 2}}}, {"wait", true}}, bob);
    EXPECT_EQ(queued["result"]["allocation"]["status"], "queued") << queued.dump(2);
    json second_queued = allocate({{"workflow_id", "wf3"}, {"resources", {{"cpu_cores", 2}}}, {"wait", true}}, bob);
    EXPECT_EQ(second_queued["error"]["code"], "RESOURCE_EXHAUSTED") << second_queued.dump(2);
    json reserve{{"operation", "reserve"}, {"params", {{"start_time", "2025-01-15T12:00:00Z"}, {"duration", "1h"}, {"resources", json::object()}}}};
    EXPECT_EQ(n.call(reserve, Owner{1003, 9})["status"], "success");
    EXPECT_EQ(n.call(reserve, Owner{1003, 9})["error"]["code"], "RESOURCE_EXHAUSTED");
    json files = allocate({{"exclusive_files", {"/tmp/a", "/tmp/b"}}}, Owner{1004, 10});
    EXPECT_EQ(files["error"]["code"], "POLICY_VIOLATION") << files.dump(2);
}

TEST(Lifecycle, BalanceLendsCpuMaxToABusyGroupAndGivesItBack) {
    Node node;
    const std::string idle = node.allocate({{"workflow_id", "wf-idle"}, {"resources", {{"cpu_cores", 2}}}});
    const std::string busy = node.allocate({{"workflow_id", "wf-busy"}, {"resources", {{"cpu_cores", 1}}}});
    monitor::Snapshot snap;
    snap.groups[idle].cpu_cores = 0.2;
    snap.groups[busy].cpu_cores = 1.0;
    auto& lending = node.service->context().lending;
    lending.on_sample(&snap); // off: nothing is lent
    EXPECT_EQ(node.backend.groups.at(busy).cpu_quota_us, 100000u);

    lending.enable({});
    lending.on_sample(&snap);
    EXPECT_EQ(node.backend.groups.at(busy).cpu_quota_us, 275000u); // 1 core + the 1.75 A leaves idle
    EXPECT_EQ(node.backend.groups.at(idle).cpu_quota_us, 200000u); // the lender keeps its own size
    EXPECT_EQ(node.ledger->find(busy)->resources.cpu_cores, 1);    // the ledger never counts a loan
    json st = node.call({{"operation", "status"}, {"params", {{"allocation_id", busy}}}});
    EXPECT_EQ(st["result"]["allocations"][0]["cpu_loan_cores"], 1.75) << st.dump(2);
    // A reallocate of the borrower keeps its loan on top of the new size.
    node.call({{"operation", "reallocate"}, {"params", {{"allocation_id", busy}, {"resources", {{"cpu_cores", 1.5}}}}}});
    EXPECT_EQ(node.backend.groups.at(busy).cpu_quota_us, 325000u);

    // The lender needs its CPU: the next pass takes the loan back.
    snap.groups[idle].cpu_cores = 1.9;
    snap.groups[busy].cpu_cores = 3.2;
    lending.on_sample(&snap);
    EXPECT_EQ(node.backend.groups.at(busy).cpu_quota_us, 150000u);

    snap.groups[idle].cpu_cores = 0.0;
    lending.on_sample(&snap);
    EXPECT_GT(*node.backend.groups.at(busy).cpu_quota_us, 150000u);
    EXPECT_EQ(lending.disable(), 1);
    EXPECT_EQ(node.backend.groups.at(busy).cpu_quota_us, 150000u);
}

TEST(Lifecycle, TuneMovesMemoryHighWhilePressureIsAboveTheTargetAndPutsItBack) {
    Node node;
    const std::string id = node.allocate({{"resources", {{"cpu_cores", 1}, {"memory", "1000M"}}}});
    const std::uint64_t max = 1000ULL << 20;
    auto pressure = [&](double avg10) {
        std::filesystem::create_directories(node.groups.path() / id);
        std::ofstream(node.groups.path() / id / "memory.pressure")
            << "some avg10=" << avg10 << " avg60=0.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1\n";
    };
    json started = node.call({{"operation", "tune"},
                              {"params", {{"component", "memory"}, {"metric", "memory_pressure"}, {"allocation_id", id}, {"target_value", 5}}}});
    ASSERT_EQ(started["status"], "success") << started.dump(2);
    auto& tuner = node.service->context().tuner;
    pressure(20);
    tuner.on_sample(nullptr);
    EXPECT_NEAR(static_cast<double>(*node.backend.groups.at(id).memory_high), 0.9 * 1.03 * static_cast<double>(max), 4096);
    for (int i = 0; i < 5; ++i) tuner.on_sample(nullptr);
    EXPECT_EQ(node.backend.groups.at(id).memory_high, max); // the ceiling: memory.max
    EXPECT_EQ(tuner.to_json()[0]["progress"], "bound_reached");
    json st = node.call({{"operation", "status"}, {"params", json::object()}});
    EXPECT_EQ(st["result"]["tuning"][0]["metric"], "memory_pressure") << st.dump(2);

    pressure(1); // well under half the target: room goes back a step
    tuner.on_sample(nullptr);
    EXPECT_LT(*node.backend.groups.at(id).memory_high, max);
    json stopped = node.call({{"operation", "tune"}, {"params", {{"component", "memory"}, {"allocation_id", id}, {"auto_adjust", false}}}});
    EXPECT_EQ(stopped["result"]["stopped"], 1) << stopped.dump(2);
    EXPECT_NEAR(static_cast<double>(*node.backend.groups.at(id).memory_high), 0.9 * static_cast<double>(max), 1);

    json unmeasured = node.call({{"operation", "tune"}, {"params", {{"component", "agent_pool"}, {"metric", "response_time"}, {"target_value", "1.0s"}}}});
    EXPECT_EQ(unmeasured["error"]["code"], "UNSUPPORTED") << unmeasured.dump(2);
    EXPECT_NE(unmeasured["error"]["details"].get<std::string>().find("memory/memory_pressure"), std::string::npos) << unmeasured.dump(2);
}
