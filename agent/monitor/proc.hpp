// Node-wide samples from /proc (CPU times, meminfo, PSI) and statvfs, and the node sample that
// gathers them. Parsers take the file's text and throw ParseError ("file:line: reason") on
// malformed input; read_node_sample degrades each source on its own and never throws.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "monitor/node.hpp"

namespace resmgr::monitor {

// The aggregate "cpu" line of /proc/stat, in USER_HZ ticks. guest/guest_nice are left out:
// the kernel already counts them inside user/nice.
struct CpuTimes {
    std::uint64_t user = 0;
    std::uint64_t nice = 0;
    std::uint64_t system = 0;
    std::uint64_t idle = 0;
    std::uint64_t iowait = 0;
    std::uint64_t irq = 0;
    std::uint64_t softirq = 0;
    std::uint64_t steal = 0;

    std::uint64_t busy() const { return user + nice + system + irq + softirq + steal; }
    std::uint64_t idle_total() const { return idle + iowait; }
    nlohmann::json to_json() const;
};

CpuTimes parse_proc_stat_cpu(std::string_view proc_stat, const std::string& name = "/proc/stat");
CpuTimes read_proc_stat_cpu(const std::string& path = "/proc/stat");
// Busy share of the time between two samples, 0..100; 0 when no time passed.
double cpu_utilization_percent(const CpuTimes& before, const CpuTimes& after);

// /proc/meminfo, in bytes.
struct MemInfo {
    std::uint64_t total_bytes = 0;
    std::uint64_t available_bytes = 0;
    std::uint64_t buffers_bytes = 0;
    std::uint64_t cached_bytes = 0;
    std::uint64_t swap_total_bytes = 0;
    std::uint64_t swap_free_bytes = 0;

    // (MemTotal - MemAvailable) / MemTotal: what the memory threshold watches.
    double used_percent() const;
    nlohmann::json to_json() const;
};

MemInfo parse_meminfo(std::string_view meminfo, const std::string& name = "/proc/meminfo");
MemInfo read_meminfo(const std::string& path = "/proc/meminfo");

// One PSI line: share of wall time stalled over 10/60/300 s windows, and total stall in µs.
struct PressureLine {
    double avg10 = 0;
    double avg60 = 0;
    double avg300 = 0;
    std::uint64_t total_usec = 0;
    nlohmann::json to_json() const;
};

// /proc/pressure/{cpu,memory,io} (and a cgroup's *.pressure, same format).
struct Pressure {
    PressureLine some;
    std::optional<PressureLine> full; // absent for cpu before Linux 5.13
    nlohmann::json to_json() const;
};

Pressure parse_pressure(std::string_view text, const std::string& name);
Pressure read_pressure(const std::string& path); // e.g. "/proc/pressure/memory"

// statvfs of one filesystem. utilization_percent is df's "Use%": used / (used + available),
// so blocks reserved for root count neither as used nor as available.
struct DiskSpace {
    std::string path;
    std::uint64_t total_bytes = 0;
    std::uint64_t available_bytes = 0;
    std::uint64_t used_bytes = 0;
    double utilization_percent = 0;
    nlohmann::json to_json() const;
};

DiskSpace read_disk_space(const std::string& path); // throws ParseError with strerror

// The cgroup v2 path of a process from /proc/PID/cgroup: the "0::<path>" line (hybrid hosts list
// v1 hierarchies too). Throws ParseError when there is none or it is malformed.
std::string parse_proc_cgroup_v2(std::string_view text, const std::string& name = "/proc/PID/cgroup");

// Who a process is, from /proc/PID/status: its parent and its real and effective uid.
struct ProcessIdentity {
    long ppid = 0;
    std::uint64_t real_uid = 0;
    std::uint64_t effective_uid = 0;
    bool operator==(const ProcessIdentity&) const = default;
};

// Throws ParseError when PPid: or Uid: is missing or malformed.
ProcessIdentity parse_proc_status_identity(std::string_view text, const std::string& name = "/proc/PID/status");
// nullopt when the process is gone or its status cannot be read or parsed.
std::optional<ProcessIdentity> read_process_identity(long pid, const std::string& proc_root = "/proc");

struct NodeSources {
    std::string proc_root = "/proc";
    std::vector<std::string> filesystems; // the state and temp directories, typically
};

// One sample of the node. A source that could not be read or parsed is empty and has a
// "source: reason" entry in `unavailable`.
struct NodeSample {
    std::optional<CpuTimes> cpu_times;
    std::optional<double> cpu_utilization_percent; // needs the previous sample's CPU times
    std::optional<MemInfo> memory;
    std::optional<Pressure> cpu_pressure;
    std::optional<Pressure> memory_pressure;
    std::optional<Pressure> io_pressure;
    std::vector<DiskSpace> disks;
    std::vector<std::string> unavailable;
    nlohmann::json to_json() const;
};

NodeSample read_node_sample(const NodeSources& sources, const std::optional<CpuTimes>& previous_cpu = {});

namespace detail {
// null for an unavailable source, so every sample has the same keys.
template <class T>
nlohmann::json json_or_null(const std::optional<T>& value) {
    if (!value) return nullptr;
    if constexpr (std::is_arithmetic_v<T>) {
        return *value;
    } else {
        return value->to_json();
    }
}
// The same for what is held by pointer (GroupSample's detail files).
template <class T>
nlohmann::json json_or_null(const std::shared_ptr<const T>& value) {
    return value ? value->to_json() : nlohmann::json(nullptr);
}
} // namespace detail

} // namespace resmgr::monitor
