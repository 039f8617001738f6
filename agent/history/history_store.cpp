// The history database (see history_store.hpp).
#include "history/history_store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <istream>
#include <ostream>
#include <sstream>

#include "analytics/series_csv.hpp"
#include "resmgr/model.hpp"

namespace resmgr::history {
namespace {

constexpr int kSchemaVersion = 1;

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS samples(ts INTEGER NOT NULL, series INTEGER NOT NULL, value REAL NOT NULL,
                                   PRIMARY KEY(ts, series)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollups(resolution INTEGER NOT NULL, series INTEGER NOT NULL, ts INTEGER NOT NULL,
                                   count INTEGER NOT NULL, min REAL NOT NULL, mean REAL NOT NULL, max REAL NOT NULL,
                                   p95 REAL NOT NULL, PRIMARY KEY(resolution, series, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs(allocation_id TEXT PRIMARY KEY, workflow_id TEXT NOT NULL, workflow_type TEXT NOT NULL,
                                owner_uid INTEGER NOT NULL, priority INTEGER NOT NULL, requested_cpu REAL NOT NULL,
                                requested_memory INTEGER NOT NULL, started_at INTEGER NOT NULL, ended_at INTEGER NOT NULL,
                                outcome TEXT NOT NULL, exit_code INTEGER, cpu_seconds REAL, memory_peak INTEGER,
                                throttled_seconds REAL, oom_kills INTEGER, execs INTEGER, runq_p50_us REAL, runq_p99_us REAL,
                                tool_counts TEXT NOT NULL, wall_seconds REAL);
CREATE INDEX IF NOT EXISTS runs_by_type ON runs(workflow_type, ended_at);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs(workflow_id, ended_at);
CREATE TABLE IF NOT EXISTS imported(series INTEGER PRIMARY KEY);
)sql";

// A prepared statement, finalized on scope exit; bind(...) then step(). One made from a kept
// statement (HistoryStore::kept) is only reset on scope exit.
class Statement {
public:
    Statement(sqlite3* db, const char* sql) : db_(db) {
        if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) throw HistoryError(sqlite3_errmsg(db));
    }
    Statement(sqlite3* db, sqlite3_stmt* kept) : db_(db), stmt_(kept), kept_(true) {}
    ~Statement() {
        if (kept_) reset();
        else sqlite3_finalize(stmt_);
    }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int i, std::int64_t v) { return check(sqlite3_bind_int64(stmt_, i, v)); }
    Statement& bind(int i, double v) { return check(sqlite3_bind_double(stmt_, i, v)); }
    Statement& bind(int i, std::string_view v) {
        return check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    }
    template <class T> Statement& bind(int i, const std::optional<T>& v) {
        if (!v) return check(sqlite3_bind_null(stmt_, i));
        if constexpr (std::is_floating_point_v<T>) return bind(i, static_cast<double>(*v));
        else return bind(i, static_cast<std::int64_t>(*v));
    }
    // True while a row is there to read.
    bool step() {
        int rc = sqlite3_step(stmt_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        throw HistoryError(sqlite3_errmsg(db_));
    }
    void reset() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }
    std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
    double real(int col) const { return sqlite3_column_double(stmt_, col); }
    std::string text(int col) const {
        auto* p = sqlite3_column_text(stmt_, col);
        return p ? reinterpret_cast<const char*>(p) : "";
    }
    bool null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

private:
    Statement& check(int rc) {
        if (rc != SQLITE_OK) throw HistoryError(sqlite3_errmsg(db_));
        return *this;
    }
    sqlite3* db_;
    sqlite3_stmt* stmt_ = nullptr;
    bool kept_ = false;
};

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double>& sorted, double p) {
    const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
    return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

} // namespace

HistoryStore::HistoryStore(const std::string& path, Retention retention, Access access) : path_(path), retention_(retention) {
    const bool writable = access != Access::read_only;
    const int flags = (writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY) | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
        std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        db_ = nullptr;
        throw HistoryError("history database " + path + ": " + why);
    }
    try {
        const bool first = access != Access::second_writer; // the second finds all the file's settings made
        // Another process holding a write lock (a person's sqlite3 shell) waits at most this long.
        sqlite3_busy_timeout(db_, first ? 200 : 1000);
        if (first) {
            Statement check(db_, "PRAGMA quick_check");
            if (check.step() && check.text(0) != "ok") fail("damaged: " + check.text(0));
        }
        if (writable) {
            if (first) exec("PRAGMA journal_mode=WAL"); // the file's; the rest below are each connection's
            // WAL + NORMAL: a power cut can lose the last transactions, never corrupt the file;
            // history is not a promise made to a client, so it does not pay an fsync per pass.
            exec("PRAGMA synchronous=NORMAL");
            // A pass appends (the key is time first), so the writer needs few pages in its cache,
            // and reads of older pages come from the kernel's page cache. SQLite's default 2 MiB
            // filled with each pass's 10,000 groups and stayed in resmgrd's RSS (issue 12).
            exec("PRAGMA cache_size=-512");
        }
        if (writable && first) {
            exec(kSchema);
            Statement put(db_, "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)");
            put.bind(1, std::to_string(kSchemaVersion)).step();
        }
        Statement version(db_, "SELECT value FROM meta WHERE key = 'schema_version'");
        if (!version.step()) fail("not a history database (no schema version)");
        if (version.text(0) != std::to_string(kSchemaVersion))
            fail("schema version " + version.text(0) + ", this resmgrd knows " + std::to_string(kSchemaVersion));
        Statement rolled(db_, "SELECT key, value FROM meta WHERE key IN ('rolled_until_300', 'rolled_until_3600')");
        while (rolled.step()) (rolled.text(0) == "rolled_until_300" ? rolled_until_5m_ : rolled_until_1h_) = std::stoll(rolled.text(1));
    } catch (const HistoryError& e) {
        sqlite3_close(db_);
        db_ = nullptr;
        const std::string what = e.what();
        throw HistoryError(what.rfind("history database ", 0) == 0 ? what : "history database " + path + ": " + what);
    } catch (const std::exception& e) { // stoll on a hand-edited meta row
        sqlite3_close(db_);
        db_ = nullptr;
        throw HistoryError("history database " + path + ": bad meta row: " + e.what());
    }
}

