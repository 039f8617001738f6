// Policy file parsing: the seed's defaults, overlays, and clear errors.
#include <gtest/gtest.h>

#include "core/policy.hpp"
#include "resmgr/protocol.hpp"

using namespace resmgr;
using namespace resmgr::core;
using nlohmann::json;

TEST(Policy, DefaultsAreTheSeeds) {
    Policy p = Policy::defaults();
    EXPECT_EQ(p.max_cpu_per_workflow, 6);
    EXPECT_EQ(p.max_memory_gb_per_workflow, 12);
    EXPECT_EQ(p.max_agents_per_workflow, 15);
    EXPECT_EQ(p.max_duration, std::chrono::hours(6));
    EXPECT_EQ(p.priority_weights.at(PriorityBand::critical), 1.0);
    EXPECT_EQ(p.priority_weights.at(PriorityBand::low), 0.4);
    EXPECT_EQ(p.monitoring_intervals["resource_check"], "30s");
    EXPECT_EQ(p.optimization_targets["utilization_target"], 75.0);
}

TEST(Policy, SeedDocumentParsesAndRoundTrips) {
    json seed = json::parse(R"({"resource_policies": {
        "allocation_limits": {"max_cpu_per_workflow": 4, "max_memory_per_workflow": 8, "max_agents_per_workflow": 10, "max_duration": "2h"},
        "priority_weights": {"critical": 1.0, "high": 0.9, "medium": 0.5, "low": 0.1},
        "optimization_targets": {"efficiency_threshold": 70.0},
        "monitoring_intervals": {"resource_check": "1s"}}})");
    Policy p = parse_policy(seed);
    EXPECT_EQ(p.max_cpu_per_workflow, 4);
    EXPECT_EQ(p.max_duration, std::chrono::hours(2));
    EXPECT_EQ(p.priority_weights.at(PriorityBand::high), 0.9);
    EXPECT_EQ(p.optimization_targets["efficiency_threshold"], 70.0);
    EXPECT_EQ(p.optimization_targets["utilization_target"], 75.0); // untouched keys keep defaults
    EXPECT_EQ(p.monitoring_intervals["resource_check"], "1s");
    Policy again = parse_policy(p.to_json());
    EXPECT_EQ(again.to_json(), p.to_json());
}

TEST(Policy, EmptyDocumentIsDefaults) { EXPECT_EQ(parse_policy(json::object()).to_json(), Policy::defaults().to_json()); }

TEST(Policy, ErrorsNameTheField) {
    struct Case { const char* doc; const char* field; };
    for (auto [doc, field] : std::initializer_list<Case>{
             {R"([])", ""},
             {R"({"resource_policy":{}})", "resource_policy"},
             {R"({"resource_policies":{"allocation_limits":{"max_cpu_per_workflow":-1}}})", "resource_policies.allocation_limits.max_cpu_per_workflow"},
             {R"({"resource_policies":{"allocation_limits":{"max_cpu_per_workflow":"6"}}})", "resource_policies.allocation_limits.max_cpu_per_workflow"},
             {R"({"resource_policies":{"allocation_limits":{"max_duration":"forever"}}})", "resource_policies.allocation_limits.max_duration"},
             {R"({"resource_policies":{"allocation_limits":{"max_agents_per_workflow":1.5}}})", "resource_policies.allocation_limits.max_agents_per_workflow"},
             {R"({"resource_policies":{"priority_weights":{"urgent":1}}})", "resource_policies.priority_weights.urgent"},
             {R"({"resource_policies":{"priority_weights":{"low":0.9}}})", "resource_policies.priority_weights"},
             {R"({"resource_policies":{"monitoring_intervals":{"resource_check":"often"}}})", "resource_policies.monitoring_intervals.resource_check"},
             {R"({"resource_policies":{"allocation_limits":[]}})", "resource_policies.allocation_limits"},
         }) {
        try {
            parse_policy(json::parse(doc));
            ADD_FAILURE() << "accepted " << doc;
        } catch (const ApiError& e) {
            ASSERT_FALSE(e.affected_resources.empty()) << doc;
            EXPECT_EQ(e.affected_resources[0], field) << doc << ": " << e.what() << " " << e.details;
        }
    }
}

