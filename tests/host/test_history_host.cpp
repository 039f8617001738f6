// The history on this host: each resmgr-run of a workflow type leaves a run record with what it
// used, read from the kernel (cpu.stat, eBPF), and the records outlive a kill -9 of resmgrd.
#include "build_paths.hpp"
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "daemon_fixture.hpp"
#include "security_fixture.hpp"

using namespace resmgr;
using namespace resmgr::host;
using nlohmann::json;

namespace {

// A known load: busy CPU for a while and a few execs of classified tools.
const std::vector<std::string> kLoad{"--", "sh", "-c", "i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done; ls / >/dev/null; cat /dev/null; true"};

} // namespace

TEST_F(DaemonHost, EachTypedRunLeavesARecordThatSurvivesKillNine) {
    const bool probes = cli_json({"doctor"})["result"]["daemon"].value("ebpf", std::string()).rfind("loaded", 0) == 0;
    for (int i = 0; i < 3; ++i) {
        std::vector<std::string> args{"--workflow", "wf-history", "--type", "unit-build", "--cpu", "1"};
        args.insert(args.end(), kLoad.begin(), kLoad.end());
        RunResult r = resmgr_run(args);
        ASSERT_EQ(r.status, 0) << r.err;
    }
    auto check = [&](const json& usage) {
        const json& runs = usage["result"]["runs"];
        ASSERT_EQ(runs.size(), 3u) << usage.dump(2);
        for (const auto& run : runs) {
            EXPECT_EQ(run["workflow_type"], "unit-build");
            EXPECT_EQ(run["outcome"], "completed") << run.dump(2);
            EXPECT_EQ(run["exit_code"], 0) << run.dump(2);
            ASSERT_TRUE(run["used"]["cpu_seconds"].is_number()) << run.dump(2);
            EXPECT_GT(run["used"]["cpu_seconds"].get<double>(), 0.05) << run.dump(2); // the shell loop's CPU
            EXPECT_GT(run["duration_seconds"].get<double>(), 0) << run.dump(2);
            if (probes) {
                // sh, ls, cat: at least the three execs of the load.
                EXPECT_GE(run["used"]["execs"].get<int>(), 3) << run.dump(2);
                EXPECT_TRUE(run["used"]["tool_instances_started"].is_object()) << run.dump(2);
            }
        }
    };
    check(cli_json({"usage", "wf-history"}));
    if (!probes) std::cout << "[ INFO     ] exec counts not checked: eBPF probes not loaded on this host\n";
    stop(SIGKILL);
    start();
    check(cli_json({"usage", "wf-history"}));
    json doctor = cli_json({"doctor"});
    EXPECT_EQ(doctor["result"]["daemon"]["history"]["available"], true) << doctor.dump(2);
    EXPECT_GE(doctor["result"]["daemon"]["history"]["runs"].get<int>(), 3) << doctor.dump(2);
}

TEST_F(DaemonHost, ADamagedHistoryDatabaseIsNamedAndAllocationsGoOn) {
    stop(SIGTERM);
    const std::string db = dir + "/state/monitoring/history.db";
    std::filesystem::remove(db + "-wal");
    std::filesystem::remove(db + "-shm");
    std::ofstream(db, std::ios::trunc) << std::string(64 << 10, 'x'); // not a database any more
    start();
    json doctor = cli_json({"doctor"});
    EXPECT_EQ(doctor["result"]["daemon"]["history"]["available"], false) << doctor.dump(2);
    EXPECT_NE(doctor["result"]["daemon"]["history"]["problem"].get<std::string>().find(db), std::string::npos) << doctor.dump(2);
    RunResult r = resmgr_run({"--workflow", "wf-no-history", "--type", "t", "--", "true"});
    EXPECT_EQ(r.status, 0) << r.err; // still admitted and run
    json usage = cli_json({"usage", "wf-no-history"}); // the run ended recently: its record in memory only
    EXPECT_TRUE(usage["result"]["runs"].empty()) << usage.dump(2);
    EXPECT_EQ(usage["result"]["ended_allocations"].size(), 1u) << usage.dump(2);
    EXPECT_NE(usage["recommendations"].dump().find("Runs not shown"), std::string::npos) << usage.dump(2);
}

