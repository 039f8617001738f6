// The threshold monitor, bounded JSONL files, the sampler's rates, and the monitoring
// operations and agent pool through the Service (fake backend, fake /proc and cgroup trees).
#include "build_paths.hpp"
#include <gtest/gtest.h>

#include <algorithm>

#include <fstream>
#include <memory>

#include "events/jsonl_log.hpp"
#include "fake_backend.hpp"
#include "monitor/sampler.hpp"
#include "monitor/threshold.hpp"
#include "server/service.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = fs::path(build_paths::source_dir) / "tests/unit/fixtures/monitor";
const TimePoint kT0 = *parse_timestamp("2025-01-15T11:30:00Z");

void write(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text;
}

// cpu line with `busy` user ticks and `idle` idle ticks (other counters 0).
std::string proc_stat(std::uint64_t busy, std::uint64_t idle) {
    return "cpu  " + std::to_string(busy) + " 0 0 " + std::to_string(idle) + " 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n";
}

size_t line_count(const fs::path& path) {
    std::ifstream in(path);
    size_t n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
}

monitor::ThresholdRule cpu_rule() { return {"cpu", 80, 5, Seconds(300), "warning"}; }

} // namespace

TEST(Threshold, RaisesAtThresholdAndClearsOnlyBelowTheMargin) {
    monitor::ThresholdMonitor m({cpu_rule()});
    using Kind = monitor::ThresholdChange::Kind;
    EXPECT_FALSE(m.observe("cpu", 79.9, kT0));
    auto raised = m.observe("cpu", 80.0, kT0 + Seconds(1));
    ASSERT_TRUE(raised);
    EXPECT_EQ(raised->kind, Kind::raised);
    EXPECT_TRUE(m.raised("cpu"));
    // Inside the hysteresis band (75..80): neither cleared nor repeated.
    EXPECT_FALSE(m.observe("cpu", 76, kT0 + Seconds(2)));
    EXPECT_FALSE(m.observe("cpu", 75, kT0 + Seconds(3)));
    auto cleared = m.observe("cpu", 74.9, kT0 + Seconds(4));
    ASSERT_TRUE(cleared);
    EXPECT_EQ(cleared->kind, Kind::cleared);
    EXPECT_FALSE(m.raised("cpu"));
    EXPECT_FALSE(m.observe("cpu", 79, kT0 + Seconds(5)));
    EXPECT_EQ(m.observe("cpu", 95, kT0 + Seconds(6))->kind, Kind::raised);
}

TEST(Threshold, RepeatsNoMoreOftenThanTheInterval) {
    monitor::ThresholdMonitor m({cpu_rule()});
    ASSERT_TRUE(m.observe("cpu", 90, kT0));
    for (int s = 1; s < 300; s += 30) EXPECT_FALSE(m.observe("cpu", 90, kT0 + Seconds(s))) << s;
    auto again = m.observe("cpu", 91, kT0 + Seconds(300));
    ASSERT_TRUE(again);
    EXPECT_EQ(again->kind, monitor::ThresholdChange::Kind::repeated);
    EXPECT_FALSE(m.observe("cpu", 91, kT0 + Seconds(301)));
    EXPECT_FALSE(m.observe("memory", 100, kT0)) << "metrics without a rule are ignored";
}

TEST(Threshold, RulesComeFromThePolicyWithTheSeedDefaults) {
    auto rules = monitor::threshold_rules(core::Policy::defaults());
    std::map<std::string, monitor::ThresholdRule> by_metric;
    for (auto& r : rules) by_metric[r.metric] = r;
    EXPECT_EQ(by_metric.at("cpu").threshold, 80);
    EXPECT_EQ(by_metric.at("memory").threshold, 85);
    EXPECT_EQ(by_metric.at("agent_pool").threshold, 90);
    EXPECT_EQ(by_metric.at("agent_pool").severity, "critical");
}

TEST(Threshold, PolicyRejectsBadThresholdsAndIntervals) {
    auto bad = [](json policy) { return code_of([&] { core::parse_policy({{"resource_policies", policy}}); }); };
    EXPECT_EQ(bad({{"thresholds", {{"cpu", {{"threshold", 120}}}}}}), ErrorCode::INVALID_REQUEST);
    EXPECT_EQ(bad({{"thresholds", {{"cpu", {{"severity", "panic"}}}}}}), ErrorCode::INVALID_REQUEST);
    EXPECT_EQ(bad({{"thresholds", {{"disk", {{"threshold", 50}}}}}}), ErrorCode::INVALID_REQUEST);
    EXPECT_EQ(bad({{"monitoring_intervals", {{"resource_check", "500ms"}}}}), ErrorCode::INVALID_REQUEST);
    auto p = core::parse_policy({{"resource_policies", {{"monitoring_intervals", {{"resource_check", "1s"}}},
                                                        {"thresholds", {{"cpu", {{"threshold", 5}, {"severity", "critical"}}},
                                                                        {"repeat_interval", "10s"}}}}}});
    EXPECT_EQ(p.resource_check_interval(), Millis(1000));
    EXPECT_EQ(p.thresholds.at("cpu").threshold, 5);
    EXPECT_EQ(p.threshold_repeat_interval, Seconds(10));
    EXPECT_EQ(core::parse_policy(p.to_json()).to_json(), p.to_json()) << "to_json round-trips";
}

TEST(JsonlLog, RotatesBySizeKeepingOneGeneration) {
    TempDir dir;
    auto path = dir.path() / "history.jsonl";
    events::JsonlLog log(path.string(), 200);
    for (int i = 0; i < 20; ++i) log.append({{"i", i}, {"pad", std::string(20, 'x')}});
    EXPECT_TRUE(fs::exists(path.string() + ".1"));
    EXPECT_LE(fs::file_size(path), 200u + 60);
    EXPECT_FALSE(fs::exists(path.string() + ".2"));
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) EXPECT_TRUE(json::accept(line)) << "whole lines only: " << line;
}

