// Reservations over a time calendar, and the queue: window edges, order, restart.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/deadlines.hpp"
#include "core/ledger.hpp"
#include "fake_backend.hpp"
#include "resmgr/protocol.hpp"
#include "server/service.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using namespace resmgr::core;
using nlohmann::json;
using std::chrono::hours;
using std::chrono::minutes;

namespace {

const TimePoint kNow = *parse_timestamp("2025-01-15T11:00:00Z");
const Owner kAlice{1000, 10};

// 4 cores, 16 GiB, reserve 0.5 / 1 GiB: 3.5 cores allocatable.
Ledger ledger4() {
    int n = 0;
    return Ledger({4, 16 * kGiB}, Policy::defaults(), [n]() mutable { return "a" + std::to_string(++n); });
}

AllocationRequest cpu(double cores, std::optional<Seconds> duration = std::nullopt, int priority = 50, const std::string& wf = "wf") {
    AllocationRequest r;
    r.workflow_id = wf;
    r.priority = Priority{priority};
    r.resources.cpu_cores = cores;
    r.constraints.max_duration = duration;
    return r;
}

// A Service over a fake backend and a 4-core ledger, on a clock the test moves.
struct Node {
    TempDir dir;
    FakeBackend backend;
    TimePoint now = kNow;
    state::StateStore store{dir.path()};
    Ledger ledger{{4, 16 * kGiB}, Policy::defaults()}; // 3.5 cores allocatable
    server::Service service{ledger, backend, store, [this] { return now; }, json::object(), json::object()};
    // Its files are the test's own, which kAlice's uid could not write: looked at as the test.
    Node() {
        service.files().set_path_probe([](const std::string& path, const auto&) { return conflicts::probe_path(path, std::nullopt); });
    }
};

} // namespace

TEST(Calendar, ReservationHoldsItsWindowOnly) {
    auto l = ledger4();
    l.reserve(cpu(3, hours(2), 50, "res"), "res_789", kNow + hours(4), kAlice, kNow);
    // Ends before the window opens: admitted although it overlaps nothing else.
    std::string early = l.allocate(cpu(3, hours(4)), kAlice, kNow).allocation_id;
    l.release(early, kAlice);
    // Would still run at the window's start: refused, and the time is named.
    try {
        l.allocate(cpu(3, hours(5)), kAlice, kNow);
        FAIL();
    } catch (const ApiError& e) {
        EXPECT_EQ(e.code, ErrorCode::RESOURCE_EXHAUSTED);
        EXPECT_NE(e.details.find("only 0.5 available at 2025-01-15T15:00:00Z"), std::string::npos) << e.details;
    }
    // Small enough to share the window.
    EXPECT_NO_THROW(l.allocate(cpu(0.5, hours(5)), kAlice, kNow));
}

TEST(Calendar, WindowEdgesAreHalfOpen) {
    auto l = ledger4();
    l.reserve(cpu(3, hours(1), 50, "res"), "r1", kNow + hours(1), kAlice, kNow);
    // Ends exactly when the reservation starts: no overlap.
    EXPECT_NO_THROW(l.reserve(cpu(3, hours(1), 50, "before"), "r0", kNow, kAlice, kNow));
    // Starts exactly when it ends: no overlap.
    EXPECT_NO_THROW(l.reserve(cpu(3, hours(1), 50, "after"), "r2", kNow + hours(2), kAlice, kNow));
    // Starts one minute before it ends: overlaps.
    EXPECT_EQ(code_of([&] { l.reserve(cpu(3, hours(1), 50, "x"), "r3", kNow + hours(2) - minutes(1), kAlice, kNow); }),
              ErrorCode::RESOURCE_EXHAUSTED);
}

