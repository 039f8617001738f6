// Parsers for /proc/stat, /proc/meminfo and PSI files, statvfs, and the node sample.
#include "monitor/proc.hpp"

#include <sys/statvfs.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <span>

namespace resmgr::monitor {

namespace {

using detail::fail;
using detail::parse_u64;
using detail::split_fields;
using detail::split_lines;

double percent(std::uint64_t part, std::uint64_t whole) {
    if (whole == 0) return 0;
    return static_cast<double>(part) * 100.0 / static_cast<double>(whole);
}

// Counters can step backwards (iowait does, per proc(5)); such a step counts as no time.
std::uint64_t forward_delta(std::uint64_t before, std::uint64_t after) {
    return after > before ? after - before : 0;
}

PressureLine parse_pressure_line(std::span<const std::string_view> fields, const std::string& name, int number,
                                 std::string_view line) {
    static constexpr std::string_view keys[] = {"avg10=", "avg60=", "avg300=", "total="};
    if (fields.size() != 4) fail(name, number, "expected avg10= avg60= avg300= total=", line);
    double averages[3] = {};
    for (std::size_t i = 0; i < 3; ++i) {
        if (!fields[i].starts_with(keys[i])) fail(name, number, "expected " + std::string(keys[i]), line);
        auto digits = fields[i].substr(keys[i].size());
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), averages[i]);
        // A PSI average is a share of time: finite, 0..100.
        if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || !std::isfinite(averages[i]) ||
            averages[i] < 0 || averages[i] > 100)
            fail(name, number, "bad value for " + std::string(keys[i]), line);
    }
    if (!fields[3].starts_with(keys[3])) fail(name, number, "expected total=", line);
    auto total = parse_u64(fields[3].substr(keys[3].size()));
    if (!total) fail(name, number, "bad value for total=", line);
    return PressureLine{averages[0], averages[1], averages[2], *total};
}

} // namespace

CpuTimes parse_proc_stat_cpu(std::string_view proc_stat, const std::string& name) {
    int number = 0;
    for (auto line : split_lines(proc_stat)) {
        ++number;
        auto fields = split_fields(line);
        if (fields.empty() || fields[0] != "cpu") continue;
        // user nice system idle iowait irq softirq steal; guest and guest_nice may follow.
        if (fields.size() < 9) fail(name, number, "aggregate cpu line has fewer than 8 counters", line);
        std::uint64_t counters[8] = {};
        for (std::size_t i = 1; i < fields.size(); ++i) {
            auto value = parse_u64(fields[i]);
            if (!value) fail(name, number, "non-numeric counter", line);
            if (i <= 8) counters[i - 1] = *value;
        }
        return CpuTimes{counters[0], counters[1], counters[2], counters[3],
                        counters[4], counters[5], counters[6], counters[7]};
    }
    throw ParseError(name + ": no aggregate 'cpu' line");
}

std::string parse_proc_cgroup_v2(std::string_view text, const std::string& name) {
    int number = 0;
    for (auto line : split_lines(text)) {
        ++number;
        if (!line.starts_with("0::")) continue;
        auto path = line.substr(3);
        if (path.empty() || path.front() != '/') fail(name, number, "cgroup v2 path must start with '/'", line);
        return std::string(path);
    }
    throw ParseError(name + ": no cgroup v2 ('0::') line");
}

ProcessIdentity parse_proc_status_identity(std::string_view text, const std::string& name) {
    std::optional<long> ppid;
    std::optional<ProcessIdentity> uids;
    int number = 0;
    for (auto line : split_lines(text)) {
        ++number;
        auto fields = split_fields(line);
        if (fields.empty()) continue;
        if (fields[0] == "PPid:") {
            auto value = fields.size() == 2 ? parse_u64(fields[1]) : std::nullopt;
            if (!value || *value > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) fail(name, number, "bad PPid", line);
            ppid = static_cast<long>(*value);
        } else if (fields[0] == "Uid:") {
            // real, effective, saved set, filesystem
            if (fields.size() != 5) fail(name, number, "expected four uids", line);
            auto real = parse_u64(fields[1]), effective = parse_u64(fields[2]);
            if (!real || !effective) fail(name, number, "non-numeric uid", line);
            uids = ProcessIdentity{0, *real, *effective};
        }
    }
    if (!ppid) throw ParseError(name + ": no PPid line");
    if (!uids) throw ParseError(name + ": no Uid line");
    uids->ppid = *ppid;
    return *uids;
}

