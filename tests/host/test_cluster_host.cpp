// Nodes coordinated through etcd (issue 17): a real 3-member etcd cluster on loopback ports and
// resmgrd nodes of the test's own (each its state dir, socket and cgroup root) register, see one
// another, are shown gone when killed (within the lease's TTL) or shut down, survive the loss of
// the etcd member they talk to, and go on with local work when etcd is not there at all.
#include "build_paths.hpp"
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <filesystem>
#include <fstream>
#include <thread>
#include <nlohmann/json.hpp>

#include "etcd_cluster.hpp"
#include "host_support.hpp"
#include "resmgr/client.hpp"

namespace resmgr::host {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr auto kTtl = 3s;

// wait_until for conditions that run the CLI: every 150 ms, not every 10 ms, so the polling
// itself does not load the 2-core machine the lease timings are measured on.
bool poll_until(const std::function<bool()>& ready, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (ready()) return true;
        std::this_thread::sleep_for(150ms);
    }
    return ready();
}

// One resmgrd node of the test's own.
struct Node {
    std::string name, dir, socket, root, log;
    pid_t pid = -1;

    // `endpoints` empty: a node outside any cluster. `guard`: with its fanotify file guard, on a
    // policy whose outsiders are refused at once (file_locking), not queued. `extra`: more flags.
    void start(const std::string& parent, const std::string& mount, const std::string& node_name, const std::string& endpoints,
               bool guard = false, const std::vector<std::string>& extra = {}) {
        name = node_name;
        dir = parent + "/" + name;
        std::filesystem::create_directories(dir);
        socket = dir + "/resmgr.sock";
        log = dir + "/resmgrd.log";
        root = mount + "/resmgr-clustertest-" + std::to_string(::getpid()) + "-" + name;
        std::vector<std::string> argv{build_paths::resmgrd, "--state-dir", dir + "/state", "--socket", socket, "--cgroup-root", root,
                                      "--backend", "cgroupfs", "--log-level", "debug"};
        if (guard) {
            std::ofstream(dir + "/policy.json") << R"({"resource_policies":{"file_conflicts":{"strategy":"file_locking"}}})";
            argv.insert(argv.end(), {"--config", dir + "/policy.json"});
        } else {
            argv.push_back("--no-file-guard");
        }
        if (!endpoints.empty()) argv.insert(argv.end(), {"--cluster", endpoints, "--node-name", name, "--cluster-lease-ttl", "3s"});
        argv.insert(argv.end(), extra.begin(), extra.end());
        pid = spawn(argv, log);
        bool up = socket_answers(socket, 10s);
        ASSERT_TRUE(up) << "resmgrd " << name << " did not start; log:\n" << slurp(log);
    }
    json cli(const std::vector<std::string>& args, int expected_status = 0) const {
        std::vector<std::string> argv{build_paths::resmgr_cli, "--socket", socket, "--json"};
        argv.insert(argv.end(), args.begin(), args.end());
        RunResult r = run(argv);
        EXPECT_EQ(r.status, expected_status) << name << ": " << r.out << r.err;
        json j = json::parse(r.out, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.out << r.err;
        return j;
    }
    // The row of `node` in this node's `cluster status`, null when it is not listed.
    json row(const std::string& node) const {
        const json status = cli({"cluster", "status"});
        for (const auto& n : status["result"]["nodes"])
            if (n["node_name"] == node) return n;
        return nullptr;
    }
    bool sees(const std::string& node, const std::string& state) const {
        const json r = row(node);
        return r.is_object() && r["state"] == state;
    }
    // allocate with `file` exclusive across the cluster; the whole answer.
    json allocate_file(const std::string& file, const std::string& workflow, int expected_status = 0) const {
        return cli({"allocate", json{{"workflow_id", workflow}, {"resources", {{"cpu_cores", 0.1}, {"memory_gb", 0.1}}},
                                     {"exclusive_files", {file}}, {"file_scope", "cluster"}}.dump()},
                   expected_status);
    }
    // allocate with a placement's booking; the whole answer.
    json allocate_booked(const std::string& booking, const std::string& workflow, double cpu, int expected_status = 0) const {
        return cli({"allocate", json{{"workflow_id", workflow}, {"booking", booking}, {"resources", {{"cpu_cores", cpu}, {"memory_gb", 0.1}}}}.dump()},
                   expected_status);
    }
    // For a failed wait: what the node reports and the end of its log.
    std::string diagnosis() const {
        const std::string text = slurp(log);
        return name + ": " + cli({"cluster", "status"}).dump() + "\nend of its log:\n" + text.substr(text.size() > 4000 ? text.size() - 4000 : 0);
    }
    int stop(int sig) {
        if (pid <= 0) return -1;
        ::kill(pid, sig);
        int status = 0;
        ::waitpid(pid, &status, 0);
        pid = -1;
        return decode_status(status);
    }
    void clean() {
        if (pid > 0) {
            release_all(socket);
            EXPECT_EQ(stop(SIGTERM), 0) << name << " did not shut down cleanly; log:\n" << slurp(log);
        }
        remove_group_tree(root);
    }
};

class ClusterHost : public ::testing::Test {
protected:
    std::string mount = cgroup2_mount(), dir;
    EtcdCluster etcd;
    std::vector<Node> nodes;