bool HistoryStore::threads_supported() { return sqlite3_threadsafe() != 0; }

HistoryStore::~HistoryStore() {
    for (auto& [sql, stmt] : kept_) sqlite3_finalize(stmt);
    sqlite3_close(db_);
}

sqlite3_stmt* HistoryStore::kept(const char* sql) {
    sqlite3_stmt*& stmt = kept_[sql];
    if (!stmt && sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
        std::string why = sqlite3_errmsg(db_);
        kept_.erase(sql);
        throw HistoryError(why);
    }
    return stmt;
}

void HistoryStore::fail(const std::string& what) const { throw HistoryError("history database " + path_ + ": " + what); }

void HistoryStore::exec(const char* sql) const {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
        std::string why = error ? error : "unknown error";
        sqlite3_free(error);
        fail(why);
    }
}

std::int64_t HistoryStore::series_id(std::string_view name) {
    if (auto it = series_ids_.find(name); it != series_ids_.end()) return it->second;
    Statement insert(db_, "INSERT OR IGNORE INTO series(name) VALUES (?)");
    insert.bind(1, name).step();
    Statement select(db_, "SELECT id FROM series WHERE name = ?");
    select.bind(1, name);
    if (!select.step()) fail("series " + std::string(name) + " vanished");
    return series_ids_[std::string(name)] = select.integer(0);
}

void HistoryStore::add_samples(std::int64_t ts, const std::function<void(const AddPoint&)>& produce) {
    try {
        exec("BEGIN IMMEDIATE");
        Statement insert(db_, kept("INSERT OR REPLACE INTO samples(series, ts, value) VALUES (?, ?, ?)"));
        produce([&](std::string_view series, double value) {
            if (!std::isfinite(value)) return;
            insert.bind(1, series_id(series)).bind(2, ts).bind(3, value).step();
            insert.reset();
        });
        exec("COMMIT");
    } catch (const HistoryError& e) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        series_ids_.clear(); // ids made inside the rolled-back transaction are gone
        fail(std::string("writing samples: ") + e.what());
    }
}

void HistoryStore::add_samples(std::int64_t ts, const std::vector<Point>& points) {
    add_samples(ts, [&](const AddPoint& add) {
        for (const auto& p : points) add(p.series, p.value);
    });
}

