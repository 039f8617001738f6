// agent/metrics: the families built from a fake pass (names, labels, values), series leaving
// with their allocation, admission decisions and their latency, guard decisions, the
// exposition text, the listen address and the textfile.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "exposition_text.hpp"
#include "metrics/exposition.hpp"
#include "metrics/metrics.hpp"
#include "resmgr/json.hpp"
#include "tests_support.hpp"

namespace resmgr {
namespace {

using nlohmann::json;
using testing_support::find_samples;
using testing_support::parse_exposition;
using testing_support::PromSample;

const TimePoint kNow = Clock::from_time_t(1'800'000'000);
const Owner kOwner{1000, 4242};

struct Node {
    core::Ledger ledger{core::NodeCapacity{8, 16 * kGiB}, core::Policy::defaults()};
    std::string allocate(json params, bool wait = false) {
        return ledger.allocate(parse_allocation_request(params), kOwner, kNow, wait).allocation_id;
    }
};

// A pass that saw `id`'s group and the node.
monitor::Snapshot fake_snapshot(const std::string& id) {
    monitor::Snapshot snap;
    snap.time = kNow;
    snap.node.cpu_utilization_percent = 25;
    snap.node.memory.emplace();
    snap.node.memory->total_bytes = 16 * kGiB;
    snap.node.memory->available_bytes = 10 * kGiB;
    monitor::Pressure memory;
    memory.some.avg10 = 5;
    memory.some.total_usec = 2'000'000;
    memory.full.emplace();
    memory.full->avg10 = 1;
    memory.full->total_usec = 500'000;
    snap.node.memory_pressure = memory;
    monitor::GroupUsage usage;
    usage.cpu_cores = 1.5;
    usage.sample.cpu_stat.emplace();
    usage.sample.cpu_stat->usage_usec = 3'000'000;
    usage.sample.cpu_stat->nr_throttled = 7;
    usage.sample.cpu_stat->throttled_usec = 500'000;
    usage.sample.memory_current_bytes = kGiB;
    usage.sample.memory_events.emplace();
    usage.sample.memory_events->oom_kill = 2;
    usage.sample.pids_current = 4;
    snap.groups[id] = usage;
    return snap;
}

std::vector<PromSample> scrape(const metrics::Metrics& m) { return parse_exposition(m.text()); }

double value_of(const std::vector<PromSample>& samples, const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    auto found = find_samples(samples, name, labels);
    if (found.size() != 1) {
        ADD_FAILURE() << name << ": " << found.size() << " series match, not 1";
        return -1;
    }
    return found[0].value;
}

TEST(Metrics, FamiliesFromAFakePass) {
    Node node;
    const std::string busy = node.allocate({{"workflow_id", "wf-a"}, {"priority", "high"}, {"resources", {{"cpu_cores", 2}, {"memory_gb", 4}}}});
    const std::string idle = node.allocate({{"workflow_id", "wf-b"}, {"priority", 10}, {"resources", {{"cpu_cores", 1}}}});
    node.allocate({{"workflow_id", "wf-c"}, {"resources", {{"cpu_cores", 5}}}}, true); // 3 + 5 > 7.5: queued
    const monitor::Snapshot snap = fake_snapshot(busy);
    metrics::Metrics m;
    m.on_pass(metrics::figures_of(node.ledger, &snap, 3));
    const auto s = scrape(m);

    EXPECT_EQ(value_of(s, "resmgr_last_sample_timestamp_seconds"), 1'800'000'000);
    EXPECT_DOUBLE_EQ(value_of(s, "resmgr_node_cpu_busy_ratio"), 0.25);
    EXPECT_EQ(value_of(s, "resmgr_node_memory_available_bytes"), 10.0 * kGiB);
    EXPECT_DOUBLE_EQ(value_of(s, "resmgr_node_pressure_avg10_ratio", {{"resource", "memory"}, {"kind", "some"}}), 0.05);
    EXPECT_DOUBLE_EQ(value_of(s, "resmgr_node_pressure_stalled_seconds_total", {{"resource", "memory"}, {"kind", "full"}}), 0.5);
    EXPECT_TRUE(find_samples(s, "resmgr_node_pressure_avg10_ratio", {{"resource", "cpu"}}).empty()) << "cpu PSI was not sampled";
    EXPECT_DOUBLE_EQ(value_of(s, "resmgr_capacity_cpu_cores"), 7.5); // 8 minus the default 0.5 reserve
    EXPECT_DOUBLE_EQ(value_of(s, "resmgr_allocated_cpu_cores"), 3);
    EXPECT_EQ(value_of(s, "resmgr_allocated_memory_bytes"), 4.0 * kGiB);
    EXPECT_EQ(value_of(s, "resmgr_queue_length"), 1);
    EXPECT_EQ(value_of(s, "resmgr_allocations", {{"status", "active"}}), 2);
    EXPECT_EQ(value_of(s, "resmgr_allocations", {{"status", "queued"}}), 1);
    EXPECT_EQ(value_of(s, "resmgr_conflicts_active"), 3);
    EXPECT_EQ(value_of(s, "resmgr_sampling_passes_total"), 1);

    const std::map<std::string, std::string> a{{"allocation", busy}, {"workflow", "wf-a"}, {"priority", "high"}};
    EXPECT_EQ(value_of(s, "resmgr_allocation_info", {{"allocation", busy}, {"status", "active"}}), 1);
    EXPECT_EQ(value_of(s, "resmgr_allocation_cpu_limit_cores", a), 2);
    EXPECT_EQ(value_of(s, "resmgr_allocation_memory_limit_bytes", a), 4.0 * kGiB);
    EXPECT_EQ(value_of(s, "resmgr_allocation_cpu_cores", a), 1.5);
    EXPECT_EQ(value_of(s, "resmgr_allocation_cpu_usage_seconds_total", a), 3);
    EXPECT_EQ(value_of(s, "resmgr_allocation_cpu_throttled_seconds_total", a), 0.5);
    EXPECT_EQ(value_of(s, "resmgr_allocation_cpu_throttled_periods_total", a), 7);
    EXPECT_EQ(value_of(s, "resmgr_allocation_memory_bytes", a), 1.0 * kGiB);
    EXPECT_EQ(value_of(s, "resmgr_allocation_oom_kills_total", a), 2);
    EXPECT_EQ(value_of(s, "resmgr_allocation_pids", a), 4);
    // The other allocation: its sizes and band; no usage series, since the pass did not sample it.
    const std::map<std::string, std::string> b{{"allocation", idle}, {"workflow", "wf-b"}, {"priority", "low"}};
    EXPECT_EQ(value_of(s, "resmgr_allocation_cpu_limit_cores", b), 1);
    EXPECT_TRUE(find_samples(s, "resmgr_allocation_memory_limit_bytes", b).empty()) << "no memory cap: no limit series";
    EXPECT_TRUE(find_samples(s, "resmgr_allocation_memory_bytes", b).empty());
    // The queued request holds nothing and has no per-allocation series.
    EXPECT_EQ(find_samples(s, "resmgr_allocation_info").size(), 2u);
    // Every per-allocation series carries the three labels.
    for (const auto& sample : s) {
        if (sample.name.rfind("resmgr_allocation_", 0) != 0) continue;
        for (const char* label : {"allocation", "workflow", "priority"}) {
            EXPECT_TRUE(sample.labels.contains(label)) << sample.name;
        }
    }
}

TEST(Metrics, TypesAndHelpAreDeclared) {
    Node node;
    const std::string id = node.allocate({{"workflow_id", "wf"}, {"resources", {{"cpu_cores", 1}}}});
    const monitor::Snapshot snap = fake_snapshot(id);
    metrics::Metrics m;
    m.on_pass(metrics::figures_of(node.ledger, &snap, 0));
    const std::string text = m.text();
    EXPECT_NE(text.find("# TYPE resmgr_allocation_cpu_usage_seconds_total counter"), std::string::npos);
    EXPECT_NE(text.find("# TYPE resmgr_allocation_memory_bytes gauge"), std::string::npos);
    EXPECT_NE(text.find("# HELP resmgr_queue_length "), std::string::npos);
    for (const auto& family : m.Collect()) {
        EXPECT_FALSE(family.help.empty()) << family.name;
        EXPECT_FALSE(family.metric.empty()) << family.name << ": a family without series is left out";
        EXPECT_EQ(family.name.rfind("resmgr_", 0), 0u) << family.name;
    }
}

TEST(Metrics, AnEndedAllocationsSeriesGoAtOnceAndStayGone) {
    Node node;
    const std::string gone = node.allocate({{"workflow_id", "wf-a"}, {"resources", {{"cpu_cores", 1}}}});
    const std::string kept = node.allocate({{"workflow_id", "wf-b"}, {"resources", {{"cpu_cores", 1}}}});
    const monitor::Snapshot snap = fake_snapshot(gone);
    metrics::Metrics m;
    m.on_pass(metrics::figures_of(node.ledger, &snap, 0));
    EXPECT_FALSE(find_samples(scrape(m), "resmgr_allocation_memory_bytes", {{"allocation", gone}}).empty());

    // The release event removes every series of the allocation before the next pass.
    m.on_event(events::Event::make(events::EventType::released, "released", "wf-a", gone));
    auto s = scrape(m);
    for (const auto& sample : s) {
        EXPECT_NE(sample.labels.count("allocation") ? sample.labels.at("allocation") : "", gone) << sample.name;
    }
    EXPECT_EQ(find_samples(s, "resmgr_allocation_info", {{"allocation", kept}}).size(), 1u);

    // The next pass, from a ledger without it (its group no longer sampled), keeps it out.
    node.ledger.release(gone, Owner{0, 0});
    m.on_pass(metrics::figures_of(node.ledger, nullptr, 0));
    s = scrape(m);
    EXPECT_TRUE(find_samples(s, "resmgr_allocation_info", {{"allocation", gone}}).empty());
    EXPECT_EQ(find_samples(s, "resmgr_allocation_info").size(), 1u);
    // An expiry ends one the same way.
    m.on_event(events::Event::make(events::EventType::expired, "expired", "wf-b", kept));
    EXPECT_TRUE(find_samples(scrape(m), "resmgr_allocation_info").empty());
}

TEST(Metrics, AllocateAnswersCountDecisionsAndLatency) {
    metrics::Metrics m;
    const Request high{"allocate", "", {{"workflow_id", "wf"}, {"priority", "high"}}};
    const Request unnamed{"allocate", "", {{"workflow_id", "wf"}}};
    const Request odd{"allocate", "", {{"workflow_id", "wf"}, {"priority", json::array()}}};
    m.on_request(high, {{"status", "success"}, {"result", {{"allocation_id", "a1"}}}}, std::chrono::microseconds(800));
    m.on_request(high, {{"status", "success"}, {"result", {{"allocation_id", "a1"}}}}, std::chrono::microseconds(3000));
    m.on_request(unnamed, {{"status", "success"}, {"result", {{"queue_position", 1}}}}, std::chrono::microseconds(200));
    m.on_request(odd, error_envelope("allocate", ApiError(ErrorCode::INVALID_REQUEST, "bad priority")), std::chrono::microseconds(50));
    m.on_request(Request{"status", "", json::object()}, {{"status", "success"}}, std::chrono::microseconds(5)); // not an admission
    const auto s = scrape(m);
    EXPECT_EQ(value_of(s, "resmgr_admission_decisions_total", {{"priority", "high"}, {"outcome", "allocated"}}), 2);
    EXPECT_EQ(value_of(s, "resmgr_admission_decisions_total", {{"priority", "medium"}, {"outcome", "queued"}}), 1);
    EXPECT_EQ(value_of(s, "resmgr_admission_decisions_total", {{"priority", "invalid"}, {"outcome", "invalid_request"}}), 1);
    EXPECT_EQ(find_samples(s, "resmgr_admission_decisions_total").size(), 3u);
    // The histogram: cumulative buckets up to +Inf, count and sum per outcome class.
    EXPECT_EQ(value_of(s, "resmgr_admission_duration_seconds_count", {{"outcome", "allocated"}}), 2);
    EXPECT_NEAR(value_of(s, "resmgr_admission_duration_seconds_sum", {{"outcome", "allocated"}}), 0.0038, 1e-9);
    EXPECT_EQ(value_of(s, "resmgr_admission_duration_seconds_bucket", {{"outcome", "allocated"}, {"le", "0.001"}}), 1);
    EXPECT_EQ(value_of(s, "resmgr_admission_duration_seconds_bucket", {{"outcome", "allocated"}, {"le", "0.0025"}}), 1);
    EXPECT_EQ(value_of(s, "resmgr_admission_duration_seconds_bucket", {{"outcome", "allocated"}, {"le", "0.005"}}), 2);
    EXPECT_EQ(value_of(s, "resmgr_admission_duration_seconds_bucket", {{"outcome", "allocated"}, {"le", "+Inf"}}), 2);
    EXPECT_EQ(value_of(s, "resmgr_admission_duration_seconds_count", {{"outcome", "refused"}}), 1);
    EXPECT_EQ(value_of(s, "resmgr_admission_duration_seconds_bucket", {{"outcome", "refused"}, {"le", "0.0001"}}), 1);
}

TEST(Metrics, EventsCountConflictsGuardDecisionsOomKillsAndPreemptions) {
    metrics::Metrics m;
    auto conflict = [](json details) {
        auto e = events::Event::make(events::EventType::conflict, "conflict", "wf", "a1");
        e.details = std::move(details);
        return e;
    };
    m.on_event(conflict({{"conflict_type", "file"}, {"event", "denied"}, {"count", 3}, {"occurrences", 10}}));
    m.on_event(conflict({{"conflict_type", "file"}, {"event", "queued"}}));
    m.on_event(conflict({{"code", "CONFLICT"}, {"conflict_reason", "file held"}}));
    m.on_event(conflict({{"predicted", true}, {"conflict_type", "file"}})); // not one that happened
    m.on_event(conflict({{"conflict_id", "conf_1"}, {"resolution", "release"}}));
    m.on_event(events::Event::make(events::EventType::oom_kill, "oom", "wf", "a1"));
    m.on_event(events::Event::make(events::EventType::preempted, "paused", "wf", "a2"));
    const auto s = scrape(m);
    EXPECT_EQ(value_of(s, "resmgr_conflicts_total", {{"source", "guard"}}), 4);
    EXPECT_EQ(value_of(s, "resmgr_conflicts_total", {{"source", "admission"}}), 1);
    EXPECT_EQ(find_samples(s, "resmgr_conflicts_total").size(), 2u);
    EXPECT_EQ(value_of(s, "resmgr_file_guard_decisions_total", {{"decision", "denied"}}), 3);
    EXPECT_EQ(value_of(s, "resmgr_file_guard_decisions_total", {{"decision", "queued"}}), 1);
    EXPECT_EQ(value_of(s, "resmgr_oom_kill_events_total"), 1);
    EXPECT_EQ(value_of(s, "resmgr_preemptions_total"), 1);
}

TEST(Metrics, LabelValuesAreEscapedInTheText) {
    Node node;
    // Workflow names allow only a safe set, but the exposition must stay parseable whatever the value.
    const std::string id = node.allocate({{"workflow_id", "wf/x=y+z@h:1"}, {"resources", {{"cpu_cores", 1}}}});
    metrics::PassFigures pass = metrics::figures_of(node.ledger, nullptr, 0);
    pass.allocations[0].workflow = "quote\" backslash\\ newline\n";
    metrics::Metrics m;
    m.on_pass(pass);
    const auto s = scrape(m);
    EXPECT_EQ(value_of(s, "resmgr_allocation_info", {{"workflow", "quote\" backslash\\ newline\n"}}), 1);
}

TEST(MetricsListen, AcceptsNumericAddressesAndRefusesTheRest) {
    auto a = metrics::parse_listen_address("127.0.0.1:9464");
    EXPECT_EQ(a.host, "127.0.0.1");
    EXPECT_EQ(a.port, 9464);
    EXPECT_FALSE(a.ipv6);
    EXPECT_FALSE(a.is_wildcard());
    auto b = metrics::parse_listen_address("[::1]:80");
    EXPECT_TRUE(b.ipv6);
    EXPECT_EQ(b.host, "::1");
    EXPECT_EQ(b.to_string(), "[::1]:80");
    EXPECT_TRUE(metrics::parse_listen_address("0.0.0.0:9464").is_wildcard());
    EXPECT_TRUE(metrics::parse_listen_address("[::]:9464").is_wildcard());
    for (const char* bad : {"", "9464", ":9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:94x4",
                            "127.0.0.1:-1", "localhost:9464", "256.1.1.1:9464", "::1:9464", "[::1:9464", "[::1]9464", "[127.0.0.1]:9464",
                            "127.0.0.1:9464\n", "127.0.0.1 :9464"}) {
        try {
            metrics::parse_listen_address(bad);
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const metrics::UsageError& e) {
            EXPECT_NE(std::string(e.what()).find("--metrics-listen"), std::string::npos) << e.what();
        }
    }
}

// A loopback port another socket holds (listening), and the socket.
std::pair<int, std::uint16_t> held_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 1) != 0) return {-1, 0};
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    return {fd, ntohs(sa.sin_port)};
}

TEST(MetricsListen, APortInUseIsAClearError) {
    auto [fd, port] = held_port();
    ASSERT_GE(fd, 0);
    auto metrics = std::make_shared<metrics::Metrics>();
    try {
        metrics::MetricsServer server(metrics::parse_listen_address("127.0.0.1:" + std::to_string(port)), metrics);
        ADD_FAILURE() << "served on a port in use";
    } catch (const metrics::UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("Address already in use"), std::string::npos) << e.what();
    }
    ::close(fd);
}