    void SetUp() override {
        if (auto why = cgroup2_unavailable(mount)) GTEST_SKIP() << "cluster host test skipped: " << *why;
        if (::access(EtcdCluster::kEtcd, X_OK) != 0)
            GTEST_SKIP() << "cluster host test skipped: no " << EtcdCluster::kEtcd << " (apt-get install etcd-server etcd-client)";
        char tmpl[] = "/tmp/resmgr-cluster-XXXXXX";
        dir = ::mkdtemp(tmpl);
    }
    void TearDown() override {
        for (auto& n : nodes) n.clean();
        for (int i = 0; i < 3; ++i) etcd.stop(i);
        if (!dir.empty()) std::filesystem::remove_all(dir);
    }
    // A file the nodes share (they are on one host: the shared filesystem of a real cluster).
    std::string shared_file() {
        const std::string f = dir + "/shared/build.lock";
        std::filesystem::create_directories(dir + "/shared");
        std::ofstream(f) << "x";
        return f;
    }
    void start_nodes(int count, const std::string& endpoints) {
        nodes.resize(static_cast<size_t>(count));
        for (int i = 0; i < count; ++i) nodes[static_cast<size_t>(i)].start(dir, mount, std::string(1, static_cast<char>('a' + i)), endpoints);
    }
};

TEST_F(ClusterHost, EveryNodeSeesEveryNodeLiveWithItsFiguresAndAChangeWithinSeconds) {
    ASSERT_EQ(etcd.start(dir), "");
    start_nodes(3, etcd.endpoints());
    for (const Node& n : nodes)
        ASSERT_TRUE(poll_until([&] { return n.sees("a", "live") && n.sees("b", "live") && n.sees("c", "live"); }, 10s)) << n.diagnosis();
    const json self = nodes[0].row("a");
    EXPECT_TRUE(self["self"].get<bool>());
    EXPECT_GT(self["capacity"]["cpu_cores"].get<double>(), 0);
    EXPECT_GT(self["capacity"]["memory_gb"].get<double>(), 0);
    EXPECT_EQ(self["allocations"], 0);
    const json status = nodes[0].cli({"cluster", "status"})["result"];
    EXPECT_TRUE(status["etcd"]["reachable"].get<bool>());
    EXPECT_TRUE(status["lease"]["held"].get<bool>());

    // An allocation on a is in a's record as b reads it: published on change, not at the heartbeat.
    ASSERT_EQ(nodes[0].cli({"allocate", R"({"workflow_id":"wf-cluster","resources":{"cpu_cores":0.5,"memory_gb":0.25}})"})["status"], "success");
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(poll_until([&] { return nodes[1].row("a")["allocations"] == 1; }, 5s)) << nodes[1].row("a").dump();
    const auto seen_after = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    std::printf("[ measured ] an allocation on a seen by b after %lld ms (lease TTL 3 s)\n", static_cast<long long>(seen_after.count()));
    const json a_from_b = nodes[1].row("a");
    EXPECT_DOUBLE_EQ(a_from_b["allocated"]["cpu_cores"].get<double>(), 0.5);
    EXPECT_NEAR(a_from_b["free"]["cpu_cores"].get<double>(), a_from_b["capacity"]["cpu_cores"].get<double>() - 0.5, 1e-9);
}

TEST_F(ClusterHost, AKilledNodeIsGoneWithinItsTtlAndACleanShutdownAtOnce) {
    ASSERT_EQ(etcd.start(dir), "");
    start_nodes(3, etcd.endpoints());
    ASSERT_TRUE(poll_until([&] { return nodes[2].sees("a", "live") && nodes[2].sees("b", "live"); }, 10s));
    // kill -9: no goodbye; the lease lapses in etcd after its TTL.
    nodes[0].stop(SIGKILL);
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(poll_until([&] { return nodes[2].sees("a", "gone"); }, kTtl + 5s)) << nodes[2].row("a").dump();
    const auto killed_gone = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    EXPECT_EQ(nodes[2].row("a")["gone_reason"], "lease expired");
    // The TTL and one read of c's view (1 s), with room for a loaded machine; the figure is printed.
    EXPECT_LE(killed_gone, kTtl + 4s);
    // SIGTERM: the node says it is leaving and revokes its lease.
    ASSERT_EQ(nodes[1].stop(SIGTERM), 0);
    t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(poll_until([&] { return nodes[2].sees("b", "gone"); }, 5s));
    const auto stopped_gone = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    EXPECT_EQ(nodes[2].row("b")["gone_reason"], "shut down");
    EXPECT_LE(stopped_gone, 4s);
    std::printf("[ measured ] gone after kill -9: %lld ms, after SIGTERM: %lld ms (lease TTL 3 s)\n",
                static_cast<long long>(killed_gone.count()), static_cast<long long>(stopped_gone.count()));
    // a comes back under its name: live again.
    nodes[0].start(dir, mount, "a", etcd.endpoints());
    EXPECT_TRUE(poll_until([&] { return nodes[2].sees("a", "live"); }, 5s));
}

TEST_F(ClusterHost, StoppingTheEtcdMemberANodeTalksToLosesNothing) {
    ASSERT_EQ(etcd.start(dir), "");
    start_nodes(2, etcd.endpoints());
    ASSERT_TRUE(poll_until([&] { return nodes[1].sees("a", "live"); }, 10s));
    const std::string endpoint = nodes[0].cli({"cluster", "status"})["result"]["etcd"]["endpoint"];
    int member = -1;
    for (int i = 0; i < 3; ++i)
        if (etcd.client_url(i) == endpoint) member = i;
    ASSERT_GE(member, 0) << endpoint;
    const std::string file = shared_file();
    ASSERT_TRUE(poll_until([&] { return nodes[0].cli({"cluster", "status"})["result"]["lease"]["held"] == true; }, 10s));
    ASSERT_EQ(nodes[0].allocate_file(file, "wf-a")["status"], "success");
    etcd.stop(member);
    // Two TTLs later a's lease is still held (renewed through another member) and b sees a live.
    std::this_thread::sleep_for(2 * kTtl);
    json status;
    EXPECT_TRUE(poll_until([&] {
        status = nodes[0].cli({"cluster", "status"})["result"];
        return status["etcd"]["reachable"] == true && status["lease"]["held"] == true;
    }, 5s)) << status.dump();
    EXPECT_NE(status["etcd"]["endpoint"], endpoint);
    EXPECT_TRUE(nodes[1].sees("a", "live"));
    EXPECT_TRUE(nodes[0].sees("b", "live"));
    // The claim was not lost: b is still refused.
    ASSERT_TRUE(poll_until([&] { return nodes[1].cli({"cluster", "status"})["result"]["lease"]["held"] == true; }, 10s));
    EXPECT_EQ(nodes[1].allocate_file(file, "wf-b", 1)["error"]["code"], "CONFLICT");
}

TEST_F(ClusterHost, WithoutEtcdLocalWorkGoesOnAndStatusAndDoctorNameTheEndpoints) {
    const int port = free_port_base();
    ASSERT_GT(port, 0);
    const std::string nobody = "http://127.0.0.1:" + std::to_string(port);
    start_nodes(1, nobody);
    const json allocated = nodes[0].cli({"allocate", R"({"workflow_id":"wf-alone","resources":{"cpu_cores":0.5,"memory_gb":0.25}})"});
    EXPECT_EQ(allocated["status"], "success");
    ASSERT_TRUE(poll_until([&] { return !nodes[0].cli({"cluster", "status"})["result"]["etcd"]["problem"].is_null(); }, 5s));
    const json status = nodes[0].cli({"cluster", "status"});
    EXPECT_FALSE(status["result"]["etcd"]["reachable"].get<bool>());
    EXPECT_FALSE(status["result"]["lease"]["held"].get<bool>());
    EXPECT_NE(status["result"]["etcd"]["problem"].get<std::string>().find(nobody), std::string::npos) << status.dump();
    const json doctor = nodes[0].cli({"doctor"});
    bool named = false;
    for (const auto& r : doctor["recommendations"]) named = named || r.get<std::string>().find(nobody) != std::string::npos;
    EXPECT_TRUE(named) << doctor["recommendations"].dump();
    EXPECT_EQ(doctor["result"]["daemon"]["cluster"]["configured"], true);
}

TEST_F(ClusterHost, ANodeOutsideAClusterAnswersUnsupportedSayingHowToJoin) {
    nodes.resize(1);
    nodes[0].start(dir, mount, "alone", "");
    const json answer = nodes[0].cli({"cluster", "status"}, 1);
    EXPECT_EQ(answer["error"]["code"], "UNSUPPORTED") << answer.dump();
    EXPECT_NE(answer.dump().find("--cluster"), std::string::npos);
    // A bad cluster flag stops the start, naming it.
    const RunResult bad = run({build_paths::resmgrd, "--state-dir", dir + "/bad", "--socket", dir + "/bad.sock", "--cluster", "https://x:1"});
    EXPECT_EQ(bad.status, 1);
    EXPECT_NE(bad.err.find("https endpoints are not supported"), std::string::npos) << bad.err;
}

TEST_F(ClusterHost, AFileClaimedThroughOneNodeIsRefusedOnTheOthersUntilReleased) {
    ASSERT_EQ(etcd.start(dir), "");
    start_nodes(3, etcd.endpoints());
    const std::string file = shared_file();
    ASSERT_TRUE(poll_until([&] { return nodes[0].cli({"cluster", "status"})["result"]["lease"]["held"] == true; }, 10s));
    const json held = nodes[0].allocate_file(file, "wf-a");
    ASSERT_EQ(held["status"], "success") << held.dump();
    for (int i : {1, 2}) {
        ASSERT_TRUE(poll_until([&] { return nodes[static_cast<size_t>(i)].cli({"cluster", "status"})["result"]["lease"]["held"] == true; }, 10s));
        const json refused = nodes[static_cast<size_t>(i)].allocate_file(file, "wf-other", 1);
        EXPECT_EQ(refused["error"]["code"], "CONFLICT") << refused.dump();
        EXPECT_NE(refused["error"]["message"].get<std::string>().find("node a (workflow wf-a"), std::string::npos) << refused.dump();
        EXPECT_TRUE(nodes[static_cast<size_t>(i)].cli({"status"})["result"]["allocations"].empty()); // nothing half-admitted
    }
    const json files = nodes[0].cli({"cluster", "status"})["result"]["files"]["claims"];
    ASSERT_EQ(files.size(), 1u);
    EXPECT_EQ(files[0]["file"], file);
    EXPECT_EQ(files[0]["held"], true);
    // Released on a: b takes it at once.
    ASSERT_EQ(nodes[0].cli({"release", json{{"allocation_id", held["result"]["allocation_id"]}}.dump()})["status"], "success");
    EXPECT_EQ(nodes[1].allocate_file(file, "wf-b")["status"], "success");
    EXPECT_EQ(nodes[2].allocate_file(file, "wf-c", 1)["error"]["message"].get<std::string>().find("File " + file + " is held across the cluster by node b"),
              0u);
}

TEST_F(ClusterHost, WithWaitAnAllocationQueuesForAFileAnotherNodeHoldsAndStartsWhenItIsFree) {
    ASSERT_EQ(etcd.start(dir), "");
    start_nodes(2, etcd.endpoints());
    const std::string file = shared_file();
    for (const Node& n : nodes)
        ASSERT_TRUE(poll_until([&] { return n.cli({"cluster", "status"})["result"]["lease"]["held"] == true; }, 10s)) << n.name;
    const json held = nodes[0].allocate_file(file, "wf-a");
    ASSERT_EQ(held["status"], "success") << held.dump();
    const json waiting = nodes[1].cli({"allocate", json{{"workflow_id", "wf-b"}, {"resources", {{"cpu_cores", 0.1}, {"memory_gb", 0.1}}},
                                                         {"exclusive_files", {file}}, {"file_scope", "cluster"}, {"wait", true}}.dump()});
    ASSERT_EQ(waiting["status"], "success") << waiting.dump();
    const std::string id = waiting["result"]["allocation_id"];
    EXPECT_EQ(waiting["result"]["allocation"]["status"], "queued");
    EXPECT_NE(waiting["recommendations"].dump().find("held across the cluster by node a"), std::string::npos) << waiting.dump();
    auto status_of = [&] {
        const json status = nodes[1].cli({"status"});
        for (const auto& a : status["result"]["allocations"])
            if (a["allocation_id"] == id) return a["status"].get<std::string>();
        return std::string("gone");
    };
    // A few ticks, and a release on b (which tries b's queue): it stays queued, holding no claim.
    const json local = nodes[1].cli({"allocate", R"({"workflow_id":"wf-local","resources":{"cpu_cores":0.1,"memory_gb":0.1}})"});
    ASSERT_EQ(nodes[1].cli({"release", json{{"allocation_id", local["result"]["allocation_id"]}}.dump()})["status"], "success");
    std::this_thread::sleep_for(2s);
    EXPECT_EQ(status_of(), "queued");
    const json before = nodes[1].cli({"cluster", "status"})["result"]["files"];
    EXPECT_EQ(before["waiting"].size(), 1u);
    EXPECT_TRUE(before["claims"].empty()) << before.dump();
    // a lets go: b's next read of the claims sees the key gone, and b claims the file and starts it.
    ASSERT_EQ(nodes[0].cli({"release", json{{"allocation_id", held["result"]["allocation_id"]}}.dump()})["status"], "success");
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(poll_until([&] { return status_of() == "active"; }, 6s)) << nodes[1].diagnosis();
    std::printf("[ measured ] a queued allocation started %lld ms after another node let go of its file (claims read once a second)\n",
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()));
    const json after = nodes[1].cli({"cluster", "status"})["result"]["files"];
    ASSERT_EQ(after["claims"].size(), 1u) << after.dump();
    EXPECT_EQ(after["claims"][0]["allocation_id"], id);
    EXPECT_EQ(after["claims"][0]["held"], true);
    EXPECT_TRUE(after["fenced"].empty());
    const json refused = nodes[0].allocate_file(file, "wf-c", 1);
    EXPECT_NE(refused.dump().find("held across the cluster by node b"), std::string::npos) << refused.dump();
}

