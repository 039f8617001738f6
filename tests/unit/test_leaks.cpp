// Recovery procedures: the leak decisions on struct literals (each kind, the second-pass rule,
// escalation, the leak-rate threshold, names resmgrd never makes left alone, a live allocation's
// group never a finding), the degradation verdict (too few runs, degraded, not, failed runs left
// out), and the detector wired to a service with the fake backend and a real temp root.
#include <gtest/gtest.h>

#include <signal.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "analytics/degradation.hpp"
#include "core/leaks.hpp"
#include "fake_backend.hpp"
#include "server/service.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using nlohmann::json;
using std::chrono::minutes;
using std::chrono::seconds;

namespace {

const TimePoint kT0 = *parse_timestamp("2025-01-15T11:30:00Z");

Allocation allocation(const std::string& id, AllocationStatus status) {
    Allocation a;
    a.allocation_id = id;
    a.workflow_id = "wf";
    a.status = status;
    return a;
}

std::vector<std::pair<std::string, std::string>> kinds(const std::vector<core::LeakFinding>& findings) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& f : findings) out.emplace_back(core::to_string(f.kind), f.subject);
    return out;
}

using Kinds = std::vector<std::pair<std::string, std::string>>;

} // namespace

TEST(Leaks, FindsEachKindAndNeverALiveAllocationsGroup) {
    std::map<std::string, Allocation> ledger{{"alloc_live", allocation("alloc_live", AllocationStatus::active)},
                                             {"alloc_paused", allocation("alloc_paused", AllocationStatus::paused)},
                                             {"alloc_gone", allocation("alloc_gone", AllocationStatus::expired)},
                                             {"resv_later", allocation("resv_later", AllocationStatus::reserved)}};
    core::LeakInputs in;
    in.now = kT0;
    in.allocations = &ledger;
    in.groups = std::vector<std::string>{"alloc_live", "alloc_paused", "alloc_stray", "alloc_ended", "keeper.scope", "not-an-id", ".hidden"};
    in.ended = {"alloc_ended"};
    in.with_processes = {"alloc_ended"};
    in.temp_entries = std::vector<std::string>{"alloc_live", "alloc_old", "..", "a/b"};
    auto found = core::find_leaks(in);
    EXPECT_EQ(kinds(found), (Kinds{{"unclaimed_group", "alloc_stray"},
                                   {"vanished_group", "alloc_gone"},
                                   {"ended_with_processes", "alloc_ended"},
                                   {"orphan_temp_dir", "alloc_old"}}));
    for (const auto& f : found) {
        EXPECT_FALSE(f.confirmed) << "a first sighting is never acted on";
        EXPECT_EQ(f.first_seen, kT0);
    }
    EXPECT_FALSE(found[0].has_processes);
    EXPECT_TRUE(found[2].has_processes);
    // A reserved allocation has no group yet: not vanished.
    for (const auto& f : found) EXPECT_NE(f.subject, "resv_later");
}

TEST(Leaks, AnUnclaimedGroupWithProcessesSaysSoAndTheAccountingBackendListsNothing) {
    std::map<std::string, Allocation> ledger{{"alloc_live", allocation("alloc_live", AllocationStatus::active)}};
    core::LeakInputs in;
    in.now = kT0;
    in.allocations = &ledger;
    in.groups = std::vector<std::string>{"alloc_live", "alloc_x"};
    in.with_processes = {"alloc_x"};
    auto found = core::find_leaks(in);
    ASSERT_EQ(kinds(found), (Kinds{{"unclaimed_group", "alloc_x"}}));
    EXPECT_TRUE(found[0].has_processes);
    EXPECT_NE(found[0].detail.find("processes still run"), std::string::npos);

    in.groups.reset(); // no groups kept at all: nothing vanished
    EXPECT_TRUE(core::find_leaks(in).empty());
}

TEST(Leaks, NamesResmgrdNeverGivesAreLeftAlone) {
    EXPECT_TRUE(core::valid_allocation_id("alloc_0123456789ab"));
    EXPECT_TRUE(core::valid_allocation_id("my_reservation_1"));
    for (const std::string& name : {std::string(), std::string("resmgr-allocations.scope"), std::string("agent-a1"), std::string("x.y"),
                                    std::string(".."), std::string(65, 'a')})
        EXPECT_FALSE(core::valid_allocation_id(name)) << name;
    core::LeakInputs in;
    in.now = kT0;
    in.groups = std::vector<std::string>{"resmgr-allocations.scope", "agent-a1", "foreign.slice", "x-y"};
    EXPECT_TRUE(core::find_leaks(in).empty());
}

