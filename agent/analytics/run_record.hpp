// What one finished run of a workflow used: the unit the history store keeps and the analytics
// (recommender, predict) learn from. Plain data, no I/O; the history store (agent/history) writes
// and reads these, the lifecycle fills one when an allocation ends.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace resmgr::analytics {

enum class RunOutcome { completed, failed, oom_killed, expired, released };

struct RunRecord {
    std::string allocation_id;
    std::string workflow_id;
    std::string workflow_type; // empty when the allocation gave none
    uint32_t owner_uid = 0;
    int priority = 0;
    // What was asked for.
    double requested_cpu_cores = 0;
    uint64_t requested_memory_bytes = 0;
    // Wall-clock span, seconds since the epoch.
    int64_t started_at = 0;
    int64_t ended_at = 0;
    // The group's life measured to the microsecond (a job of 1.4 s is not 1 s or 2 s); nullopt:
    // only the whole seconds above are known.
    std::optional<double> wall_seconds;
    RunOutcome outcome = RunOutcome::completed;
    std::optional<int> exit_code;
    // What was measured; nullopt = not measured on this host (never a made-up zero).
    std::optional<double> cpu_seconds;            // cpu.stat usage_usec / 1e6
    std::optional<uint64_t> memory_peak_bytes;    // memory.peak, else the highest sample
    std::optional<double> throttled_seconds;      // cpu.stat throttled_usec / 1e6
    std::optional<uint64_t> oom_kills;            // memory.events oom_kill
    std::optional<uint64_t> execs;                // eBPF exec count
    std::optional<double> runq_latency_p50_us;    // eBPF run-queue latency
    std::optional<double> runq_latency_p99_us;
    std::string tool_counts_json;                 // {"bash": 3, ...} from eBPF, "" if none

    double duration_seconds() const { return wall_seconds ? *wall_seconds : static_cast<double>(ended_at - started_at); }
};

const char* to_string(RunOutcome outcome);
std::optional<RunOutcome> run_outcome_from_string(const std::string& text);

// A wrapper's exit status, reported after the run ended: a nonzero one turns "completed" (its
// group emptied) into "failed"; an OOM kill, an expiry or a release stays what it was. The history
// store's UPDATE for a run already written (HistoryStore::set_run_exit) says the same in SQL.
void set_exit(RunRecord& run, int exit_code);

} // namespace resmgr::analytics
