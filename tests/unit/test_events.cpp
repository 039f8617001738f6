// Events: journald field mapping, alerts.jsonl rotation, and what the Service reports.
#include "build_paths.hpp"
#include <gtest/gtest.h>

#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <stdexcept>
#include <set>

#include "events/event.hpp"
#include "events/sink_thread.hpp"
#include "fake_backend.hpp"
#include "server/event_loop.hpp"
#include "server/service.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using namespace resmgr::events;
using nlohmann::json;

namespace {

struct RecordingSink : EventSink {
    std::vector<Event> seen;
    void publish(const Event& e) override { seen.push_back(e); }
};

struct FailingSink : EventSink {
    void publish(const Event&) override { throw std::runtime_error("disk full"); }
};

} // namespace

TEST(Events, JournalFieldsCarryTheStableIdAndResmgrFields) {
    Event e = Event::make(EventType::threshold_raised, "cpu at 91%", "global");
    e.metric = "cpu";
    e.value = 91.5;
    e.threshold = 80;
    auto f = journal_fields(e);
    std::set<std::string> fields(f.begin(), f.end());
    EXPECT_TRUE(fields.count("MESSAGE_ID=ff97be640d2c481e940fc2e5bf56efd9"));
    EXPECT_TRUE(fields.count("PRIORITY=4"));
    EXPECT_TRUE(fields.count("MESSAGE=cpu at 91%"));
    EXPECT_TRUE(fields.count("RESMGR_EVENT=RESOURCE_THRESHOLD"));
    EXPECT_TRUE(fields.count("RESMGR_WORKFLOW=global"));
    EXPECT_TRUE(fields.count("RESMGR_METRIC=cpu"));
    EXPECT_TRUE(fields.count("RESMGR_VALUE=91.5"));
    EXPECT_TRUE(fields.count("RESMGR_THRESHOLD=80"));
    EXPECT_FALSE(std::any_of(f.begin(), f.end(), [](auto& s) { return s.rfind("RESMGR_ALLOCATION=", 0) == 0; }));
}

TEST(Events, MessageIdsAreDistinctAndWellFormed) {
    std::set<std::string> ids;
    for (auto t : {EventType::allocated, EventType::released, EventType::expired, EventType::denied, EventType::queued, EventType::preempted,
                   EventType::resumed, EventType::conflict, EventType::threshold_raised, EventType::threshold_cleared, EventType::oom_kill,
                   EventType::resized, EventType::pressure, EventType::pressure_relieved, EventType::leak, EventType::performance_degraded}) {
        auto id = message_id(t);
        EXPECT_EQ(id.size(), 32u);
        EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
        ids.insert(id);
    }
    EXPECT_EQ(ids.size(), 16u);
}

TEST(Events, CatalogExplainsEveryMessageId) {
    std::ifstream in(std::string(build_paths::source_dir) + "/units/resmgr.catalog");
    std::string catalog((std::istreambuf_iterator<char>(in)), {});
    for (auto t : {EventType::allocated, EventType::released, EventType::expired, EventType::denied, EventType::queued, EventType::preempted,
                   EventType::resumed, EventType::conflict, EventType::threshold_raised, EventType::threshold_cleared, EventType::oom_kill,
                   EventType::resized, EventType::pressure, EventType::pressure_relieved, EventType::leak, EventType::performance_degraded})
        EXPECT_NE(catalog.find("-- " + message_id(t)), std::string::npos) << to_string(t);
}

TEST(Events, JsonlSinkAppendsAndRotates) {
    TempDir dir;
    std::string path = (dir.path() / "alerts.jsonl").string();
    JsonlSink sink(path, 300);
    for (int i = 0; i < 5; ++i) sink.publish(Event::make(EventType::allocated, "event " + std::to_string(i), "wf", "alloc_" + std::to_string(i)));
    std::ifstream current(path), old(path + ".1");
    std::string line;
    int lines = 0;
    while (std::getline(current, line)) {
        auto j = json::parse(line);
        EXPECT_EQ(j["event"], "RESOURCE_ALLOCATED");
        ++lines;
    }
    EXPECT_GT(lines, 0);
    EXPECT_TRUE(old.good()) << "no rotation past 300 bytes";
    EXPECT_LT(std::filesystem::file_size(path), 300u + 200u);
}