TEST(Calendar, ReservationRules) {
    auto l = ledger4();
    EXPECT_EQ(code_of([&] { l.reserve(cpu(1), "r", kNow + hours(1), kAlice, kNow); }), ErrorCode::INVALID_REQUEST); // no duration
    EXPECT_EQ(code_of([&] { l.reserve(cpu(1, hours(1)), "r", kNow - hours(1), kAlice, kNow); }), ErrorCode::INVALID_REQUEST);
    l.reserve(cpu(1, hours(1)), "r", kNow + hours(1), kAlice, kNow);
    EXPECT_EQ(code_of([&] { l.reserve(cpu(1, hours(1)), "r", kNow + hours(3), kAlice, kNow); }), ErrorCode::CONFLICT);
    EXPECT_DOUBLE_EQ(l.admission().availability().cpu_available, 3.5); // nothing held now
    EXPECT_TRUE(core::due_to_start(l, kNow + minutes(59)).empty());
    EXPECT_EQ(core::due_to_start(l, kNow + hours(1)), std::vector<std::string>{"r"});
    EXPECT_EQ(core::next_deadline(l), kNow + hours(1));
    l.activate("r");
    EXPECT_DOUBLE_EQ(l.admission().availability().cpu_available, 2.5);
    EXPECT_EQ(l.find("r")->expires_at, kNow + hours(2));
}

TEST(Queue, WaitQueuesWhatDoesNotFitButNeverTheImpossible) {
    auto l = ledger4();
    l.allocate(cpu(3), kAlice, kNow);
    EXPECT_EQ(code_of([&] { l.allocate(cpu(1), kAlice, kNow); }), ErrorCode::RESOURCE_EXHAUSTED);
    const Allocation& q = l.allocate(cpu(1), kAlice, kNow, true);
    EXPECT_EQ(q.status, AllocationStatus::queued);
    EXPECT_FALSE(q.expires_at); // its clock starts when admitted
    EXPECT_DOUBLE_EQ(l.admission().availability().cpu_available, 0.5); // queued holds nothing
    EXPECT_EQ(code_of([&] { l.allocate(cpu(4, {}, 50, "other"), kAlice, kNow, true); }), ErrorCode::RESOURCE_EXHAUSTED); // > node
    EXPECT_EQ(code_of([&] { l.allocate(cpu(7, {}, 50, "other"), kAlice, kNow, true); }), ErrorCode::POLICY_VIOLATION); // waiting cannot fix
}

TEST(Queue, AdmitsInPriorityThenArrivalOrderAndTheHeadIsNotStarved) {
    auto l = ledger4();
    l.allocate(cpu(3.5, {}, 50, "w1"), kAlice, kNow); // a1 fills the node
    std::string low = l.allocate(cpu(1, {}, 20, "w2"), kAlice, kNow, true).allocation_id;
    std::string high_big = l.allocate(cpu(3, {}, 80, "w3"), kAlice, kNow, true).allocation_id;
    std::string high_small = l.allocate(cpu(1, {}, 80, "w4"), kAlice, kNow, true).allocation_id;
    EXPECT_EQ(core::queue_position(l, high_big), 1u);
    EXPECT_EQ(core::queue_position(l, high_small), 2u);
    EXPECT_EQ(core::queue_position(l, low), 3u);
    l.release("a1", kAlice);
    EXPECT_EQ(l.admit_queued(kNow + minutes(1)), std::vector<std::string>{high_big}); // 3 of 3.5: the rest wait
    EXPECT_EQ(l.find(high_big)->status, AllocationStatus::active);
    EXPECT_EQ(l.find(high_big)->expires_at, kNow + minutes(1) + hours(6));
    EXPECT_EQ(core::queue_position(l, high_small), 1u);
    l.release(high_big, kAlice);
    EXPECT_EQ(l.admit_queued(kNow), (std::vector<std::string>{high_small, low}));
}

TEST(Queue, ConflictBlockedRequestsDoNotBlockTheLine) {
    auto l = ledger4();
    l.allocate(cpu(1, {}, 50, "wf_456"), kAlice, kNow);
    auto avoid = cpu(1, {}, 90, "wf_new");
    avoid.constraints.conflict_avoidance = {"wf_456"};
    std::string blocked = l.allocate(avoid, kAlice, kNow, true).allocation_id;
    EXPECT_EQ(l.find(blocked)->status, AllocationStatus::queued);
    std::string other = l.allocate(cpu(1, {}, 10, "wf_x"), kAlice, kNow, true).allocation_id; // fits now: admitted at once
    EXPECT_EQ(l.find(other)->status, AllocationStatus::active);
    EXPECT_TRUE(l.admit_queued(kNow).empty());
    l.release("a1", kAlice);
    EXPECT_EQ(l.admit_queued(kNow), std::vector<std::string>{blocked});
}

