// The history as resmgrd runs it: the store when its database opened, else the reason it did
// not. History is never a reason to stop admitting: a write that fails is logged (at most once a
// minute, with the count of failures since) and enforcement goes on. doctor shows status().
// May call: history_store, analytics, model.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
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
    const std::string& problem() const { return problem_; }
    // Null when unavailable; for queries (a failed query is the caller's HistoryError). Run
    // records still waiting (defer_runs) are written first, so every query sees them.
    const HistoryStore* store() const;
    HistoryStore* store();

    // Writes that never throw.
    void record_samples(std::int64_t ts, const std::function<void(const HistoryStore::AddPoint&)>& produce);
    void maintain(std::int64_t now);
    void record_run(const analytics::RunRecord& run);
    void record_exit(const std::string& allocation_id, int exit_code);

    // Run records wait for `write_soon`'s moment (resmgrd: the loop's next idle turn) and are
    // written together in one transaction: one per release was most of the history's cost at
    // thousands of releases a second. Up to kMaxWaitingRuns wait; a query, an exit status and
    // the destructor write them first. Without it (the default), each is written at once.
    static constexpr std::size_t kMaxWaitingRuns = 256;
    void defer_runs(std::function<void()> write_soon);
    void write_waiting_runs() const;

    nlohmann::json status() const;

private:
    template <class Write> void guarded(const char* what, Write write) const;

    std::string path_;
    std::unique_ptr<HistoryStore> store_;
    // Failures and waiting runs change under const queries (store() const writes what waits).
    mutable std::string problem_;  // why it is off, or the last write failure
    mutable std::uint64_t failures_ = 0, unreported_ = 0;
    mutable std::chrono::steady_clock::time_point last_report_{};
    mutable std::vector<analytics::RunRecord> waiting_runs_;
    std::function<void()> write_soon_;
};

} // namespace resmgr::history
