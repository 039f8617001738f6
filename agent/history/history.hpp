// The history as resmgrd runs it: the store when its database opened, else the reason it did
// not. History is never a reason to stop admitting: a write that fails is logged (at most once a
// minute, with the count of failures since) and enforcement goes on. doctor shows status().
// May call: history_store, analytics, model.
#pragma once

#include <chrono>
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

    bool available() const { return store_ != nullptr; }
    const std::string& problem() const { return problem_; }
    // Null when unavailable; for queries (a failed query is the caller's HistoryError).
    const HistoryStore* store() const { return store_.get(); }
    HistoryStore* store() { return store_.get(); }

    // Writes that never throw.
    void record_samples(std::int64_t ts, const std::vector<Point>& points);
    void maintain(std::int64_t now);
    void record_run(const analytics::RunRecord& run);
    void record_exit(const std::string& allocation_id, int exit_code);

    nlohmann::json status() const;

private:
    template <class Write> void guarded(const char* what, Write write);

    std::string path_;
    std::unique_ptr<HistoryStore> store_;
    std::string problem_;  // why it is off, or the last write failure
    std::uint64_t failures_ = 0, unreported_ = 0;
    std::chrono::steady_clock::time_point last_report_{};
};

} // namespace resmgr::history
