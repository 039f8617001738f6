// The history as resmgrd runs it: the store when its database opened, else the reason it did
// not. History is never a reason to stop admitting: a write that fails is logged (at most once a
// minute, with the count of failures since) and enforcement goes on. doctor shows status().
// May call: history_store, analytics, model.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "history/history_store.hpp"

namespace resmgr::history {

// [since, since + span) cut into `points` equal slots, each the mean of the buckets' means whose
// start falls in it (nullopt: none); buckets outside the window are left out. Pure.
std::vector<std::optional<double>> slot_means(const std::vector<Bucket>& buckets, std::int64_t since, std::int64_t span, std::size_t points);

// A run record as the operations show it; unmeasured figures are null.
nlohmann::json to_json(const analytics::RunRecord& run);

class History {
public:
    // Opens `path`; on failure the history is off and problem() says why (by file name).
    explicit History(const std::string& path);

    ~History();
    History(const History&) = delete;
    History& operator=(const History&) = delete;

    bool available() const { return store_ != nullptr; }
    std::string problem() const;
    // Null when unavailable; for queries (a failed query is the caller's HistoryError). Run
    // records still queued (below) are written first, so every query sees them.
    const HistoryStore* store() const;
    HistoryStore* store();

    // Writes that never throw.
    void record_samples(std::int64_t ts, const std::function<void(const HistoryStore::AddPoint&)>& produce);
    void maintain(std::int64_t now);
    void record_run(const analytics::RunRecord& run);
    void record_exit(const std::string& allocation_id, int exit_code);

    // Run records written by a thread of their own, on a connection of its own (resmgrd): the
    // releases of a moment (kGather) share one transaction, and the loop waits on no SQLite write
    // (the runs' batched writes in its idle turns were 8.7 % of its CPU under 16 busy clients).
    // A query and an exit status first wait until what is queued is written (at most kMaxWait),
    // so none misses a run; a batch is written at kMaxBatch without waiting out the gathering;
    // past kMaxQueuedRuns queued (a database locked from outside) a run is lost and counted, never
    // waited for. Without it (the default), and after write_runs_in_foreground (which writes what
    // is queued first), each run is written at once. Falls back to that when the writer's
    // connection cannot open.
    static constexpr std::size_t kMaxBatch = 256;
    static constexpr std::size_t kMaxQueuedRuns = 16384;
    static constexpr std::chrono::milliseconds kGather{10}, kMaxWait{1000};
    void write_runs_in_background();
    void write_runs_in_foreground();
    // Transactions the writer has committed (tests: runs recorded together share one).
    std::uint64_t run_batches() const;

    nlohmann::json status() const;

private:
    // Runs `write` on `store`; a failure is counted and logged (at most once a minute).
    template <class Write> void guarded(HistoryStore& store, const char* what, Write write) const;
    // A write that failed (or a run dropped): counted in write_failures, logged once a minute.
    void count_failure(const char* what, const std::string& why) const;
    // One transaction for `runs`; when the database refuses it, each run on its own.
    void write_runs(HistoryStore& store, const std::vector<analytics::RunRecord>& runs) const;
    // Until nothing is queued or being written (the writer is hurried past its gathering).
    void wait_written() const;
    void run_writer();

    std::string path_;
    std::unique_ptr<HistoryStore> store_;
    // Failures, from the loop's writes and the run writer's (under failures_mutex_).
    mutable std::mutex failures_mutex_;
    mutable std::string problem_; // why it is off, or the last write failure
    mutable std::uint64_t failures_ = 0, unreported_ = 0;
    mutable std::chrono::steady_clock::time_point last_report_{};

    // The run writer's, shared with the loop under mutex_.
    std::unique_ptr<HistoryStore> writer_store_;
    mutable std::mutex mutex_;
    mutable std::condition_variable wake_, written_;
    std::vector<analytics::RunRecord> queued_;
    bool writing_ = false, stopping_ = false;
    mutable bool hurry_ = false;
    std::uint64_t batches_ = 0;
    std::thread writer_;
};

} // namespace resmgr::history