TEST_F(ClusterHost, ADeadNodesClaimIsFreeWithinItsTtlAndRestartedItIsFencedUntilItGetsItBack) {
    ASSERT_EQ(etcd.start(dir), "");
    start_nodes(2, etcd.endpoints());
    const std::string file = shared_file();
    ASSERT_TRUE(poll_until([&] { return nodes[0].cli({"cluster", "status"})["result"]["lease"]["held"] == true; }, 10s));
    const json held = nodes[0].allocate_file(file, "wf-a");
    ASSERT_EQ(held["status"], "success") << held.dump();
    const std::string a_id = held["result"]["allocation_id"];
    ASSERT_TRUE(poll_until([&] { return nodes[1].cli({"cluster", "status"})["result"]["lease"]["held"] == true; }, 10s));
    nodes[0].stop(SIGKILL);
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(poll_until([&] { return run({build_paths::resmgr_cli, "--socket", nodes[1].socket, "--json", "allocate",
                                             json{{"workflow_id", "wf-b"}, {"resources", {{"cpu_cores", 0.1}, {"memory_gb", 0.1}}},
                                                  {"exclusive_files", {file}}, {"file_scope", "cluster"}}.dump()}).status == 0; },
                           kTtl + 5s));
    const auto freed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    std::printf("[ measured ] a dead node's claim free after %lld ms (lease TTL 3 s)\n", static_cast<long long>(freed.count()));
    EXPECT_LE(freed, kTtl + 4s); // the TTL (the figure is printed), with room for a loaded machine
    // a comes back with its allocation restored: the file is b's now, so a's holder stays frozen
    // (it does not get the file back) until b lets go and a claims it again.
    nodes[0].start(dir, mount, "a", etcd.endpoints());
    // Its first answer comes after the restored holders were fenced (before the loop served anything).
    ASSERT_EQ(nodes[0].cli({"status"})["status"], "success");
    const std::string freeze_file = held["result"]["cgroup_path"].get<std::string>() + "/cgroup.freeze";
    EXPECT_EQ(slurp(freeze_file), "1\n");
    ASSERT_TRUE(poll_until([&] {
        const json claims = nodes[0].cli({"cluster", "status"})["result"]["files"]["claims"];
        return claims.size() == 1 && claims[0]["held"] == false && claims[0]["problem"].is_string();
    }, 10s)) << nodes[0].diagnosis();
    EXPECT_EQ(slurp(freeze_file), "1\n");
    EXPECT_EQ(nodes[0].allocate_file(file, "wf-a2", 1)["error"]["code"], "CONFLICT");
    const json b_holder = nodes[1].cli({"status"})["result"]["allocations"];
    ASSERT_EQ(b_holder.size(), 1u);
    ASSERT_EQ(nodes[1].cli({"release", json{{"allocation_id", b_holder[0]["allocation_id"]}}.dump()})["status"], "success");
    EXPECT_TRUE(poll_until([&] { return slurp(freeze_file) == "0\n"; }, 10s)) << nodes[0].diagnosis();
    EXPECT_EQ(nodes[0].cli({"cluster", "status"})["result"]["files"]["claims"][0]["held"], true);
}

