// The seed's data model: priorities, resources, constraints, allocations, and the
// parsing of sizes and durations. Pure: no I/O. JSON (de)serialisation lives in json.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace resmgr {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;
using Seconds = std::chrono::seconds;
using Millis = std::chrono::milliseconds;

// Priority 0..100 in the seed's bands: critical 90-100, high 70-89, medium 40-69, low 0-39.
enum class PriorityBand { low, medium, high, critical };

struct Priority {
    int value = 50;
    PriorityBand band() const;
    std::string band_name() const;
    // "critical|high|medium|low" (the band's anchor: 95, 80, 50, 20) or an integer 0..100.
    static std::optional<Priority> parse(std::string_view text);
    static Priority of_band(PriorityBand band);
    friend auto operator<=>(const Priority&, const Priority&) = default;
};

std::string band_name(PriorityBand band);

struct Resources {
    double cpu_cores = 0;           // fractional cores; 0 means "no CPU cap"
    std::uint64_t memory_bytes = 0; // 0 means "no memory cap"
    int agents = 0;
    std::optional<std::uint64_t> pids; // resmgr extension: TasksMax / pids.max
    std::map<std::string, int> tool_instances;
    // Bytes of the allocation's temporary directory (the seed's storage_gb); 0 means "asks for
    // no storage": admitted against the temp root's free space, a project quota where it has one.
    std::uint64_t storage_bytes = 0;

    double memory_gb() const { return static_cast<double>(memory_bytes) / (1024.0 * 1024 * 1024); }
    double storage_gb() const { return static_cast<double>(storage_bytes) / (1024.0 * 1024 * 1024); }
};

struct Constraints {
    std::optional<Seconds> max_duration;
    std::vector<std::string> exclusive_access;
    std::vector<std::string> conflict_avoidance;
    // file_scope "cluster": every exclusive file is claimed across the nodes of the cluster (issue 17).
    bool cluster_files = false;
};

struct PerformanceRequirements {
    std::optional<Millis> min_response_time;
    std::optional<std::uint64_t> max_memory_per_agent_bytes;
    std::optional<std::uint64_t> storage_iops;
};

struct AutoRelease {
    bool on_completion = true;
    bool on_timeout = true;
    bool on_failure = true;
    Seconds grace_period = std::chrono::minutes(5);
};

enum class AllocationStatus { active, reserved, queued, paused, expired, released };
std::string to_string(AllocationStatus status);
std::optional<AllocationStatus> parse_status(std::string_view text);

// Who asked, as the kernel told us (SO_PEERCRED), not as the request claims.
struct Owner {
    std::uint32_t uid = 0;
    std::int32_t pid = 0;
    bool operator==(const Owner&) const = default;
};

struct AllocationRequest {
    std::string workflow_id;
    // What kind of work (e.g. "build", "test"): runs of one type are sized from each other's
    // history. Empty: none given (the workflow's own runs are used).
    std::string workflow_type;
    std::string requester;
    Priority priority;
    Resources resources;
    Constraints constraints;
    PerformanceRequirements performance_requirements;
    AutoRelease auto_release;
};

struct Allocation {
    std::string allocation_id;
    std::string workflow_id;
    std::string workflow_type;
    std::string requester;
    TimePoint timestamp;
    Priority priority;
    AllocationStatus status = AllocationStatus::active;
    Resources resources;
    Constraints constraints;
    PerformanceRequirements performance_requirements;
    AutoRelease auto_release;
    Owner owner;
    std::optional<TimePoint> expires_at; // end of its window: timestamp (or start_at) + max_duration
    std::optional<TimePoint> start_at;   // reservations: when the window opens and the group is made
    std::uint64_t queue_seq = 0;         // queued: arrival order among equal priorities
    std::optional<double> degraded_from_cpu; // preempted by "degrade": the CPU to give back later
    // Lifecycle (see agent/core/lifecycle.hpp). Set when the duration ran out and SIGTERM went to
    // the group; cgroup.kill follows at terminating_since + grace_period.
    std::optional<TimePoint> terminating_since;
    bool populated_once = false; // a process has been in the group: emptiness now means "done"
    std::int32_t supervisor_pid = 0; // resmgr-run that waits on the command and reports its exit
    // Made by a wrapper (resmgr-run) for its own command: done as soon as its group is empty.
    // Otherwise (`allocate`, then steps joining it) an empty group is only idle: the allocation
    // completes once it has stayed empty for auto_release.grace_period.
    bool supervised = false;
    std::optional<TimePoint> idle_since; // the group became empty at; a process joining clears it
};

// "4G", "512M", "1.5GiB", "2048K", "1073741824" (bytes). Binary units, as systemd's MemoryMax=.
std::optional<std::uint64_t> parse_size(std::string_view text);
// "2h", "5m", "30s", "500ms", "1h30m", "1d", ISO 8601 "PT2H30M", or a plain number of seconds.
std::optional<Millis> parse_duration(std::string_view text);
std::string format_duration(Millis d);      // "1h30m", "500ms", "0s"
std::string format_size(std::uint64_t bytes); // "4G", "512M", "1536K", "17B"
std::string format_timestamp(TimePoint t);  // RFC 3339 UTC, "2025-01-15T11:30:00Z"
std::optional<TimePoint> parse_timestamp(std::string_view text);

constexpr std::uint64_t kGiB = 1024ULL * 1024 * 1024;

} // namespace resmgr