TEST(Queue, AFileHeldByAnotherNodeQueuesARequestThatFitsAndHoldsItBackWithoutBlockingTheLine) {
    auto l = ledger4();
    EXPECT_EQ(code_of([&] { l.allocate(cpu(1, {}, 90, "wf_a"), kAlice, kNow, false, true); }), ErrorCode::CONFLICT);
    const std::string waiting = l.allocate(cpu(1, {}, 90, "wf_a"), kAlice, kNow, true, true).allocation_id;
    EXPECT_EQ(l.find(waiting)->status, AllocationStatus::queued); // though it fits
    l.allocate(cpu(3, {}, 50, "wf_b"), kAlice, kNow);                                        // fills the node but 0.5
    const std::string behind = l.allocate(cpu(0.5, {}, 10, "wf_c"), kAlice, kNow, true).allocation_id; // fits: admitted
    EXPECT_EQ(l.find(behind)->status, AllocationStatus::active);
    l.release(behind, kAlice);
    const std::string small = l.allocate(cpu(2, {}, 10, "wf_d"), kAlice, kNow, true).allocation_id; // queued for room
    l.release("a2", kAlice);
    // The one held elsewhere is passed over, not a stop: the line goes on to the next.
    auto held_back = [&](const Allocation& a) { return a.allocation_id != waiting; };
    EXPECT_EQ(l.admit_queued(kNow, held_back), std::vector<std::string>{small});
    EXPECT_EQ(l.find(waiting)->status, AllocationStatus::queued);
    EXPECT_EQ(l.admit_queued(kNow, [](const Allocation&) { return true; }), std::vector<std::string>{waiting});
}

TEST(Queue, QueuedRequestsSurviveARestartAndStartOnRelease) {
    TempDir dir;
    FakeBackend backend;
    TimePoint now = kNow;
    auto run = [&](auto&& body) {
        state::StateStore store(dir.path());
        Ledger ledger({4, 16 * kGiB}, Policy::defaults());
        for (auto& a : store.load_allocations()) ledger.restore(a);
        server::Service service(ledger, backend, store, [&] { return now; }, json::object(), json::object());
        service.completion().reconcile();
        body(service, ledger);
    };
    std::string big, waiting;
    run([&](server::Service& s, Ledger&) {
        big = s.router().handle_line(R"({"operation":"allocate","params":{"workflow_id":"a","resources":{"cpu_cores":3}}})", kAlice)["result"]["allocation_id"];
        json q = s.router().handle_line(R"({"operation":"allocate","params":{"workflow_id":"b","wait":true,"resources":{"cpu_cores":2}}})", kAlice);
        ASSERT_EQ(q["status"], "success") << q.dump(2);
        EXPECT_EQ(q["result"]["allocation"]["status"], "queued");
        EXPECT_EQ(q["result"]["queue_position"], 1);
        waiting = q["result"]["allocation_id"];
        EXPECT_FALSE(backend.groups.count(waiting)); // no group while queued
    });
    run([&](server::Service& s, Ledger& l) { // restarted: still queued, still no group
        ASSERT_NE(l.find(waiting), nullptr);
        EXPECT_EQ(l.find(waiting)->status, AllocationStatus::queued);
        EXPECT_FALSE(backend.groups.count(waiting));
        s.router().handle_line(json{{"operation", "release"}, {"params", {{"allocation_id", big}}}}.dump(), kAlice);
        EXPECT_EQ(l.find(waiting)->status, AllocationStatus::active);
        EXPECT_EQ(backend.groups[waiting].cpu_quota_us, 200000u); // its group exists now
    });
}

