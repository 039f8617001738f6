// DaemonHost: a resmgrd of the test's own (cgroupfs backend under a test root, state and socket
// in a temp dir, sampling every second) and the CLI helpers that talk to it.
#pragma once

#include "build_paths.hpp"
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "host_support.hpp"
#include "resmgr/client.hpp"

namespace resmgr::host {

using nlohmann::json;

class DaemonHost : public ::testing::Test {
protected:
    std::string mount = cgroup2_mount();
    std::string dir, socket, root, log;
    pid_t daemon = -1;

    void SetUp() override {
        if (auto why = cgroup2_unavailable(mount)) GTEST_SKIP() << "cgroup2 host test skipped: " << *why;
        char tmpl[] = "/tmp/resmgr-daemon-XXXXXX";
        dir = ::mkdtemp(tmpl);
        socket = dir + "/resmgr.sock";
        log = dir + "/resmgrd.log";
        root = mount + "/resmgr-hosttest-" + std::to_string(::getpid());
        // Workflow limits far above this node, so over-asking meets the node's capacity.
        // Sampling every second; the cpu threshold high enough that only the burner test's two
        // burners (every core busy) reach it, with a wide band so it clears when they stop.
        std::ofstream(dir + "/policy.json") << R"({"resource_policies":{"allocation_limits":)"
                                               R"({"max_cpu_per_workflow":4096,"max_memory_per_workflow":1048576},)"
                                               R"("monitoring_intervals":{"resource_check":"1s"},)"
                                               R"("thresholds":{"cpu":{"threshold":90},"clear_margin":30,"repeat_interval":"1h"}}})";
        start(daemon_args());
    }

    // Arguments a suite adds to the daemon it starts (called once `dir` exists).
    virtual std::vector<std::string> daemon_args() { return {}; }

    void TearDown() override {
        if (daemon > 0) expect_daemon_alive();
        if (daemon > 0) {
            // Release through the daemon so it removes its groups, then stop it.
            release_all(socket);
            EXPECT_EQ(stop(SIGTERM), 0) << "resmgrd did not shut down cleanly; log:\n" << slurp(log);
        }
        remove_group_tree(root);
        if (!dir.empty()) std::filesystem::remove_all(dir);
    }

    void start(const std::vector<std::string>& extra_args = {}) {
        std::vector<std::string> argv{build_paths::resmgrd, "--config", dir + "/policy.json", "--state-dir", dir + "/state", "--socket", socket,
                                      "--cgroup-root", root, "--backend", "cgroupfs", "--log-level", "debug"};
        argv.insert(argv.end(), extra_args.begin(), extra_args.end());
        daemon = spawn(argv, log);
        bool up = socket_answers(socket, std::chrono::seconds(10));
        ASSERT_TRUE(up) << "resmgrd did not start; log:\n" << slurp(log);
    }

    // A daemon that died under a test is a failure of its own, with the end of its log (where
    // a sanitizer or an uncaught exception says why), whatever the test asserted.
    void expect_daemon_alive() {
        int status = 0;
        if (::waitpid(daemon, &status, WNOHANG) != daemon) return;
        daemon = -1;
        const std::string text = slurp(log);
        ADD_FAILURE() << "resmgrd died during the test ("
                      << (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status)) : "exit " + std::to_string(WEXITSTATUS(status)))
                      << "); end of its log:\n"
                      << text.substr(text.size() > 6000 ? text.size() - 6000 : 0);
    }

    // The daemon's exit status (decode_status: 128+N after signal N).
    int stop(int sig) {
        ::kill(daemon, sig);
        int status = 0;
        ::waitpid(daemon, &status, 0);
        daemon = -1;
        return decode_status(status);
    }

    RunResult cli(const std::vector<std::string>& args) {
        std::vector<std::string> argv{build_paths::resmgr_cli, "--socket", socket, "--json"};
        argv.insert(argv.end(), args.begin(), args.end());
        return run(argv);
    }

    json cli_json(const std::vector<std::string>& args, int expected_status = 0) {
        RunResult r = cli(args);
        EXPECT_EQ(r.status, expected_status) << r.out << r.err;
        try {
            return json::parse(r.out);
        } catch (const json::parse_error&) {
            ADD_FAILURE() << "not JSON: " << r.out << r.err;
            return {};
        }
    }

    std::string allocate(const std::string& params) {
        json r = cli_json({"allocate", params});
        return r["result"].value("allocation_id", "");
    }

    RunResult resmgr_run(const std::vector<std::string>& args) {
        std::vector<std::string> argv{build_paths::resmgr_run, "--socket", socket};
        argv.insert(argv.end(), args.begin(), args.end());
        return run(argv);
    }
};


} // namespace resmgr::host