std::optional<ProcessIdentity> read_process_identity(long pid, const std::string& proc_root) {
    const std::string path = proc_root + "/" + std::to_string(pid) + "/status";
    try {
        return parse_proc_status_identity(read_text_file(path), path);
    } catch (const std::exception&) {
        return std::nullopt; // gone, or not a process we can read
    }
}

CpuTimes read_proc_stat_cpu(const std::string& path) { return parse_proc_stat_cpu(read_text_file(path), path); }

double cpu_utilization_percent(const CpuTimes& before, const CpuTimes& after) {
    auto busy = forward_delta(before.busy(), after.busy());
    auto idle = forward_delta(before.idle_total(), after.idle_total());
    return percent(busy, busy + idle);
}

double MemInfo::used_percent() const {
    return percent(total_bytes > available_bytes ? total_bytes - available_bytes : 0, total_bytes);
}

MemInfo parse_meminfo(std::string_view meminfo, const std::string& name) {
    struct Wanted {
        std::string_view key;
        std::uint64_t MemInfo::*field;
        bool seen = false;
    };
    Wanted wanted[] = {
        {"MemTotal", &MemInfo::total_bytes},     {"MemAvailable", &MemInfo::available_bytes},
        {"Buffers", &MemInfo::buffers_bytes},    {"Cached", &MemInfo::cached_bytes},
        {"SwapTotal", &MemInfo::swap_total_bytes}, {"SwapFree", &MemInfo::swap_free_bytes},
    };
    MemInfo info;
    int number = 0;
    for (auto line : split_lines(meminfo)) {
        ++number;
        if (line.empty()) continue;
        // Every line is "Key:   value" or "Key:   value kB"; check them all so a corrupted
        // file is reported even where the damage is in a key we do not keep.
        auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) fail(name, number, "expected 'Key: value'", line);
        auto fields = split_fields(line.substr(colon + 1));
        auto value = fields.empty() ? std::nullopt : parse_u64(fields[0]);
        bool in_kb = fields.size() == 2 && fields[1] == "kB";
        if (!value || fields.size() > 2 || (fields.size() == 2 && !in_kb))
            fail(name, number, "expected 'Key: value [kB]'", line);
        auto key = line.substr(0, colon);
        for (auto& w : wanted) {
            if (w.key != key) continue;
            if (w.seen) fail(name, number, "duplicate " + std::string(key), line);
            if (!in_kb) fail(name, number, std::string(key) + " without kB unit", line);
            if (*value > UINT64_MAX / 1024) fail(name, number, "value out of range", line);
            info.*w.field = *value * 1024;
            w.seen = true;
        }
    }
    for (const auto& w : wanted) {
        if (!w.seen) throw ParseError(name + ": no " + std::string(w.key) + " line");
    }
    return info;
}

MemInfo read_meminfo(const std::string& path) { return parse_meminfo(read_text_file(path), path); }

Pressure parse_pressure(std::string_view text, const std::string& name) {
    std::optional<PressureLine> some;
    std::optional<PressureLine> full;
    int number = 0;
    for (auto line : split_lines(text)) {
        ++number;
        if (line.empty()) continue;
        auto fields = split_fields(line);
        std::optional<PressureLine>* slot = nullptr;
        if (fields[0] == "some") {
            slot = &some;
        } else if (fields[0] == "full") {
            slot = &full;
        } else {
            fail(name, number, "expected 'some' or 'full'", line);
        }
        if (*slot) fail(name, number, "duplicate '" + std::string(fields[0]) + "' line", line);
        *slot = parse_pressure_line(std::span(fields).subspan(1), name, number, line);
    }
    if (!some) throw ParseError(name + ": no 'some' line");
    return Pressure{*some, full};
}

Pressure read_pressure(const std::string& path) { return parse_pressure(read_text_file(path), path); }