TEST_F(DaemonHost, HistoryImportOfARealTraceIsAllOrNothingAndExportsAgain) {
    const std::string trace = "/work/shared/data/nab/realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv";
    const std::string nab = std::string(build_paths::source_dir) + "/../shared/data/nab/realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv";
    const std::string file = std::filesystem::exists(nab) ? nab : trace;
    if (!std::filesystem::exists(file)) GTEST_SKIP() << "NAB trace not found at " << nab << " (../shared/data/nab is absent)";
    json imported = cli_json({"history", "import", "--csv", file, "--metric", "node/cpu_percent"});
    ASSERT_EQ(imported["status"], "success") << imported.dump(2);
    EXPECT_GT(imported["result"]["imported"].get<int>(), 3000); // NAB's 5-minute EC2 CPU trace: ~4000 rows

    // One bad row anywhere: refused with its line, nothing of the file imported.
    const std::string bad = dir + "/bad.csv";
    std::ofstream(bad) << "timestamp,value\n2030-01-01 00:00:00,1\n2030-01-01 00:05:00,oops\n";
    json refused = cli_json({"history", "import", "--csv", bad, "--metric", "node/bad_metric"}, 1);
    EXPECT_EQ(refused["error"]["code"], "INVALID_REQUEST") << refused.dump(2);
    EXPECT_NE(refused["error"]["message"].get<std::string>().find("line 3"), std::string::npos) << refused.dump(2);
    RunResult csv = cli({"history", "export", "--since", "2030-01-01T00:00:00Z", "--csv"});
    EXPECT_EQ(csv.status, 0) << csv.err;
    EXPECT_EQ(csv.out.find("node/bad_metric"), std::string::npos) << csv.out;

    // Export gives the raw samples: the imported trace is there until the raw retention (48 h)
    // drops it at a rollup; its 5-minute and 1-hour buckets stay.
    RunResult all = cli({"history", "export", "--since", "2000-01-01T00:00:00Z", "--csv"});
    EXPECT_EQ(all.out.rfind("series,timestamp,value\n", 0), 0u) << all.out.substr(0, 200);
    EXPECT_NE(all.out.find("node/cpu_percent,"), std::string::npos);
}

TEST_F(SecurityHost, HistoryImportIsRootsAndRunsAreTheirOwners) {
    const std::string csv = dir + "/mine.csv";
    std::ofstream(csv) << "1800000000,1\n";
    ::chmod(csv.c_str(), 0644);
    json refused = cli_json_as(*alice, {"history", "import", "--csv", csv, "--metric", "node/x"});
    EXPECT_EQ(refused["error"]["code"], "PERMISSION_DENIED") << refused.dump(2);
    // root's run and alice's run of a workflow both named "shared": each sees only their own.
    ASSERT_EQ(resmgr_run({"--workflow", "shared", "--type", "t", "--", "true"}).status, 0);
    RunResult hers = run(alice->as({build_paths::resmgr_run, "--socket", socket, "--workflow", "shared", "--type", "t", "--", "true"}));
    ASSERT_EQ(hers.status, 0) << hers.err;
    json alice_usage = cli_json_as(*alice, {"usage", "shared"});
    ASSERT_EQ(alice_usage["result"]["runs"].size(), 1u) << alice_usage.dump(2);
    EXPECT_EQ(alice_usage["result"]["runs"][0]["owner_uid"], alice->uid());
    EXPECT_EQ(cli_json({"usage", "shared"})["result"]["runs"].size(), 2u); // root sees both
}

