// Exclusive files through resmgrd, resmgr and resmgr-run on this host: the command run with
// --exclusive writes the file while outsiders are refused (and reported with pid, comm and
// cgroup), a second claimant is refused or waits with --wait, a queued opener goes ahead when the
// holder ends, the daemon's own opens of a held file never deadlock, kill -9 of the daemon frees
// a held opener and the marks come back at restart, SIGTERM and SIGINT stop it cleanly while an
// opener waits, rename-over is reported, and 200 processes opening held files while holders come
// and go all get answers with no fd left in the daemon.
#include "build_paths.hpp"
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "daemon_fixture.hpp"

using namespace resmgr;
using namespace resmgr::host;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

class ConflictsHost : public DaemonHost {
protected:
    std::string work, file;

    void SetUp() override {
        DaemonHost::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        json doctor = cli_json({"doctor"});
        if (!doctor["result"]["daemon"]["file_guard"].value("available", false))
            FAIL() << "the file guard must run on a root host with fanotify: " << doctor["result"]["daemon"]["file_guard"].dump();
        work = dir + "/work";
        std::filesystem::create_directories(work);
        file = work + "/flake.nix";
        std::ofstream(file) << "start\n";
    }
    void set_file_policy(const json& file_conflicts) {
        json r = cli_json({"prevent-conflicts", json{{"file_conflicts", file_conflicts}}.dump()});
        ASSERT_EQ(r["status"], "success") << r.dump(2);
    }
    // resmgr-run --exclusive FILE running a shell script in the background until `stop` exists.
    pid_t hold_with_resmgr_run(const std::string& script, const std::vector<std::string>& extra = {}) {
        std::vector<std::string> argv{build_paths::resmgr_run, "--socket", socket, "--workflow", "wf-holder", "--exclusive", file};
        argv.insert(argv.end(), extra.begin(), extra.end());
        argv.insert(argv.end(), {"--", "/bin/sh", "-c", script});
        return spawn(argv, dir + "/holder.log");
    }
    std::vector<json> conflict_events() {
        json r = cli_json({"events", "--type", "conflict"});
        std::vector<json> out;
        for (auto& e : r["result"]["events"]) out.push_back(e);
        return out;
    }
    std::optional<json> wait_conflict_event(const std::function<bool(const json&)>& match, std::chrono::milliseconds limit = 5s) {
        std::optional<json> found;
        wait_until(
            [&] {
                for (auto& e : conflict_events())
                    if (match(e)) found = e;
                return found.has_value();
            },
            limit);
        return found;
    }
};

TEST_F(ConflictsHost, TheExclusiveCommandWritesWhileOutsidersAreRefusedAndReported) {
    set_file_policy({{"strategy", "file_locking"}});
    const std::string ready = dir + "/ready", stop_flag = dir + "/stop";
    pid_t holder = hold_with_resmgr_run("echo from-holder >> " + file + " && touch " + ready + " && while [ ! -e " + stop_flag +
                                        " ]; do sleep 0.05; done");
    ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(ready); }, 10s)) << slurp(dir + "/holder.log") << slurp(log);
    EXPECT_NE(slurp(file).find("from-holder"), std::string::npos) << "the holder's command wrote the file";

    pid_t outsider = try_open(file, O_WRONLY | O_APPEND);
    EXPECT_EQ(exit_within(outsider, 5s), kDenied);
    EXPECT_EQ(exit_within(try_open(file, O_RDONLY), 5s), kOpened) << "reads stay allowed (read_only_operations)";
    auto event = wait_conflict_event([&](const json& e) { return e["details"]["denied_process"].value("pid", 0) == outsider; });
    ASSERT_TRUE(event) << "a RESOURCE_CONFLICT event names the denied process";
    EXPECT_EQ((*event)["details"]["file"], file);
    EXPECT_EQ((*event)["workflow_id"], "wf-holder");
    EXPECT_FALSE((*event)["details"]["denied_process"]["comm"].get<std::string>().empty());
    EXPECT_FALSE((*event)["details"]["denied_process"]["cgroup"].is_null());
    const std::string conflict_id = (*event)["details"]["conflict_id"];
    json listed = cli_json({"status", "conflicts"});
    ASSERT_FALSE(listed["result"]["conflicts"].empty()) << listed.dump(2);
    EXPECT_NE(slurp(dir + "/state/current_state/conflicts.json").find(conflict_id), std::string::npos);

    RunResult second = resmgr_run({"--exclusive", file, "--", "/bin/true"});
    EXPECT_EQ(second.status, 125) << second.err;
    EXPECT_NE(second.err.find("held exclusively"), std::string::npos) << second.err;

    std::ofstream(stop_flag) << "";
    EXPECT_EQ(exit_within(holder, 10s), 0);
    EXPECT_EQ(exit_within(try_open(file, O_WRONLY), 5s), kOpened) << "released with its allocation";
}