TEST(Policy, FileConflictsNameWhoMayHoldAnyFileAndCapTheQueue) {
    Policy::FileConflicts f = parse_file_conflicts(
        json::parse(R"({"hold_any_file":{"users":["ops",1234],"groups":["wheel"]},"queue_limits":{"per_user":8}})"), "file_conflicts", {});
    EXPECT_EQ(f.hold_any_users, (std::vector<std::string>{"ops", "1234"}));
    EXPECT_EQ(f.max_queued_per_user, 8);
    EXPECT_EQ(f.max_queued_total, 1024) << "the default stays";
    EXPECT_EQ(parse_file_conflicts(f.to_json(), "file_conflicts", {}).to_json(), f.to_json());
    EXPECT_TRUE(may_hold_any_file(f, UserIdentity{0, "root", {}, {}}));
    EXPECT_TRUE(may_hold_any_file(f, UserIdentity{1234, "", {}, {}}));
    EXPECT_TRUE(may_hold_any_file(f, UserIdentity{1000, "bob", {"bob", "wheel"}, {1000, 10}}));
    EXPECT_FALSE(may_hold_any_file(f, UserIdentity{1000, "bob", {"bob"}, {1000}}));
    for (const char* bad : {R"({"queue_limits":{"per_user":0}})", R"({"queue_limits":{"each":1}})", R"({"hold_any_file":["ops"]})"})
        EXPECT_THROW(parse_file_conflicts(json::parse(bad), "file_conflicts", {}), ApiError) << bad;
}

TEST(Policy, RecoveryProceduresParseWithTheSeedsDefaults) {
    Policy d = Policy::defaults();
    EXPECT_EQ(d.resource_leak_detection.monitoring_interval, std::chrono::minutes(5));
    EXPECT_EQ(d.resource_leak_detection.leak_threshold, 15);
    EXPECT_EQ(d.performance_degradation.detection_method, "baseline_comparison");
    EXPECT_EQ(d.performance_degradation.degradation_threshold, 25);
    EXPECT_TRUE(d.performance_degradation.auto_optimization);
    EXPECT_FALSE(d.performance_degradation.manual_intervention);

    Policy p = parse_policy(json::parse(R"({"resource_policies": {
        "resource_leak_detection": {"monitoring_interval": "1s", "leak_threshold": 50, "auto_cleanup": false, "escalation_timeout": "2m"},
        "performance_degradation": {"detection_method": "baseline_comparison", "degradation_threshold": 40,
                                    "auto_optimization": false, "manual_intervention": true}}})"));
    EXPECT_EQ(p.resource_leak_detection.monitoring_interval, std::chrono::seconds(1));
    EXPECT_FALSE(p.resource_leak_detection.auto_cleanup);
    EXPECT_EQ(p.performance_degradation.degradation_threshold, 40);
    EXPECT_FALSE(p.performance_degradation.auto_optimization);
    EXPECT_TRUE(p.performance_degradation.manual_intervention);
    EXPECT_EQ(parse_policy(p.to_json()).to_json(), p.to_json());

    for (auto [doc, field] : std::initializer_list<std::pair<const char*, const char*>>{
             {R"({"resource_policies":{"performance_degradation":{"speed":1}}})", "resource_policies.performance_degradation.speed"},
             {R"({"resource_policies":{"performance_degradation":{"detection_method":"guess"}}})",
              "resource_policies.performance_degradation.detection_method"},
             {R"({"resource_policies":{"performance_degradation":{"degradation_threshold":0}}})",
              "resource_policies.performance_degradation.degradation_threshold"},
             {R"({"resource_policies":{"performance_degradation":{"auto_optimization":"yes"}}})",
              "resource_policies.performance_degradation.auto_optimization"},
             {R"({"resource_policies":{"performance_degradation":[]}})", "resource_policies.performance_degradation"},
             {R"({"resource_policies":{"resource_leak_detection":{"monitoring_interval":"500ms"}}})",
              "resource_policies.resource_leak_detection.monitoring_interval"},
             {R"({"resource_policies":{"resource_leak_detection":{"interval":"5m"}}})", "resource_policies.resource_leak_detection.interval"},
         }) {
        try {
            parse_policy(json::parse(doc));
            ADD_FAILURE() << "accepted " << doc;
        } catch (const ApiError& e) {
            ASSERT_FALSE(e.affected_resources.empty()) << doc;
            EXPECT_EQ(e.affected_resources[0], field) << doc << ": " << e.what();
        }
    }
}
