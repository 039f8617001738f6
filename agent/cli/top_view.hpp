// `resmgr top`'s frame as a pure function: the daemon's answers (status, monitor system, usage
// per workflow), the sort key, the filter and the terminal's size in; the lines to show out.
// The terminal loop (top.cpp) only polls, reads keys and prints these lines.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/text.hpp"

namespace resmgr::cli {

// One poll of resmgrd: the `result` objects of its answers. Anything may be missing or of the
// wrong shape (an older daemon, a failed call): what is not there is shown as "–".
struct TopSnapshot {
    nlohmann::json status = nlohmann::json::object();  // `status`
    nlohmann::json monitor = nlohmann::json::object(); // `monitor system`
    std::map<std::string, nlohmann::json> usage;       // `usage WORKFLOW`, by workflow id
    std::string problem;                               // why the last poll failed; "" when it did not
};

enum class SortKey { cpu, memory, priority };
const char* to_string(SortKey key);

struct TopOptions {
    SortKey sort = SortKey::cpu;
    std::string filter;                 // workflow ids containing this (ignoring ASCII case)
    std::size_t width = 80;
    std::size_t height = 0;             // 0: every row (--once)
    bool colour = false;
    Charset charset = Charset::utf8;
    bool paused = false;
    bool keys = false;                  // the key help line at the bottom (live view)
    std::optional<std::string> prompt;  // the filter being typed, shown instead of the key help
};

// One allocation as top shows it; nullopt: resmgrd did not report it.
struct TopRow {
    std::string allocation_id, workflow_id, priority;
    int priority_value = 0;
    std::string state; // running, idle, paused, degraded, queued #N, reserved, expired
    std::optional<double> cpu_used;
    double cpu_allocated = 0; // 0: uncapped
    std::optional<double> memory_used;
    double memory_allocated = 0; // bytes; 0: uncapped
    std::optional<long long> pids, agents_live, tools_running;
    int agents_allocated = 0;
    std::optional<double> throttled_percent, runq_p99_us;
};

// The allocations of `snapshot` that pass the filter, in the order of the sort key (largest
// first; unknown values last; then by workflow and allocation id, so the order is stable).
std::vector<TopRow> top_rows(const TopSnapshot& snapshot, const TopOptions& options);

// The whole frame: node lines, the table, what is not measured here, the key line; at most
// `height` lines (when not 0), each at most `width` columns (escapes not counted).
std::vector<std::string> render_top(const TopSnapshot& snapshot, const TopOptions& options);

} // namespace resmgr::cli