DiskSpace read_disk_space(const std::string& path) {
    struct statvfs st {};
    if (::statvfs(path.c_str(), &st) != 0) throw ParseError(path + ": statvfs: " + std::strerror(errno));
    std::uint64_t block = st.f_frsize;
    DiskSpace disk;
    disk.path = path;
    disk.total_bytes = st.f_blocks * block;
    disk.available_bytes = st.f_bavail * block;
    disk.used_bytes = st.f_blocks > st.f_bfree ? (st.f_blocks - st.f_bfree) * block : 0;
    disk.utilization_percent = percent(disk.used_bytes, disk.used_bytes + disk.available_bytes);
    return disk;
}

NodeSample read_node_sample(const NodeSources& sources, const std::optional<CpuTimes>& previous_cpu) {
    NodeSample sample;
    // Reading and parsing fail apart: a read error names the file, a parse error already does.
    auto degrade = [&](const std::string& path, auto parse, auto& field) {
        std::string text;
        try {
            text = read_text_file(path);
        } catch (const std::exception& e) {
            sample.unavailable.push_back(path + ": " + detail::printable(e.what(), 240));
            return;
        }
        try {
            field = parse(text, path);
        } catch (const std::exception& e) {
            sample.unavailable.push_back(detail::printable(e.what(), 240));
        }
    };
    const auto& root = sources.proc_root;
    degrade(root + "/stat", parse_proc_stat_cpu, sample.cpu_times);
    degrade(root + "/meminfo", parse_meminfo, sample.memory);
    degrade(root + "/pressure/cpu", parse_pressure, sample.cpu_pressure);
    degrade(root + "/pressure/memory", parse_pressure, sample.memory_pressure);
    degrade(root + "/pressure/io", parse_pressure, sample.io_pressure);
    if (sample.cpu_times && previous_cpu)
        sample.cpu_utilization_percent = cpu_utilization_percent(*previous_cpu, *sample.cpu_times);
    for (const auto& path : sources.filesystems) {
        try {
            sample.disks.push_back(read_disk_space(path));
        } catch (const std::exception& e) {
            sample.unavailable.push_back(detail::printable(e.what(), 240));
        }
    }
    return sample;
}

nlohmann::json CpuTimes::to_json() const {
    return {{"user", user}, {"nice", nice},       {"system", system}, {"idle", idle},
            {"iowait", iowait}, {"irq", irq}, {"softirq", softirq}, {"steal", steal}};
}

nlohmann::json MemInfo::to_json() const {
    return {{"total_bytes", total_bytes},
            {"available_bytes", available_bytes},
            {"buffers_bytes", buffers_bytes},
            {"cached_bytes", cached_bytes},
            {"swap_total_bytes", swap_total_bytes},
            {"swap_free_bytes", swap_free_bytes},
            {"used_percent", used_percent()}};
}

nlohmann::json PressureLine::to_json() const {
    return {{"avg10", avg10}, {"avg60", avg60}, {"avg300", avg300}, {"total_usec", total_usec}};
}

nlohmann::json Pressure::to_json() const {
    return {{"some", some.to_json()}, {"full", full ? full->to_json() : nlohmann::json(nullptr)}};
}

nlohmann::json DiskSpace::to_json() const {
    return {{"path", path},
            {"total_bytes", total_bytes},
            {"available_bytes", available_bytes},
            {"used_bytes", used_bytes},
            {"utilization_percent", utilization_percent}};
}

nlohmann::json NodeSample::to_json() const {
    auto disk_list = nlohmann::json::array();
    for (const auto& d : disks) disk_list.push_back(d.to_json());
    return {{"cpu", {{"utilization_percent", detail::json_or_null(cpu_utilization_percent)}, {"times", detail::json_or_null(cpu_times)}}},
            {"memory", detail::json_or_null(memory)},
            {"pressure",
             {{"cpu", detail::json_or_null(cpu_pressure)}, {"memory", detail::json_or_null(memory_pressure)}, {"io", detail::json_or_null(io_pressure)}}},
            {"disks", disk_list},
            {"unavailable", unavailable}};
}

} // namespace resmgr::monitor
