// Local users against a private resmgrd, as the issue "Local users can crash, hijack and block
// resmgrd" tried them: two unprivileged users (created and removed by each test) and root.
// Priority is a privilege, conflicts are settled only by those they involve, workflow names
// belong to their owner.
#include "build_paths.hpp"
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>

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
    ASSERT_EQ(::chown(work.c_str(), alice->uid(), alice->gid()), 0) << std::strerror(errno);
    ASSERT_EQ(::chown(file.c_str(), alice->uid(), alice->gid()), 0) << std::strerror(errno);
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

TEST_F(SecurityHost, HostileValuesAreRefusedBeforeTheyReachALogOrAClock) {
    const std::vector<std::pair<std::string, std::string>> cases{
        {"allocate", R"({"workflow_id":"wf\nresmgrd[1]: FORGED","resources":{}})"},
        {"allocate", R"({"workflow_id":"wf\u001b[2J","resources":{}})"},
        {"allocate", R"({"workflow_id":"wf","requester":"x\r\nFORGED","resources":{}})"},
        {"allocate", R"({"workflow_id":"wf","resources":{},"auto_release":{"grace_period":"1000000h"}})"},
        {"allocate", R"({"workflow_id":"wf","resources":{},"auto_release":{"grace_period":"5h"}})"},
        {"reserve", R"({"start_time":"9999-01-01T00:00:00Z","duration":"1h","resources":{}})"},
        {"reserve", R"({"start_time":"2027-02-30T00:00:00Z","duration":"1h","resources":{}})"},
        {"reserve", R"({"start_time":"2027-01-15T00:00:00+99:99","duration":"1h","resources":{}})"},
    };
    for (const auto& [op, params] : cases) {
        json r = cli_json_as(*mallory, {op, params});
        EXPECT_EQ(r["status"], "error") << params << ": " << r.dump(2);
        const std::string code = r["error"].value("code", "");
        EXPECT_TRUE(code == "INVALID_REQUEST" || code == "POLICY_VIOLATION") << params << ": " << code;
    }
    EXPECT_EQ(slurp(log).find("FORGED"), std::string::npos) << "a refused name reached the log";
    EXPECT_TRUE(cli_json({"status"})["result"]["allocations"].empty());
}

// Only root may start a process born in another cgroup (the kernel asks for write access to the
// root cgroup's cgroup.procs), so a user's resmgr-run forks and has resmgrd move the command in.
TEST_F(SecurityHost, AUsersResmgrRunHasItsCommandMovedIntoItsGroup) {
    RunResult r = run(alice->as({build_paths::resmgr_run, "--socket", socket, "--workflow", "wf-alice-run", "--", "/bin/cat", "/proc/self/cgroup"}));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("0::" + root.substr(mount.size()) + "/alloc_"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("/main"), std::string::npos) << r.out;
    EXPECT_TRUE(cli_json({"status"})["result"]["allocations"].empty()) << "resmgr-run did not release";
}

TEST_F(SecurityHost, AReleaseTheStateDirectoryCannotRecordKillsNothingAndSurvivesARestart) {
    std::string id = allocate_as(*alice, R"({"workflow_id":"wf-a","resources":{}})");
    ASSERT_FALSE(id.empty());
    RunResult joined = run(alice->as({build_paths::resmgr_run, "--socket", socket, "--allocation", id, "--", "/bin/sh", "-c", "sleep 60 & echo $!"}));
    ASSERT_EQ(joined.status, 0) << joined.err;
    const pid_t sleeper = std::stoi(joined.out);
    // The state directory stops taking writes, as a full filesystem does.
    const std::string current = dir + "/state/current_state";
    std::filesystem::rename(current, dir + "/aside");
    std::ofstream(current) << "";
    json r = cli_json_as(*alice, {"release", json{{"allocation_id", id}}.dump()});
    EXPECT_EQ(r["error"]["code"], "INTERNAL_ERROR") << r.dump(2);
    EXPECT_EQ(::kill(sleeper, 0), 0) << "the release killed the allocation's processes without recording it";
    // A crash now and a restart with the disk back: the allocation is there, with its processes.
    stop(SIGKILL);
    std::filesystem::remove(current);
    std::filesystem::rename(dir + "/aside", current);
    start({"--socket-mode", "0666"});
    json st = cli_json({"status", json{{"allocation_id", id}}.dump()});
    ASSERT_EQ(st["status"], "success") << st.dump(2);
    EXPECT_EQ(st["result"]["allocations"][0]["pids"], 1) << st.dump(2);
    EXPECT_EQ(::kill(sleeper, 0), 0);
    EXPECT_EQ(cli_json_as(*alice, {"release", json{{"allocation_id", id}}.dump()})["status"], "success");
    EXPECT_TRUE(wait_until([&] { return ::kill(sleeper, 0) != 0; }, 5s)) << "released: its processes are gone";
}

namespace {

// As `user`: connects to `socket`, hands the connection to a child and exits; the child, once
// its parent's pid is free to be reused, asks `line` with the parent's pid put in for PID and
// writes the answer to `answer_file`. Returns when the answer is written.
void ask_through_an_inherited_connection(const ScopedUser& user, const std::string& socket, const std::string& line_template,
                                         const std::string& answer_file) {
    pid_t middle = ::fork();
    if (middle == 0) {
        if (::setgid(user.gid()) != 0 || ::setuid(user.uid()) != 0) ::_exit(90);
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket.c_str());
        if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ::_exit(91);
        const pid_t connector = ::getpid();
        if (::fork() == 0) {
            while (::getppid() == connector) ::usleep(1000); // until the connector is gone
            std::string line = line_template;
            line.replace(line.find("PID"), 3, std::to_string(connector));
            line += "\n";
            if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) ::_exit(92);
            std::string answer;
            char buf[4096];
            for (ssize_t n; answer.find('\n') == std::string::npos && (n = ::read(fd, buf, sizeof buf)) > 0;) answer.append(buf, static_cast<size_t>(n));
            std::ofstream(answer_file + ".tmp") << answer;
            ::rename((answer_file + ".tmp").c_str(), answer_file.c_str()); // a forked test process must not throw
            ::_exit(0);
        }
        ::_exit(0);
    }
    ::waitpid(middle, nullptr, 0);
    wait_until([&] { return std::filesystem::exists(answer_file); }, 10s);
}

} // namespace