TEST(Queue, AQueuedAllocationWhoseGroupCannotBeMadeEndsAndLetsGoOfWhatItHeldOutsideTheLedger) {
    Node node;
    auto& [dir, backend, now, store, ledger, service] = node;
    std::vector<std::string> let_go; // what the cluster's hook hears (its claims and agent slots go)
    service.files().set_on_release([&](const std::string& id, const std::optional<std::string>& file) {
        if (!file) let_go.push_back(id);
    });
    const std::string big = service.router().handle_line(R"({"operation":"allocate","params":{"workflow_id":"a","resources":{"cpu_cores":3}}})",
                                                         kAlice)["result"]["allocation_id"];
    const std::string waiting = service.router().handle_line(
        R"({"operation":"allocate","params":{"workflow_id":"b","wait":true,"resources":{"cpu_cores":2}}})", kAlice)["result"]["allocation_id"];
    backend.fail.insert("create");
    service.router().handle_line(json{{"operation", "release"}, {"params", {{"allocation_id", big}}}}.dump(), kAlice);
    EXPECT_EQ(ledger.find(waiting), nullptr);
    EXPECT_NE(std::find(let_go.begin(), let_go.end(), waiting), let_go.end());
}

TEST(Queue, ReservationActivatesOnTimerAndGetsItsGroup) {
    Node node;
    auto& [dir, backend, now, store, ledger, service] = node;
    json r = service.router().handle_line(R"({"operation":"reserve","params":{"reservation_id":"res_789","start_time":"2025-01-15T15:00:00Z",
        "duration":"2h","resources":{"cpu_cores":2},"priority":"medium"}})", kAlice);
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    EXPECT_EQ(r["result"]["allocation"]["status"], "reserved");
    EXPECT_FALSE(backend.groups.count("res_789"));
    now = *parse_timestamp("2025-01-15T15:00:00Z");
    service.completion().on_timer();
    EXPECT_EQ(ledger.find("res_789")->status, AllocationStatus::active);
    EXPECT_TRUE(backend.groups.count("res_789"));
    now += hours(2);
    service.completion().on_timer(); // its window closes: SIGTERM, then the kill after grace
    EXPECT_EQ(backend.signals.size(), 1u);
    json bad = service.router().handle_line(R"({"operation":"reserve","params":{"start_time":"soon","duration":"1h","resources":{}}})", kAlice);
    EXPECT_EQ(bad["error"]["code"], "INVALID_REQUEST");
}

AllocationRequest with_file(AllocationRequest r, const std::string& file) {
    r.constraints.exclusive_access = {file};
    return r;
}

// An exclusive file is promised to one allocation at a time, over time as well as now.
TEST(Calendar, AReservationBooksItsFilesForItsWindow) {
    auto l = ledger4();
    const std::string file = "/work/flake.nix";
    l.reserve(with_file(cpu(0.5, hours(1), 50, "res"), file), "r1", kNow + hours(2), kAlice, kNow);
    // Another reservation overlapping the window: refused; one after it: booked.
    EXPECT_EQ(code_of([&] { l.reserve(with_file(cpu(0.5, hours(1), 50, "b"), file), "r2", kNow + hours(2) + minutes(30), kAlice, kNow); }),
              ErrorCode::CONFLICT);
    EXPECT_NO_THROW(l.reserve(with_file(cpu(0.5, hours(1), 50, "c"), file), "r3", kNow + hours(3), kAlice, kNow));
    // Allocating now: ending before the window is fine, running into it is not.
    std::string early = l.allocate(with_file(cpu(0.5, hours(2)), file), kAlice, kNow).allocation_id;
    l.release(early, kAlice);
    try {
        l.allocate(with_file(cpu(0.5, hours(3)), file), kAlice, kNow);
        FAIL() << "ran into the reservation's window";
    } catch (const ApiError& e) {
        EXPECT_EQ(e.code, ErrorCode::CONFLICT);
        EXPECT_NE(std::string(e.what()).find("booked exclusively by reservation r1"), std::string::npos) << e.what();
        ASSERT_EQ(e.affected_resources.size(), 2u);
        EXPECT_EQ(e.affected_resources[1], "allocation:r1");
    }
}

