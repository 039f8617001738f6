// agent/history owns the node's memory of what ran: monitoring/history.db under the state
// directory, a SQLite database (WAL mode, one writer: resmgrd's loop). It keeps
//   - samples: one value per series per sampling pass ("node/cpu_percent",
//     "alloc/<id>/memory_bytes", ...), kept raw for 48 h, rolled up into 5-minute buckets
//     (count, min, mean, max, p95) kept 90 days and 1-hour buckets kept 2 years (for a series
//     imported from a CSV: counted back from its newest bucket, not from now);
//   - runs: one analytics::RunRecord per ended allocation (what it asked for, what it used, how
//     it ended), which `usage` shows and the recommender learns from.
// SQLite rather than more JSONL: the rollups, retention and "the runs of type T since t" are
// indexed queries, and a crash mid-write loses at most the last transaction, never the file.
// Every failure is a HistoryError naming the file; callers keep enforcing without history.
// May call: analytics (the run record), model. Never the lifecycle or the server.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "analytics/run_record.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace resmgr::history {

struct HistoryError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Point {
    std::string series;
    double value = 0;
};

// One bucket of a series; at raw resolution count is 1 and min = mean = max = p95 = the value.
struct Bucket {
    std::int64_t ts = 0; // seconds since the epoch, the bucket's start
    std::int64_t count = 0;
    double min = 0, mean = 0, max = 0, p95 = 0;
};

enum class Resolution : std::int64_t { raw = 0, five_minutes = 300, one_hour = 3600 };

struct Retention {
    std::chrono::seconds raw{48 * 3600};
    std::chrono::seconds five_minutes{90 * 86400};
    std::chrono::seconds one_hour{730 * 86400};
};

struct RunQuery {
    std::optional<std::uint32_t> owner_uid; // nullopt: any owner
    std::string workflow_id;                // empty: any
    std::string workflow_type;              // empty: any
    std::int64_t since = 0;                 // ended at or after
    std::size_t limit = 1000;               // newest first
};

struct Footprint {
    std::int64_t raw_rows = 0, rollup_rows = 0, runs = 0, series = 0;
    std::int64_t file_bytes = 0; // the database and its WAL
};

// read_only: for tools that study a database copied off a node (bench_predict, bench_rightsizing):
// the file must exist and is never written (no schema, no journal mode change); writes throw.
// second_writer: another connection of a process that holds the file open read_write already
// (History's run writer): no integrity check and no schema (that open did both), and a busy
// timeout of 1 s (its thread may wait; the loop's connection waits at most 200 ms).
enum class Access { read_write, read_only, second_writer };

class HistoryStore {
public:
    // Opens (creating, when read_write) the database at `path`. HistoryError when it cannot be
    // opened, is not a history database, or fails SQLite's quick integrity check.
    explicit HistoryStore(const std::string& path, Retention retention = {}, Access access = Access::read_write);
    // Whether this SQLite allows connections on several threads (sqlite3_threadsafe).
    static bool threads_supported();
    ~HistoryStore();
    HistoryStore(const HistoryStore&) = delete;
    HistoryStore& operator=(const HistoryStore&) = delete;

    const std::string& path() const { return path_; }

    // One sampling pass, in one transaction: `produce` calls its argument once per point. Points
    // are handed over one at a time, their names as views: a pass at 10,000 allocations is 40,000
    // points, and a vector of them with a string each was ~5 MB allocated and freed at every pass.
    using AddPoint = std::function<void(std::string_view series, double value)>;
    void add_samples(std::int64_t ts, const std::function<void(const AddPoint&)>& produce);
    void add_samples(std::int64_t ts, const std::vector<Point>& points);
    // Rolls the completed 5-minute and 1-hour buckets up from the raw samples and drops what
    // retention says is old. Cheap when no bucket has completed since the last call.
    void maintain(std::int64_t now);
    // A series at one resolution over [since, until), oldest first.
    std::vector<Bucket> series(const std::string& name, Resolution resolution, std::int64_t since, std::int64_t until) const;
    // Names of the series that start with `prefix`.
    std::vector<std::string> series_names(const std::string& prefix) const;

    // Records an ended run (replacing one of the same allocation id).
    void add_run(const analytics::RunRecord& run) { add_runs({run}); }
    // In one transaction: all or none.
    void add_runs(const std::vector<analytics::RunRecord>& runs);
    // A wrapper's exit status arrived after the run was recorded (its group emptied first).
    void set_run_exit(const std::string& allocation_id, int exit_code);
    std::vector<analytics::RunRecord> runs(const RunQuery& query) const;

    // CSV read by analytics::read_series_csv: "timestamp,value" first on each row (more columns
    // ignored, a header line allowed); timestamps in ISO 8601 / RFC 3339 or seconds since the
    // epoch. All rows or none: a bad row is a HistoryError naming its line.
    std::size_t import_csv(std::istream& in, const std::string& series);
    // "series,timestamp,value" rows of the raw samples since `since`, oldest first.
    void export_csv(std::ostream& out, std::int64_t since) const;

    Footprint footprint() const;

private:
    std::int64_t series_id(std::string_view name);
    void roll_up(Resolution resolution, std::int64_t from, std::int64_t to);
    void exec(const char* sql) const;
    [[noreturn]] void fail(const std::string& what) const;
    // A statement prepared once and kept until the store closes (reset after each use): the run
    // insert comes at every release and the sample insert at every pass, and preparing is about
    // a third of what either costs. Keyed by the SQL literal's address.
    sqlite3_stmt* kept(const char* sql);

    std::string path_;
    Retention retention_;
    sqlite3* db_ = nullptr;
    std::map<std::string, std::int64_t, std::less<>> series_ids_;
    std::map<const char*, sqlite3_stmt*> kept_;
    std::int64_t rolled_until_5m_ = 0, rolled_until_1h_ = 0;
};

} // namespace resmgr::history