TEST_F(ClusterHost, ANodeCutOffFromEtcdFreezesTheHoldersOfItsClaimsWithinTheTtlAndThawsThemAfter) {
    ASSERT_EQ(etcd.start(dir), "");
    start_nodes(1, etcd.endpoints());
    const std::string file = shared_file();
    ASSERT_TRUE(poll_until([&] { return nodes[0].cli({"cluster", "status"})["result"]["lease"]["held"] == true; }, 10s));
    const json held = nodes[0].allocate_file(file, "wf-a");
    ASSERT_EQ(held["status"], "success") << held.dump();
    const std::string freeze_file = held["result"]["cgroup_path"].get<std::string>() + "/cgroup.freeze";
    ASSERT_EQ(slurp(freeze_file), "0\n");
    for (int i = 0; i < 3; ++i) etcd.stop(i);
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(poll_until([&] { return slurp(freeze_file) == "1\n"; }, kTtl + 3s)) << nodes[0].diagnosis();
    const auto fenced = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    std::printf("[ measured ] fenced (frozen) %lld ms after etcd went away (lease TTL 3 s)\n", static_cast<long long>(fenced.count()));
    EXPECT_LE(fenced, kTtl + 1s); // two thirds of the TTL after the last renewal, then a tick (printed)
    EXPECT_EQ(nodes[0].cli({"cluster", "status"})["result"]["files"]["fenced"], json::array({held["result"]["allocation_id"]}));
    // Local work without cluster files goes on meanwhile; a cluster claim is refused, saying why.
    EXPECT_EQ(nodes[0].cli({"allocate", R"({"workflow_id":"wf-local","resources":{"cpu_cores":0.1,"memory_gb":0.1}})"})["status"], "success");
    EXPECT_EQ(nodes[0].allocate_file(dir + "/shared/other", "wf-x", 1)["error"]["code"], "CLUSTER_UNAVAILABLE");
    ASSERT_EQ(etcd.restart(), "");
    ASSERT_TRUE(poll_until([&] { return slurp(freeze_file) == "0\n"; }, 15s)) << nodes[0].diagnosis();
    EXPECT_EQ(nodes[0].cli({"cluster", "status"})["result"]["files"]["claims"][0]["held"], true);
}