TEST(Leaks, ActedOnOnlyWhenSeenInTwoConsecutivePasses) {
    core::LeakTracker tracker;
    auto finding = [](const std::string& subject) {
        core::LeakFinding f;
        f.kind = core::LeakKind::unclaimed_group;
        f.subject = subject;
        return f;
    };
    auto first = tracker.observe({finding("alloc_a")}, kT0, minutes(30));
    EXPECT_FALSE(first[0].confirmed);
    // A pass without it: it starts over (a group made and claimed meanwhile is no leak).
    EXPECT_TRUE(tracker.observe({}, kT0 + minutes(5), minutes(30)).empty());
    auto again = tracker.observe({finding("alloc_a")}, kT0 + minutes(10), minutes(30));
    EXPECT_FALSE(again[0].confirmed);
    EXPECT_EQ(again[0].first_seen, kT0 + minutes(10));
    auto second = tracker.observe({finding("alloc_a")}, kT0 + minutes(15), minutes(30));
    EXPECT_TRUE(second[0].confirmed);
    EXPECT_FALSE(second[0].escalated);
    EXPECT_EQ(second[0].first_seen, kT0 + minutes(10));
    // Still there escalation_timeout after it was first seen: escalated.
    auto late = tracker.observe({finding("alloc_a")}, kT0 + minutes(40), minutes(30));
    EXPECT_TRUE(late[0].escalated);
}

TEST(Leaks, LeakRateAtTheThresholdMakesThePassAnError) {
    core::Policy::LeakDetection policy; // leak_threshold 15
    std::vector<std::string> groups;
    for (int i = 0; i < 10; ++i) groups.push_back("alloc_" + std::to_string(i));
    groups.push_back("foreign.dir"); // not counted: not resmgrd's
    core::LeakFinding leaked;
    leaked.kind = core::LeakKind::unclaimed_group;
    leaked.subject = "alloc_0";
    leaked.confirmed = true;
    auto one = core::summarize_leaks({leaked}, groups, policy);
    EXPECT_EQ(one.groups, 10);
    EXPECT_EQ(one.leaked_groups, 1);
    EXPECT_DOUBLE_EQ(one.leak_rate, 10);
    EXPECT_FALSE(one.error());
    auto second = leaked;
    second.subject = "alloc_1";
    second.kind = core::LeakKind::ended_with_processes;
    auto two = core::summarize_leaks({leaked, second}, groups, policy);
    EXPECT_DOUBLE_EQ(two.leak_rate, 20);
    EXPECT_TRUE(two.over_threshold);
    EXPECT_TRUE(two.error());
    // Unconfirmed findings do not count; an escalated one makes it an error on its own.
    second.confirmed = false;
    EXPECT_FALSE(core::summarize_leaks({leaked, second}, groups, policy).over_threshold);
    leaked.escalated = true;
    EXPECT_TRUE(core::summarize_leaks({leaked}, groups, policy).error());
}

namespace {

analytics::RunRecord run(std::int64_t ended_at, double seconds, analytics::RunOutcome outcome = analytics::RunOutcome::completed) {
    analytics::RunRecord r;
    r.workflow_type = "build";
    r.started_at = ended_at - static_cast<std::int64_t>(seconds);
    r.ended_at = ended_at;
    r.wall_seconds = seconds;
    r.outcome = outcome;
    return r;
}

} // namespace

TEST(Degradation, TooFewRunsSayHowManyThereAreAndAreNeeded) {
    std::vector<analytics::RunRecord> runs;
    for (int i = 0; i < 7; ++i) runs.push_back(run(1000 + i * 100, 10));
    auto v = analytics::judge_degradation("build", runs, 25);
    EXPECT_FALSE(v.degraded);
    EXPECT_EQ(v.runs, 7u);
    EXPECT_EQ(v.runs_needed, 8u);
    EXPECT_FALSE(v.baseline_seconds);
    EXPECT_NE(v.reason.find("7 completed run(s)"), std::string::npos) << v.reason;
    EXPECT_NE(v.reason.find("8 are needed"), std::string::npos) << v.reason;
    EXPECT_EQ(v.to_json()["baseline_seconds"], nullptr);
}