TEST(JsonlLog, RotatesByAge) {
    TempDir dir;
    auto path = dir.path() / "history.jsonl";
    TimePoint now = Clock::now();
    events::JsonlLog log(path.string(), 1 << 20, Seconds(3600), [&] { return now; });
    log.append({{"n", 1}});
    now += Seconds(1800);
    log.append({{"n", 2}});
    EXPECT_FALSE(fs::exists(path.string() + ".1"));
    now += Seconds(1801);
    log.append({{"n", 3}});
    EXPECT_TRUE(fs::exists(path.string() + ".1"));
    EXPECT_EQ(line_count(path), 1u);
    EXPECT_EQ(line_count(path.string() + ".1"), 2u);
}

TEST(Sampler, DerivesNodeCpuPercentAndGroupCoresFromCounterDeltas) {
    TempDir dir;
    fs::copy(kFixtures / "proc", dir.path() / "proc", fs::copy_options::recursive);
    fs::copy(kFixtures / "group", dir.path() / "g", fs::copy_options::recursive);
    write(dir.path() / "proc/stat", proc_stat(1000, 1000));
    write(dir.path() / "g/cpu.stat", "usage_usec 1000000\nuser_usec 1\nsystem_usec 1\n");
    monitor::Sampler sampler({(dir.path() / "proc").string(), {dir.path().string()}});
    monitor::Snapshot first;
    sampler.sample({{"a", (dir.path() / "g").string()}}, kT0, first);
    EXPECT_FALSE(first.node.cpu_utilization_percent) << "no rate from one sample";
    EXPECT_FALSE(first.groups.at("a").cpu_cores);
    ASSERT_TRUE(first.node.memory);
    ASSERT_EQ(first.node.disks.size(), 1u);

    write(dir.path() / "proc/stat", proc_stat(1300, 1100)); // 300 busy of 400 ticks
    write(dir.path() / "g/cpu.stat", "usage_usec 4000000\nuser_usec 1\nsystem_usec 1\n"); // 3 s of CPU in 2 s
    monitor::Snapshot second;
    sampler.sample({{"a", (dir.path() / "g").string()}}, kT0 + Seconds(2), second);
    EXPECT_DOUBLE_EQ(*second.node.cpu_utilization_percent, 75.0);
    EXPECT_DOUBLE_EQ(*second.groups.at("a").cpu_cores, 1.5);

    // A recreated group (counter went back) gives no rate instead of a nonsense one.
    write(dir.path() / "g/cpu.stat", "usage_usec 10\n");
    monitor::Snapshot third;
    sampler.sample({{"a", (dir.path() / "g").string()}}, kT0 + Seconds(4), third);
    EXPECT_FALSE(third.groups.at("a").cpu_cores);
}

TEST(Sampler, MissingAndGarbageSourcesDegradeWithReasons) {
    TempDir dir;
    write(dir.path() / "proc/stat", "cpu garbage\n");
    write(dir.path() / "g/memory.current", "12abc\n");
    monitor::Sampler sampler({(dir.path() / "proc").string(), {(dir.path() / "nowhere").string()}});
    monitor::Snapshot snap;
    sampler.sample({{"a", (dir.path() / "g").string()}}, kT0, snap);
    EXPECT_FALSE(snap.node.cpu_times);
    EXPECT_FALSE(snap.node.memory);
    EXPECT_GE(snap.node.unavailable.size(), 5u) << json(snap.node.unavailable).dump();
    EXPECT_FALSE(snap.groups.at("a").sample.memory_current_bytes);
    EXPECT_NO_THROW((void)snap.to_json().dump());
}

// The sampler keeps one state per listed group: a group left out of a pass loses its counter (no
// rate when it is back), forget() closes an allocation's and its agents' files but keeps the
// counter, and a group whose directory changed is read from the new one.
TEST(Sampler, KeepsCountersOnlyForGroupsListedEveryPass) {
    TempDir dir;
    for (const char* g : {"a", "a/agent", "ab", "b"}) write(dir.path() / g / "cpu.stat", "usage_usec 1000000\n");
    const std::string a = (dir.path() / "a").string(), agent = (dir.path() / "a/agent").string();
    const std::string ab = (dir.path() / "ab").string(), b = (dir.path() / "b").string();
    monitor::Sampler sampler({(dir.path() / "proc").string(), {}});
    const std::vector<monitor::GroupProbe> all{{"a", a}, {"a/x", agent}, {"ab", ab}, {"b", b}};
    monitor::Snapshot first;
    sampler.sample(all, kT0, first);
    for (const char* g : {"a", "a/agent", "ab", "b"}) write(dir.path() / g / "cpu.stat", "usage_usec 2000000\n");
    monitor::Snapshot second;
    sampler.sample({{"a", a}, {"a/x", agent}, {"ab", ab}}, kT0 + Seconds(1), second);
    for (const char* key : {"a", "a/x", "ab"}) EXPECT_DOUBLE_EQ(second.groups.at(key).cpu_cores.value_or(-1), 1.0) << key;
    EXPECT_FALSE(second.groups.count("b"));

    auto open_fds = [] { return std::distance(fs::directory_iterator("/proc/self/fd"), {}); };
    const auto fds_before = open_fds();
    sampler.forget("a");
    EXPECT_EQ(fds_before - open_fds(), 2) << "a's and a/x's cpu.stat closed, ab's kept";
    write(dir.path() / "b/cpu.stat", "usage_usec 3000000\n");
    write(dir.path() / "ab/cpu.stat", "usage_usec 2500000\n");
    write(dir.path() / "elsewhere/cpu.stat", "usage_usec 3000000\n");
    monitor::Snapshot third;
    sampler.sample({{"a", a}, {"a/x", agent}, {"ab", (dir.path() / "elsewhere").string()}, {"b", b}}, kT0 + Seconds(2), third);
    EXPECT_DOUBLE_EQ(third.groups.at("a").cpu_cores.value_or(-1), 0.0) << "forget() keeps the counter";
    EXPECT_DOUBLE_EQ(third.groups.at("ab").cpu_cores.value_or(-1), 1.0) << "read from its new directory";
    EXPECT_EQ(*third.groups.at("ab").sample.dir, (dir.path() / "elsewhere").string());
    EXPECT_FALSE(third.groups.at("b").cpu_cores) << "left out of a pass: no rate from before it";
}