TEST(Calendar, AReservationCountsOnAHoldersEndOnlyIfItIsReleasedThen) {
    auto l = ledger4();
    const std::string file = "/work/flake.nix";
    AllocationRequest keeps_running = with_file(cpu(0.5, hours(1)), file);
    keeps_running.auto_release.on_timeout = false;
    std::string holder = l.allocate(keeps_running, kAlice, kNow).allocation_id;
    EXPECT_EQ(code_of([&] { l.reserve(with_file(cpu(0.5, hours(1), 50, "res"), file), "r1", kNow + hours(2), kAlice, kNow); }),
              ErrorCode::CONFLICT)
        << "the holder keeps running past its duration";
    l.release(holder, kAlice);
    holder = l.allocate(with_file(cpu(0.5, hours(1)), file), kAlice, kNow).allocation_id;
    EXPECT_NO_THROW(l.reserve(with_file(cpu(0.5, hours(1), 50, "res"), file), "r1", kNow + hours(2), kAlice, kNow))
        << "the holder is let go when its hour is over";
}

// A reservation whose file's previous holder is still in its grace period when the window
// opens waits for it, then starts: the file never has two holders. One whose whole window
// passes that way never starts.
TEST(Calendar, AReservationWaitsForItsFilesPreviousHolder) {
    auto l = ledger4();
    const std::string file = "/work/flake.nix";
    l.reserve(with_file(cpu(0.5, hours(1), 50, "res"), file), "r1", kNow + hours(1), kAlice, kNow);
    std::string holder = l.allocate(with_file(cpu(0.5, hours(1)), file), kAlice, kNow).allocation_id;
    EXPECT_TRUE(core::due_to_start(l, kNow + hours(1)).empty()) << "the holder is still there";
    EXPECT_EQ(core::next_deadline(l), kNow + hours(1)) << "the holder's end, not a busy wait on the reservation";
    EXPECT_TRUE(core::lapsed_reservations(l, kNow + hours(1) + minutes(30)).empty());
    EXPECT_EQ(core::lapsed_reservations(l, kNow + hours(2)), std::vector<std::string>{"r1"});
    l.release(holder, kAlice);
    EXPECT_EQ(core::due_to_start(l, kNow + hours(1) + minutes(1)), std::vector<std::string>{"r1"});
    l.activate("r1");
    EXPECT_EQ(l.holdings().file_holder(file), "r1");
}

TEST(Queue, AReservationStartsWhenItsFilesPreviousHolderIsGone) {
    Node node;
    auto& [dir, backend, now, store, ledger, service] = node;
    const std::string file = (dir.path() / "flake.nix").string();
    json r = service.router().handle_line(R"({"operation":"reserve","params":{"reservation_id":"res_1","start_time":"2025-01-15T12:00:00Z",
        "duration":"1h","resources":{"cpu_cores":1},"exclusive_files":[")" + file + R"("]}})", kAlice);
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    // Ends when the window opens; it may still be in its grace period then.
    json a = service.router().handle_line(R"({"operation":"allocate","params":{"workflow_id":"wf-early","duration":"1h","resources":{"cpu_cores":1},
        "exclusive_files":[")" + file + R"("]}})", kAlice);
    ASSERT_EQ(a["status"], "success") << a.dump(2);
    const std::string holder = a["result"]["allocation_id"];
    json forever = service.router().handle_line(R"({"operation":"allocate","params":{"workflow_id":"wf-late","duration":"1h","resources":{"cpu_cores":1},
        "auto_release":{"on_timeout":false},"exclusive_files":[")" + file + R"("]}})", kAlice);
    EXPECT_EQ(forever["error"]["code"], "CONFLICT") << "one that may outlive its hour would run into the reservation";
    now = *parse_timestamp("2025-01-15T12:00:00Z");
    service.completion().on_timer(); // the holder gets SIGTERM and its grace period
    EXPECT_EQ(ledger.find("res_1")->status, AllocationStatus::reserved) << "waits for the holder";
    EXPECT_EQ(ledger.holdings().file_holder(file), holder);
    now += minutes(30); // far past the grace period
    service.completion().on_timer(); // the holder is killed and removed; the reservation starts
    EXPECT_EQ(ledger.find(holder), nullptr);
    ASSERT_NE(ledger.find("res_1"), nullptr);
    EXPECT_EQ(ledger.find("res_1")->status, AllocationStatus::active);
    EXPECT_EQ(ledger.holdings().file_holder(file), "res_1");
    EXPECT_TRUE(backend.groups.count("res_1"));
}