TEST_F(ConflictsHost, ASecondClaimantWithWaitRunsWhenTheFirstEnds) {
    const std::string stop_flag = dir + "/stop";
    pid_t holder = hold_with_resmgr_run("echo first >> " + file + " && while [ ! -e " + stop_flag + " ]; do sleep 0.05; done");
    ASSERT_TRUE(wait_until([&] { return slurp(file).find("first") != std::string::npos; }, 10s)) << slurp(dir + "/holder.log");
    pid_t second = spawn({build_paths::resmgr_run, "--socket", socket, "--workflow", "wf-second", "--wait", "--exclusive", file, "--", "/bin/sh", "-c",
                          "echo second >> " + file},
                         dir + "/second.log");
    std::this_thread::sleep_for(1s);
    EXPECT_TRUE(still_running(second)) << slurp(dir + "/second.log");
    EXPECT_NE(slurp(dir + "/second.log").find("position 1 in the queue; waiting for: " + file + " (held by alloc_"), std::string::npos)
        << slurp(dir + "/second.log");
    std::ofstream(stop_flag) << "";
    EXPECT_EQ(exit_within(holder, 10s), 0);
    EXPECT_EQ(exit_within(second, 10s), 0) << slurp(dir + "/second.log");
    EXPECT_EQ(slurp(file), "start\nfirst\nsecond\n");
}

TEST_F(ConflictsHost, AQueuedOpenerGoesAheadWhenTheHolderEnds) {
    set_file_policy({{"strategy", "queue_and_serialize"}, {"timeout", "1m"}});
    std::string holder = allocate(R"({"workflow_id":"wf-holder","resources":{"cpu_cores":0.1},"exclusive_files":[")" + file + R"("]})");
    ASSERT_FALSE(holder.empty());
    pid_t waiting = try_open(file, O_WRONLY);
    std::this_thread::sleep_for(500ms);
    EXPECT_TRUE(still_running(waiting)) << "held while the allocation holds the file";
    ASSERT_TRUE(wait_conflict_event([&](const json& e) { return e["details"]["event"] == "queued"; }));
    cli_json({"release", json{{"allocation_id", holder}}.dump()});
    EXPECT_EQ(exit_within(waiting, 5s), kOpened);
}

TEST_F(ConflictsHost, WhyNamesTheHolderTheWaitAndTheWaitingOpener) {
    set_file_policy({{"strategy", "queue_and_serialize"}, {"timeout", "1m"}});
    std::string holder = allocate(R"({"workflow_id":"wf-holder","resources":{"cpu_cores":0.1},"exclusive_files":[")" + file + R"("]})");
    ASSERT_FALSE(holder.empty());
    pid_t waiting = try_open(file, O_WRONLY);
    ASSERT_TRUE(wait_conflict_event([&](const json& e) { return e["details"]["event"] == "queued"; }));
    // A relative path, resolved by resmgr in its own directory.
    RunResult r = run({"/bin/sh", "-c", "cd \"$1\" && exec \"$2\" --socket \"$3\" --json why flake.nix", "sh", work, build_paths::resmgr_cli, socket});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    json why = json::parse(r.out);
    ASSERT_EQ(why["status"], "success") << why.dump(2);
    EXPECT_EQ(why["result"]["path"], file);
    EXPECT_EQ(why["result"]["holder"]["allocation_id"], holder);
    EXPECT_EQ(why["result"]["strategy"], "queue_and_serialize");
    EXPECT_EQ(why["result"]["queue_timeout"], "1m");
    ASSERT_EQ(why["result"]["waiting_openers"].size(), 1u) << why.dump(2);
    EXPECT_EQ(why["result"]["waiting_openers"][0]["pid"], waiting);
    EXPECT_LE(why["result"]["waiting_openers"][0]["refused_in_seconds"].get<int>(), 60);
    ASSERT_EQ(why["result"]["conflicts"].size(), 1u);
    json listed = cli_json({"status", "conflicts"});
    ASSERT_EQ(listed["result"]["waiting_openers"].size(), 1u) << listed.dump(2);
    EXPECT_EQ(listed["result"]["waiting_openers"][0]["opener"]["pid"], waiting);
    auto event = wait_conflict_event([&](const json& e) { return e["details"]["event"] == "queued"; });
    EXPECT_NE((*event)["message"].get<std::string>().find("resmgr why " + file), std::string::npos) << event->dump(2);
    cli_json({"release", json{{"allocation_id", holder}}.dump()});
    EXPECT_EQ(exit_within(waiting, 5s), kOpened);
    EXPECT_FALSE(cli_json({"why", file})["result"]["held"].get<bool>());
}

