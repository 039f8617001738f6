// The Service's exclusive-file side with a fake guard: canonical paths, holds handed to the guard
// while an allocation runs and taken back when it ends, a second claimant refused (or queued) at
// admission, guard reports turned into conf_ records and RESOURCE_CONFLICT events, the
// resolve-conflicts and prevent-conflicts operations, and everything back after a restart.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>

#include "core/ledger.hpp"
#include "fake_backend.hpp"
#include "resmgr/json.hpp"
#include "server/service.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using namespace resmgr::core;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const TimePoint kNow = TimePoint(std::chrono::seconds(1'736'935'200)); // 2025-01-15T10:00:00Z
const Owner kRoot{0, 1};

struct FakeGuard : conflicts::Guard {
    std::map<std::string, conflicts::Hold> holds; // by path
    std::vector<std::pair<std::string, std::optional<std::string>>> releases;
    conflicts::GuardPolicy current;
    void hold(const conflicts::Hold& h) override { holds[h.path] = h; }
    void release(const std::string& id, const std::optional<std::string>& path) override {
        releases.emplace_back(id, path);
        for (auto it = holds.begin(); it != holds.end();)
            it = it->second.allocation_id == id && (!path || *path == it->first) ? holds.erase(it) : std::next(it);
    }
    bool set_strategy(const std::string& path, conflicts::Strategy s) override {
        if (!holds.count(path)) return false;
        holds[path].strategy = s;
        return true;
    }
    void set_policy(conflicts::GuardPolicy p) override { current = std::move(p); }
    conflicts::GuardPolicy policy() const override { return current; }
    std::map<std::string, json> waiting; // by path: the openers a test says are queued
    json status() const override {
        json list = json::array();
        for (const auto& [path, h] : holds)
            list.push_back({{"path", path}, {"allocation_id", h.allocation_id}, {"workflow_id", h.workflow_id},
                            {"strategy", h.strategy ? std::string(conflicts::to_string(*h.strategy)) : std::string(conflicts::to_string(current.strategy))},
                            {"marked", true}, {"waiting_openers", waiting.count(path) ? waiting.at(path) : json::array()}});
        return {{"holds", list}};
    }
};

struct RecordingSink : events::EventSink {
    std::vector<events::Event> seen;
    void publish(const events::Event& e) override { seen.push_back(e); }
};

class ServiceConflicts : public ::testing::Test {
protected:
    TempDir dir;
    FakeBackend backend;
    FakeGuard guard;
    RecordingSink sink;
    std::unique_ptr<state::StateStore> store;
    std::unique_ptr<Ledger> ledger;
    std::unique_ptr<server::Service> service;
    std::string file; // an existing file every test holds

    void SetUp() override {
        std::filesystem::create_directories(dir.path() / "src");
        file = (dir.path() / "src" / "flake.nix").string();
        std::ofstream(file) << "{}";
        restart();
    }
    // A fresh daemon over the same state directory.
    void restart() {
        service.reset();
        store = std::make_unique<state::StateStore>(dir.path() / "state");
        ledger = std::make_unique<Ledger>(NodeCapacity{8, 16ull << 30}, Policy::defaults());
        for (auto& a : store->load_allocations()) ledger->restore(a);
        service = std::make_unique<server::Service>(*ledger, backend, *store, [] { return kNow; }, json{{"cgroup2_mount", "/fake"}},
                                                    json::object());
        service->events().set_sink(&sink);
        service->files().set_guard(&guard, {});
        service->completion().reconcile();
    }
    json call(const std::string& op, json params, const Owner& peer = kRoot, const std::string& resource = {}) {
        Request r;
        r.operation = op;
        r.resource_type = resource;
        r.params = std::move(params);
        return service->router().handle(r, peer);
    }
    std::string allocate(const std::string& workflow, int priority, json files, bool wait = false) {
        json r = call("allocate", {{"workflow_id", workflow}, {"priority", priority}, {"resources", {{"cpu_cores", 1}}},
                                   {"exclusive_files", files}, {"wait", wait}});
        EXPECT_EQ(r["status"], "success") << r.dump(2);
        return r["result"].value("allocation_id", "");
    }
    conflicts::GuardReport denial(const std::string& holder, const std::string& claimant_cgroup, pid_t pid = 4242) {
        conflicts::GuardReport r;
        r.kind = conflicts::GuardReport::Kind::denied;
        r.path = file;
        r.allocation_id = holder;
        r.workflow_id = ledger->find(holder)->workflow_id;
        r.opener = {pid, "sed", claimant_cgroup, conflicts::OpenMode::write};
        r.reason = "write from outside the holder";
        r.at = kNow;
        return r;
    }
    json conflicts_file() {
        std::ifstream in(dir.path() / "state" / "current_state" / "conflicts.json");
        return json::parse(in);
    }
};