TEST(CheckConflicts, ReportsResourceTimeWorkflowAndFileConflicts) {
    Node node;
    auto& [dir, backend, now, store, ledger, s] = node;
    auto call = [&](const std::string& line) {
        json r = s.router().handle_line(line, kAlice);
        EXPECT_EQ(r["status"], "success") << r.dump(2);
        return r;
    };
    // Exclusive files are canonical absolute paths (relative ones resolve against the requester's directory).
    const std::string flake = (dir.path() / "flake.nix").string(), home = (dir.path() / "home.nix").string();
    call(R"({"operation":"allocate","params":{"workflow_id":"wf_456","resources":{"cpu_cores":1},"exclusive_files":[")" + flake + R"("],
             "constraints":{"conflict_avoidance":["workflow_789"]}}})");
    call(R"({"operation":"reserve","params":{"reservation_id":"res_1","start_time":"2025-01-15T13:00:00Z","duration":"2h",
             "resources":{"cpu_cores":2}}})");
    json clean = call(R"({"operation":"check-conflicts","params":{"proposed_allocation":{"workflow_id":"w","resources":{"cpu_cores":0.5}}}})");
    EXPECT_TRUE(clean["result"]["conflict_free"].get<bool>()) << clean.dump(2);

    json r = call(R"({"operation":"check-conflicts","params":{"proposed_allocation":{"workflow_id":"workflow_789",
        "resources":{"cpu_cores":2},"files":[")" + home + R"(",")" + flake + R"("]},"check_future":true,"time_horizon":"4h"}})");
    std::map<std::string, json> by_type;
    for (auto& c : r["result"]["conflicts"]) by_type[c["conflict_type"]] = c;
    ASSERT_TRUE(by_type.count("time")) << r.dump(2);   // 1 + 2 reserved + 2 > 3.5 at 13:00
    EXPECT_EQ(by_type["time"]["conflict_details"]["reservation_id"], "res_1");
    EXPECT_NE(by_type["time"]["conflict_details"]["details"].get<std::string>().find("at 2025-01-15T13:00:00Z"), std::string::npos);
    ASSERT_TRUE(by_type.count("workflow"));
    EXPECT_EQ(by_type["workflow"]["affected_workflows"], json({"workflow_789", "wf_456"}));
    ASSERT_TRUE(by_type.count("file"));
    EXPECT_EQ(by_type["file"]["conflict_details"]["file"], flake);
    EXPECT_FALSE(by_type.count("resource")); // 2 cores fit now
    for (auto& c : r["result"]["conflicts"]) EXPECT_EQ(c["conflict_id"].get<std::string>().rfind("pred_", 0), 0u);
    // Without check_future the reservation is not looked at.
    json now_only = call(R"({"operation":"check-conflicts","params":{"proposed_allocation":{"workflow_id":"x","resources":{"cpu_cores":2}}}})");
    EXPECT_TRUE(now_only["result"]["conflict_free"].get<bool>());
    json big = call(R"({"operation":"check-conflicts","params":{"proposed_allocation":{"workflow_id":"x","resources":{"cpu_cores":3}}}})");
    ASSERT_EQ(big["result"]["conflicts"].size(), 1u);
    EXPECT_EQ(big["result"]["conflicts"][0]["conflict_type"], "resource");
    EXPECT_EQ(big["result"]["conflicts"][0]["resolution_strategies"], json({"intelligent_queuing", "resource_scaling"}));
}
