// The history database: samples, rollups and retention, run records, CSV import/export, and a
// damaged or foreign file named in the error.
#include <gtest/gtest.h>

#include <thread>

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <sqlite3.h>

#include "history/history.hpp"
#include "history/history_store.hpp"
#include "tests_support.hpp"

namespace resmgr::history {
namespace {

constexpr std::int64_t kDay = 86400;
constexpr std::int64_t kT0 = 1'800'000'000; // a multiple of 3600: buckets start here

analytics::RunRecord run(const std::string& id, const std::string& type, std::int64_t ended) {
    analytics::RunRecord r;
    r.allocation_id = id;
    r.workflow_id = "wf-" + id;
    r.workflow_type = type;
    r.owner_uid = 1000;
    r.priority = 50;
    r.requested_cpu_cores = 2;
    r.requested_memory_bytes = 4 * kGiB;
    r.started_at = ended - 60;
    r.ended_at = ended;
    r.cpu_seconds = 42.5;
    r.memory_peak_bytes = 700u << 20;
    r.oom_kills = 0;
    r.tool_counts_json = R"({"bash":3})";
    return r;
}

TEST(HistoryStore, RollsSamplesUpIntoFiveMinuteAndHourBuckets) {
    TempDir dir;
    HistoryStore store((dir.path() / "history.db").string());
    // 20 values 1..20 in the first 5 minutes, 15 s apart.
    for (int i = 0; i < 20; ++i) store.add_samples(kT0 + i * 15, {{"node/cpu_percent", double(i + 1)}});
    store.add_samples(kT0 + 300, {{"node/cpu_percent", 100.0}});
    store.maintain(kT0 + 3600 + 1);
    auto five = store.series("node/cpu_percent", Resolution::five_minutes, kT0, kT0 + 3600);
    ASSERT_EQ(five.size(), 2u);
    EXPECT_EQ(five[0].ts, kT0);
    EXPECT_EQ(five[0].count, 20);
    EXPECT_DOUBLE_EQ(five[0].min, 1);
    EXPECT_DOUBLE_EQ(five[0].max, 20);
    EXPECT_DOUBLE_EQ(five[0].mean, 10.5);
    EXPECT_DOUBLE_EQ(five[0].p95, 19); // nearest rank: ceil(0.95 * 20) = 19th
    EXPECT_EQ(five[1].count, 1);
    auto hour = store.series("node/cpu_percent", Resolution::one_hour, kT0, kT0 + 7200);
    ASSERT_EQ(hour.size(), 1u);
    EXPECT_EQ(hour[0].count, 21);
    EXPECT_DOUBLE_EQ(hour[0].max, 100);
    EXPECT_EQ(store.series("node/cpu_percent", Resolution::raw, kT0, kT0 + 7200).size(), 21u);
}

TEST(HistoryStore, RetentionDropsRawAfter48HoursAndKeepsRollups) {
    TempDir dir;
    HistoryStore store((dir.path() / "history.db").string());
    store.add_samples(kT0, {{"alloc/a/cpu_cores", 1.5}, {"node/memory_percent", 40}});
    store.maintain(kT0 + 600);
    EXPECT_EQ(store.footprint().raw_rows, 2);
    store.maintain(kT0 + 2 * kDay + 601);
    EXPECT_EQ(store.footprint().raw_rows, 0);
    EXPECT_EQ(store.series("alloc/a/cpu_cores", Resolution::five_minutes, 0, kT0 + kDay).size(), 1u);
    store.maintain(kT0 + 91 * kDay);
    EXPECT_TRUE(store.series("alloc/a/cpu_cores", Resolution::five_minutes, 0, kT0 + kDay).empty());
    EXPECT_EQ(store.series("alloc/a/cpu_cores", Resolution::one_hour, 0, kT0 + kDay).size(), 1u);
    store.maintain(kT0 + 731 * kDay);
    EXPECT_EQ(store.footprint().rollup_rows, 0);
    EXPECT_EQ(store.footprint().series, 0); // nothing left: the series rows go too
}

TEST(HistoryStore, ImportedSeriesOlderThanRetentionSurviveMaintenance) {
    TempDir dir;
    const auto path = (dir.path() / "history.db").string();
    const std::int64_t old = kT0 - 4 * 365 * kDay; // a trace from years before "now"
    std::ostringstream rows;
    rows << "timestamp,value\n";
    for (int i = 0; i < 24 * 12; ++i) rows << old + i * 300 << ',' << i % 12 << '\n';
    {
        HistoryStore store(path);
        std::istringstream csv(rows.str());
        ASSERT_EQ(store.import_csv(csv, "imported/trace"), 288u);
        store.add_samples(old, {{"node/cpu_percent", 5}}); // a live series as old: retention applies
        store.maintain(kT0);
    }
    HistoryStore store(path); // the mark survives reopening
    store.maintain(kT0 + 2 * 3600 + 1);
    EXPECT_EQ(store.series("imported/trace", Resolution::five_minutes, old, old + kDay).size(), 288u);
    EXPECT_EQ(store.series("imported/trace", Resolution::one_hour, old, old + kDay).size(), 24u);
    EXPECT_TRUE(store.series("node/cpu_percent", Resolution::one_hour, 0, kT0).empty());
    EXPECT_EQ(store.series_names("imported/"), std::vector<std::string>{"imported/trace"});
    // Retention still holds inside the imported series, counted from its newest bucket.
    std::istringstream later("timestamp,value\n" + std::to_string(old + 100 * kDay) + ",1\n");
    store.import_csv(later, "imported/trace");
    store.maintain(kT0 + 3 * 3600 + 1);
    EXPECT_TRUE(store.series("imported/trace", Resolution::five_minutes, old, old + kDay).empty());
    EXPECT_EQ(store.series("imported/trace", Resolution::one_hour, old, old + kDay).size(), 24u);
}

TEST(HistoryStore, RollupProgressSurvivesReopening) {
    TempDir dir;
    const auto path = (dir.path() / "history.db").string();
    {
        HistoryStore store(path);
        store.add_samples(kT0, {{"node/cpu_percent", 10}});
        store.maintain(kT0 + 300);
    }
    HistoryStore store(path);
    store.add_samples(kT0 + 301, {{"node/cpu_percent", 30}});
    store.maintain(kT0 + 600);
    auto five = store.series("node/cpu_percent", Resolution::five_minutes, kT0, kT0 + 600);
    ASSERT_EQ(five.size(), 2u);
    EXPECT_EQ(five[0].count, 1); // not rolled twice
}

TEST(HistoryStore, RunsAreKeptAndQueriedByTypeAndWorkflow) {
    TempDir dir;
    const auto path = (dir.path() / "history.db").string();
    {
        HistoryStore store(path);
        store.add_run(run("a1", "build", kT0));
        store.add_run(run("a2", "build", kT0 + 10));
        auto test_run = run("a3", "test", kT0 + 20);
        test_run.cpu_seconds.reset(); // not measured: stays null, never zero
        test_run.outcome = analytics::RunOutcome::oom_killed;
        store.add_run(test_run);
        store.set_run_exit("a2", 2);
    }
    HistoryStore store(path); // survives a restart
    auto builds = store.runs({std::nullopt, "", "build", 0, 10});
    ASSERT_EQ(builds.size(), 2u);
    EXPECT_EQ(builds[0].allocation_id, "a2"); // newest first
    EXPECT_EQ(builds[0].outcome, analytics::RunOutcome::failed);
    EXPECT_EQ(builds[0].exit_code, 2);
    EXPECT_DOUBLE_EQ(*builds[1].cpu_seconds, 42.5);
    EXPECT_EQ(*builds[1].memory_peak_bytes, 700u << 20);
    EXPECT_EQ(builds[1].tool_counts_json, R"({"bash":3})");
    auto tests = store.runs({1000u, "wf-a3", "", 0, 10});
    ASSERT_EQ(tests.size(), 1u);
    EXPECT_FALSE(tests[0].cpu_seconds.has_value());
    EXPECT_EQ(tests[0].outcome, analytics::RunOutcome::oom_killed);
    EXPECT_TRUE(store.runs({0u, "", "", 0, 10}).empty()); // another owner's
}

// resmgrd writes run records on a thread of its own: the runs of a moment share one
// transaction, and nothing that asks for runs (or sets an exit status) can miss one still queued.
TEST(History, RunsWrittenInTheBackgroundShareTransactionsAndNoQueryMissesThem) {
    TempDir dir;
    const auto path = (dir.path() / "history.db").string();
    {
        History history(path);
        history.write_runs_in_background();
        for (int i = 0; i < 100; ++i) history.record_run(run("a" + std::to_string(i), "build", kT0 + i));
        const History& view = history; // the operations query through a const History
        EXPECT_EQ(view.store()->runs({std::nullopt, "", "build", 0, 1000}).size(), 100u); // a query waits for them
        // A tight loop's runs were gathered: far fewer transactions than runs (the gathering
        // window is 10 ms; only a recording thread stalled for that long between runs splits one).
        EXPECT_LE(history.run_batches(), 50u);
        history.record_run(run("late", "build", kT0 + 200));
        history.record_exit("late", 3); // queued or being written: the status is not lost either way
        const auto late = history.store()->runs({std::nullopt, "wf-late", "", 0, 10}).at(0);
        EXPECT_EQ(late.exit_code, 3);
        EXPECT_EQ(late.outcome, resmgr::analytics::RunOutcome::failed);
        // An exit reported while its run is queued, gathered or being written, whichever the
        // moment: never lost.
        for (int i = 0; i < 32; ++i) {
            history.record_run(run("x" + std::to_string(i), "exit", kT0 + 200));
            std::this_thread::sleep_for(std::chrono::microseconds(i * 500));
            history.record_exit("x" + std::to_string(i), 5);
        }
        for (const auto& x : history.store()->runs({std::nullopt, "", "exit", 0, 100})) EXPECT_EQ(x.exit_code, 5) << x.allocation_id;
        history.record_exit("a3", 4); // a run written long ago is updated in the store, by the same rule
        const auto a3 = history.store()->runs({std::nullopt, "wf-a3", "", 0, 10}).at(0);
        EXPECT_EQ(a3.exit_code, 4);
        EXPECT_EQ(a3.outcome, resmgr::analytics::RunOutcome::failed);
        // Many batches' worth at once: none lost.
        for (std::size_t i = 0; i < 3 * History::kMaxBatch; ++i) history.record_run(run("b" + std::to_string(i), "lint", kT0 + 300));
        history.record_run(run("last", "build", kT0 + 400));
        // The destructor writes what is still queued.
    }
    HistoryStore store(path);
    EXPECT_EQ(store.runs({std::nullopt, "", "build", 0, 1000}).size(), 102u);
    EXPECT_EQ(store.runs({std::nullopt, "", "lint", 0, 10000}).size(), 3 * History::kMaxBatch);
    EXPECT_EQ(store.runs({std::nullopt, "wf-late", "", 0, 10}).at(0).exit_code, 3);
}

// A database locked from outside (a person's sqlite3 shell) stops the writer, never the loop:
// past kMaxQueuedRuns a run is lost and counted, and the rest are written once the lock goes.
TEST(History, ALockedDatabaseCostsRunsPastTheQueueNeverAWait) {
    TempDir dir;
    const auto path = (dir.path() / "history.db").string();
    History history(path);
    history.write_runs_in_background();
    sqlite3* shell = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &shell), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(shell, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
    // Twice what the queue holds: the batch the writer took before it blocked is at most a few
    // hundred, so at least kMaxQueuedRuns minus that are lost.
    const std::size_t recorded = 2 * History::kMaxQueuedRuns;
    for (std::size_t i = 0; i < recorded; ++i) history.record_run(run("r" + std::to_string(i), "build", kT0));
    ASSERT_EQ(sqlite3_exec(shell, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(shell);
    const auto written = history.store()->runs({std::nullopt, "", "build", 0, 100000}).size();
    const auto lost = history.status()["write_failures"].get<std::size_t>();
    EXPECT_GE(lost, 1u) << "the queue never overflowed";
    EXPECT_EQ(written + lost, recorded);
    EXPECT_NE(history.status()["problem"].get<std::string>().find("behind"), std::string::npos) << history.status().dump();
}

// One run the database refuses (a NaN requested size binds as NULL into a NOT NULL column) rolls
// back the batch it waited in; the others are written one by one, and only it is lost and counted.
TEST(History, ARefusedRunLosesOnlyItselfNotItsBatch) {
    TempDir dir;
    const auto path = (dir.path() / "history.db").string();
    History history(path);
    history.write_runs_in_background();
    auto refused = run("bad", "build", kT0 + 10);
    refused.requested_cpu_cores = std::numeric_limits<double>::quiet_NaN();
    history.record_run(run("a1", "build", kT0));
    history.record_run(refused);
    history.record_run(run("a2", "build", kT0 + 20));
    const auto runs = history.store()->runs({std::nullopt, "", "build", 0, 10});
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_EQ(history.status()["write_failures"], 1);
    EXPECT_NE(history.status()["problem"].get<std::string>().find("NOT NULL"), std::string::npos) << history.status().dump();
}

TEST(HistoryStore, ImportsCsvWithHeaderIsoAndEpochTimesIgnoringExtraColumns) {
    TempDir dir;
    HistoryStore store((dir.path() / "history.db").string());
    std::istringstream csv("timestamp,value,label\n2027-01-15T11:30:00Z,12.5\n1800000000,7,x\n\n1800000060.5, 9 \n2027-01-15 12:00:00,3\n");
    EXPECT_EQ(store.import_csv(csv, "node/cpu_percent"), 4u);
    auto raw = store.series("node/cpu_percent", Resolution::raw, 0, kT0 + kDay);
    ASSERT_EQ(raw.size(), 4u);
    EXPECT_EQ(raw.back().ts, kT0 + 4 * 3600); // a time without a zone is UTC
    // Old imported data is rolled up at once, whatever the raw retention does later.
    EXPECT_EQ(store.series("node/cpu_percent", Resolution::five_minutes, kT0, kT0 + 300).at(0).count, 2);
    std::ostringstream out;
    store.export_csv(out, 0);
    EXPECT_NE(out.str().find("node/cpu_percent,1800000000,7\n"), std::string::npos);
}

TEST(HistoryStore, MalformedCsvNamesTheLineAndImportsNothing) {
    TempDir dir;
    HistoryStore store((dir.path() / "history.db").string());
    for (const char* bad : {"1800000000,1\n1800000060,abc\n", "1800000000,1\nnot-a-time,3\n", "1800000000\n",
                            "1800000000,1\n1800000060,nan\n", "1800000000,1\n99999999999,1\n", "1800000000,1\n1800000060,1e999\n"}) {
        std::istringstream csv(bad);
        try {
            store.import_csv(csv, "node/cpu_percent");
            ADD_FAILURE() << "imported " << bad;
        } catch (const HistoryError& e) {
            EXPECT_NE(std::string(e.what()).find("line "), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("nothing was imported"), std::string::npos) << e.what();
        }
        EXPECT_EQ(store.footprint().raw_rows, 0) << bad;
    }
}

TEST(HistoryStore, ReadOnlyReadsRunsAndNeverWrites) {
    TempDir dir;
    const auto path = (dir.path() / "history.db").string();
    {
        HistoryStore store(path);
        store.add_run(run("a1", "build", kT0));
    }
    const auto size = std::filesystem::file_size(path);
    HistoryStore store(path, {}, Access::read_only);
    auto runs = store.runs({std::nullopt, "", "build", 0, 10});
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].allocation_id, "a1");
    EXPECT_THROW(store.add_run(run("a2", "build", kT0 + 10)), HistoryError);
    EXPECT_EQ(std::filesystem::file_size(path), size);
    // Never creates: a missing file, or an SQLite file that is no history, is named.
    EXPECT_THROW(HistoryStore((dir.path() / "missing.db").string(), {}, Access::read_only), HistoryError);
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "missing.db"));
    std::ofstream(dir.path() / "empty.db").close();
    try {
        HistoryStore empty((dir.path() / "empty.db").string(), {}, Access::read_only);
        FAIL() << "an empty file read as a history database";
    } catch (const HistoryError& e) {
        EXPECT_NE(std::string(e.what()).find("empty.db"), std::string::npos) << e.what();
    }
}