TEST_F(ConflictsHost, TheDaemonsOwnOpensOfAHeldFileDoNotDeadlock) {
    set_file_policy({{"strategy", "queue_and_serialize"}});
    const std::string alerts = dir + "/state/monitoring/alerts.jsonl";
    cli_json({"release", json{{"allocation_id", allocate(R"({"workflow_id":"wf-first","resources":{"cpu_cores":0.1}})")}}.dump()});
    // Events are written by their own thread (events/sink_thread.hpp), a few ms after the answer:
    // waited for, up to a bound a deadlocked writer would never meet.
    ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(alerts); }, 2s)) << "events go to " << alerts;
    // An allocation holds the file resmgrd appends every event to.
    std::string holder = allocate(R"({"workflow_id":"wf-alerts","resources":{"cpu_cores":0.1},"exclusive_files":[")" + alerts + R"("]})");
    ASSERT_FALSE(holder.empty());
    for (int i = 0; i < 5; ++i) {
        auto started = std::chrono::steady_clock::now();
        std::string id = allocate(R"({"workflow_id":"wf-events","resources":{"cpu_cores":0.1}})");
        ASSERT_FALSE(id.empty());
        cli_json({"release", json{{"allocation_id", id}}.dump()});
        EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
        EXPECT_TRUE(wait_until([&] { return slurp(alerts).find(id) != std::string::npos; }, 2s)) << "resmgrd wrote its own event to the held file";
    }
    pid_t outsider = try_open(alerts, O_WRONLY | O_APPEND);
    std::this_thread::sleep_for(300ms);
    EXPECT_TRUE(still_running(outsider)) << "an outside writer of the held file waits for the holder";
    cli_json({"release", json{{"allocation_id", holder}}.dump()});
    EXPECT_EQ(exit_within(outsider, 5s), kOpened);
}

TEST_F(ConflictsHost, KillingTheDaemonFreesAHeldOpenerAndTheMarksComeBackAtRestart) {
    std::string holder = allocate(R"({"workflow_id":"wf-holder","resources":{"cpu_cores":0.1},"exclusive_files":[")" + file + R"("]})");
    ASSERT_FALSE(holder.empty());
    pid_t waiting = try_open(file, O_WRONLY); // the default strategy: queue_and_serialize, 10 minutes
    std::this_thread::sleep_for(500ms);
    ASSERT_TRUE(still_running(waiting));
    stop(SIGKILL);
    EXPECT_EQ(exit_within(waiting, 3s), kOpened) << "fanotify allows what a dead listener held";
    start();
    set_file_policy({{"strategy", "file_locking"}});
    EXPECT_EQ(exit_within(try_open(file, O_WRONLY), 5s), kDenied) << "the hold came back from state";
}

// SIGTERM and SIGINT under the guard (issue 10): the guard's threads must not take the signal
// (it would end the daemon with 128+N and no shutdown). Exit 0, the log says so, the queued opener
// is answered, the allocation is in the state file and its group is kept, and the next start
// adopts the group and holds the file again.
class ConflictsShutdownHost : public ConflictsHost, public ::testing::WithParamInterface<int> {};

TEST_P(ConflictsShutdownHost, ASignalStopsTheDaemonCleanlyWhileAHeldOpenerWaits) {
    std::string holder = allocate(R"({"workflow_id":"wf-holder","resources":{"cpu_cores":0.1},"exclusive_files":[")" + file + R"("]})");
    ASSERT_FALSE(holder.empty());
    pid_t waiting = try_open(file, O_WRONLY); // the default strategy: queue_and_serialize
    std::this_thread::sleep_for(500ms);
    ASSERT_TRUE(still_running(waiting)) << "queued behind the holder";
    EXPECT_EQ(stop(GetParam()), 0) << slurp(log);
    EXPECT_NE(slurp(log).find("shutting down"), std::string::npos) << slurp(log);
    EXPECT_EQ(exit_within(waiting, 3s), kOpened) << "the queued opener was answered on the way out";
    EXPECT_NE(slurp(dir + "/state/current_state/allocations.json").find(holder), std::string::npos);
    EXPECT_TRUE(std::filesystem::is_directory(root + "/" + holder)) << "the group is left for the next start";

    const size_t restart_at = slurp(log).size();
    start();
    EXPECT_NE(slurp(log).find("\"adopted\":[\"" + holder + "\"]", restart_at), std::string::npos) << slurp(log).substr(restart_at);
    set_file_policy({{"strategy", "file_locking"}});
    EXPECT_EQ(exit_within(try_open(file, O_WRONLY), 5s), kDenied) << "the hold came back from state";
}