TEST(Degradation, NewestRunsSlowerByTheThresholdAreDegraded) {
    std::vector<analytics::RunRecord> runs;
    for (int i = 0; i < 5; ++i) runs.push_back(run(1000 + i * 100, 10 + i % 2)); // baseline median 10
    for (int i = 0; i < 3; ++i) runs.push_back(run(2000 + i * 100, 13));         // +30 %
    std::reverse(runs.begin(), runs.end()); // any order: sorted by end
    auto v = analytics::judge_degradation("build", runs, 25);
    EXPECT_TRUE(v.degraded);
    EXPECT_DOUBLE_EQ(*v.baseline_seconds, 10);
    EXPECT_DOUBLE_EQ(*v.recent_seconds, 13);
    EXPECT_NEAR(*v.slowdown_percent, 30, 1e-9);
    EXPECT_FALSE(analytics::judge_degradation("build", runs, 35).degraded);
}

TEST(Degradation, OneSlowRunOrSteadyRunsAreNotDegraded) {
    std::vector<analytics::RunRecord> runs;
    for (int i = 0; i < 8; ++i) runs.push_back(run(1000 + i * 100, 10));
    EXPECT_FALSE(analytics::judge_degradation("build", runs, 25).degraded);
    runs.push_back(run(5000, 60)); // one outlier among the newest 3: the median holds
    auto v = analytics::judge_degradation("build", runs, 25);
    EXPECT_FALSE(v.degraded);
    EXPECT_DOUBLE_EQ(*v.recent_seconds, 10);
}

TEST(Degradation, FailedRunsAreLeftOut) {
    std::vector<analytics::RunRecord> runs;
    for (int i = 0; i < 5; ++i) runs.push_back(run(1000 + i * 100, 10));
    for (int i = 0; i < 3; ++i) runs.push_back(run(2000 + i * 100, 10));
    // Slow failures, OOM kills and expiries are newest, but say nothing about speed.
    runs.push_back(run(3000, 100, analytics::RunOutcome::failed));
    runs.push_back(run(3100, 100, analytics::RunOutcome::oom_killed));
    runs.push_back(run(3200, 100, analytics::RunOutcome::expired));
    auto v = analytics::judge_degradation("build", runs, 25);
    EXPECT_EQ(v.runs, 8u);
    EXPECT_FALSE(v.degraded);
    EXPECT_DOUBLE_EQ(*v.recent_seconds, 10);
}

namespace {

struct LeakNode {
    TempDir dir;
    TempDir groups;
    FakeBackend backend;
    TimePoint now = kT0;
    core::Policy policy = core::Policy::defaults();
    state::StateStore store{dir.path() / "state"};
    std::unique_ptr<core::Ledger> ledger;
    std::unique_ptr<server::Service> service;
    std::unique_ptr<lifecycle::TempDirs> dirs;
    Owner me{static_cast<std::uint32_t>(::geteuid()), 10};

    explicit LeakNode(core::Policy p = core::Policy::defaults()) : policy(std::move(p)) {
        backend.root = groups.path().string();
        ledger = std::make_unique<core::Ledger>(core::NodeCapacity{8, 16 * kGiB}, policy);
        service = std::make_unique<server::Service>(*ledger, backend, store, [this] { return now; }, json::object(), json::object());
        dirs = std::make_unique<lifecycle::TempDirs>((dir.path() / "tmp").string());
        service->lifecycle().set_temp_dirs(dirs.get());
    }
    std::string allocate() {
        json r = service->router().handle_line(
            json{{"operation", "allocate"}, {"params", {{"workflow_id", "wf"}, {"resources", {{"cpu_cores", 1}}}}}}.dump(), me);
        EXPECT_EQ(r["status"], "success") << r.dump(2);
        return r["result"].value("allocation_id", "");
    }
    // A sampling tick `by` after the last one.
    void tick(Seconds by) {
        now += by;
        service->on_sample();
    }
    std::vector<events::Event> events_of(events::EventType type) const {
        std::vector<events::Event> out;
        for (const auto& e : service->events().recent())
            if (e.type == type) out.push_back(e);
        return out;
    }
    bool destroyed(const std::string& id) const { return std::count(backend.destroyed.begin(), backend.destroyed.end(), id) > 0; }
};

} // namespace