TEST(MetricsTextfile, WritesTheWholeFileAndLeavesNoTemporary) {
    TempDir dir;
    Node node;
    node.allocate({{"workflow_id", "wf"}, {"resources", {{"cpu_cores", 1}}}});
    metrics::Metrics m;
    m.on_pass(metrics::figures_of(node.ledger, nullptr, 0));
    metrics::Textfile file(dir.path());
    file.write("stale\n");
    file.write(m.text());
    std::ifstream in(dir.path() / "resmgr.prom");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, m.text());
    EXPECT_EQ(find_samples(parse_exposition(text), "resmgr_allocation_info").size(), 1u);
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()), 1);
    EXPECT_EQ(std::filesystem::status(dir.path() / "resmgr.prom").permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write | std::filesystem::perms::group_read |
                  std::filesystem::perms::others_read);
}

TEST(MetricsTextfile, ABadDirectoryIsRefusedAtStart) {
    TempDir dir;
    std::ofstream(dir.path() / "plain") << "x";
    for (const auto& bad : {dir.path() / "missing", dir.path() / "plain"}) {
        try {
            metrics::Textfile file(bad);
            ADD_FAILURE() << "accepted " << bad;
        } catch (const metrics::UsageError& e) {
            EXPECT_NE(std::string(e.what()).find("--metrics-textfile"), std::string::npos) << e.what();
        }
    }
}

} // namespace
} // namespace resmgr