TEST_F(ClusterHost, AFileAnotherNodeClaimsIsDeniedToThisNodesWorkflowsByItsGuard) {
    ASSERT_EQ(etcd.start(dir), "");
    nodes.resize(2);
    nodes[0].start(dir, mount, "a", etcd.endpoints());
    nodes[1].start(dir, mount, "b", etcd.endpoints(), true);
    const json guard = nodes[1].cli({"doctor"})["result"]["daemon"]["file_guard"];
    if (!guard.value("available", false)) GTEST_SKIP() << "the file guard does not run here: " << guard.dump();
    const std::string file = shared_file();
    const json b_alloc = nodes[1].cli({"allocate", R"({"workflow_id":"wf-b","resources":{"cpu_cores":0.1,"memory_gb":0.1}})"});
    ASSERT_EQ(b_alloc["status"], "success") << b_alloc.dump();
    const std::string b_group = b_alloc["result"]["cgroup_path"];
    EXPECT_EQ(exit_within(try_open(file, O_WRONLY, b_group), 5s), kOpened) << "nobody holds it yet";
    ASSERT_TRUE(poll_until([&] { return nodes[0].cli({"cluster", "status"})["result"]["lease"]["held"] == true; }, 10s));
    const json held = nodes[0].allocate_file(file, "wf-a");
    ASSERT_EQ(held["status"], "success") << held.dump();
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(poll_until([&] { return exit_within(try_open(file, O_WRONLY, b_group), 5s) == kDenied; }, 5s)) << nodes[1].diagnosis();
    const auto guarded = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    std::printf("[ measured ] b's guard denies b's workflows %lld ms after a claimed the file\n", static_cast<long long>(guarded.count()));
    EXPECT_EQ(exit_within(try_open(file, O_RDONLY, b_group), 5s), kOpened) << "exclusive_writes: reads are let through";
    EXPECT_EQ(nodes[1].cli({"cluster", "status"})["result"]["files"]["held_for_other_nodes"],
              json::array({{{"file", file}, {"node", "a"}}}));
    // Released on a: b's workflows write again.
    ASSERT_EQ(nodes[0].cli({"release", json{{"allocation_id", held["result"]["allocation_id"]}}.dump()})["status"], "success");
    EXPECT_TRUE(poll_until([&] { return exit_within(try_open(file, O_WRONLY, b_group), 5s) == kOpened; }, 5s)) << nodes[1].diagnosis();
}