void HistoryStore::roll_up(Resolution resolution, std::int64_t from, std::int64_t to) {
    const auto step = static_cast<std::int64_t>(resolution);
    Statement select(db_, "SELECT series, ts, value FROM samples WHERE ts >= ? AND ts < ? ORDER BY series, ts");
    select.bind(1, from).bind(2, to);
    Statement insert(db_, "INSERT OR REPLACE INTO rollups(resolution, series, ts, count, min, mean, max, p95) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    std::int64_t series = -1, bucket = -1;
    std::vector<double> values;
    auto flush = [&] {
        if (values.empty()) return;
        std::sort(values.begin(), values.end());
        double sum = 0;
        for (double v : values) sum += v;
        insert.bind(1, step).bind(2, series).bind(3, bucket).bind(4, static_cast<std::int64_t>(values.size()))
            .bind(5, values.front()).bind(6, sum / static_cast<double>(values.size())).bind(7, values.back())
            .bind(8, percentile(values, 0.95)).step();
        insert.reset();
        values.clear();
    };
    while (select.step()) {
        const std::int64_t s = select.integer(0), b = select.integer(1) / step * step;
        if (s != series || b != bucket) {
            flush();
            series = s, bucket = b;
        }
        values.push_back(select.real(2));
    }
    flush();
}

void HistoryStore::maintain(std::int64_t now) {
    const std::int64_t end_5m = now / 300 * 300, end_1h = now / 3600 * 3600;
    if (end_5m <= rolled_until_5m_ && end_1h <= rolled_until_1h_) return;
    try {
        exec("BEGIN IMMEDIATE");
        Statement oldest(db_, "SELECT MIN(ts) FROM samples");
        const std::int64_t first = oldest.step() && !oldest.null(0) ? oldest.integer(0) : end_5m;
        Statement mark(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)");
        if (end_5m > rolled_until_5m_) {
            roll_up(Resolution::five_minutes, std::max(rolled_until_5m_, first / 300 * 300), end_5m);
            mark.bind(1, std::string("rolled_until_300")).bind(2, std::to_string(end_5m)).step();
            mark.reset();
        }
        // Once an hour: the hour's rollup, rollup retention and unused series. These scan whole
        // resolutions, so they run at the hour, not at every 5-minute bucket.
        const bool hourly = end_1h > rolled_until_1h_;
        if (hourly) {
            roll_up(Resolution::one_hour, std::max(rolled_until_1h_, first / 3600 * 3600), end_1h);
            mark.bind(1, std::string("rolled_until_3600")).bind(2, std::to_string(end_1h)).step();
        }
        Statement drop_raw(db_, "DELETE FROM samples WHERE ts < ?"); // a range of the (ts, series) key
        drop_raw.bind(1, now - retention_.raw.count()).step();
        if (hourly) {
            // Rollup retention counts back from now, except for an imported series: from its own
            // newest bucket, so a trace of 2014 imported today is not dropped at the next hour.
            // Once live samples join it, its newest bucket is now and the two agree.
            Statement drop_rollups(db_, "DELETE FROM rollups WHERE resolution = ?1 AND ts < CASE WHEN series IN (SELECT series FROM imported) "
                                        "THEN (SELECT MAX(r.ts) FROM rollups r WHERE r.resolution = ?1 AND r.series = rollups.series) - ?2 "
                                        "ELSE ?3 - ?2 END");
            drop_rollups.bind(1, std::int64_t{300}).bind(2, retention_.five_minutes.count()).bind(3, now).step();
            drop_rollups.reset();
            drop_rollups.bind(1, std::int64_t{3600}).bind(2, retention_.one_hour.count()).bind(3, now).step();
            // Series with nothing left (ended allocations, after retention): every sample before
            // the hour just rolled up is in an hourly bucket, so a series without one and without
            // a sample since is unused.
            Statement unused(db_, "DELETE FROM series WHERE id NOT IN (SELECT series FROM rollups WHERE resolution = 3600) "
                                  "AND id NOT IN (SELECT series FROM samples WHERE ts >= ?)");
            unused.bind(1, end_1h).step();
            exec("DELETE FROM imported WHERE series NOT IN (SELECT id FROM series)");
        }
        exec("COMMIT");
        rolled_until_5m_ = std::max(rolled_until_5m_, end_5m);
        rolled_until_1h_ = std::max(rolled_until_1h_, end_1h);
        if (hourly) series_ids_.clear(); // ids of deleted series must not be reused from the cache
    } catch (const HistoryError& e) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        series_ids_.clear();
        fail(std::string("rolling up: ") + e.what());
    }
}

