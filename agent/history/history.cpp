// The history as resmgrd runs it (see history.hpp).
#include "history/history.hpp"

#include <spdlog/spdlog.h>

#include <cmath>
#include <system_error>

#include "resmgr/model.hpp"

namespace resmgr::history {

namespace {

template <class T> nlohmann::json or_null(const std::optional<T>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

std::string utc(std::int64_t epoch) { return format_timestamp(TimePoint(std::chrono::seconds(epoch))); }

} // namespace

std::vector<std::optional<double>> slot_means(const std::vector<Bucket>& buckets, std::int64_t since, std::int64_t span, std::size_t points) {
    std::vector<std::optional<double>> out(points);
    if (points == 0 || span <= 0) return out;
    std::vector<double> sum(points, 0.0);
    std::vector<std::int64_t> count(points, 0);
    for (const auto& b : buckets) {
        if (b.ts < since || b.ts >= since + span) continue;
        const auto slot = static_cast<std::size_t>((b.ts - since) * static_cast<std::int64_t>(points) / span);
        sum[slot] += b.mean;
        ++count[slot];
    }
    for (std::size_t i = 0; i < points; ++i)
        if (count[i]) out[i] = sum[i] / static_cast<double>(count[i]);
    return out;
}

nlohmann::json to_json(const analytics::RunRecord& run) {
    nlohmann::json tools = nullptr;
    if (!run.tool_counts_json.empty()) tools = nlohmann::json::parse(run.tool_counts_json, nullptr, false);
    if (tools.is_discarded()) tools = nullptr;
    const double duration = run.duration_seconds();
    nlohmann::json cores_mean = nullptr;
    if (run.cpu_seconds && duration > 0) cores_mean = std::round(*run.cpu_seconds / duration * 1000) / 1000;
    return {{"allocation_id", run.allocation_id},
            {"workflow_id", run.workflow_id},
            {"workflow_type", run.workflow_type.empty() ? nlohmann::json(nullptr) : nlohmann::json(run.workflow_type)},
            {"owner_uid", run.owner_uid},
            {"priority", run.priority},
            {"requested", {{"cpu_cores", run.requested_cpu_cores}, {"memory_bytes", run.requested_memory_bytes}}},
            {"started_at", utc(run.started_at)},
            {"ended_at", utc(run.ended_at)},
            {"duration_seconds", std::round(duration * 1000) / 1000},
            {"outcome", analytics::to_string(run.outcome)},
            {"exit_code", or_null(run.exit_code)},
            {"used", {{"cpu_seconds", or_null(run.cpu_seconds)}, {"cpu_cores_mean", cores_mean},
                      {"memory_peak_bytes", or_null(run.memory_peak_bytes)}, {"throttled_seconds", or_null(run.throttled_seconds)},
                      {"oom_kills", or_null(run.oom_kills)}, {"execs", or_null(run.execs)},
                      {"runq_latency_p50_us", or_null(run.runq_latency_p50_us)}, {"runq_latency_p99_us", or_null(run.runq_latency_p99_us)},
                      {"tool_instances_started", tools}}}};
}

History::History(const std::string& path) : path_(path) {
    try {
        store_ = std::make_unique<HistoryStore>(path);
    } catch (const HistoryError& e) {
        problem_ = e.what();
        spdlog::error("history is off, allocations are still enforced: {} (move the file away to start a new one)", problem_);
    }
}

History::~History() { write_runs_in_foreground(); }

std::string History::problem() const {
    std::lock_guard lock(failures_mutex_);
    return problem_;
}

const HistoryStore* History::store() const {
    wait_written();
    return store_.get();
}

HistoryStore* History::store() {
    wait_written();
    return store_.get();
}

void History::write_runs_in_background() {
    if (!store_ || writer_.joinable()) return;
    if (!HistoryStore::threads_supported()) {
        spdlog::warn("history: run records are written on the event loop: this SQLite is built without threads");
        return;
    }
    try {
        writer_store_ = std::make_unique<HistoryStore>(path_, Retention{}, Access::second_writer);
        stopping_ = false;
        writer_ = std::thread([this] { run_writer(); });
    } catch (const std::exception& e) { // HistoryError, or no thread: each run is written at once
        writer_store_.reset();
        spdlog::warn("history: run records are written on the event loop: {}", e.what());
    }
}

void History::write_runs_in_foreground() {
    if (!writer_.joinable()) return;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    writer_.join(); // it writes what is queued first
    writer_store_.reset();
}

std::uint64_t History::run_batches() const {
    std::lock_guard lock(mutex_);
    return batches_;
}

void History::run_writer() {
    std::unique_lock lock(mutex_);
    std::vector<analytics::RunRecord> batch;
    for (;;) {
        wake_.wait(lock, [this] { return stopping_ || !queued_.empty(); });
        if (queued_.empty()) return; // stopping, nothing left
        wake_.wait_for(lock, kGather, [this] { return stopping_ || hurry_ || queued_.size() >= kMaxBatch; });
        batch.swap(queued_);
        writing_ = true;
        hurry_ = false;
        lock.unlock();
        write_runs(*writer_store_, batch);
        batch.clear();
        lock.lock();
        writing_ = false;
        ++batches_;
        written_.notify_all();
    }
}

void History::wait_written() const {
    if (!writer_.joinable()) return;
    std::unique_lock lock(mutex_);
    if (queued_.empty() && !writing_) return;
    hurry_ = true;
    wake_.notify_one();
    // Bounded: a database locked from outside (a person's sqlite3 shell) must not stop the loop.
    // Past it the query goes on without the runs still queued.
    if (!written_.wait_for(lock, kMaxWait, [this] { return queued_.empty() && !writing_; }))
        spdlog::warn("history: the run writer is {} ms behind; this query may miss the latest runs", kMaxWait.count());
}

void History::write_runs(HistoryStore& store, const std::vector<analytics::RunRecord>& runs) const {
    try {
        store.add_runs(runs);
    } catch (const std::exception&) {
        // The batch is one transaction, so one run the database refuses (or a moment it was
        // busy) rolled back them all: each again on its own, so only what cannot be written is
        // lost, and each loss is counted in write_failures.
        for (const auto& run : runs) guarded(store, "a run record", [&](HistoryStore& s) { s.add_run(run); });
    }
}

template <class Write> void History::guarded(HistoryStore& store, const char* what, Write write) const {
    try {
        write(store);
    } catch (const std::exception& e) {
        count_failure(what, e.what());
    }
}

void History::count_failure(const char* what, const std::string& why) const {
    std::lock_guard lock(failures_mutex_);
    ++failures_, ++unreported_;
    problem_ = why;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_report_ >= std::chrono::minutes(1)) {
        spdlog::warn("history: {} not recorded ({} failure(s) since the last report): {}", what, unreported_, problem_);
        last_report_ = now;
        unreported_ = 0;
    }
}

void History::record_samples(std::int64_t ts, const std::function<void(const HistoryStore::AddPoint&)>& produce) {
    if (store_) guarded(*store_, "samples", [&](HistoryStore& s) { s.add_samples(ts, produce); });
}

void History::maintain(std::int64_t now) {
    if (store_) guarded(*store_, "rollups", [&](HistoryStore& s) { s.maintain(now); });
}

void History::record_run(const analytics::RunRecord& run) {
    if (!store_) return;
    if (!writer_.joinable()) {
        guarded(*store_, "a run record", [&](HistoryStore& s) { s.add_run(run); });
        return;
    }
    {
        std::lock_guard lock(mutex_);
        if (queued_.size() < kMaxQueuedRuns) {
            queued_.push_back(run);
            if (queued_.size() == 1) wake_.notify_one();
            return;
        }
    }
    // The writer is that far behind (the database locked from outside): the run is lost and
    // counted, and the loop goes on; history is never a reason to stop admitting.
    count_failure("a run record", "the run writer is behind by " + std::to_string(kMaxQueuedRuns) + " runs");
}

void History::record_exit(const std::string& allocation_id, int exit_code) {
    if (!store_) return;
    {
        // Its run still queued (a wrapper reports the exit in the release that ended the run):
        // the status goes into it, so the release's answer waits on no SQLite write.
        std::lock_guard lock(mutex_);
        for (auto& run : queued_)
            if (run.allocation_id == allocation_id) {
                analytics::set_exit(run, exit_code);
                return;
            }
    }
    wait_written(); // it may be in the batch being written
    guarded(*store_, "an exit status", [&](HistoryStore& s) { s.set_run_exit(allocation_id, exit_code); });
}

nlohmann::json History::status() const {
    nlohmann::json j{{"path", path_}, {"available", available()}};
    {
        std::lock_guard lock(failures_mutex_);
        j["write_failures"] = failures_;
        j["problem"] = problem_.empty() ? nlohmann::json(nullptr) : nlohmann::json(problem_);
    }
    if (store_) {
        try {
            auto f = store_->footprint();
            j["samples"] = f.raw_rows;
            j["rollups"] = f.rollup_rows;
            j["runs"] = f.runs;
            j["series"] = f.series;
            j["bytes"] = f.file_bytes;
        } catch (const std::exception& e) {
            j["problem"] = e.what();
        }
    }
    return j;
}

} // namespace resmgr::history