TEST_F(ClusterHost, TheClusterAgentPoolIsNeverExceededByThreeNodesStartingAgentsAtOnce) {
    ASSERT_EQ(etcd.start(dir), "");
    nodes.resize(3);
    for (size_t i = 0; i < 3; ++i)
        nodes[i].start(dir, mount, std::string(1, static_cast<char>('a' + i)), etcd.endpoints(), false, {"--cluster-max-agents", "4"});
    for (const Node& n : nodes)
        ASSERT_TRUE(poll_until([&] { return n.cli({"cluster", "status"})["result"]["lease"]["held"] == true; }, 10s)) << n.name;
    // One client per node starts two-agent allocations in a loop for 4 s (six wanted at once, four
    // in the pool); `running` counts the agents admitted and not yet released (up after the
    // answer, down before the release).
    std::atomic<int> running{0}, most{0}, admitted{0}, refused{0}, other{0};
    std::vector<std::thread> clients;
    for (size_t i = 0; i < 3; ++i)
        clients.emplace_back([&, i] {
            Client c(nodes[i].socket);
            const auto end = std::chrono::steady_clock::now() + 4s;
            for (int k = 0; std::chrono::steady_clock::now() < end; ++k) {
                json got = c.call({"allocate", "", {{"workflow_id", "wf-" + std::to_string(i) + "-" + std::to_string(k)},
                                                    {"resources", {{"cpu_cores", 0.01}, {"memory_gb", 0.01}, {"agents", 2}}}}});
                if (got["status"] != "success") {
                    (got["error"]["code"] == "RESOURCE_EXHAUSTED" ? refused : other)++;
                    continue;
                }
                ++admitted;
                const int now = running += 2;
                for (int m = most.load(); now > m && !most.compare_exchange_weak(m, now);) {
                }
                std::this_thread::sleep_for(30ms);
                running -= 2;
                c.call({"release", "", {{"allocation_id", got["result"]["allocation_id"]}}});
            }
        });
    for (auto& t : clients) t.join();
    std::printf("[ measured ] agent pool of 4 over 3 nodes, two agents an allocation: %d admitted, %d refused (pool full), at most %d agents "
                "running at once\n", admitted.load(),
                refused.load(), most.load());
    EXPECT_LE(most.load(), 4);
    EXPECT_EQ(other.load(), 0);
    EXPECT_GT(refused.load(), 0) << "the clients never met a full pool: the test proved nothing";
    EXPECT_GT(admitted.load(), 8);
    // A dead node's slots come back with its lease: a takes all four, is killed, b gets four.
    ASSERT_EQ(nodes[0].cli({"allocate", R"({"workflow_id":"wf-four","resources":{"cpu_cores":0.01,"memory_gb":0.01,"agents":4}})"})["status"],
              "success");
    EXPECT_EQ(nodes[1].cli({"allocate", R"({"workflow_id":"wf-one","resources":{"cpu_cores":0.01,"memory_gb":0.01,"agents":1}})"}, 1)["error"]["code"],
              "RESOURCE_EXHAUSTED");
    nodes[0].stop(SIGKILL);
    EXPECT_TRUE(poll_until([&] {
        return run({build_paths::resmgr_cli, "--socket", nodes[1].socket, "--json", "allocate",
                    R"({"workflow_id":"wf-four-b","resources":{"cpu_cores":0.01,"memory_gb":0.01,"agents":4}})"})
                   .status == 0;
    }, kTtl + 5s));
}