TEST_F(DaemonHost, OptimizeShrinksAnOversizedAllocationFromItsTypesRunsAndAppliesItLive) {
    // Steps that mostly wait: a small fraction of a core each.
    for (int i = 0; i < 3; ++i)
        ASSERT_EQ(resmgr_run({"--workflow", "wf-steps", "--type", "sizing-test", "--cpu", "1", "--", "sh", "-c", "sleep 0.4; ls / >/dev/null"}).status, 0);
    const std::string id = allocate(R"({"workflow_id":"wf-big","workflow_type":"sizing-test","resources":{"cpu_cores":1.5}})");
    json dry = cli_json({"optimize", R"({"target":"efficiency"})"});
    ASSERT_EQ(dry["status"], "success") << dry.dump(2);
    ASSERT_EQ(dry["result"]["allocations"].size(), 1u) << dry.dump(2);
    const json& entry = dry["result"]["allocations"][0];
    EXPECT_EQ(entry["allocation_id"], id);
    EXPECT_EQ(entry["sized_from"], "workflow_type sizing-test");
    ASSERT_TRUE(entry["recommended"]["cpu_cores"].is_number()) << entry.dump(2);
    const double recommended = entry["recommended"]["cpu_cores"].get<double>();
    EXPECT_LT(recommended, 0.5) << entry.dump(2); // the runs used a fraction of a core each
    EXPECT_EQ(entry["confidence"]["runs"]["cpu"], 3);
    EXPECT_GT(entry["expected_slack"]["cpu"]["before"].get<double>(), entry["expected_slack"]["cpu"]["after"].get<double>()) << entry.dump(2);
    EXPECT_EQ(entry["applied"], false);
    EXPECT_EQ(dry["result"]["dry_run"], true);
    EXPECT_DOUBLE_EQ(cli_json({"status", json{{"allocation_id", id}}.dump()})["result"]["allocations"][0]["resources"]["cpu_cores"].get<double>(), 1.5);

    json applied = cli_json({"optimize", R"({"dry_run":false,"apply_immediately":true})"});
    ASSERT_EQ(applied["result"]["resized"], 1) << applied.dump(2);
    EXPECT_EQ(applied["result"]["allocations"][0]["applied"], true);
    json st = cli_json({"status", json{{"allocation_id", id}}.dump()});
    EXPECT_DOUBLE_EQ(st["result"]["allocations"][0]["resources"]["cpu_cores"].get<double>(), recommended) << st.dump(2);
    json events = cli_json({"events", "--type", "resized"});
    ASSERT_EQ(events["result"]["events"].size(), 1u) << events.dump(2);
    EXPECT_EQ(events["result"]["events"][0]["allocation_id"], id);

    // "resources": "auto" sizes a new allocation of the type the same way.
    json sized = cli_json({"allocate", R"({"workflow_id":"wf-auto","workflow_type":"sizing-test","resources":"auto"})"});
    ASSERT_EQ(sized["status"], "success") << sized.dump(2);
    EXPECT_DOUBLE_EQ(sized["result"]["sizing"]["resources"]["cpu_cores"].get<double>(), recommended) << sized.dump(2);
    EXPECT_DOUBLE_EQ(sized["result"]["allocation"]["resources"]["cpu_cores"].get<double>(), recommended) << sized.dump(2);
    RunResult wrapped = resmgr_run({"--workflow", "wf-auto-run", "--type", "sizing-test", "--auto", "--", "true"});
    EXPECT_EQ(wrapped.status, 0) << wrapped.err;

    json report = cli_json({"analyze-utilization", R"({"time_period":"1h"})"});
    EXPECT_EQ(report["result"]["workflows"]["sizing-test"]["runs"], 4) << report.dump(2); // with the --auto run
    EXPECT_TRUE(report["result"]["workflows"]["sizing-test"]["cpu_efficiency"].is_number()) << report.dump(2);
    EXPECT_FALSE(report["result"]["opportunities"].empty()) << report.dump(2);
}

TEST_F(DaemonHost, OptimizeWithoutEnoughRunsSaysHowManyThereAreAndAreNeeded) {
    allocate(R"({"workflow_id":"wf-new","workflow_type":"never-run","resources":{"cpu_cores":1}})");
    json unsized = cli_json({"allocate", R"({"workflow_id":"wf-new2","workflow_type":"never-run","resources":"auto"})"});
    ASSERT_EQ(unsized["status"], "success") << unsized.dump(2);
    EXPECT_NE(unsized["recommendations"].dump().find("0 run(s) with measured CPU"), std::string::npos) << unsized.dump(2);
    EXPECT_EQ(unsized["result"]["allocation"]["resources"]["cpu_cores"], 0.0); // uncapped: the policy's default
    json r = cli_json({"optimize"}, 1);
    EXPECT_EQ(r["error"]["code"], "INSUFFICIENT_HISTORY") << r.dump(2);
    EXPECT_NE(r["error"]["details"].get<std::string>().find("3 needed"), std::string::npos) << r.dump(2);
}