TEST(HistoryStore, AForeignOrDamagedFileIsNamed) {
    TempDir dir;
    const auto path = (dir.path() / "history.db").string();
    std::ofstream(path) << "this is not a database, it is a text file that someone put here by mistake\n";
    try {
        HistoryStore store(path);
        FAIL() << "opened a text file";
    } catch (const HistoryError& e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    try {
        HistoryStore store((dir.path() / "missing-dir" / "history.db").string());
        FAIL() << "opened a file in a missing directory";
    } catch (const HistoryError& e) {
        EXPECT_NE(std::string(e.what()).find("missing-dir"), std::string::npos) << e.what();
    }
}

TEST(HistoryStore, CorruptPagesFailTheCheckByName) {
    TempDir dir;
    const auto path = (dir.path() / "history.db").string();
    {
        HistoryStore store(path);
        for (int i = 0; i < 2000; ++i) store.add_samples(kT0 + i, {{"node/cpu_percent", double(i)}});
    }
    { // scribble over the middle of the file, past the header page
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(8192);
        const std::string junk(8192, '\x5a');
        f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    try {
        HistoryStore store(path);
        store.series("node/cpu_percent", Resolution::raw, 0, kT0 + 10000);
        FAIL() << "read a damaged database";
    } catch (const HistoryError& e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
}

} // namespace
} // namespace resmgr::history