// `cluster place` through `node`; the answer.
json place(const Node& node, double cpu, const std::string& workflow, const std::string& timeout, bool dry_run = false, int expected_status = 0) {
    return node.cli({"cluster", "place", json{{"workflow_id", workflow}, {"resources", {{"cpu_cores", cpu}, {"memory_gb", 0.1}}},
                                              {"timeout", timeout}, {"dry_run", dry_run}}.dump()},
                    expected_status);
}

// Each node's room for CPU as placement sees it now (a dry run through `via`).
std::map<std::string, double> cpu_room(const Node& via) {
    std::map<std::string, double> room;
    const json answer = place(via, 0, "wf-probe", "30s", true); // 0 cores: fits wherever no room is overbooked
    for (const auto& c : answer["result"]["candidates"]) room[c["node"]] = c["room"]["cpu_cores"].get<double>();
    EXPECT_FALSE(room.empty()) << answer.dump();
    return room;
}

TEST_F(ClusterHost, PlacementUnderThreeConcurrentClientsNeverBooksTheSameRoomTwice) {
    ASSERT_EQ(etcd.start(dir), "");
    start_nodes(3, etcd.endpoints());
    for (const Node& n : nodes)
        ASSERT_TRUE(poll_until([&] { return n.sees("a", "live") && n.sees("b", "live") && n.sees("c", "live"); }, 10s)) << n.diagnosis();
    const std::map<std::string, double> before = cpu_room(nodes[0]);
    ASSERT_EQ(before.size(), 3u);
    constexpr double kAsk = 0.25;
    int rooms = 0;
    for (const auto& [node, cpu] : before) rooms += static_cast<int>(std::floor(cpu / kAsk + 1e-9));
    ASSERT_GT(rooms, 3);
    // One client per node places until no node has room; each booking is counted by the node it books.
    std::mutex mutex;
    std::map<std::string, int> booked;
    std::set<std::string> ids;
    json kept; // one booking, redeemed below
    std::atomic<int> exhausted{0}, lost_races{0}, other{0}, attempts{0};
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> clients;
    for (size_t i = 0; i < 3; ++i)
        clients.emplace_back([&, i] {
            Client c(nodes[i].socket);
            for (int k = 0; k < 200; ++k) {
                json got = c.call({"cluster", "place", {{"workflow_id", "wf-place-" + std::to_string(i)},
                                                        {"resources", {{"cpu_cores", kAsk}, {"memory_gb", 0.1}}}, {"timeout", "2m"}}});
                if (got["status"] != "success") {
                    const std::string code = got["error"]["code"];
                    if (code == "RESOURCE_EXHAUSTED") {
                        ++exhausted;
                        return;
                    }
                    (code == "CONFLICT" ? lost_races : other)++;
                    continue;
                }
                attempts += got["result"]["attempts"].get<int>();
                std::lock_guard lock(mutex);
                booked[got["result"]["node"]]++;
                ids.insert(got["result"]["booking_id"].get<std::string>());
                kept = got["result"]["booking"];
            }
        });
    for (auto& t : clients) t.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int total = 0;
    for (const auto& [node, n] : booked) total += n;
    std::printf("[ measured ] 3 clients placing %.2f-core requests over 3 nodes: %d booked of %d rooms in %.2f s (%.0f bookings/s), "
                "%.2f transactions a booking, %d placements lost 16 races\n",
                kAsk, total, rooms, seconds, total / seconds, total ? static_cast<double>(attempts.load()) / total : 0.0, lost_races.load());
    EXPECT_EQ(other.load(), 0);
    EXPECT_EQ(exhausted.load(), 3);
    EXPECT_EQ(total, rooms) << "every room booked once, none twice";
    EXPECT_EQ(ids.size(), static_cast<size_t>(total));
    for (const auto& [node, n] : booked) EXPECT_LE(n * kAsk, before.at(node) + 1e-9) << node << " booked past its room";
    for (const auto& [node, cpu] : cpu_room(nodes[1])) EXPECT_LT(cpu, kAsk) << node;

    // Redeemed on its node: admitted, its room counted once all along (a booking, then admitted
    // in the node's record, then in its figures alone once the key is deleted).
    const std::string node = kept["node"], id = kept["booking_id"], workflow = kept["workflow_id"];
    const Node& target = nodes[static_cast<size_t>(node[0] - 'a')];
    const Node& elsewhere = nodes[static_cast<size_t>(node[0] - 'a' + 1) % 3];
    const double room_booked = cpu_room(nodes[0]).at(node);
    EXPECT_EQ(elsewhere.allocate_booked(id, workflow, kAsk, 1)["error"]["code"], "NOT_FOUND");
    EXPECT_EQ(target.allocate_booked(id, "wf-other", kAsk, 1)["error"]["code"], "INVALID_REQUEST");
    EXPECT_EQ(target.allocate_booked(id, workflow, kAsk + 0.1, 1)["error"]["code"], "INVALID_REQUEST");
    EXPECT_EQ(target.allocate_booked(id, workflow, kAsk)["result"]["booking_id"], id);
    EXPECT_EQ(target.allocate_booked(id, workflow, kAsk, 1)["error"]["code"], "CONFLICT"); // once
    bool listed = false;
    ASSERT_TRUE(poll_until([&] {
        const json r = elsewhere.row(node);
        const bool lists = r.is_object() && r["bookings_admitted"].dump().find(id) != std::string::npos;
        listed = listed || lists;
        EXPECT_NEAR(cpu_room(elsewhere).at(node), room_booked, 1e-9) << "the booked room counted twice or not at all";
        return listed && !lists && r["allocations"] == 1; // listed, then settled: the key deleted
    }, 8s)) << elsewhere.row(node).dump();
}