TEST_F(DaemonHost, ScaleGrowsAndShrinksARunningAllocationInPlace) {
    const std::string id = allocate(R"({"workflow_id":"wf-scale","resources":{"cpu_cores":0.5,"memory":"256M"}})");
    auto size_of = [&] { return cli_json({"status", json{{"allocation_id", id}}.dump()})["result"]["allocations"][0]["resources"]; };

    json up = cli_json({"scale", json{{"allocation_id", id}, {"direction", "up"}, {"factor", 2}}.dump()});
    ASSERT_EQ(up["status"], "success") << up.dump(2);
    EXPECT_EQ(up["result"]["resized"], 1) << up.dump(2);
    EXPECT_DOUBLE_EQ(size_of()["cpu_cores"].get<double>(), 1);
    EXPECT_EQ(size_of()["memory_bytes"].get<std::uint64_t>(), 512ULL << 20);
    // Up again is capped at what the node has free, never beyond its capacity.
    const double free_cpu = cli_json({"scale", json{{"allocation_id", id}, {"direction", "up"}, {"dry_run", true}}.dump()})["result"]["allocations"][0]["planned"]["cpu_cores"].get<double>() - 1;
    ASSERT_GT(free_cpu, 0);
    json capped = cli_json({"scale", json{{"allocation_id", id}, {"direction", "up"}, {"resource", "cpu"}, {"factor", 16}}.dump()});
    EXPECT_NEAR(size_of()["cpu_cores"].get<double>(), 1 + free_cpu, 0.001) << capped.dump(2);
    const double grown = size_of()["cpu_cores"].get<double>();
    const double quarter = std::round(grown / 4 * 1000) / 1000;

    // Down by the workflow's name, CPU only; a dry run first changes nothing.
    json dry = cli_json({"scale", R"({"workflow_id":"wf-scale","direction":"down","resource":"cpu","factor":4,"dry_run":true})"});
    ASSERT_EQ(dry["status"], "success") << dry.dump(2);
    EXPECT_DOUBLE_EQ(dry["result"]["allocations"][0]["planned"]["cpu_cores"].get<double>(), quarter) << dry.dump(2);
    EXPECT_DOUBLE_EQ(size_of()["cpu_cores"].get<double>(), grown);
    json down = cli_json({"scale", R"({"workflow_id":"wf-scale","direction":"down","resource":"cpu","factor":4})"});
    EXPECT_EQ(down["result"]["resized"], 1) << down.dump(2);
    EXPECT_DOUBLE_EQ(size_of()["cpu_cores"].get<double>(), quarter);
    EXPECT_EQ(size_of()["memory_bytes"].get<std::uint64_t>(), 512ULL << 20);
    EXPECT_EQ(cli_json({"events", "--type", "resized"})["result"]["events"].size(), 3u);

    // auto without recorded runs: said, not guessed.
    json unsized = cli_json({"scale", json{{"allocation_id", id}, {"direction", "auto"}}.dump()}, 1);
    EXPECT_EQ(unsized["error"]["code"], "INSUFFICIENT_HISTORY") << unsized.dump(2);
    json bad = cli_json({"scale", json{{"allocation_id", id}, {"direction", "sideways"}}.dump()}, 1);
    EXPECT_EQ(bad["error"]["code"], "INVALID_REQUEST") << bad.dump(2);
    json both = cli_json({"scale", json{{"allocation_id", id}, {"workflow_id", "wf-scale"}, {"direction", "up"}}.dump()}, 1);
    EXPECT_EQ(both["error"]["code"], "INVALID_REQUEST") << both.dump(2);
}
