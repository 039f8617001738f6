// Local users against a private resmgrd, as the issue "Local users can crash, hijack and block
// resmgrd" tried them: two unprivileged users (created and removed by each test) and root.
// Priority is a privilege, conflicts are settled only by those they involve, workflow names
// belong to their owner.
#include <gtest/gtest.h>

#include "security_fixture.hpp"

using namespace resmgr;
using namespace resmgr::host;
using namespace std::chrono_literals;
using nlohmann::json;

TEST_F(SecurityHost, AnUnprivilegedUserCannotAskForAPriorityThatPreempts) {
    // Root's medium allocation fills the node's allocatable CPU.
    json capacity = cli_json({"capacity"});
    const double free_cpu = capacity["result"]["available"]["cpu_cores"].get<double>();
    std::string roots = allocate(json{{"workflow_id", "rootci"}, {"priority", "medium"}, {"resources", {{"cpu_cores", free_cpu}}}}.dump());
    ASSERT_FALSE(roots.empty());
    json critical = cli_json_as(*mallory, {"allocate", R"({"workflow_id":"mine","priority":"critical","resources":{"cpu_cores":1}})"});
    ASSERT_EQ(critical["error"]["code"], "PERMISSION_DENIED") << critical.dump(2);
    EXPECT_NE(critical["error"]["details"].get<std::string>().find("at most 89 (high)"), std::string::npos) << critical.dump(2);
    json st = cli_json({"status", json{{"allocation_id", roots}}.dump()});
    EXPECT_EQ(st["result"]["allocations"][0]["status"], "active") << "root's allocation was not frozen";
    json high = cli_json_as(*mallory, {"allocate", R"({"workflow_id":"mine","priority":"high","resources":{"agents":1}})"});
    EXPECT_EQ(high["status"], "success") << high.dump(2);
}

TEST_F(SecurityHost, WorkflowNamesBelongToTheirOwner) {
    // One user's conflict_avoidance of "rootci" does not stop root's rootci ...
    allocate_as(*mallory, R"({"workflow_id":"mine","resources":{},"constraints":{"conflict_avoidance":["rootci"]}})");
    std::string roots = allocate(R"({"workflow_id":"rootci","resources":{}})");
    EXPECT_FALSE(roots.empty()) << "a user's avoidance refused root's workflow";
    // ... nor does their own workflow of the same name count against root's per-workflow limit
    // (max_agents_per_workflow 15; the fixture lifts the CPU and memory ones).
    allocate_as(*mallory, R"({"workflow_id":"rootci2","resources":{"agents":9}})");
    std::string roots2 = allocate(R"({"workflow_id":"rootci2","resources":{"agents":9}})");
    EXPECT_FALSE(roots2.empty()) << "another user's rootci2 used root's allowance";
    // A user's own names still count for that user.
    json over = cli_json_as(*mallory, {"allocate", R"({"workflow_id":"rootci2","resources":{"agents":7}})"});
    EXPECT_EQ(over["error"]["code"], "POLICY_VIOLATION") << over.dump(2);
    // Root's avoidance means anyone's workflow of that name.
    allocate(R"({"workflow_id":"deploy","resources":{},"constraints":{"conflict_avoidance":["tests"]}})");
    json tests = cli_json_as(*alice, {"allocate", R"({"workflow_id":"tests","resources":{}})"});
    EXPECT_EQ(tests["error"]["code"], "CONFLICT") << tests.dump(2);
}

TEST_F(SecurityHost, ConflictsAreSettledOnlyByThoseTheyInvolve) {
    json doctor = cli_json({"doctor"});
    if (!doctor["result"]["daemon"]["file_guard"].value("available", false)) GTEST_SKIP() << "no file guard on this host";
    const std::string work = dir + "/work";
    std::filesystem::create_directories(work);
    const std::string file = work + "/held";
    std::ofstream(file) << "x\n";
    ::chown(work.c_str(), alice->uid(), alice->gid());
    ::chown(file.c_str(), alice->uid(), alice->gid());
    ::chmod(file.c_str(), 0666); // mallory could write it too, so may ask for it
    json policy = cli_json({"prevent-conflicts", json{{"file_conflicts", {{"strategy", "file_locking"}}}}.dump()});
    ASSERT_EQ(policy["status"], "success") << policy.dump(2);
    std::string held = allocate_as(*alice, json{{"workflow_id", "wf-a"}, {"resources", {{"agents", 1}}}, {"exclusive_files", {file}}}.dump());
    ASSERT_FALSE(held.empty());
    // An allocation of mallory's refused the file at admission: a recorded conflict naming both.
    json refused = cli_json_as(*mallory, {"allocate", json{{"workflow_id", "wf-m"}, {"priority", "high"}, {"resources", {{"agents", 1}}},
                                                          {"exclusive_files", {file}}}.dump()});
    ASSERT_EQ(refused["error"]["code"], "CONFLICT") << refused.dump(2);
    json listed = cli_json({"status", "conflicts"});
    ASSERT_EQ(listed["result"]["conflicts"].size(), 1u) << listed.dump(2);
    const std::string conflict = listed["result"]["conflicts"][0]["conflict_id"];
    // A third user takes no part in it, and mallory may not take the file by priority.
    for (const char* strategy : {"release", "queue_and_serialize", "priority_based"}) {
        json r = cli_json_as(*mallory, {"resolve-conflicts", json{{"conflict_id", conflict}, {"strategy", strategy}}.dump()});
        EXPECT_EQ(r["error"]["code"], "PERMISSION_DENIED") << strategy << ": " << r.dump(2);
    }
    json st = cli_json({"status", "conflicts"});
    EXPECT_EQ(st["result"]["conflicts"].size(), 1u) << "still active: " << st.dump(2);
    // The holder's owner may.
    json mine = cli_json_as(*alice, {"resolve-conflicts", json{{"conflict_id", conflict}, {"strategy", "queue_and_serialize"}}.dump()});
    EXPECT_EQ(mine["status"], "success") << mine.dump(2);
}