// The snapshot is updated in place from pass to pass: a dropped group leaves it, and a kept group's
// strings keep their storage when their text is the same (no heap churn per group and pass). The
// groups that lack the same files share one list of reasons.
TEST(Sampler, UpdatesOneSnapshotInPlace) {
    TempDir dir;
    for (const char* g : {"a", "b"}) write(dir.path() / g / "cpu.stat", "usage_usec 1000000\n");
    const std::string a = (dir.path() / "a").string(), b = (dir.path() / "b").string();
    monitor::Sampler sampler({(dir.path() / "proc").string(), {}});
    monitor::Snapshot snap;
    sampler.sample({{"b", b}, {"a", a}}, kT0, snap); // out of order: still each group once
    ASSERT_EQ(snap.groups.size(), 2u);
    ASSERT_FALSE(snap.groups.at("a").sample.reasons().empty()) << "memory.current and the rest are missing here";
    EXPECT_EQ(snap.groups.at("a").sample.unavailable, snap.groups.at("b").sample.unavailable) << "one list for both";
    const char* dir_storage = snap.groups.at("a").sample.dir->data();
    const std::string* first_reason = &snap.groups.at("a").sample.reasons().front();
    write(dir.path() / "a/cpu.stat", "usage_usec 3000000\n");
    sampler.sample({{"a", a}}, kT0 + Seconds(1), snap);
    EXPECT_FALSE(snap.groups.count("b")) << "not listed: dropped";
    EXPECT_EQ(snap.time, kT0 + Seconds(1));
    EXPECT_DOUBLE_EQ(snap.groups.at("a").cpu_cores.value_or(-1), 2.0);
    EXPECT_EQ(snap.groups.at("a").sample.dir->data(), dir_storage);
    EXPECT_EQ(&snap.groups.at("a").sample.reasons().front(), first_reason);
    write(dir.path() / "a/cpu.stat", "usage_usec 1\n");
    sampler.sample({{"a", a}}, kT0 + Seconds(2), snap);
    EXPECT_FALSE(snap.groups.at("a").cpu_cores) << "the previous pass's rate does not linger";
}

TEST(ProcCgroup, TakesTheV2LineOnHybridHosts) {
    EXPECT_EQ(monitor::parse_proc_cgroup_v2("12:pids:/user.slice\n1:name=systemd:/x\n0::/resmgr/alloc_1/agent-a\n"),
              "/resmgr/alloc_1/agent-a");
    EXPECT_THROW(monitor::parse_proc_cgroup_v2("12:pids:/user.slice\n"), monitor::ParseError);
    EXPECT_THROW(monitor::parse_proc_cgroup_v2("0::relative\n"), monitor::ParseError);
    EXPECT_THROW(monitor::parse_proc_cgroup_v2(""), monitor::ParseError);
}

namespace {

const Owner kAlice{1000, 100};

struct RecordingSink : events::EventSink {
    std::vector<events::Event> events;
    void publish(const events::Event& e) override { events.push_back(e); }
    size_t count(events::EventType type) const {
        return std::count_if(events.begin(), events.end(), [&](auto& e) { return e.type == type; });
    }
};

// A Service with Monitoring over a fake /proc and fake group directories under a temp dir.
struct MonitoredDaemon {
    TempDir dir;
    FakeBackend backend;
    RecordingSink sink;
    std::unique_ptr<state::StateStore> store;
    std::unique_ptr<core::Ledger> ledger;
    std::unique_ptr<server::Service> service;
    std::unique_ptr<monitor::Monitoring> monitoring;
    TimePoint now = kT0;
    std::uint64_t busy = 1000, idle = 1000;

    explicit MonitoredDaemon(json policy = json::object()) {
        fs::copy(kFixtures / "proc", dir.path() / "proc", fs::copy_options::recursive);
        write(dir.path() / "proc/stat", proc_stat(busy, idle));
        backend.root = (dir.path() / "cg").string();
        store = std::make_unique<state::StateStore>(dir.path() / "state");
        ledger = std::make_unique<core::Ledger>(core::NodeCapacity{8, 16 * kGiB}, core::parse_policy({{"resource_policies", policy}}));
        service = std::make_unique<server::Service>(*ledger, backend, *store, [this] { return now; }, json::object(), json::object());
        service->events().set_sink(&sink);
        monitor::Monitoring::Options options;
        options.sources = {(dir.path() / "proc").string(), {dir.path().string()}};
        options.history_path = (dir.path() / "state/monitoring/usage_history.jsonl").string();
        monitoring = std::make_unique<monitor::Monitoring>(*ledger, backend, options, service->events());
        service->set_monitoring(monitoring.get());
        // Alice's process, which attaches itself, runs as Alice.
        service->set_process_identity([](long pid) -> std::optional<monitor::ProcessIdentity> {
            if (pid == kAlice.pid) return monitor::ProcessIdentity{1, kAlice.uid, kAlice.uid};
            return std::nullopt;
        });
    }
    json call(json request, const Owner& peer = kAlice) { return service->router().handle_line(request.dump(), peer); }
    std::string allocate(json resources, const std::string& workflow = "wf", const std::string& priority = "high") {
        json r = call({{"operation", "allocate"}, {"params", {{"workflow_id", workflow}, {"priority", priority}, {"resources", resources}}}});
        EXPECT_EQ(r["status"], "success") << r.dump(2);
        std::string id = r["result"]["allocation_id"];
        fs::create_directories(dir.path() / "cg");
        fs::copy(kFixtures / "group", dir.path() / "cg" / id, fs::copy_options::recursive);
        return id;
    }
    // Advance the clock by `seconds` with the node `percent` busy, then sample.
    void tick(int seconds, double percent) {
        std::uint64_t ticks = static_cast<std::uint64_t>(seconds) * 100;
        busy += static_cast<std::uint64_t>(ticks * percent / 100);
        idle += ticks - static_cast<std::uint64_t>(ticks * percent / 100);
        write(dir.path() / "proc/stat", proc_stat(busy, idle));
        now += Seconds(seconds);
        service->on_sample();
    }
};

} // namespace