TEST_F(SecurityHost, AConnectionOutlivingItsConnectorCarriesNoPidToAttach) {
    std::string id = allocate_as(*mallory, R"({"workflow_id":"wf-m","resources":{},"auto_release":{"on_completion":false}})");
    ASSERT_FALSE(id.empty());
    const std::string answers = dir + "/answers"; // mallory's to write in
    std::filesystem::create_directories(answers);
    ASSERT_EQ(::chown(answers.c_str(), mallory->uid(), mallory->gid()), 0) << std::strerror(errno);
    const std::string answer = answers + "/answer.json";
    ask_through_an_inherited_connection(*mallory, socket, R"({"operation":"attach","params":{"allocation_id":")" + id + R"(","pid":PID}})", answer);
    ASSERT_TRUE(std::filesystem::exists(answer));
    json r = json::parse(slurp(answer));
    ASSERT_EQ(r["error"]["code"], "PERMISSION_DENIED") << r.dump(2);
    EXPECT_NE(r["error"]["message"].get<std::string>().find("has exited"), std::string::npos) << r.dump(2);
}

TEST_F(SecurityHost, TheSocketIsRootsAloneWithoutAResmgrGroupAndTheGroupsWithOne) {
    // This fixture's daemon was started with --socket-mode 0666; a default one is not.
    stop(SIGTERM);
    start({"--socket-group", "rmt-no-such-group"});
    struct stat st {};
    ASSERT_EQ(::stat(socket.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_NE(cli_as(*mallory, {"status"}).status, 0) << "an unprivileged user reached a root-only socket";
    EXPECT_NE(cli_json({"doctor"})["result"]["daemon"]["socket_access"].get<std::string>().find("only root may use resmgr"), std::string::npos);
    stop(SIGTERM);
    start({"--socket-group", alice->name()}); // alice's own group stands in for the install's resmgr group
    ASSERT_EQ(::stat(socket.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    EXPECT_EQ(st.st_gid, alice->gid());
    EXPECT_EQ(cli_json_as(*alice, {"status"})["status"], "success");
    EXPECT_NE(cli_as(*mallory, {"status"}).status, 0) << "not in the group";
}

TEST_F(SecurityHost, OneUsersConnectionsCannotShutOthersOut) {
    stop(SIGTERM);
    std::ofstream(dir + "/policy.json") << R"({"resource_policies":{"limits":{"connections_per_user":4,"idle_connection_timeout":"2s"}}})";
    start({"--socket-mode", "0666"});
    std::vector<pid_t> holders;
    for (int i = 0; i < 6; ++i) // each keeps a connection open without a word
        holders.push_back(spawn(mallory->as({"/usr/bin/python3", "-c",
                                             "import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
                                             "d=s.recv(4096); print(d.decode() or 'closed', flush=True); time.sleep(30)",
                                             socket}),
                                dir + "/holder" + std::to_string(i) + ".log"));
    std::this_thread::sleep_for(500ms);
    int refused = 0;
    for (int i = 0; i < 6; ++i) refused += slurp(dir + "/holder" + std::to_string(i) + ".log").find("too many connections") != std::string::npos;
    EXPECT_EQ(refused, 2) << "4 per user";
    EXPECT_EQ(cli_json_as(*alice, {"status"})["status"], "success") << "another user still gets in";
    EXPECT_EQ(cli_json({"status"})["status"], "success") << "and root";
    // Idle connections are closed after the timeout: the holders see their connection end.
    bool closed = wait_until([&] {
        int ended = 0;
        for (int i = 0; i < 6; ++i) ended += slurp(dir + "/holder" + std::to_string(i) + ".log").find_first_not_of(" \n") != std::string::npos;
        return ended == 6;
    }, 8s);
    EXPECT_TRUE(closed) << "idle connections were not closed";
    for (pid_t p : holders) ::kill(p, SIGKILL), ::waitpid(p, nullptr, 0);
}