TEST_F(ClusterHost, ABookingHoldsItsNodesRoomFromOtherAllocationsUntilItsTimeoutPasses) {
    ASSERT_EQ(etcd.start(dir), "");
    start_nodes(2, etcd.endpoints());
    for (const Node& n : nodes) ASSERT_TRUE(poll_until([&] { return n.sees("a", "live") && n.sees("b", "live"); }, 10s)) << n.diagnosis();
    const std::map<std::string, double> before = cpu_room(nodes[0]);
    const double big = std::min(before.at("a"), before.at("b")) - 0.1;
    const auto placed_at = std::chrono::steady_clock::now();
    const json booked = place(nodes[0], big, "wf-big", "4s");
    const std::string node = booked["result"]["node"], id = booked["result"]["booking_id"];
    const Node& target = nodes[node == "a" ? 0 : 1];
    // The node reads its bookings each second: then the room is not another allocation's.
    std::this_thread::sleep_for(1500ms);
    const json refused = target.cli({"allocate", R"({"workflow_id":"wf-local","resources":{"cpu_cores":0.5,"memory_gb":0.1}})"}, 1);
    EXPECT_EQ(refused["error"]["code"], "RESOURCE_EXHAUSTED") << refused.dump();
    EXPECT_NE(refused["error"]["message"].get<std::string>().find("booked"), std::string::npos);
    // Not admitted in time: etcd drops it with its lease, and the room is back.
    ASSERT_TRUE(poll_until([&] { return std::abs(cpu_room(nodes[1]).at(node) - before.at(node)) < 1e-9; }, 15s));
    const double freed = std::chrono::duration<double>(std::chrono::steady_clock::now() - placed_at).count();
    std::printf("[ measured ] a 4 s booking's room was free again %.1f s after it was placed\n", freed);
    EXPECT_GE(freed, 3.5);
    EXPECT_EQ(target.allocate_booked(id, "wf-big", big, 1)["error"]["code"], "NOT_FOUND");
    // The node drops it from its own read within a second.
    EXPECT_TRUE(poll_until([&] {
        return run({build_paths::resmgr_cli, "--socket", target.socket, "--json", "allocate",
                    R"({"workflow_id":"wf-local","resources":{"cpu_cores":0.5,"memory_gb":0.1}})"}).status == 0;
    }, 3s));
}

} // namespace
} // namespace resmgr::host
