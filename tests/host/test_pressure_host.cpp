// The pressure responder with a real resmgrd on this kernel: a protected (high) allocation's
// spinner stalls behind three low-priority spinners on this 2-core host, so its cpu.pressure
// crosses a low threshold; the responder climbs the CPU ladder (cpu.weight, cpu.max: reported as
// unenforced where the host's cgroup v2 has no cpu controller) and really freezes the low
// groups (cgroup.freeze, cgroup.events "frozen 1"), one a pass; `status pressure` shows it all;
// once the protected work is gone the signal clears and everything is given back.
#include "build_paths.hpp"
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "daemon_fixture.hpp"

using namespace resmgr;
using namespace resmgr::host;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

class PressureHost : public DaemonHost {
protected:
    std::vector<pid_t> runners;

    void TearDown() override {
        for (pid_t p : runners) {
            ::kill(p, SIGKILL);
            ::waitpid(p, nullptr, 0);
        }
        DaemonHost::TearDown();
    }

    // Restarts the daemon on a policy whose CPU signal trips at 10 % stall of the protected groups.
    void use_responder_policy() {
        ASSERT_EQ(stop(SIGTERM), 0) << slurp(log);
        std::ofstream(dir + "/policy.json") << R"({"resource_policies":{"monitoring_intervals":{"resource_check":"1s"},)"
                                               R"("pressure_response":{"mode":"enforce","bands":["low"],"escalate_after":"2s",)"
                                               R"("undo_interval":"1s","signals":{"cpu_protected":)"
                                               R"({"threshold":10,"clear":5,"hold":"1s","clear_hold":"2s"}}}}})";
        start();
    }

    // An allocation with a shell spinning in it; returns its id.
    std::string spinner(const std::string& workflow, const std::string& priority) {
        std::string id = allocate(json{{"workflow_id", workflow}, {"priority", priority}, {"resources", {{"cpu_cores", 0.3}}},
                                       {"auto_release", {{"on_completion", false}}}}
                                      .dump());
        EXPECT_FALSE(id.empty());
        runners.push_back(spawn({build_paths::resmgr_run, "--socket", socket, "--allocation", id, "--", "/bin/sh", "-c", "while :; do :; done"},
                                dir + "/" + workflow + ".out"));
        const std::string procs = root + "/" + id + "/main/cgroup.procs";
        EXPECT_TRUE(wait_until([&] { return !slurp(procs).empty(); }, 5s)) << slurp(dir + "/" + workflow + ".out");
        return id;
    }

    bool frozen(const std::string& id) { return slurp(root + "/" + id + "/cgroup.events").find("frozen 1") != std::string::npos; }
    json pressure() { return cli_json({"status", "pressure"})["result"]; }
};

} // namespace

TEST_F(PressureHost, CpuOverloadOfLowSpinnersIsThrottledThenFrozenThenGivenBack) {
    use_responder_policy();
    const std::string high = spinner("wf-protected", "high");
    std::vector<std::string> lows;
    for (int i = 0; i < 3; ++i) lows.push_back(spinner("wf-low-" + std::to_string(i), "low"));
    ASSERT_FALSE(HasFailure());
    if (::access((root + "/" + high + "/cpu.pressure").c_str(), R_OK) != 0)
        GTEST_SKIP() << "no cpu.pressure in " << root << "/" << high << " (PSI off in this kernel): the CPU signal cannot be read";

    // The responder says which signal source runs.
    json first = pressure();
    EXPECT_EQ(first["mode"], "enforce");
    const std::string source = first["signal_source"];
    EXPECT_TRUE(source.rfind("trigger", 0) == 0 || source.rfind("polling", 0) == 0) << source;

    // The protected group stalls; every low group is frozen, one a pass, after the mild rungs.
    const auto started = std::chrono::steady_clock::now();
    bool all_frozen = wait_until([&] {
        for (auto& id : lows)
            if (!frozen(id)) return false;
        return true;
    }, 60s);
    json st = pressure();
    ASSERT_TRUE(all_frozen) << "not every low group froze; status pressure:\n" << st.dump(2) << "\nlog:\n" << slurp(log);
    std::cout << "[ info ] every low group frozen "
              << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()
              << " ms after the spinners started; cpu_protected at " << st["signals"]["cpu_protected"]["value"] << " %\n";
    EXPECT_FALSE(frozen(high)) << "the protected group was frozen";
    for (auto& id : lows) EXPECT_EQ(slurp(root + "/" + id + "/cgroup.freeze"), "1\n") << id;

    // `status pressure`: the signal raised, and what is held back from whom, since when.
    EXPECT_EQ(st["signals"]["cpu_protected"]["raised"], true) << st.dump(2);
    std::map<std::string, int> held_actions;
    const bool has_cpu_controller = slurp(root + "/cgroup.controllers").find("cpu") != std::string::npos &&
                                    slurp(root + "/cgroup.subtree_control").find("cpu") != std::string::npos;
    for (auto& step : st["held"]) {
        ++held_actions[step["action"].get<std::string>()];
        EXPECT_NE(step["allocation_id"], high);
        EXPECT_FALSE(step.value("since", "").empty());
        const std::string action = step["action"];
        if (action == "cpu_weight" || action == "cpu_max") {
            if (has_cpu_controller) {
                EXPECT_FALSE(step.contains("unenforced")) << step.dump();
            } else {
                EXPECT_NE(step.value("unenforced", "").find("controller 'cpu'"), std::string::npos) << step.dump();
            }
        }
        if (action == "freeze") {
            EXPECT_FALSE(step.contains("unenforced")) << step.dump();
        }
    }
    EXPECT_EQ(held_actions["cpu_weight"], 3) << st.dump(2);
    EXPECT_EQ(held_actions["freeze"], 3) << st.dump(2);
    EXPECT_GE(held_actions["cpu_max"], 1) << st.dump(2); // a group that used no CPU in a pass has nothing to cap

    // One RESOURCE_PRESSURE event per step, to subscribers and `resmgr events`.
    json ev = cli_json({"events", R"({"types":["pressure"]})"});
    int freeze_events = 0;
    for (auto& e : ev["result"]["events"])
        if (e.value("details", json::object()).value("action", "") == "freeze") ++freeze_events;
    EXPECT_EQ(freeze_events, 3) << ev.dump(2);

    // The protected work ends: the signal clears, and everything is given back, freezes first.
    ::kill(runners[0], SIGTERM);
    ::waitpid(runners[0], nullptr, 0);
    runners.erase(runners.begin());
    cli_json({"release", json{{"allocation_id", high}}.dump()});
    bool given_back = wait_until([&] {
        for (auto& id : lows)
            if (frozen(id)) return false;
        return pressure()["held"].empty();
    }, 30s);
    ASSERT_TRUE(given_back) << pressure().dump(2);
    for (auto& id : lows) EXPECT_EQ(slurp(root + "/" + id + "/cgroup.freeze"), "0\n") << id;
    json relieved = cli_json({"events", R"({"types":["pressure_relieved"]})"});
    EXPECT_GE(relieved["result"]["events"].size(), 6u) << relieved.dump(2);
}