// A sink the test holds shut: publish() waits until the gate opens, as alerts.jsonl on a disk
// that hangs would. What it got is read under its lock.
struct GatedSink : EventSink {
    std::mutex mutex;
    std::condition_variable changed;
    bool open = false;
    std::vector<std::string> seen;
    bool entered = false;
    void publish(const Event& e) override {
        std::unique_lock lock(mutex);
        entered = true;
        changed.notify_all();
        changed.wait(lock, [&] { return open; });
        seen.push_back(e.message);
    }
    void let_through() {
        std::lock_guard lock(mutex);
        open = true;
        changed.notify_all();
    }
    void wait_entered() {
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] { return entered; });
    }
    std::vector<std::string> got() {
        std::lock_guard lock(mutex);
        return seen;
    }
};

std::vector<std::string> messages(int from, int to) {
    std::vector<std::string> out;
    for (int i = from; i < to; ++i) out.push_back("event " + std::to_string(i));
    return out;
}

TEST(EventSinkThread, HandsEveryEventToTheSinkInOrder) {
    auto recording = std::make_unique<RecordingSink>();
    auto* sink = recording.get();
    SinkThread thread(std::move(recording));
    for (int i = 0; i < 1000; ++i) thread.publish(Event::make(EventType::allocated, "event " + std::to_string(i)));
    thread.flush();
    std::vector<std::string> seen;
    for (const auto& e : sink->seen) seen.push_back(e.message);
    EXPECT_EQ(seen, messages(0, 1000));
    EXPECT_EQ(thread.dropped(), 0u);
}

TEST(EventSinkThread, AStalledSinkNeverBlocksThePublisherAndDropsBeyondTheBound) {
    auto gated = std::make_unique<GatedSink>();
    auto* sink = gated.get();
    SinkThread thread(std::move(gated), 10);
    thread.publish(Event::make(EventType::allocated, "event 0"));
    sink->wait_entered(); // the thread is stuck in the sink with event 0
    // The publisher goes on while the sink hangs: 10 are queued, the rest dropped and counted.
    auto publishing = std::async(std::launch::async, [&] {
        for (int i = 1; i < 31; ++i) thread.publish(Event::make(EventType::allocated, "event " + std::to_string(i)));
    });
    ASSERT_EQ(publishing.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "publish waited on a stalled sink";
    EXPECT_EQ(thread.dropped(), 20u);
    sink->let_through();
    thread.flush();
    EXPECT_EQ(sink->got(), messages(0, 11)) << "the queued ones, in order; the dropped ones never";
}

// Records into a list the test keeps: the sink itself goes with its thread. Throws on the
// events named "throw", as a full disk would.
struct SharedSink : EventSink {
    std::shared_ptr<std::vector<std::string>> seen = std::make_shared<std::vector<std::string>>();
    void publish(const Event& e) override {
        if (e.message == "throw") throw std::runtime_error("disk full");
        seen->push_back(e.message);
    }
};

TEST(EventSinkThread, StoppingHandsTheSinkEverythingQueued) {
    auto shared = std::make_unique<SharedSink>();
    const auto seen = shared->seen;
    {
        SinkThread thread(std::move(shared));
        thread.publish(Event::make(EventType::released, "event 0"));
        thread.flush(); // the thread waits for the next: the rest wake it, then it is told to stop
        for (int i = 1; i < 50; ++i) thread.publish(Event::make(EventType::released, "event " + std::to_string(i)));
    } // destroyed without a flush
    EXPECT_EQ(*seen, messages(0, 50));
}

TEST(EventSinkThread, GoesOnAfterTheSinkThrows) {
    auto shared = std::make_unique<SharedSink>();
    const auto seen = shared->seen;
    SinkThread thread(std::move(shared));
    thread.publish(Event::make(EventType::released, "event 0"));
    thread.publish(Event::make(EventType::released, "throw"));
    thread.publish(Event::make(EventType::released, "event 1"));
    thread.flush();
    EXPECT_EQ(*seen, messages(0, 2));
}

TEST(Events, BusSkipsAFailingSink) {
    EventBus bus;
    bus.add(std::make_unique<FailingSink>());
    auto recording = std::make_unique<RecordingSink>();
    auto* seen = recording.get();
    bus.add(std::move(recording));
    bus.publish(Event::make(EventType::released, "x"));
    EXPECT_EQ(seen->seen.size(), 1u);
}

TEST(Events, ServiceReportsTransitions) {
    TempDir dir;
    FakeBackend backend;
    state::StateStore store(dir.path());
    core::Ledger ledger({2, 16 * kGiB}, core::Policy::defaults());
    TimePoint now = *parse_timestamp("2025-01-15T11:00:00Z");
    server::Service s(ledger, backend, store, [&] { return now; }, json::object(), json::object());
    RecordingSink sink;
    s.events().set_sink(&sink);
    const Owner alice{1000, 1};
    std::string low = s.router().handle_line(R"({"operation":"allocate","params":{"workflow_id":"bg","priority":"low","duration":"10s",
        "auto_release":{"grace_period":"1s"},"resources":{"cpu_cores":1.5}}})", alice)["result"]["allocation_id"];
    s.router().handle_line(R"({"operation":"allocate","params":{"workflow_id":"big","resources":{"cpu_cores":1}}})", alice); // denied
    const Owner ops{0, 2}; // critical preempts, so it is root's (priority_privileges)
    json crit = s.router().handle_line(R"({"operation":"allocate","params":{"workflow_id":"fix","priority":"critical","resources":{"cpu_cores":1}}})", ops);
    s.router().handle_line(json{{"operation", "release"}, {"params", {{"allocation_id", crit["result"]["allocation_id"]}}}}.dump(), ops);
    now += std::chrono::seconds(11);
    s.completion().on_timer();
    std::vector<std::string> types;
    for (auto& e : sink.seen) types.push_back(to_string(e.type));
    EXPECT_EQ(types, (std::vector<std::string>{"RESOURCE_ALLOCATED", "RESOURCE_DENIED", "RESOURCE_PREEMPTED", "RESOURCE_ALLOCATED",
                                               "RESOURCE_RELEASED", "RESOURCE_RESUMED", "RESOURCE_EXPIRED"}));
    EXPECT_EQ(sink.seen[0].allocation, low);
    EXPECT_EQ(sink.seen[1].workflow, "big");
    EXPECT_EQ(sink.seen[1].details["code"], "RESOURCE_EXHAUSTED");
    EXPECT_EQ(sink.seen[2].details["mode"], "pause");
}