TEST(LeakDetector, RemovesALeakedGroupAndOrphanDirectoryFoundTwiceAndSaysSo) {
    LeakNode n;
    const std::string live = n.allocate();
    n.backend.groups["alloc_leaked"] = {};
    n.backend.attached["alloc_leaked"] = {4242};
    n.backend.groups["foreign.dir"] = {};
    const auto orphan = std::filesystem::path(n.dirs->root()) / "alloc_orphan";
    std::filesystem::create_directory(orphan);

    n.tick(seconds(0)); // the first pass: seen, not acted on
    EXPECT_FALSE(n.destroyed("alloc_leaked"));
    EXPECT_TRUE(std::filesystem::exists(orphan));
    EXPECT_TRUE(n.events_of(events::EventType::leak).empty());

    n.tick(seconds(30)); // before monitoring_interval (5 m): no pass
    EXPECT_FALSE(n.destroyed("alloc_leaked"));

    n.tick(minutes(5)); // the second pass: confirmed, its processes killed, the directory removed
    EXPECT_FALSE(n.destroyed("alloc_leaked")) << "a group with processes is removed only once they have left";
    ASSERT_FALSE(n.backend.signals.empty());
    EXPECT_EQ(n.backend.signals.back(), std::make_pair(std::string("alloc_leaked"), SIGKILL));
    EXPECT_FALSE(n.destroyed(live));
    EXPECT_FALSE(n.destroyed("foreign.dir"));
    EXPECT_TRUE(n.backend.groups.count(live));
    EXPECT_FALSE(std::filesystem::exists(orphan));
    auto leaks = n.events_of(events::EventType::leak);
    ASSERT_EQ(leaks.size(), 1u);
    EXPECT_NE(leaks[0].message.find("unclaimed_group alloc_leaked"), std::string::npos) << leaks[0].message;
    EXPECT_NE(leaks[0].message.find("orphan_temp_dir alloc_orphan"), std::string::npos) << leaks[0].message;
    EXPECT_EQ(leaks[0].details["cleaned"].size(), 2u) << leaks[0].details.dump(2);
    // One leaked group of two of resmgrd's: 50 % >= leak_threshold 15 %.
    EXPECT_EQ(leaks[0].priority, LOG_ERR);
    EXPECT_DOUBLE_EQ(*leaks[0].value, 50);

    json doctor = n.service->router().handle_line(json{{"operation", "doctor"}}.dump(), n.me);
    const json& last = doctor["result"]["daemon"]["recovery"]["leak_detection"]["last_pass"];
    EXPECT_EQ(last["cleaned"].size(), 2u) << doctor.dump(2);
    EXPECT_EQ(last["at"], format_timestamp(n.now));

    n.backend.attached["alloc_leaked"].clear(); // the killed process has left
    n.tick(minutes(5));                         // the third pass: the empty group is removed
    EXPECT_TRUE(n.destroyed("alloc_leaked"));
    EXPECT_FALSE(n.destroyed(live));
}

TEST(Leaks, AFindingClaimedSinceThePassBeganIsLeftAlone) {
    std::map<std::string, Allocation> ledger{{"alloc_now", allocation("alloc_now", AllocationStatus::active)},
                                             {"alloc_waiting", allocation("alloc_waiting", AllocationStatus::queued)}};
    auto finding = [](core::LeakKind kind, const std::string& subject) {
        core::LeakFinding f;
        f.kind = kind;
        f.subject = subject;
        return f;
    };
    // Listed as leaks when the pass began; alloc_now was admitted by an earlier action of it.
    EXPECT_FALSE(core::still_leaked(finding(core::LeakKind::unclaimed_group, "alloc_now"), ledger));
    EXPECT_FALSE(core::still_leaked(finding(core::LeakKind::ended_with_processes, "alloc_now"), ledger));
    EXPECT_FALSE(core::still_leaked(finding(core::LeakKind::orphan_temp_dir, "alloc_now"), ledger));
    EXPECT_TRUE(core::still_leaked(finding(core::LeakKind::unclaimed_group, "alloc_waiting"), ledger)) << "a queued allocation holds no group";
    EXPECT_TRUE(core::still_leaked(finding(core::LeakKind::orphan_temp_dir, "alloc_gone"), ledger));
    // A vanished group's allocation ended meanwhile: nothing left to end.
    EXPECT_TRUE(core::still_leaked(finding(core::LeakKind::vanished_group, "alloc_now"), ledger));
    EXPECT_FALSE(core::still_leaked(finding(core::LeakKind::vanished_group, "alloc_waiting"), ledger));
    EXPECT_FALSE(core::still_leaked(finding(core::LeakKind::vanished_group, "alloc_gone"), ledger));
}