std::vector<Bucket> HistoryStore::series(const std::string& name, Resolution resolution, std::int64_t since, std::int64_t until) const {
    std::vector<Bucket> out;
    if (resolution == Resolution::raw) {
        Statement q(db_, "SELECT s.ts, s.value FROM samples s JOIN series n ON n.id = s.series WHERE n.name = ? AND s.ts >= ? AND s.ts < ? ORDER BY s.ts");
        q.bind(1, name).bind(2, since).bind(3, until);
        while (q.step()) out.push_back({q.integer(0), 1, q.real(1), q.real(1), q.real(1), q.real(1)});
        return out;
    }
    Statement q(db_, "SELECT r.ts, r.count, r.min, r.mean, r.max, r.p95 FROM rollups r JOIN series n ON n.id = r.series "
                     "WHERE r.resolution = ? AND n.name = ? AND r.ts >= ? AND r.ts < ? ORDER BY r.ts");
    q.bind(1, static_cast<std::int64_t>(resolution)).bind(2, name).bind(3, since).bind(4, until);
    while (q.step()) out.push_back({q.integer(0), q.integer(1), q.real(2), q.real(3), q.real(4), q.real(5)});
    return out;
}

std::vector<std::string> HistoryStore::series_names(const std::string& prefix) const {
    Statement q(db_, "SELECT name FROM series WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name");
    q.bind(1, prefix);
    std::vector<std::string> out;
    while (q.step()) out.push_back(q.text(0));
    return out;
}

void HistoryStore::add_runs(const std::vector<analytics::RunRecord>& runs) {
    try {
        exec("BEGIN IMMEDIATE");
        Statement q(db_, kept("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        for (const auto& run : runs) {
            q.bind(1, run.allocation_id).bind(2, run.workflow_id).bind(3, run.workflow_type).bind(4, static_cast<std::int64_t>(run.owner_uid))
                .bind(5, static_cast<std::int64_t>(run.priority)).bind(6, run.requested_cpu_cores)
                .bind(7, static_cast<std::int64_t>(run.requested_memory_bytes)).bind(8, run.started_at).bind(9, run.ended_at)
                .bind(10, std::string(analytics::to_string(run.outcome))).bind(11, run.exit_code).bind(12, run.cpu_seconds)
                .bind(13, run.memory_peak_bytes).bind(14, run.throttled_seconds).bind(15, run.oom_kills).bind(16, run.execs)
                .bind(17, run.runq_latency_p50_us).bind(18, run.runq_latency_p99_us).bind(19, run.tool_counts_json).bind(20, run.wall_seconds);
            q.step();
            q.reset();
        }
        exec("COMMIT");
    } catch (const HistoryError& e) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        fail(std::string("recording ") + std::to_string(runs.size()) + " run(s): " + e.what());
    }
}

void HistoryStore::set_run_exit(const std::string& allocation_id, int exit_code) {
    try {
        // analytics::set_exit's rule: a nonzero exit turns a "completed" into "failed".
        Statement q(db_, "UPDATE runs SET exit_code = ?1, outcome = CASE WHEN ?1 != 0 AND outcome = 'completed' THEN 'failed' ELSE outcome END "
                         "WHERE allocation_id = ?2");
        q.bind(1, static_cast<std::int64_t>(exit_code)).bind(2, allocation_id).step();
    } catch (const HistoryError& e) {
        fail("recording the exit of " + allocation_id + ": " + e.what());
    }
}