TEST_F(ServiceConflicts, ARunningAllocationsFilesAreGuardedForItsGroupAndLetGoWhenItEnds) {
    std::string id = allocate("wf-build", 50, {file});
    ASSERT_TRUE(guard.holds.count(file));
    EXPECT_EQ(guard.holds[file].allocation_id, id);
    EXPECT_EQ(guard.holds[file].owner_cgroup, "/" + id) << "as /proc/PID/cgroup shows the group";
    EXPECT_EQ(guard.holds[file].priority, 50);
    json r = call("release", {{"allocation_id", id}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    EXPECT_FALSE(guard.holds.count(file));
}

TEST_F(ServiceConflicts, PathsAreMadeCanonicalAndRelativeOnesFollowTheRequestersDirectory) {
    std::filesystem::create_directories(dir.path() / "src" / "sub");
    std::string id = allocate("wf-a", 50, {(dir.path() / "src" / "sub" / ".." / "flake.nix").string()});
    EXPECT_TRUE(guard.holds.count(file)) << "../ is resolved";
    call("release", {{"allocation_id", id}});

    char cwd[4096];
    ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
    ASSERT_EQ(::chdir((dir.path() / "src").c_str()), 0);
    json r = call("allocate", {{"workflow_id", "wf-b"}, {"resources", {{"cpu_cores", 1}}}, {"exclusive_files", {"flake.nix"}}},
                  Owner{0, ::getpid()});
    ASSERT_EQ(::chdir(cwd), 0);
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    EXPECT_EQ(r["result"]["allocation"]["constraints"]["exclusive_access"], json({file}));

    json no_cwd = call("allocate", {{"workflow_id", "wf-c"}, {"resources", {{"cpu_cores", 1}}}, {"exclusive_files", {"flake.nix"}}},
                       Owner{0, 0});
    EXPECT_EQ(no_cwd["error"]["code"], "INVALID_REQUEST") << no_cwd.dump(2);
    json directory = call("allocate", {{"workflow_id", "wf-d"}, {"resources", {{"cpu_cores", 1}}}, {"exclusive_files", {dir.path().string()}}});
    EXPECT_EQ(directory["error"]["code"], "INVALID_REQUEST");
    EXPECT_NE(directory["error"]["message"].get<std::string>().find("is a directory"), std::string::npos);
    json missing_dir = call("allocate", {{"workflow_id", "wf-e"}, {"resources", {{"cpu_cores", 1}}}, {"exclusive_files", {"/no/such/dir/f"}}});
    EXPECT_EQ(missing_dir["error"]["code"], "INVALID_REQUEST");
}

TEST_F(ServiceConflicts, FilesAreLookedAtAsTheRequesterAndHeldOnlyIfItCouldWriteThem) {
    std::vector<std::optional<conflicts::Credentials>> asked_as;
    bool writable = false;
    service->set_user_lookup([](std::uint32_t uid) { return UserIdentity{uid, uid == 1000 ? "bob" : "", {"bob", "cdrom"}, {1000, 24}}; });
    service->files().set_path_probe([&](const std::string& path, const std::optional<conflicts::Credentials>& as) {
        asked_as.push_back(as);
        conflicts::PathFacts f;
        f.resolved = path + ".target";
        f.exists = true;
        f.type = S_IFREG;
        f.writable = writable;
        return f;
    });
    const Owner bob{1000, 0};
    json refused = call("allocate", {{"workflow_id", "wf-b"}, {"resources", {{"cpu_cores", 1}}}, {"exclusive_files", {"/etc/hosts"}}}, bob);
    EXPECT_EQ(refused["error"]["code"], "PERMISSION_DENIED") << refused.dump(2);
    ASSERT_EQ(asked_as.size(), 1u);
    ASSERT_TRUE(asked_as[0]);
    EXPECT_EQ(asked_as[0]->uid, 1000u);
    EXPECT_EQ(asked_as[0]->gid, 1000u);
    EXPECT_EQ(asked_as[0]->groups, (std::vector<std::uint32_t>{1000, 24}));
    EXPECT_TRUE(guard.holds.empty());
    writable = true;
    json mine = call("allocate", {{"workflow_id", "wf-b"}, {"resources", {{"cpu_cores", 1}}}, {"exclusive_files", {"/home/bob/f"}}}, bob);
    ASSERT_EQ(mine["status"], "success") << mine.dump(2);
    EXPECT_TRUE(guard.holds.count("/home/bob/f.target")) << "held by what the requester resolved";
    // Root, and the users file_conflicts.hold_any_file names, look with the daemon's eyes.
    writable = false;
    ASSERT_EQ(call("prevent-conflicts", {{"file_conflicts", {{"hold_any_file", {{"users", {"bob"}}}}}}})["status"], "success");
    json listed = call("allocate", {{"workflow_id", "wf-c"}, {"resources", {{"cpu_cores", 1}}}, {"exclusive_files", {"/etc/hosts"}}}, bob);
    EXPECT_EQ(listed["status"], "success") << listed.dump(2);
    EXPECT_FALSE(asked_as.back()) << "looked at as the daemon";
}

TEST_F(ServiceConflicts, ASecondClaimantIsRefusedWithARecordedConflictOrQueuedUntilTheFileIsFree) {
    std::string holder = allocate("wf-build", 50, {file});
    json refused = call("allocate", {{"workflow_id", "wf-test"}, {"resources", {{"cpu_cores", 1}}}, {"exclusive_files", {file}}});
    ASSERT_EQ(refused["error"]["code"], "CONFLICT") << refused.dump(2);
    EXPECT_NE(refused["error"]["details"].get<std::string>().find("conf_"), std::string::npos) << refused.dump(2);
    json listed = call("status", json::object(), kRoot, "conflicts");
    ASSERT_EQ(listed["result"]["conflicts"].size(), 1u) << listed.dump(2);
    EXPECT_EQ(listed["result"]["conflicts"][0]["event"], "allocation_refused");
    EXPECT_EQ(listed["result"]["conflicts"][0]["holder"]["allocation_id"], holder);

    std::string waiting = allocate("wf-test", 50, {file}, true);
    EXPECT_EQ(ledger->find(waiting)->status, AllocationStatus::queued);
    EXPECT_EQ(guard.holds[file].allocation_id, holder);
    call("release", {{"allocation_id", holder}});
    EXPECT_EQ(ledger->find(waiting)->status, AllocationStatus::active) << "admitted once the file is free";
    EXPECT_EQ(guard.holds[file].allocation_id, waiting);
    json after = call("status", json::object(), kRoot, "conflicts");
    EXPECT_TRUE(after["result"]["conflicts"].empty()) << "the holder's release resolved it";
}

TEST_F(ServiceConflicts, GuardDenialsBecomeConflictRecordsAndEventsNamingTheDeniedProcess) {
    std::string holder = allocate("wf-build", 50, {file});
    sink.seen.clear();
    service->files().on_guard_reports({denial(holder, "/user.slice/session-1.scope")});
    ASSERT_EQ(sink.seen.size(), 1u);
    const events::Event& e = sink.seen[0];
    EXPECT_EQ(e.type, events::EventType::conflict);
    EXPECT_EQ(e.allocation, holder);
    EXPECT_EQ(e.details["file"], file);
    EXPECT_EQ(e.details["denied_process"]["pid"], 4242);
    EXPECT_EQ(e.details["denied_process"]["comm"], "sed");
    EXPECT_EQ(e.details["denied_process"]["cgroup"], "/user.slice/session-1.scope");
    const std::string id = e.details["conflict_id"];
    EXPECT_EQ(id.rfind("conf_", 0), 0u);
    json saved = conflicts_file();
    ASSERT_EQ(saved["conflicts"].size(), 1u) << "a new conflict is on disk at once";
    EXPECT_EQ(saved["conflicts"][0]["conflict_id"], id);

    service->files().on_guard_reports({denial(holder, "/user.slice/session-1.scope", 4243)});
    ASSERT_EQ(sink.seen.size(), 2u) << "each denial is an event";
    EXPECT_EQ(sink.seen[1].details["conflict_id"], id) << "the same claimant again is the same conflict";
    EXPECT_EQ(sink.seen[1].details["occurrences"], 2);

    // A batch in which the guard counted 5 refusals of one opener: one event, 5 occurrences.
    auto burst = denial(holder, "/user.slice/session-1.scope", 4244);
    burst.count = 5;
    service->files().on_guard_reports({burst});
    ASSERT_EQ(sink.seen.size(), 3u);
    EXPECT_EQ(sink.seen[2].details["occurrences"], 7);
    EXPECT_NE(sink.seen[2].message.find("5 times"), std::string::npos) << sink.seen[2].message;
}

TEST_F(ServiceConflicts, ResolveByReleaseFreesTheFileAndUnsupportedStrategiesSaySo) {
    std::string holder = allocate("wf-build", 50, {file});
    service->files().on_guard_reports({denial(holder, "/user.slice")});
    const std::string id = sink.seen.back().details["conflict_id"];
    json cow = call("resolve-conflicts", {{"conflict_id", id}, {"strategy", "copy_on_write"}});
    EXPECT_EQ(cow["error"]["code"], "UNSUPPORTED");
    EXPECT_EQ(call("resolve-conflicts", {{"conflict_id", "conf_nope"}, {"strategy", "release"}})["error"]["code"], "NOT_FOUND");
    json someone_else = call("resolve-conflicts", {{"conflict_id", id}, {"strategy", "release"}}, Owner{1234, 99});
    EXPECT_EQ(someone_else["error"]["code"], "PERMISSION_DENIED") << "only the holder's owner or root lets go";

    json r = call("resolve-conflicts", {{"conflict_id", id}, {"strategy", "release"}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    EXPECT_EQ(r["result"]["outcome"], "released");
    EXPECT_FALSE(guard.holds.count(file));
    EXPECT_TRUE(ledger->find(holder)->constraints.exclusive_access.empty());
    EXPECT_EQ(ledger->find(holder)->status, AllocationStatus::active) << "the allocation itself runs on";
    EXPECT_EQ(conflicts_file()["conflicts"][0]["status"], "resolved");
    EXPECT_EQ(call("resolve-conflicts", {{"conflict_id", id}, {"strategy", "release"}})["error"]["code"], "CONFLICT");
}

TEST_F(ServiceConflicts, PriorityBasedGivesTheFileToAHigherPriorityClaimantOnly) {
    std::string holder = allocate("wf-low", 30, {file});
    std::string urgent = allocate("wf-urgent", 90, json::array());
    service->files().on_guard_reports({denial(holder, "/" + urgent + "/agent-fixer")});
    const std::string id = sink.seen.back().details["conflict_id"];
    EXPECT_EQ(sink.seen.back().details["denied_process"]["allocation_id"], urgent);
    json r = call("resolve-conflicts", {{"conflict_id", id}, {"strategy", "priority_based"}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    EXPECT_EQ(r["result"]["outcome"], "transferred");
    EXPECT_EQ(guard.holds[file].allocation_id, urgent);
    EXPECT_EQ(guard.holds[file].owner_cgroup, "/" + urgent);
    EXPECT_EQ(ledger->find(urgent)->constraints.exclusive_access, std::vector<std::string>{file});

    // The old holder, lower in priority, asks back: it does not get it.
    service->files().on_guard_reports({denial(urgent, "/" + holder)});
    json back = call("resolve-conflicts", {{"conflict_id", sink.seen.back().details["conflict_id"]}, {"strategy", "priority_based"}});
    ASSERT_EQ(back["status"], "success") << back.dump(2);
    EXPECT_EQ(back["result"]["outcome"], "holder_keeps");
    EXPECT_EQ(guard.holds[file].allocation_id, urgent);
}

TEST_F(ServiceConflicts, QueueAndSerializeSwitchesTheHoldsStrategy) {
    std::string holder = allocate("wf-build", 50, {file});
    service->files().on_guard_reports({denial(holder, "/user.slice")});
    json r = call("resolve-conflicts", {{"conflict_id", sink.seen.back().details["conflict_id"]}, {"strategy", "queue_and_serialize"}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    EXPECT_EQ(guard.holds[file].strategy, conflicts::Strategy::queue_and_serialize);
}

TEST_F(ServiceConflicts, PreventConflictsSetsThePolicyForRootAndAnalysesPendingRequests) {
    std::string holder = allocate("wf-build", 50, {file});
    json denied = call("prevent-conflicts", {{"file_conflicts", {{"strategy", "file_locking"}}}}, Owner{1000, 5});
    EXPECT_EQ(denied["error"]["code"], "PERMISSION_DENIED");
    json cow = call("prevent-conflicts", {{"file_conflicts", {{"strategy", "copy_on_write"}}}});
    EXPECT_EQ(cow["error"]["code"], "UNSUPPORTED");
    json bad = call("prevent-conflicts", {{"file_conflicts", {{"enforcement", "sometimes"}}}});
    EXPECT_EQ(bad["error"]["code"], "INVALID_REQUEST");

    json r = call("prevent-conflicts", {{"file_conflicts", {{"strategy", "file_locking"}, {"enforcement", "strict"},
                                                            {"exceptions", {{"commands", {"rsync"}}}}}},
                                        {"pending_requests", {{{"workflow_id", "wf-next"}, {"resources", {{"cpu_cores", 1}}}, {"exclusive_files", {file}}}}}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    EXPECT_EQ(guard.current.strategy, conflicts::Strategy::file_locking);
    EXPECT_FALSE(guard.current.allow_reads);
    EXPECT_EQ(guard.current.exempt_comms, std::vector<std::string>{"rsync"});
    ASSERT_EQ(r["result"]["conflict_analysis"].size(), 1u);
    EXPECT_FALSE(r["result"]["conflict_analysis"][0]["conflict_free"].get<bool>());
    EXPECT_EQ(r["result"]["conflict_analysis"][0]["conflicts"][0]["conflict_details"]["holder"], holder);

    restart();
    EXPECT_EQ(guard.current.strategy, conflicts::Strategy::file_locking) << "the policy survives a restart";
    EXPECT_EQ(guard.holds[file].allocation_id, holder) << "the marks come back from state";
}

TEST_F(ServiceConflicts, ConflictsSurviveARestartAndADamagedFileIsSetAside) {
    std::string holder = allocate("wf-build", 50, {file});
    service->files().on_guard_reports({denial(holder, "/user.slice")});
    restart();
    json listed = call("status", json::object(), kRoot, "conflicts");
    ASSERT_EQ(listed["result"]["conflicts"].size(), 1u) << listed.dump(2);

    std::ofstream(dir.path() / "state" / "current_state" / "conflicts.json", std::ios::trunc) << "{\"conflicts\": [{\"conflict_id\": 3";
    restart();
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "state" / "current_state" / "conflicts.json.damaged"));
    EXPECT_TRUE(call("status", json::object(), kRoot, "conflicts")["result"]["conflicts"].empty());
    EXPECT_EQ(ledger->find(holder)->status, AllocationStatus::active) << "a damaged conflict record costs no allocation";
}

} // namespace

// The seed's own examples of the conflict operations are accepted as written.
TEST_F(ServiceConflicts, TheSeedsExamplesAreAcceptedAsWritten) {
    // prevent-conflicts '{"policy_type": "file_locking", "scope": "global", "enforcement": "strict",
    //                     "exceptions": ["read_only_operations"]}'
    json policy = call("prevent-conflicts", json::parse(R"({"policy_type": "file_locking", "scope": "global", "enforcement": "strict",
                                                            "exceptions": ["read_only_operations"]})"));
    ASSERT_EQ(policy["status"], "success") << policy.dump(2);
    EXPECT_EQ(policy["result"]["file_conflicts"]["enforcement"], "exclusive_writes") << "strict, reads excepted";
    EXPECT_TRUE(guard.current.allow_reads);
    EXPECT_FALSE(guard.current.advisory);
    json strict = call("prevent-conflicts", {{"policy_type", "file_locking"}, {"enforcement", "strict"}});
    ASSERT_EQ(strict["status"], "success") << strict.dump(2);
    EXPECT_FALSE(guard.current.allow_reads) << "strict without the exception refuses outside reads too";
    EXPECT_EQ(call("prevent-conflicts", {{"policy_type", "network_locking"}})["error"]["code"], "UNSUPPORTED");
    EXPECT_EQ(call("prevent-conflicts", {{"scope", "workflow"}})["error"]["code"], "UNSUPPORTED");
    EXPECT_EQ(call("prevent-conflicts", {{"exceptions", {"everything"}}})["error"]["code"], "INVALID_REQUEST");
    EXPECT_EQ(call("prevent-conflicts", {{"enforcement", "strict"}}, Owner{1000, 5})["error"]["code"], "PERMISSION_DENIED");

    // prevent-conflicts '{"prediction_horizon": "30m", "risk_threshold": "medium", "auto_mitigation": true,
    //                     "notification_enabled": true}', here with a pending request that wants the held file.
    std::string holder = allocate("wf-build", 50, {file});
    const size_t events_before = sink.seen.size();
    json predicted = call("prevent-conflicts", {{"prediction_horizon", "30m"}, {"risk_threshold", "medium"}, {"auto_mitigation", true},
                                                {"notification_enabled", true},
                                                {"pending_requests", {{{"workflow_id", "wf-next"}, {"resources", {{"cpu_cores", 1}}}, {"exclusive_files", {file}}}}}});
    ASSERT_EQ(predicted["status"], "success") << predicted.dump(2);
    EXPECT_EQ(predicted["result"]["risk_threshold"], "medium");
    EXPECT_FALSE(predicted["result"]["mitigations"].empty());
    const json& found = predicted["result"]["conflict_analysis"][0]["conflicts"];
    ASSERT_FALSE(found.empty());
    ASSERT_EQ(sink.seen.size(), events_before + found.size()) << "each predicted conflict is published";
    EXPECT_TRUE(sink.seen.back().details["predicted"].get<bool>());
    json high_only = call("prevent-conflicts", {{"risk_threshold", "high"}, {"pending_requests", {{{"workflow_id", "wf-next"}, {"resources", {{"cpu_cores", 1}}}, {"exclusive_files", {file}}}}}});
    for (const auto& c : high_only["result"]["conflict_analysis"][0]["conflicts"]) EXPECT_EQ(c["severity"], "high");
    EXPECT_EQ(call("prevent-conflicts", {{"risk_threshold", "extreme"}})["error"]["code"], "INVALID_REQUEST");
    EXPECT_EQ(call("prevent-conflicts", {{"auto_mitigation", false}})["error"]["code"], "UNSUPPORTED");

    // resolve-conflicts '{"conflict_id": "conf_123", "strategy": "priority_based", "notify_affected": true}'
    std::string urgent = allocate("wf-urgent", 90, json::array());
    service->files().on_guard_reports({denial(holder, "/" + urgent)});
    const std::string id = sink.seen.back().details["conflict_id"];
    json resolved = call("resolve-conflicts", {{"conflict_id", id}, {"strategy", "priority_based"}, {"notify_affected", true}});
    ASSERT_EQ(resolved["status"], "success") << resolved.dump(2);
    EXPECT_EQ(resolved["result"]["notified_workflows"], json({"wf-build", "wf-urgent"}));
    std::set<std::string> told;
    for (auto it = sink.seen.end() - 2; it != sink.seen.end(); ++it) {
        EXPECT_EQ(it->details["conflict_id"], id);
        EXPECT_EQ(it->details["outcome"], "transferred");
        told.insert(it->workflow);
    }
    EXPECT_EQ(told, (std::set<std::string>{"wf-build", "wf-urgent"}));
    EXPECT_EQ(call("resolve-conflicts", {{"conflict_id", "conf_123"}, {"strategy", "priority_based"}, {"notify_affected", true}})["error"]["code"],
              "NOT_FOUND");
    // Quietly: nobody is told.
    service->files().on_guard_reports({denial(urgent, "/" + holder)});
    const std::string second = sink.seen.back().details["conflict_id"];
    const size_t before_quiet = sink.seen.size();
    json quiet = call("resolve-conflicts", {{"conflict_id", second}, {"strategy", "release"}, {"notify_affected", false}});
    ASSERT_EQ(quiet["status"], "success") << quiet.dump(2);
    EXPECT_EQ(sink.seen.size(), before_quiet);
}

// conflicts.json is outside input at the next start. Damaged versions of a real one are loaded
// or set aside, and whatever loads can then be reported against, listed and resolved without an
// error escaping (which in resmgrd would end the event loop).
TEST_F(ServiceConflicts, DamagedConflictRecordsAreSetAsideOrServeWithoutEscapingErrors) {
    std::string holder = allocate("wf-build", 50, {file});
    std::string urgent = allocate("wf-urgent", 90, json::array());
    service->files().on_guard_reports({denial(holder, "/" + urgent)});
    service->files().on_guard_reports({denial(holder, "/elsewhere", 77)});
    const fs::path path = dir.path() / "state" / "current_state" / "conflicts.json";
    const json original = conflicts_file();
    ASSERT_EQ(original["conflicts"].size(), 2u);
    const std::vector<json> odd = {nullptr, true, -1, 1e308, "", "x", "2025-99-99T00:00:00Z", json::array(), json::object(), json::array({1})};
    JsonMutator fuzz(7, odd, /*add_unknown_keys=*/false);
    int served = 0, set_aside = 0;
    for (int round = 0; round < 300; ++round) {
        json doc = original;
        fuzz.mutate(doc);
        std::error_code ec;
        fs::remove(fs::path(path).concat(".damaged"), ec);
        { std::ofstream(path, std::ios::trunc) << doc.dump(); }
        ASSERT_NO_THROW(restart()) << doc.dump();
        if (fs::exists(fs::path(path).concat(".damaged"))) {
            ++set_aside;
            continue;
        }
        ++served;
        ASSERT_NO_THROW(service->files().on_guard_reports({denial(holder, "/" + urgent)})) << doc.dump();
        json listed = call("status", {{"all", true}}, kRoot, "conflicts");
        ASSERT_EQ(listed["status"], "success") << listed.dump(2);
        for (const auto& c : listed["result"]["conflicts"]) {
            if (!c["conflict_id"].is_string()) continue;
            json r = call("resolve-conflicts", {{"conflict_id", c["conflict_id"]}, {"strategy", fuzz.pick(2) ? "priority_based" : "release"}});
            EXPECT_NE(r.value("error", json::object()).value("code", ""), "INTERNAL_ERROR") << doc.dump() << "\n" << r.dump(2);
        }
    }
    std::cout << "[          ] " << served << " served, " << set_aside << " set aside\n";
    EXPECT_GT(served, 0);
    EXPECT_GT(set_aside, 0);
}

// A command name is whatever bytes a process gave itself (prctl PR_SET_NAME): not UTF-8 here.
// Its refusal is still recorded in conflicts.json and published.
TEST_F(ServiceConflicts, ACommandNameThatIsNotUtf8IsRecordedAndPublished) {
    std::string holder = allocate("wf-build", 50, {file});
    conflicts::GuardReport r = denial(holder, "/elsewhere");
    r.opener.comm = "\xff\xfe-odd";
    const size_t before = sink.seen.size();
    service->files().on_guard_reports({r});
    ASSERT_EQ(sink.seen.size(), before + 1);
    json recorded = conflicts_file(); // parses: the bytes were replaced, not written raw
    ASSERT_EQ(recorded["conflicts"].size(), 1u);
    EXPECT_EQ(recorded["conflicts"][0]["claimant"]["comm"], "\xef\xbf\xbd\xef\xbf\xbd-odd");
    json listed = call("status", {{"all", true}}, kRoot, "conflicts");
    EXPECT_EQ(listed["status"], "success");
    EXPECT_NO_THROW((void)dump_text(listed));
}

TEST_F(ServiceConflicts, PredictedConflictsCarryNoResolvableIdAndResolveSaysWhatItCanActOn) {
    const std::string holder = allocate("wf-holder", 50, {file});
    json check = call("check-conflicts", {{"proposed_allocation", {{"workflow_id", "wf-new"}, {"files", {file}}}}});
    ASSERT_EQ(check["status"], "success") << check.dump(2);
    ASSERT_FALSE(check["result"]["conflicts"].empty()) << check.dump(2);
    const std::string predicted = check["result"]["conflicts"][0]["conflict_id"];
    EXPECT_EQ(predicted.rfind("pred_", 0), 0u) << predicted; // was conf_, which resolve-conflicts did not know
    EXPECT_FALSE(check["result"]["conflicts"][0]["recorded"].get<bool>());
    json r = call("resolve-conflicts", {{"conflict_id", predicted}, {"strategy", "release"}});
    EXPECT_EQ(r["error"]["code"], "NOT_FOUND");
    EXPECT_NE(r["error"]["message"].get<std::string>().find("predicted"), std::string::npos) << r.dump(2);
    EXPECT_NE(r["error"]["details"].get<std::string>().find("no active conflict"), std::string::npos) << r.dump(2);
    // With a recorded conflict, the refusal names it.
    service->files().on_guard_reports({denial(holder, "/elsewhere")});
    const std::string recorded = sink.seen.back().details["conflict_id"];
    json again = call("resolve-conflicts", {{"conflict_id", "conf_nope"}, {"strategy", "release"}});
    EXPECT_EQ(again["error"]["code"], "NOT_FOUND");
    EXPECT_NE(again["error"]["details"].get<std::string>().find(recorded), std::string::npos) << again.dump(2);
}

TEST_F(ServiceConflicts, WhySaysWhoHoldsAFileWhatAnOpenerMeetsAndWhoWaits) {
    json free = call("why", {{"path", file}});
    ASSERT_EQ(free["status"], "success") << free.dump(2);
    EXPECT_FALSE(free["result"]["held"].get<bool>());
    const std::string holder = allocate("wf-holder", 50, {file});
    guard.waiting[file] = json::array({{{"pid", 77}, {"comm", "sh"}, {"waiting_since", "2025-01-15T10:00:00Z"}, {"refused_in_seconds", 600}}});
    service->files().on_guard_reports({denial(holder, "/elsewhere")});
    json r = call("why", {{"path", (dir.path() / "src" / "." / "flake.nix").string()}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    const json& w = r["result"];
    EXPECT_EQ(w["path"], file);
    EXPECT_TRUE(w["held"].get<bool>());
    EXPECT_EQ(w["holder"]["allocation_id"], holder);
    EXPECT_EQ(w["holder"]["workflow_id"], "wf-holder");
    EXPECT_EQ(w["holder"]["since"], "2025-01-15T10:00:00Z");
    EXPECT_EQ(w["strategy"], "queue_and_serialize");
    EXPECT_EQ(w["queue_timeout"], "10m");
    EXPECT_NE(w["outside_processes"]["writes"].get<std::string>().find("at most 10m"), std::string::npos) << w.dump(2);
    EXPECT_EQ(w["waiting_openers"][0]["pid"], 77);
    ASSERT_EQ(w["conflicts"].size(), 1u) << conflicts_file().dump(2) << sink.seen.back().message;
    EXPECT_EQ(w["conflicts"][0]["conflict_id"], sink.seen.back().details["conflict_id"]);
    // The RESOURCE_CONFLICT event points at it.
    EXPECT_NE(sink.seen.back().message.find("resmgr why " + file), std::string::npos) << sink.seen.back().message;
    // status conflicts lists the waiting openers by default.
    json listed = call("status", json::object(), kRoot, "conflicts");
    ASSERT_EQ(listed["result"]["waiting_openers"].size(), 1u) << listed.dump(2);
    EXPECT_EQ(listed["result"]["waiting_openers"][0]["file"], file);
    EXPECT_EQ(listed["result"]["waiting_openers"][0]["opener"]["comm"], "sh");
    EXPECT_EQ(call("why", {{"path", "relative/path"}})["error"]["code"], "INVALID_REQUEST");
    EXPECT_EQ(call("why", json::object())["error"]["code"], "INVALID_REQUEST");
}

TEST_F(ServiceConflicts, EveryConflictRecordShapeResmgrdWritesLoadsBackAfterARestart) {
    const std::string holder = allocate("wf-holder", 50, {file});
    // A guard report whose opener's cgroup could not be read (written as "cgroup": null) ...
    service->files().on_guard_reports({denial(holder, "")});
    // ... the same opener again (compared while its cgroup is null) ...
    service->files().on_guard_reports({denial(holder, "")});
    // ... one from another group, one queued, an allocation refused the file at admission ...
    service->files().on_guard_reports({denial(holder, "/user.slice")});
    auto queued = denial(holder, "/user.slice/b.scope", 99);
    queued.kind = conflicts::GuardReport::Kind::queued;
    service->files().on_guard_reports({queued});
    const std::string resolved = sink.seen.back().details["conflict_id"];
    json refused = call("allocate", {{"workflow_id", "wf-second"}, {"resources", {{"cpu_cores", 1}}}, {"exclusive_files", {file}}});
    ASSERT_EQ(refused["error"]["code"], "CONFLICT");
    // ... and a resolved one.
    ASSERT_EQ(call("resolve-conflicts", {{"conflict_id", resolved}, {"strategy", "queue_and_serialize"}})["status"], "success");
    const json before = conflicts_file();
    ASSERT_EQ(before["conflicts"].size(), 4u) << before.dump(2);
    bool null_cgroup = false;
    for (const auto& c : before["conflicts"]) null_cgroup = null_cgroup || c["claimant"]["cgroup"].is_null();
    ASSERT_TRUE(null_cgroup) << "the shape the issue found set aside: " << before.dump(2);
    EXPECT_EQ(before["conflicts"][0]["occurrences"], 2) << "the same opener is one conflict";

    restart();
    EXPECT_FALSE(fs::exists(dir.path() / "state" / "current_state" / "conflicts.json.damaged")) << "set aside at load";
    EXPECT_EQ(conflicts_file(), before);
    json all = call("status", {{"all", true}}, kRoot, "conflicts");
    EXPECT_EQ(all["result"]["conflicts"].size(), 4u) << all.dump(2);
}

// What the file guard could not guard stays in the allocation's enforcement when its limits
// change (reallocate writes the group's limits again): the change is to limits, not to what is
// guarded.
TEST_F(ServiceConflicts, ALimitChangeKeepsWhatTheGuardCouldNotGuard) {
    service->files().set_guard(nullptr, "fanotify is not available here");
    std::string id = allocate("wf-unguarded", 50, {file});
    auto unenforced = [&] {
        json st = call("status", {{"allocation_id", id}});
        return st["result"]["allocations"][0]["enforcement"]["unenforced"].dump();
    };
    const std::string reason = "exclusive_files: held at admission only, not on open: fanotify is not available here";
    ASSERT_NE(unenforced().find(reason), std::string::npos) << unenforced();
    json r = call("reallocate", {{"allocation_id", id}, {"resources", {{"cpu_cores", 2}}}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    EXPECT_NE(unenforced().find(reason), std::string::npos) << unenforced();
    EXPECT_NE(r["result"].dump().find(reason), std::string::npos) << "the reallocate's own answer says it too: " << r["result"].dump(2);
}