TEST(LeakDetector, EndsAnAllocationWhoseGroupVanishedThroughItsOwnFinish) {
    LeakNode n;
    const std::string id = n.allocate();
    n.backend.groups.erase(id);
    n.tick(seconds(0));
    EXPECT_TRUE(n.ledger->find(id));
    n.tick(minutes(5));
    EXPECT_FALSE(n.ledger->find(id));
    auto released = n.events_of(events::EventType::released);
    ASSERT_FALSE(released.empty());
    EXPECT_EQ(released.back().details["reason"], "leak detection: its group vanished");
}

TEST(LeakDetector, SignalsAnEndedAllocationsProcessesAndEscalatesToSigkill) {
    LeakNode n;
    const std::string id = n.allocate();
    json r = n.service->router().handle_line(json{{"operation", "release"}, {"params", {{"allocation_id", id}}}}.dump(), n.me);
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    // Its group came back with a process in it (the removal failed half way, say).
    n.backend.groups[id] = {};
    n.backend.attached[id] = {4242};
    n.tick(seconds(0));
    n.tick(minutes(5));
    ASSERT_FALSE(n.backend.signals.empty());
    EXPECT_EQ(n.backend.signals.back(), std::make_pair(id, SIGTERM));
    n.tick(minutes(30)); // escalation_timeout after first seen
    EXPECT_EQ(n.backend.signals.back(), std::make_pair(id, SIGKILL));
    EXPECT_EQ(n.events_of(events::EventType::leak).back().priority, LOG_ERR);
}

TEST(LeakDetector, WithoutAutoCleanupReportsAndTouchesNothing) {
    core::Policy policy = core::Policy::defaults();
    policy.resource_leak_detection.auto_cleanup = false;
    LeakNode n(policy);
    n.backend.groups["alloc_leaked"] = {};
    n.tick(seconds(0));
    n.tick(minutes(5));
    EXPECT_FALSE(n.destroyed("alloc_leaked"));
    auto leaks = n.events_of(events::EventType::leak);
    ASSERT_EQ(leaks.size(), 1u);
    EXPECT_NE(leaks[0].message.find("reported only"), std::string::npos);
}

TEST(LeakDetector, RaisesPerformanceDegradedOncePerNewRunOfADegradedType) {
    LeakNode n;
    history::History history((n.dir.path() / "history.db").string());
    ASSERT_TRUE(history.available()) << history.problem();
    n.service->set_history(&history);
    auto record = [&](int i, double seconds) {
        analytics::RunRecord r = run(1000 + i * 100, seconds);
        r.allocation_id = "alloc_run" + std::to_string(i);
        r.workflow_id = "wf";
        history.record_run(r);
    };
    for (int i = 0; i < 5; ++i) record(i, 10);
    for (int i = 5; i < 7; ++i) record(i, 20);
    n.tick(seconds(0)); // 7 runs: too few for a verdict
    EXPECT_TRUE(n.events_of(events::EventType::performance_degraded).empty());
    record(7, 20);
    n.tick(minutes(5));
    auto degraded = n.events_of(events::EventType::performance_degraded);
    ASSERT_EQ(degraded.size(), 1u);
    EXPECT_EQ(degraded[0].details["workflow_type"], "build");
    EXPECT_EQ(degraded[0].details["baseline_seconds"], 10.0);
    EXPECT_EQ(degraded[0].details["recent_seconds"], 20.0);
    EXPECT_EQ(degraded[0].details["runs"], 8);
    EXPECT_EQ(degraded[0].details["threshold_percent"], 25.0);
    n.tick(minutes(5)); // no new run: no new event
    EXPECT_EQ(n.events_of(events::EventType::performance_degraded).size(), 1u);
    json doctor = n.service->router().handle_line(json{{"operation", "doctor"}}.dump(), n.me);
    EXPECT_EQ(doctor["result"]["daemon"]["recovery"]["performance_degradation"]["degraded"][0]["workflow_type"], "build") << doctor.dump(2);
}