TEST(Monitoring, CpuThresholdRaisesOnceClearsAndReachesEventsOperation) {
    MonitoredDaemon d(json{{"thresholds", {{"cpu", {{"threshold", 50}}}, {"clear_margin", 10}}}});
    d.service->on_sample();
    d.tick(1, 90);
    d.tick(1, 95);
    EXPECT_EQ(d.sink.count(events::EventType::threshold_raised), 1u);
    const auto& raised = d.sink.events.back();
    EXPECT_EQ(raised.metric, "cpu");
    EXPECT_NEAR(*raised.value, 90, 0.01);
    EXPECT_EQ(*raised.threshold, 50);
    EXPECT_EQ(raised.priority, LOG_WARNING);
    d.tick(1, 45); // inside the band
    EXPECT_EQ(d.sink.count(events::EventType::threshold_cleared), 0u);
    d.tick(1, 10);
    EXPECT_EQ(d.sink.count(events::EventType::threshold_cleared), 1u);

    json recent = d.call({{"operation", "events"}, {"params", {{"types", {"threshold"}}}}});
    ASSERT_EQ(recent["status"], "success") << recent.dump(2);
    ASSERT_EQ(recent["result"]["events"].size(), 1u);
    EXPECT_EQ(recent["result"]["events"][0]["event"], "RESOURCE_THRESHOLD");
    EXPECT_EQ(d.call({{"operation", "events"}, {"params", {{"types", {"nonsense"}}}}})["error"]["code"], "INVALID_REQUEST");
    EXPECT_EQ(line_count(d.dir.path() / "state/monitoring/usage_history.jsonl"), 5u);
}

TEST(Monitoring, EachPassAppendsOneUsageLineWithTheNodeAndEveryGroup) {
    MonitoredDaemon d;
    const std::string a = d.allocate({{"cpu_cores", 1}}, "wf-a"), b = d.allocate({{"cpu_cores", 1}}, "wf-b");
    d.service->on_sample();
    d.tick(1, 40);
    std::ifstream in(d.dir.path() / "state/monitoring/usage_history.jsonl");
    std::string line, last;
    while (std::getline(in, line)) last = line;
    const json record = json::parse(last); // the groups are spliced in as text: it must stay one valid object
    EXPECT_NEAR(record["cpu_percent"].get<double>(), 40, 0.01) << last;
    EXPECT_TRUE(record.contains("time") && record.contains("live_agents") && record.contains("io_pressure_avg10")) << last;
    ASSERT_EQ(record["groups"].size(), 2u) << last;
    for (const auto& id : {a, b}) {
        ASSERT_TRUE(record["groups"].contains(id)) << last;
        const json& g = record["groups"][id];
        EXPECT_TRUE(g.contains("cpu_cores_used") && g.contains("memory_bytes") && g.contains("pids")) << last;
    }
}

