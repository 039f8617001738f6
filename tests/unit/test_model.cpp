// Sizes, durations, priorities, timestamps and the allocate request schema.
#include <gtest/gtest.h>

#include "resmgr/json.hpp"
#include "resmgr/model.hpp"
#include "resmgr/protocol.hpp"

using namespace resmgr;
using nlohmann::json;

TEST(Size, BinaryUnitsLikeSystemd) {
    EXPECT_EQ(parse_size("4G"), 4ULL << 30);
    EXPECT_EQ(parse_size("512M"), 512ULL << 20);
    EXPECT_EQ(parse_size("1.5GiB"), 3ULL << 29);
    EXPECT_EQ(parse_size("2048k"), 2ULL << 20);
    EXPECT_EQ(parse_size("100"), 100u);
    EXPECT_EQ(parse_size(" 64M "), 64ULL << 20);
}

TEST(Size, RejectsGarbage) {
    for (auto bad : {"", "G", "-1G", "4X", "4 G G", "1e3", "abc", "99999999999999999999T"})
        EXPECT_FALSE(parse_size(bad)) << bad;
}

TEST(Size, FormatRoundTrips) {
    EXPECT_EQ(format_size(4ULL << 30), "4G");
    EXPECT_EQ(format_size(512ULL << 20), "512M");
    EXPECT_EQ(format_size(17), "17B");
    EXPECT_EQ(format_size(24683620ULL * 1024), "23.54G");
    EXPECT_EQ(format_size(1536 * 1024), "1.50M");
    EXPECT_EQ(parse_size(format_size(3ULL << 20)), 3ULL << 20);
}