std::vector<analytics::RunRecord> HistoryStore::runs(const RunQuery& query) const {
    Statement q(db_, "SELECT * FROM runs WHERE (?1 IS NULL OR owner_uid = ?1) AND (?2 = '' OR workflow_id = ?2) "
                     "AND (?3 = '' OR workflow_type = ?3) AND ended_at >= ?4 ORDER BY ended_at DESC, allocation_id LIMIT ?5");
    std::optional<std::int64_t> uid;
    if (query.owner_uid) uid = *query.owner_uid;
    q.bind(1, uid).bind(2, query.workflow_id).bind(3, query.workflow_type).bind(4, query.since)
        .bind(5, static_cast<std::int64_t>(query.limit));
    std::vector<analytics::RunRecord> out;
    auto opt_real = [&](int c) { return q.null(c) ? std::nullopt : std::optional<double>(q.real(c)); };
    auto opt_uint = [&](int c) { return q.null(c) ? std::nullopt : std::optional<std::uint64_t>(static_cast<std::uint64_t>(q.integer(c))); };
    while (q.step()) {
        analytics::RunRecord r;
        r.allocation_id = q.text(0);
        r.workflow_id = q.text(1);
        r.workflow_type = q.text(2);
        r.owner_uid = static_cast<std::uint32_t>(q.integer(3));
        r.priority = static_cast<int>(q.integer(4));
        r.requested_cpu_cores = q.real(5);
        r.requested_memory_bytes = static_cast<std::uint64_t>(q.integer(6));
        r.started_at = q.integer(7);
        r.ended_at = q.integer(8);
        r.outcome = analytics::run_outcome_from_string(q.text(9)).value_or(analytics::RunOutcome::released);
        if (!q.null(10)) r.exit_code = static_cast<int>(q.integer(10));
        r.cpu_seconds = opt_real(11);
        r.memory_peak_bytes = opt_uint(12);
        r.throttled_seconds = opt_real(13);
        r.oom_kills = opt_uint(14);
        r.execs = opt_uint(15);
        r.runq_latency_p50_us = opt_real(16);
        r.runq_latency_p99_us = opt_real(17);
        r.tool_counts_json = q.text(18);
        r.wall_seconds = opt_real(19);
        out.push_back(std::move(r));
    }
    return out;
}

std::size_t HistoryStore::import_csv(std::istream& in, const std::string& series) {
    std::vector<analytics::CsvSample> rows;
    try {
        rows = analytics::read_series_csv(in);
    } catch (const analytics::SeriesCsvError& e) {
        throw HistoryError(std::string(e.what()) + "; nothing was imported");
    }
    std::int64_t first = INT64_MAX, last = INT64_MIN;
    exec("BEGIN IMMEDIATE");
    try {
        const std::int64_t id = series_id(series);
        Statement mark(db_, "INSERT OR IGNORE INTO imported(series) VALUES (?)");
        mark.bind(1, id).step();
        Statement insert(db_, "INSERT OR REPLACE INTO samples(series, ts, value) VALUES (?, ?, ?)");
        for (const auto& row : rows) {
            insert.bind(1, id).bind(2, row.ts).bind(3, row.value).step();
            insert.reset();
            first = std::min(first, row.ts), last = std::max(last, row.ts);
        }
        // Imported history is usually older than the raw retention: its rollups are made now.
        if (!rows.empty()) {
            roll_up(Resolution::five_minutes, first / 300 * 300, last + 1);
            roll_up(Resolution::one_hour, first / 3600 * 3600, last + 1);
        }
        exec("COMMIT");
    } catch (const HistoryError& e) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        series_ids_.clear();
        throw HistoryError(std::string(e.what()) + "; nothing was imported");
    }
    return rows.size();
}

void HistoryStore::export_csv(std::ostream& out, std::int64_t since) const {
    Statement q(db_, "SELECT n.name, s.ts, s.value FROM samples s JOIN series n ON n.id = s.series WHERE s.ts >= ? ORDER BY s.ts, n.name");
    q.bind(1, since);
    out << "series,timestamp,value\n";
    while (q.step()) out << q.text(0) << ',' << q.integer(1) << ',' << q.real(2) << '\n';
}

Footprint HistoryStore::footprint() const {
    Footprint f;
    auto count = [&](const char* sql) {
        Statement q(db_, sql);
        return q.step() ? q.integer(0) : 0;
    };
    f.raw_rows = count("SELECT COUNT(*) FROM samples");
    f.rollup_rows = count("SELECT COUNT(*) FROM rollups");
    f.runs = count("SELECT COUNT(*) FROM runs");
    f.series = count("SELECT COUNT(*) FROM series");
    std::error_code ec;
    for (const char* suffix : {"", "-wal"}) {
        auto size = std::filesystem::file_size(path_ + suffix, ec);
        if (!ec) f.file_bytes += static_cast<std::int64_t>(size);
    }
    return f;
}

} // namespace resmgr::history
