// Run records from ended allocations (see run_records.hpp).
#include "lifecycle/run_records.hpp"

#include <chrono>

namespace resmgr::lifecycle {
namespace {

using nlohmann::json;

std::int64_t epoch_seconds(TimePoint t) { return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count(); }

template <class T> std::optional<T> number_at(const json& j, const json::json_pointer& where) {
    if (!j.contains(where)) return std::nullopt;
    const json& v = j.at(where);
    if (!v.is_number()) return std::nullopt;
    return v.get<T>();
}

bool starts_with(const std::string& text, const char* prefix) { return text.rfind(prefix, 0) == 0; }

} // namespace

analytics::RunRecord run_record_of(const Allocation& ended, const std::string& reason, const json& counters, TimePoint ended_at) {
    using analytics::RunOutcome;
    analytics::RunRecord r;
    r.allocation_id = ended.allocation_id;
    r.workflow_id = ended.workflow_id;
    r.workflow_type = ended.workflow_type;
    r.owner_uid = ended.owner.uid;
    r.priority = ended.priority.value;
    r.requested_cpu_cores = ended.resources.cpu_cores;
    r.requested_memory_bytes = ended.resources.memory_bytes;
    r.started_at = epoch_seconds(ended.timestamp);
    r.ended_at = epoch_seconds(ended_at);
    r.wall_seconds = std::chrono::duration<double>(ended_at - ended.timestamp).count();

    r.oom_kills = number_at<std::uint64_t>(counters, "/oom_kills"_json_pointer);
    r.cpu_seconds = number_at<double>(counters, "/usage/cpu_seconds"_json_pointer);
    // memory.peak where the kernel keeps it; else the highest memory.current a sampling pass saw.
    r.memory_peak_bytes = number_at<std::uint64_t>(counters, "/usage/memory_peak_bytes"_json_pointer);
    if (!r.memory_peak_bytes) r.memory_peak_bytes = number_at<std::uint64_t>(counters, "/usage/memory_peak_sampled_bytes"_json_pointer);
    if (auto throttled = number_at<double>(counters, "/usage/throttled_usec"_json_pointer)) r.throttled_seconds = *throttled / 1e6;
    r.execs = number_at<std::uint64_t>(counters, "/kernel/processes/execs"_json_pointer);
    r.runq_latency_p50_us = number_at<double>(counters, "/kernel/runq_latency/p50_us"_json_pointer);
    r.runq_latency_p99_us = number_at<double>(counters, "/kernel/runq_latency/p99_us"_json_pointer);
    if (auto it = counters.find("kernel"); it != counters.end() && it->is_object())
        if (auto tools = it->find("tool_instances_started"); tools != it->end() && tools->is_object()) r.tool_counts_json = tools->dump();

    if (r.oom_kills.value_or(0) > 0) r.outcome = RunOutcome::oom_killed; // its memory was too small, whatever the exit
    else if (starts_with(reason, "expired")) r.outcome = RunOutcome::expired;
    else if (starts_with(reason, "completed")) r.outcome = RunOutcome::completed;
    else if (starts_with(reason, "failed")) r.outcome = RunOutcome::failed;
    else r.outcome = RunOutcome::released;
    return r;
}

} // namespace resmgr::lifecycle