INSTANTIATE_TEST_SUITE_P(Signals, ConflictsShutdownHost, ::testing::Values(SIGTERM, SIGINT),
                         [](const auto& info) { return info.param == SIGTERM ? "sigterm" : "sigint"; });

TEST_F(ConflictsHost, RenameOverByAnOutsiderIsReportedAndTheNewFileIsHeld) {
    set_file_policy({{"strategy", "file_locking"}});
    std::string holder = allocate(R"({"workflow_id":"wf-holder","resources":{"cpu_cores":0.1},"exclusive_files":[")" + file + R"("]})");
    ASSERT_FALSE(holder.empty());
    const std::string replacement = work + "/flake.nix.new";
    std::ofstream(replacement) << "replaced\n";
    pid_t mover = ::fork();
    if (mover == 0) ::_exit(::rename(replacement.c_str(), file.c_str()) == 0 ? 0 : 1);
    ASSERT_EQ(exit_within(mover, 5s), 0);
    auto event = wait_conflict_event([&](const json& e) { return e["details"]["event"] == "replaced"; });
    ASSERT_TRUE(event) << slurp(log);
    EXPECT_EQ((*event)["details"]["denied_process"]["pid"], mover);
    EXPECT_EQ(exit_within(try_open(file, O_WRONLY), 5s), kDenied) << "the file now at the path is held";
}

TEST_F(ConflictsHost, TwoHundredOpenersWhileHoldersComeAndGoAllGetAnswersAndNoFdLeaks) {
    set_file_policy({{"strategy", "file_locking"}});
    std::vector<std::string> files;
    for (int i = 0; i < 4; ++i) {
        files.push_back(work + "/file" + std::to_string(i));
        std::ofstream(files.back()) << "x";
    }
    // One round first: the loop's inotify and timer fds are made on first use, not leaked.
    cli_json({"release", json{{"allocation_id", allocate(R"({"workflow_id":"wf-warm","resources":{"cpu_cores":0.1},"exclusive_files":[")" +
                                                          files[0] + R"("]})")}}.dump()});
    const std::string fds_before = settled_fds(daemon);
    constexpr int kProcesses = 200;
    const auto run_for = 10s;
    const std::vector<pid_t> openers = spawn_openers(files, kProcesses, run_for, 1ms);
    int rounds = 0;
    for (auto until = std::chrono::steady_clock::now() + run_for; std::chrono::steady_clock::now() < until; ++rounds) {
        Client client(socket); // one connection per round, closed before the fds are counted
        std::vector<std::string> held;
        for (size_t f = 0; f < files.size(); ++f) {
            if ((rounds + f) % 2) continue;
            json r = client.call({"allocate", "", {{"workflow_id", "wf-" + std::to_string(f)}, {"resources", {{"cpu_cores", 0.1}}},
                                                   {"exclusive_files", {files[f]}}}});
            ASSERT_EQ(r["status"], "success") << r.dump(2);
            held.push_back(r["result"]["allocation_id"]);
        }
        std::this_thread::sleep_for(100ms);
        for (auto& id : held) client.call({"release", "", {{"allocation_id", id}}});
    }
    const OpenerOutcome outcome = wait_openers(openers, 10s);
    EXPECT_EQ(outcome.stuck, 0) << "every opener was answered";
    EXPECT_EQ(outcome.failed, 0) << "opens only ever succeeded or failed with EPERM";
    json guard = cli_json({"doctor"})["result"]["daemon"]["file_guard"]["status"];
    std::cout << "[          ] " << rounds << " hold rounds; guard counters " << guard["counters"].dump() << "\n";
    EXPECT_GT(guard["counters"]["denied"].get<long>(), 0);
    EXPECT_TRUE(guard["holds"].empty());
    EXPECT_TRUE(wait_until([&] { return open_fds(daemon) == fds_before; }, 3s))
        << "daemon fds before:\n" << fds_before << "after:\n" << open_fds(daemon);
}

} // namespace