TEST(Events, AnEventLoopHandlerThatThrowsIsLoggedAndTheLoopGoesOn) {
    sd_event* event = nullptr;
    ASSERT_GE(sd_event_new(&event), 0);
    int calls = 0;
    struct Ctx {
        int* calls;
    } ctx{&calls};
    // First a handler that throws, then one that ends the loop: the second still runs.
    auto throwing = [](sd_event_source*, uint64_t, void* data) {
        server::run_handler("test handler", [data] {
            ++*static_cast<Ctx*>(data)->calls;
            throw std::runtime_error("boom");
        });
        return 0;
    };
    auto ending = [](sd_event_source* s, uint64_t, void* data) {
        ++*static_cast<Ctx*>(data)->calls;
        return sd_event_exit(sd_event_source_get_event(s), 0);
    };
    ASSERT_GE(sd_event_add_time_relative(event, nullptr, CLOCK_MONOTONIC, 1000, 1, throwing, &ctx), 0);
    ASSERT_GE(sd_event_add_time_relative(event, nullptr, CLOCK_MONOTONIC, 20000, 1, ending, &ctx), 0);
    EXPECT_EQ(sd_event_loop(event), 0);
    EXPECT_EQ(calls, 2);
    sd_event_unref(event);
}

TEST(Events, RecoveryEventsParseByTheirShortAndFullNames) {
    EXPECT_EQ(parse_event_name("leak"), EventType::leak);
    EXPECT_EQ(parse_event_name("RESOURCE_LEAK"), EventType::leak);
    EXPECT_EQ(parse_event_name("performance_degraded"), EventType::performance_degraded);
    EXPECT_EQ(parse_event_name("PERFORMANCE_DEGRADED"), EventType::performance_degraded);
    EXPECT_EQ(to_string(EventType::performance_degraded), "PERFORMANCE_DEGRADED");
    EXPECT_FALSE(parse_event_name("degraded"));
}