TEST(Duration, Forms) {
    EXPECT_EQ(parse_duration("2h"), Millis(7'200'000));
    EXPECT_EQ(parse_duration("5m"), Millis(300'000));
    EXPECT_EQ(parse_duration("30s"), Millis(30'000));
    EXPECT_EQ(parse_duration("500ms"), Millis(500));
    EXPECT_EQ(parse_duration("1h30m"), Millis(5'400'000));
    EXPECT_EQ(parse_duration("PT2H30M"), Millis(9'000'000));
    EXPECT_EQ(parse_duration("90"), Millis(90'000));
    EXPECT_EQ(parse_duration("1d"), Millis(86'400'000));
    EXPECT_EQ(parse_duration("1.0s"), Millis(1000));
}

TEST(Duration, RejectsGarbage) {
    for (auto bad : {"", "h", "2x", "-5m", "5m3", "PT", "P1D", "3_months"}) EXPECT_FALSE(parse_duration(bad)) << bad;
}

TEST(Duration, Format) {
    EXPECT_EQ(format_duration(Millis(5'400'000)), "1h30m");
    EXPECT_EQ(format_duration(Millis(500)), "500ms");
    EXPECT_EQ(format_duration(Millis(0)), "0s");
    EXPECT_EQ(format_duration(Millis(21'600'000)), "6h");
}

TEST(Priority, NamedAndNumericBands) {
    EXPECT_EQ(Priority::parse("critical")->band(), PriorityBand::critical);
    EXPECT_EQ(Priority::parse("high")->value, 80);
    EXPECT_EQ(Priority::parse("low")->band(), PriorityBand::low);
    EXPECT_EQ(Priority::parse("90")->band(), PriorityBand::critical);
    EXPECT_EQ(Priority::parse("89")->band(), PriorityBand::high);
    EXPECT_EQ(Priority::parse("70")->band(), PriorityBand::high);
    EXPECT_EQ(Priority::parse("69")->band(), PriorityBand::medium);
    EXPECT_EQ(Priority::parse("40")->band(), PriorityBand::medium);
    EXPECT_EQ(Priority::parse("39")->band(), PriorityBand::low);
    EXPECT_EQ(Priority::parse("0")->band(), PriorityBand::low);
    EXPECT_EQ(Priority::parse("100")->band(), PriorityBand::critical);
    for (auto bad : {"101", "-1", "HIGH", "", "5.5", "urgent"}) EXPECT_FALSE(Priority::parse(bad)) << bad;
}

TEST(Timestamp, RoundTripAndOffsets) {
    auto t = parse_timestamp("2025-01-15T11:30:00Z");
    ASSERT_TRUE(t);
    EXPECT_EQ(format_timestamp(*t), "2025-01-15T11:30:00Z");
    EXPECT_EQ(parse_timestamp("2025-01-15T12:30:00+01:00"), t);
    EXPECT_EQ(parse_timestamp("2025-01-15T11:30:00.250Z"), t);
    EXPECT_FALSE(parse_timestamp("2025-01-15 11:30"));
    EXPECT_FALSE(parse_timestamp("2025-01-15T11:30:00"));
}

TEST(AllocationRequest, SeedExample) {
    auto r = parse_allocation_request(json::parse(R"({
        "workflow_id": "workflow_456", "priority": "high",
        "resources": {"cpu_cores": 4, "memory_gb": 8, "agents": 6},
        "duration": "3h", "exclusive_files": ["critical_config.nix"]})"));
    EXPECT_EQ(r.workflow_id, "workflow_456");
    EXPECT_EQ(r.priority.band(), PriorityBand::high);
    EXPECT_DOUBLE_EQ(r.resources.cpu_cores, 4);
    EXPECT_EQ(r.resources.memory_bytes, 8ULL << 30);
    EXPECT_EQ(r.resources.agents, 6);
    EXPECT_EQ(r.constraints.max_duration, Seconds(3 * 3600));
    EXPECT_EQ(r.constraints.exclusive_access, std::vector<std::string>{"critical_config.nix"});
}

TEST(AllocationRequest, SeedSchemaFields) {
    auto r = parse_allocation_request(json::parse(R"({
        "workflow_id": "workflow_123", "requester": "coordination_hub", "priority": 75,
        "resources": {"cpu_cores": 0.5, "memory_gb": "512M", "agents": 3, "tool_instances": {"bash": 2, "file_ops": 4, "search": 1}},
        "constraints": {"max_duration": "2h", "exclusive_access": ["critical_file.nix"], "conflict_avoidance": ["other_workflow_456"]},
        "performance_requirements": {"min_response_time": "500ms", "max_memory_per_agent": "1GB", "storage_iops": 100},
        "auto_release": {"on_completion": true, "on_timeout": false, "on_failure": true, "grace_period": "5m"}})"));
    EXPECT_EQ(r.priority.value, 75);
    EXPECT_EQ(r.resources.memory_bytes, 512ULL << 20);
    EXPECT_EQ(r.resources.tool_instances.at("file_ops"), 4);
    EXPECT_EQ(r.constraints.conflict_avoidance, std::vector<std::string>{"other_workflow_456"});
    EXPECT_EQ(r.performance_requirements.min_response_time, Millis(500));
    EXPECT_EQ(r.performance_requirements.max_memory_per_agent_bytes, 1ULL << 30);
    EXPECT_FALSE(r.auto_release.on_timeout);
    EXPECT_EQ(r.auto_release.grace_period, Seconds(300));
}

TEST(AllocationRequest, ClearErrorsNameTheField) {
    struct Case { const char* body; const char* field; };
    for (auto [body, field] : std::initializer_list<Case>{
             {R"({"resources":{}})", "workflow_id"},
             {R"({"workflow_id":"w"})", "resources"},
             {R"({"workflow_id":"w","resources":{"cpu_cores":-1}})", "resources.cpu_cores"},
             {R"({"workflow_id":"w","resources":{"cpu_cores":"2"}})", "resources.cpu_cores"},
             {R"({"workflow_id":"w","resources":{"memory_gb":"4Q"}})", "resources.memory_gb"},
             {R"({"workflow_id":"w","resources":{"memroy_gb":4}})", "memroy_gb"},
             {R"({"workflow_id":"w","priority":"urgent","resources":{}})", "priority"},
             {R"({"workflow_id":"w","resources":{},"duration":"forever"})", "duration"},
             {R"({"workflow_id":"w","resources":{},"exclusive_files":"a.nix"})", "exclusive_files"},
             {R"({"workflow_id":"w","resources":{},"auto_release":{"on_failure":"yes"}})", "auto_release.on_failure"},
             {R"({"workflow_id":"w","resources":{"agents":1.5}})", "resources.agents"},
         }) {
        try {
            parse_allocation_request(json::parse(body));
            ADD_FAILURE() << "accepted " << body;
        } catch (const ApiError& e) {
            EXPECT_EQ(e.code, ErrorCode::INVALID_REQUEST) << body;
            ASSERT_FALSE(e.affected_resources.empty()) << body;
            EXPECT_EQ(e.affected_resources.front(), field) << body << ": " << e.what();
        }
    }
}

TEST(Allocation, JsonRoundTrip) {
    Allocation a;
    a.allocation_id = "alloc_1";
    a.workflow_id = "wf";
    a.requester = "me";
    a.timestamp = *parse_timestamp("2025-01-15T11:30:00Z");
    a.priority = Priority{85};
    a.status = AllocationStatus::paused;
    a.resources.cpu_cores = 1.25;
    a.resources.memory_bytes = 3 * (1ULL << 30) + 12345;
    a.resources.pids = 64;
    a.resources.tool_instances = {{"bash", 2}};
    a.constraints.max_duration = Seconds(7200);
    a.constraints.exclusive_access = {"flake.nix"};
    a.auto_release.grace_period = Seconds(30);
    a.owner = {1000, 4242};
    a.expires_at = a.timestamp + Seconds(7200);
    Allocation b = allocation_from_json(to_json(a));
    EXPECT_EQ(b.allocation_id, a.allocation_id);
    EXPECT_EQ(b.priority, a.priority);
    EXPECT_EQ(b.status, a.status);
    EXPECT_EQ(b.resources.memory_bytes, a.resources.memory_bytes);
    EXPECT_DOUBLE_EQ(b.resources.cpu_cores, 1.25);
    EXPECT_EQ(b.resources.pids, 64u);
    EXPECT_EQ(b.resources.tool_instances, a.resources.tool_instances);
    EXPECT_EQ(b.constraints.max_duration, a.constraints.max_duration);
    EXPECT_EQ(b.constraints.exclusive_access, a.constraints.exclusive_access);
    EXPECT_EQ(b.auto_release.grace_period, Seconds(30));
    EXPECT_EQ(b.owner, a.owner);
    EXPECT_EQ(b.expires_at, a.expires_at);
    EXPECT_EQ(b.timestamp, a.timestamp);
}

TEST(Timestamps, OnlyRealDatesTheClockCanHoldAreAccepted) {
    EXPECT_FALSE(parse_timestamp("9999-01-01T00:00:00Z")) << "wrapped to 1816";
    EXPECT_FALSE(parse_timestamp("2846-01-01T00:00:00Z")) << "became 2261";
    EXPECT_FALSE(parse_timestamp("1969-12-31T23:59:59Z"));
    EXPECT_FALSE(parse_timestamp("2025-02-30T00:00:00Z")) << "Feb 30 became Mar 2";
    EXPECT_FALSE(parse_timestamp("2025-04-31T00:00:00Z"));
    EXPECT_FALSE(parse_timestamp("2025-01-15T24:00:00Z"));
    EXPECT_FALSE(parse_timestamp("2025-01-15T11:30:00+99:99"));
    EXPECT_FALSE(parse_timestamp("2025-01-15T11:30:00+01:60"));
    EXPECT_FALSE(parse_timestamp("2025-01-15T11:30:00+0a:00"));
    EXPECT_TRUE(parse_timestamp("2024-02-29T00:00:00Z")) << "a leap day";
    EXPECT_FALSE(parse_timestamp("2025-02-29T00:00:00Z"));
    EXPECT_TRUE(parse_timestamp("2200-12-31T23:59:59-23:59"));
}

TEST(Durations, NoLongerThanACentury) {
    EXPECT_FALSE(parse_duration("1000000h")) << "114 years";
    EXPECT_FALSE(parse_duration("99999999999999w"));
    EXPECT_TRUE(parse_duration("87600h")); // ten years
}

TEST(Names, WorkflowNamesAndFreeTextCannotCarryControlCharacters) {
    auto with = [](json params) {
        json base{{"workflow_id", "wf"}, {"resources", json::object()}};
        base.update(params);
        return base;
    };
    for (const std::string& bad : std::vector<std::string>{"", "wf\nFAKE LOG LINE", "wf\x1b[31mred", "with space", std::string(129, 'a'), "wf;rm"}) {
        try {
            parse_allocation_request(with({{"workflow_id", bad}}));
            ADD_FAILURE() << "accepted workflow_id " << json(bad).dump();
        } catch (const ApiError& e) {
            EXPECT_EQ(e.code, ErrorCode::INVALID_REQUEST);
        }
    }
    EXPECT_THROW(parse_allocation_request(with({{"constraints", {{"conflict_avoidance", {"ok", "bad\n"}}}}})), ApiError);
    EXPECT_THROW(parse_allocation_request(with({{"requester", "me\r\nFAKE"}})), ApiError);
    EXPECT_THROW(parse_allocation_request(with({{"requester", std::string(257, 'x')}})), ApiError);
    EXPECT_THROW(parse_allocation_request(with({{"resources", {{"tool_instances", {{"bad\n", 1}}}}}})), ApiError);
    EXPECT_THROW(parse_allocation_request(with({{"exclusive_files", {"/tmp/a\nFAKE"}}})), ApiError);
    EXPECT_NO_THROW(parse_allocation_request(with({{"workflow_id", "team/ci:build-42@main+x=1"}, {"requester", "resmgr-run make -j8 (pid 12)"}})));
}