TEST(Monitoring, AProtectedGroupsCpuStallOfTheLastIntervalThrottlesLowWorkAtOnce) {
    // A build step of a few seconds: its cpu.pressure avg10 (a 10 s average) still reads 4 % while
    // its stall over the last second is 60 %. The responder judges the last second.
    MonitoredDaemon d;
    const std::string step = d.allocate({{"cpu_cores", 1}}, "build", "high"); // high: outside the bands it may touch
    const std::string spinner = d.allocate({{"cpu_cores", 1}}, "spin", "low");
    const fs::path pressure = d.dir.path() / "cg" / step / "cpu.pressure";
    write(pressure, "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
    d.service->on_sample();
    write(pressure, "some avg10=4.00 avg60=1.00 avg300=0.20 total=600000\nfull avg10=4.00 avg60=1.00 avg300=0.20 total=600000\n");
    d.tick(1, 100);
    json st = d.call({{"operation", "status"}, {"resource_type", "pressure"}});
    ASSERT_EQ(st["status"], "success") << st.dump(2);
    const json& signal = st["result"]["signals"]["cpu_protected"];
    EXPECT_NEAR(signal["value"].get<double>(), 60, 0.01) << signal.dump(2);
    ASSERT_EQ(st["result"]["held"].size(), 1u) << st["result"].dump(2);
    EXPECT_EQ(st["result"]["held"][0]["action"], "cpu_weight");
    EXPECT_EQ(st["result"]["held"][0]["allocation_id"], spinner);
    // The step squeezed the stall away: the last second saw none, but avg10 still holds 30 %, and
    // the signal keeps it (a thaw now would bring the stall straight back).
    write(pressure, "some avg10=30.00 avg60=8.00 avg300=2.00 total=600000\nfull avg10=30.00 avg60=8.00 avg300=2.00 total=600000\n");
    d.tick(1, 100);
    st = d.call({{"operation", "status"}, {"resource_type", "pressure"}});
    EXPECT_NEAR(st["result"]["signals"]["cpu_protected"]["value"].get<double>(), 30, 0.01) << st["result"].dump(2);
}

TEST(Monitoring, ProtectedWorkStartingAsksForASamplingPassSoon) {
    MonitoredDaemon d;
    std::vector<Millis> asked;
    lifecycle::LoopHooks hooks;
    hooks.sample_soon = [&](Millis delay) { asked.push_back(delay); };
    d.service->lifecycle().set_hooks(hooks);
    auto attach = [&](const std::string& id) {
        json r = d.call({{"operation", "attach"}, {"params", {{"allocation_id", id}, {"pid", kAlice.pid}}}});
        ASSERT_EQ(r["status"], "success") << r.dump(2);
    };
    attach(d.allocate({{"cpu_cores", 1}}, "spin", "low")); // work the responder may squeeze: no pass
    EXPECT_TRUE(asked.empty());
    attach(d.allocate({{"cpu_cores", 1}}, "build", "high")); // protected: judged within 250 ms
    ASSERT_EQ(asked.size(), 1u);
    EXPECT_EQ(asked[0], Millis(250));
}

TEST(Monitoring, MonitorSystemHasTheSeedShapeWithMeasuredValues) {
    MonitoredDaemon d;
    d.allocate({{"cpu_cores", 2}, {"memory_gb", 4}, {"agents", 2}});
    d.service->on_sample();
    d.tick(2, 30);
    json r = d.call({{"operation", "monitor"}, {"resource_type", "system"}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    const json& compute = r["result"]["system_resources"]["compute"];
    EXPECT_EQ(compute["cpu_cores"]["total"], 8);
    EXPECT_EQ(compute["cpu_cores"]["allocated"], 2);
    EXPECT_NEAR(compute["cpu_cores"]["utilization_percent"].get<double>(), 30, 0.01);
    EXPECT_TRUE(compute["memory"]["utilization_percent"].is_number());
    EXPECT_TRUE(compute["storage"]["total_gb"].is_number());
    const json& pool = r["result"]["system_resources"]["workflow_resources"]["agent_pool"];
    EXPECT_EQ(pool["max_agents"], 20);
    EXPECT_EQ(pool["reserved_agents"], 2);
    EXPECT_EQ(pool["active_agents"], 0);
    EXPECT_EQ(r["result"]["system_resources"]["workflow_resources"]["concurrent_workflows"]["active_workflows"], 1);
    EXPECT_TRUE(r["result"]["pressure"]["cpu"]["some"]["avg10"].is_number());
    EXPECT_EQ(d.call({{"operation", "monitor"}, {"resource_type", "galaxy"}})["error"]["code"], "INVALID_REQUEST");
}

TEST(Monitoring, UsageReportsUsedVersusAllocatedThrottlingAndOomFromGroupFiles) {
    MonitoredDaemon d;
    std::string id = d.allocate({{"cpu_cores", 2}, {"memory_gb", 4}});
    write(d.dir.path() / "cg" / id / "cpu.stat", "usage_usec 0\nnr_periods 10\nnr_throttled 3\nthrottled_usec 500\n");
    d.service->on_sample();
    write(d.dir.path() / "cg" / id / "cpu.stat", "usage_usec 1000000\nnr_periods 20\nnr_throttled 7\nthrottled_usec 900\n");
    d.tick(1, 50);
    json r = d.call({{"operation", "usage"}, {"resource_type", "wf"}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    const json& a = r["result"]["allocations"][0];
    EXPECT_DOUBLE_EQ(a["used"]["cpu_cores"].get<double>(), 1.0);
    EXPECT_DOUBLE_EQ(a["efficiency"]["cpu_percent"].get<double>(), 50.0);
    EXPECT_EQ(a["throttling"]["nr_throttled"], 7);
    EXPECT_EQ(a["memory_events"]["oom_kill"], 1); // from the fixture
    EXPECT_TRUE(a["used"]["memory_bytes"].is_number());
    EXPECT_EQ(d.call({{"operation", "usage"}, {"resource_type", "nobody"}})["error"]["code"], "NOT_FOUND");
    // The fixture's oom_kill 1 was reported once by sampling, not again on later passes or at release.
    EXPECT_EQ(d.sink.count(events::EventType::oom_kill), 1u);
    d.tick(1, 50);
    EXPECT_EQ(d.sink.count(events::EventType::oom_kill), 1u);
    EXPECT_EQ(d.call({{"operation", "release"}, {"params", {{"allocation_id", id}}}})["status"], "success");
    EXPECT_EQ(d.sink.count(events::EventType::oom_kill), 1u);
    // Ended (as systemd's OOMPolicy=stop ends a scope after an OOM kill): its final counters stay visible.
    json after = d.call({{"operation", "usage"}, {"resource_type", "wf"}});
    ASSERT_EQ(after["status"], "success") << after.dump(2);
    EXPECT_TRUE(after["result"]["allocations"].empty());
    ASSERT_EQ(after["result"]["ended_allocations"].size(), 1u);
    EXPECT_EQ(after["result"]["ended_allocations"][0]["allocation_id"], id);
    EXPECT_EQ(after["result"]["ended_allocations"][0]["final"]["memory_events"]["oom_kill"], 1);
}

TEST(Monitoring, UsageBeforeAnySampleSaysUnknownNotZero) {
    MonitoredDaemon d;
    d.allocate({{"cpu_cores", 2}});
    json r = d.call({{"operation", "usage"}, {"resource_type", "wf"}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    EXPECT_TRUE(r["result"]["allocations"][0]["used"].is_null());
    EXPECT_TRUE(r["result"]["totals"]["cpu_cores_used"].is_null()) << r["result"]["totals"].dump(); // was 0.0
    EXPECT_TRUE(r["result"]["totals"]["memory_bytes_used"].is_null());
    EXPECT_TRUE(r["result"]["efficiency"]["cpu_percent"].is_null());
    EXPECT_EQ(r["result"]["not_measured"], json({"not sampled yet"}));
    // The note names what is missing; nothing about a backend that has no files.
    ASSERT_EQ(r["recommendations"].size(), 1u) << r.dump(2);
    EXPECT_NE(r["recommendations"][0].get<std::string>().find("not sampled yet"), std::string::npos);
    // One sample: the first pass has no CPU rate yet, so the total still is unknown.
    d.service->on_sample();
    json one = d.call({{"operation", "usage"}, {"resource_type", "wf"}});
    EXPECT_TRUE(one["result"]["allocations"][0]["used"]["cpu_cores"].is_null());
    EXPECT_TRUE(one["result"]["totals"]["cpu_cores_used"].is_null());
    EXPECT_TRUE(one["result"]["totals"]["memory_bytes_used"].is_number()); // memory.current was read
}

TEST(Monitoring, AJobShorterThanTheSamplingIntervalHasMeasuredFinalFigures) {
    MonitoredDaemon d;
    // The kernel starts a new group's counters at zero.
    d.backend.on_create = [](const std::string& dir) { write(fs::path(dir) / "cpu.stat", "usage_usec 0\n"); };
    json r = d.call({{"operation", "allocate"}, {"params", {{"workflow_id", "short"}, {"resources", {{"cpu_cores", 2}}}}}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    const std::string id = r["result"]["allocation_id"];
    // 1.5 s of CPU in 3 s, and no sampling pass in between.
    write(d.dir.path() / "cg" / id / "cpu.stat", "usage_usec 1500000\n");
    write(d.dir.path() / "cg" / id / "memory.peak", "123456\n");
    d.now += Seconds(3);
    json rel = d.call({{"operation", "release"}, {"params", {{"allocation_id", id}}}});
    ASSERT_EQ(rel["status"], "success") << rel.dump(2);
    const json& usage = rel["result"]["final"]["usage"];
    EXPECT_DOUBLE_EQ(usage["cpu_cores_mean"].get<double>(), 0.5) << usage.dump(2);
    EXPECT_DOUBLE_EQ(usage["wall_seconds"].get<double>(), 3.0);
    EXPECT_EQ(usage["cpu_usage_usec"], 1500000);
    EXPECT_EQ(usage["memory_peak_bytes"], 123456);
    EXPECT_EQ(usage["unavailable"], json::array()) << usage.dump(2);
    // The group has no memory.events (as on a host without the memory controller): said, not thrown.
    EXPECT_EQ(rel["result"]["final"]["unavailable"], "cannot read memory.events: No such file or directory") << rel.dump(2);
    json after = d.call({{"operation", "usage"}, {"resource_type", "short"}});
    EXPECT_DOUBLE_EQ(after["result"]["ended_allocations"][0]["final"]["usage"]["cpu_cores_mean"].get<double>(), 0.5);
}

TEST(Monitoring, AGroupMadeByTheRequestCountsItsCpuFromZeroWithoutAFirstRead) {
    MonitoredDaemon d;
    // Its counter has moved before the watch starts (as a process placed in it by the same
    // request would move it): that CPU is the job's too, so the start is 0, not a read.
    d.backend.on_create = [](const std::string& dir) { write(fs::path(dir) / "cpu.stat", "usage_usec 200000\n"); };
    json r = d.call({{"operation", "allocate"}, {"params", {{"workflow_id", "placed"}, {"resources", {{"cpu_cores", 2}}}}}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    const std::string id = r["result"]["allocation_id"];
    write(d.dir.path() / "cg" / id / "cpu.stat", "usage_usec 1700000\n");
    d.now += Seconds(2);
    json rel = d.call({{"operation", "release"}, {"params", {{"allocation_id", id}}}});
    ASSERT_EQ(rel["status"], "success") << rel.dump(2);
    const json& usage = rel["result"]["final"]["usage"];
    EXPECT_DOUBLE_EQ(usage["cpu_seconds"].get<double>(), 1.7) << usage.dump(2);
    EXPECT_DOUBLE_EQ(usage["cpu_cores_mean"].get<double>(), 0.85) << usage.dump(2);
}

TEST(Monitoring, AgentsTakeSlotsAndFailuresAreCounted) {
    MonitoredDaemon d;
    std::string id = d.allocate({{"cpu_cores", 1}, {"agents", 1}});
    json attach{{"operation", "attach"}, {"params", {{"allocation_id", id}, {"pid", kAlice.pid}, {"agent", "coder"}}}};
    json r = d.call(attach);
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    EXPECT_EQ(r["result"]["leaf"], "agent-coder");
    // One slot, in use: a second agent is refused, the same name is a conflict.
    json second = attach;
    second["params"]["agent"] = "reviewer";
    EXPECT_EQ(d.call(second)["error"]["code"], "RESOURCE_EXHAUSTED");
    EXPECT_EQ(d.call(attach)["error"]["code"], "CONFLICT");
    json bad_name = attach;
    bad_name["params"]["agent"] = "../etc";
    EXPECT_EQ(d.call(bad_name)["error"]["code"], "INVALID_REQUEST");

    json agents = d.call({{"operation", "status"}, {"resource_type", "agents"}});
    EXPECT_EQ(agents["result"]["agent_pool"]["active_agents"], 1);
    EXPECT_EQ(agents["result"]["agent_pool"]["reserved_agents"], 0);

    r = d.call({{"operation", "detach"}, {"params", {{"allocation_id", id}, {"agent", "coder"}, {"exit_status", 3}}}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    agents = d.call({{"operation", "status"}, {"resource_type", "agents"}});
    EXPECT_EQ(agents["result"]["agent_pool"]["failed_agents"], 1);
    EXPECT_EQ(agents["result"]["agent_pool"]["active_agents"], 0);
    EXPECT_EQ(agents["result"]["agents"][0]["reason"], "exited with status 3");
    // The slot is free again.
    EXPECT_EQ(d.call(second)["status"], "success");
    EXPECT_EQ(d.call({{"operation", "detach"}, {"params", {{"allocation_id", id}, {"agent", "ghost"}}}})["error"]["code"], "NOT_FOUND");
}

TEST(Monitoring, AgentWaitsForASlotAndStartsWhenTheFirstExits) {
    MonitoredDaemon d;
    std::string id = d.allocate({{"cpu_cores", 1}, {"agents", 1}});
    json attach{{"operation", "attach"}, {"params", {{"allocation_id", id}, {"pid", kAlice.pid}, {"agent", "coder"}}}};
    ASSERT_EQ(d.call(attach)["status"], "success");
    json second = attach;
    second["params"]["agent"] = "reviewer";
    second["params"]["wait_slot"] = "10s";
    json r = d.call(second);
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    EXPECT_TRUE(r["result"]["queued"].get<bool>());
    EXPECT_EQ(r["result"]["queue_position"], 1);
    json agents = d.call({{"operation", "status"}, {"resource_type", "agents"}});
    const json& queued = agents["result"]["agent_starts"]["queued"];
    ASSERT_EQ(queued.size(), 1u) << agents.dump(2);
    EXPECT_EQ(queued[0]["agent"], "reviewer");
    EXPECT_EQ(queued[0]["uid"], kAlice.uid);
    EXPECT_EQ(queued[0]["since"], format_timestamp(d.now));

    d.now += Seconds(2);
    EXPECT_TRUE(d.call(second)["result"].value("queued", false)); // still no slot
    ASSERT_EQ(d.call({{"operation", "detach"}, {"params", {{"allocation_id", id}, {"agent", "coder"}, {"exit_status", 0}}}})["status"], "success");
    d.now += Seconds(1);
    r = d.call(second);
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    EXPECT_FALSE(r["result"].contains("queued"));
    EXPECT_EQ(r["result"]["leaf"], "agent-reviewer");
    EXPECT_DOUBLE_EQ(r["result"]["slot_wait_seconds"].get<double>(), 3.0);
    agents = d.call({{"operation", "status"}, {"resource_type", "agents"}});
    EXPECT_EQ(agents["result"]["agent_pool"]["active_agents"], 1);
    EXPECT_TRUE(agents["result"]["agent_starts"]["queued"].empty());
    EXPECT_EQ(agents["result"]["agent_starts"]["slot_wait"]["starts"], 2); // coder at once, reviewer after 3 s
    EXPECT_DOUBLE_EQ(agents["result"]["agent_starts"]["slot_wait"]["max_seconds"].get<double>(), 3.0);

    // A third waits until its deadline and is told how long it waited.
    json third = attach;
    third["params"]["agent"] = "tester";
    third["params"]["wait_slot"] = "2s";
    ASSERT_TRUE(d.call(third)["result"].value("queued", false));
    d.now += Seconds(2);
    r = d.call(third);
    EXPECT_EQ(r["error"]["code"], "RESOURCE_EXHAUSTED") << r.dump(2);
    EXPECT_NE(r["error"]["details"].get<std::string>().find("waited 2s"), std::string::npos) << r.dump(2);
}

TEST(Monitoring, QueueAgentsStepHoldsAgentStartsAndListsIdleAgents) {
    MonitoredDaemon d(json{{"pressure_response", {{"mode", "enforce"}}}});
    std::string id = d.allocate({{"cpu_cores", 1}, {"agents", 3}});
    json attach{{"operation", "attach"}, {"params", {{"allocation_id", id}, {"pid", kAlice.pid}, {"agent", "sleepy"}}}};
    ASSERT_EQ(d.call(attach)["status"], "success");
    // The agent used no CPU for longer than idle_after: idle, holding its slot.
    monitor::Snapshot quiet;
    quiet.groups[id + "/sleepy"].cpu_cores = 0.0;
    d.now += Seconds(600);
    d.monitoring->agents().update(quiet, d.now, Seconds(60));
    ASSERT_EQ(d.monitoring->agents().agents().begin()->second.state, monitor::Agent::State::idle);

    core::PressureSample full;
    full.agent_pool_percent = 95;
    d.service->pressure().respond(full, {});
    ASSERT_FALSE(d.service->pressure().agent_starts_held().empty());
    std::vector<events::Event> steps;
    for (const auto& e : d.sink.events)
        if (e.type == events::EventType::pressure) steps.push_back(e);
    ASSERT_EQ(steps.size(), 1u);
    EXPECT_EQ(steps[0].details["action"], "queue_agents");
    EXPECT_FALSE(steps[0].details.contains("unenforced")) << steps[0].details.dump(2);
    ASSERT_EQ(steps[0].details["idle_agents"].size(), 1u) << steps[0].details.dump(2);
    EXPECT_EQ(steps[0].details["idle_agents"][0]["agent"], "sleepy");
    json pressure = d.call({{"operation", "status"}, {"resource_type", "pressure"}});
    EXPECT_EQ(pressure["result"]["idle_agents"][0]["allocation_id"], id) << pressure.dump(2);
    EXPECT_FALSE(pressure["result"]["agent_starts"]["held"].is_null());

    // Held: a start that asked for no wait is refused; one with wait_held (resmgr-run's default)
    // waits although its allocation has free slots; one that asks wait_slot 0 is refused.
    json next = attach;
    next["params"]["agent"] = "next";
    json r = d.call(next);
    EXPECT_EQ(r["error"]["code"], "RESOURCE_EXHAUSTED") << r.dump(2);
    // Hostile waits get the error envelope naming the field, and nothing is queued.
    for (const json& bad : {json("soon"), json("-5m"), json(-1), json::object(), json("1e400s")}) {
        json hostile = next;
        hostile["params"]["wait_held"] = bad;
        json e = d.call(hostile);
        EXPECT_EQ(e["error"]["code"], "INVALID_REQUEST") << bad << " " << e.dump(2);
        EXPECT_NE(e.dump().find("wait_held"), std::string::npos) << e.dump(2);
    }
    EXPECT_EQ(d.call({{"operation", "status"}, {"resource_type", "pressure"}})["result"]["agent_starts"]["queued"].size(), 0u);
    next["params"]["wait_held"] = "5m";
    const TimePoint queued_at = d.now;
    r = d.call(next);
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    EXPECT_TRUE(r["result"]["queued"].get<bool>());
    json never = attach;
    never["params"]["agent"] = "never";
    never["params"]["wait_slot"] = "0s";
    never["params"]["wait_held"] = "5m";
    r = d.call(never);
    EXPECT_EQ(r["error"]["code"], "RESOURCE_EXHAUSTED");
    EXPECT_NE(r["error"]["message"].get<std::string>().find("held by the pressure responder"), std::string::npos);
    // allocate cannot make an agent wait: refused while held.
    json alloc{{"operation", "allocate"},
               {"params", {{"workflow_id", "w2"}, {"resources", {{"agents", 1}}}, {"attach", {{"pid", kAlice.pid}, {"agent", "x"}}}}}};
    EXPECT_EQ(d.call(alloc)["error"]["code"], "RESOURCE_EXHAUSTED");

    // The pool clears and the step is given back: the waiting start goes ahead.
    full.agent_pool_percent = 10;
    for (int i = 0; i < 10 && !d.service->pressure().agent_starts_held().empty(); ++i) {
        d.now += Seconds(4);
        d.call(next); // it keeps asking while it waits
        d.service->pressure().respond(full, {});
    }
    ASSERT_TRUE(d.service->pressure().agent_starts_held().empty());
    d.now += Seconds(1);
    r = d.call(next);
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    EXPECT_EQ(r["result"]["leaf"], "agent-next");
    EXPECT_DOUBLE_EQ(r["result"]["slot_wait_seconds"].get<double>(), std::chrono::duration<double>(d.now - queued_at).count());
}

TEST(Monitoring, AgentPoolThresholdIsCritical) {
    MonitoredDaemon d(json{{"agent_pool", {{"max_agents", 2}}}, {"allocation_limits", {{"max_agents_per_workflow", 2}}}});
    std::string id = d.allocate({{"cpu_cores", 1}, {"agents", 2}});
    for (const char* name : {"a", "b"})
        ASSERT_EQ(d.call({{"operation", "attach"}, {"params", {{"allocation_id", id}, {"pid", kAlice.pid}, {"agent", name}}}})["status"], "success");
    d.service->on_sample();
    ASSERT_EQ(d.sink.count(events::EventType::threshold_raised), 1u);
    // The pressure responder reports its queue_agents step after it (RESOURCE_PRESSURE).
    auto raised = std::find_if(d.sink.events.begin(), d.sink.events.end(),
                               [](const events::Event& e) { return e.type == events::EventType::threshold_raised; });
    EXPECT_EQ(raised->metric, "agent_pool");
    EXPECT_EQ(raised->priority, LOG_CRIT);
    EXPECT_EQ(d.sink.count(events::EventType::pressure), 1u);
}

TEST(Monitoring, StatusTypesAndCapacity) {
    MonitoredDaemon d;
    d.allocate({{"cpu_cores", 2}, {"memory_gb", 4}});
    d.service->on_sample();
    d.tick(1, 60);
    for (const char* type : {"cpu", "memory", "storage", "workflows", "agents"}) {
        json r = d.call({{"operation", "status"}, {"resource_type", type}});
        EXPECT_EQ(r["status"], "success") << type << r.dump(2);
    }
    EXPECT_EQ(d.call({{"operation", "status"}, {"resource_type", "gpu"}})["error"]["code"], "INVALID_REQUEST");
    json c = d.call({{"operation", "capacity"}});
    ASSERT_EQ(c["status"], "success") << c.dump(2);
    EXPECT_EQ(c["result"]["current_capacity"]["cpu_cores"], 8);
    EXPECT_EQ(c["result"]["allocated"]["cpu_cores"], 2);
    EXPECT_NEAR(c["result"]["utilization_analysis"]["peak_cpu_usage"].get<double>(), 60, 0.01);
}

TEST(Monitoring, WithoutMonitoringTheOperationsSayUnsupported) {
    TempDir dir;
    FakeBackend backend;
    state::StateStore store(dir.path());
    core::Ledger ledger(core::NodeCapacity{8, 16 * kGiB}, core::Policy::defaults());
    server::Service service(ledger, backend, store, [] { return kT0; }, json::object(), json::object());
    json r = service.router().handle_line(R"({"operation":"monitor","resource_type":"system"})", kAlice);
    EXPECT_EQ(r["error"]["code"], "UNSUPPORTED");
}

// ---- the hourly predictive alert, pure: a 5-minute history and a rule in, an event or none out ----

#include "analytics/backtest.hpp"
#include "monitor/monitoring.hpp"

namespace {

// Three days of 5-minute CPU percentages climbing 0.01 points a step from 50 (to 58.63).
analytics::RegularSeries climbing_cpu(std::int64_t start) {
    analytics::RegularSeries s;
    s.start = start;
    s.step = 300;
    for (int i = 0; i < 864; ++i) s.values.push_back(50 + 0.01 * i);
    s.filled.assign(s.values.size(), false);
    return s;
}

} // namespace

TEST(PredictiveThreshold, AForecastCrossingWithinTheHorizonRaisesAPredictedThresholdEvent) {
    const auto s = climbing_cpu(1'700'000'000);
    const std::int64_t now = s.ts(s.values.size() - 1) + 60; // a minute after the newest bucket
    monitor::ThresholdRule rule{"cpu", 58.9, 5, Seconds(300), "warning"};
    const auto e = monitor::predicted_threshold_event(s, rule, now, monitor::kPredictionHorizonSeconds);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->type, events::EventType::threshold_raised);
    EXPECT_EQ(e->metric, "cpu");
    EXPECT_EQ(e->threshold, 58.9);
    ASSERT_TRUE(e->value.has_value());
    EXPECT_GE(*e->value, 58.9);
    EXPECT_EQ(e->details["predicted"], true);
    EXPECT_EQ(e->details["type"], "predicted_resource_shortage");
    // 58.9 is 27 steps above the last value (58.63) at 0.01 a step: about 2h15m ahead, as the trend
    // models extend the line; at most the horizon.
    const auto impact = parse_duration(e->details["time_to_impact"].get<std::string>());
    ASSERT_TRUE(impact.has_value()) << e->details;
    EXPECT_GE(*impact, std::chrono::minutes(90)) << e->details;
    EXPECT_LE(*impact, std::chrono::hours(3)) << e->details;
    // Confidence: the share of back-test folds whose forecast reached 58.9 and whose actuals did too;
    // no fold's window reached it (the series ends at 58.63), so no fold called it: null, not a guess.
    EXPECT_EQ(e->details["folds_called"], 0) << e->details;
    EXPECT_TRUE(e->details["prediction_confidence"].is_null()) << e->details;

    // A threshold the climb has passed in the back-test's windows: folds called it and were right.
    rule.threshold = 55;
    const auto passed = monitor::predicted_threshold_event(s, rule, now, monitor::kPredictionHorizonSeconds);
    ASSERT_TRUE(passed.has_value());
    EXPECT_GT(passed->details["folds_called"].get<int>(), 0) << passed->details;
    ASSERT_TRUE(passed->details["prediction_confidence"].is_number()) << passed->details;
    EXPECT_GT(passed->details["prediction_confidence"].get<double>(), 0.5) << passed->details;
    EXPECT_LE(passed->details["prediction_confidence"].get<double>(), 1.0);
}

TEST(PredictiveThreshold, NoCrossingWithinTheHorizonOrAStaleSeriesRaisesNothing) {
    const auto s = climbing_cpu(1'700'000'000);
    const std::int64_t now = s.ts(s.values.size() - 1) + 60;
    const monitor::ThresholdRule far{"cpu", 80, 5, Seconds(300), "warning"}; // 2140 steps away: a week
    EXPECT_FALSE(monitor::predicted_threshold_event(s, far, now, monitor::kPredictionHorizonSeconds).has_value());
    const monitor::ThresholdRule near{"cpu", 58.9, 5, Seconds(300), "warning"};
    EXPECT_FALSE(monitor::predicted_threshold_event(s, near, now, 3600).has_value()); // 2h15m away, an hour's horizon
    EXPECT_FALSE(monitor::predicted_threshold_event(s, near, now + 3600, monitor::kPredictionHorizonSeconds).has_value()); // stale
    EXPECT_FALSE(monitor::predicted_threshold_event({}, near, now, monitor::kPredictionHorizonSeconds).has_value());
    analytics::RegularSeries short_series = s;
    short_series.values.resize(20);
    short_series.filled.resize(20);
    EXPECT_THROW(monitor::predicted_threshold_event(short_series, near, short_series.ts(19), monitor::kPredictionHorizonSeconds),
                 analytics::NotEnoughData);
}
