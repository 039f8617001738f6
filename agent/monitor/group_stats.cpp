// Parsers for one cgroup v2 directory's statistics files, and read_group.
#include "monitor/group_stats.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <span>

#include "monitor/proc.hpp"

namespace resmgr::monitor {
namespace {

using detail::fail;
using detail::parse_u64;
using detail::printable;
using detail::split_fields;
using detail::split_lines;

using FlatKeyed = std::map<std::string, std::uint64_t>;

// parse_flat_keyed quotes the offending line raw; re-throw it printable so the message can go
// to JSON. An empty file is malformed: the kernel always writes these keys.
FlatKeyed flat_keyed(std::string_view text, const std::string& name) {
    if (text.empty()) fail(name, 1, "empty", text);
    try {
        return parse_flat_keyed(text, name);
    } catch (const ParseError& e) {
        throw ParseError(printable(e.what(), 240));
    }
}

std::optional<std::uint64_t> optional_key(const FlatKeyed& keys, const std::string& key) {
    auto it = keys.find(key);
    if (it == keys.end()) return std::nullopt;
    return it->second;
}

std::uint64_t required_key(const FlatKeyed& keys, const std::string& key, const std::string& name) {
    auto it = keys.find(key);
    if (it == keys.end()) throw ParseError(name + ": no '" + key + "' key");
    return it->second;
}

bool is_device_number(std::string_view field) {
    auto colon = field.find(':');
    return colon != std::string_view::npos && parse_u64(field.substr(0, colon)) &&
           parse_u64(field.substr(colon + 1));
}

} // namespace

CpuStat parse_cpu_stat(std::string_view text, const std::string& name) {
    auto keys = flat_keyed(text, name);
    return CpuStat{optional_key(keys, "usage_usec"), optional_key(keys, "user_usec"),
                   optional_key(keys, "system_usec"), optional_key(keys, "nr_periods"),
                   optional_key(keys, "nr_throttled"), optional_key(keys, "throttled_usec")};
}

std::uint64_t parse_single_value(std::string_view text, const std::string& name) {
    auto line = text.substr(0, text.find('\n'));
    auto value = parse_u64(line);
    // Exactly one line: the number, then at most the kernel's trailing newline.
    if (!value || text.size() > line.size() + 1) fail(name, 1, "expected one integer", text);
    return *value;
}

MemoryStat parse_memory_stat(std::string_view text, const std::string& name) {
    auto keys = flat_keyed(text, name);
    return MemoryStat{required_key(keys, "anon", name),  required_key(keys, "file", name),
                      optional_key(keys, "shmem"),       optional_key(keys, "slab"),
                      optional_key(keys, "sock"),        optional_key(keys, "pgmajfault")};
}

MemoryEvents parse_memory_events(std::string_view text, const std::string& name) {
    auto keys = flat_keyed(text, name);
    return MemoryEvents{required_key(keys, "low", name), required_key(keys, "high", name),
                        required_key(keys, "max", name), required_key(keys, "oom", name),
                        required_key(keys, "oom_kill", name)};
}

IoStat parse_io_stat(std::string_view text, const std::string& name) {
    struct Counter {
        std::string_view key;
        std::uint64_t IoStat::*total;
    };
    static constexpr Counter counters[] = {{"rbytes=", &IoStat::rbytes}, {"wbytes=", &IoStat::wbytes},
                                           {"rios=", &IoStat::rios},     {"wios=", &IoStat::wios},
                                           {"dbytes=", &IoStat::dbytes}, {"dios=", &IoStat::dios}};
    // Empty is valid here: a group that has done no IO has no lines.
    IoStat io;
    int number = 0;
    for (auto line : split_lines(text)) {
        ++number;
        if (line.empty()) continue;
        auto fields = split_fields(line);
        if (!is_device_number(fields[0])) fail(name, number, "expected 'MAJ:MIN' first", line);
        unsigned seen = 0; // one bit per counter
        for (auto field : std::span(fields).subspan(1)) {
            auto eq = field.find('=');
            if (eq == std::string_view::npos || eq == 0) fail(name, number, "expected key=value", line);
            for (std::size_t i = 0; i < std::size(counters); ++i) {
                const auto& c = counters[i];
                if (!field.starts_with(c.key)) continue;
                if (seen & (1u << i)) fail(name, number, "duplicate " + std::string(c.key), line);
                seen |= 1u << i;
                auto value = parse_u64(field.substr(c.key.size()));
                if (!value) fail(name, number, "bad value for " + std::string(c.key), line);
                // Wrapping would report a wrong total as if it were measured.
                if (__builtin_add_overflow(io.*c.total, *value, &(io.*c.total)))
                    fail(name, number, "total out of range", line);
            }
            // Other keys (io.cost, io.latency: "depth=max", "cost.vrate=100.00") are not ours.
        }
        // All six exist since Linux 4.19; fewer means a truncated or damaged line.
        if (seen != (1u << std::size(counters)) - 1) fail(name, number, "expected rbytes wbytes rios wios dbytes dios", line);
        ++io.devices;
    }
    return io;
}

CgroupEvents parse_cgroup_events(std::string_view text, const std::string& name) {
    auto keys = flat_keyed(text, name);
    auto flag = [&](const std::string& key) {
        auto value = required_key(keys, key, name);
        if (value > 1) throw ParseError(name + ": '" + key + "' is " + std::to_string(value) + ", expected 0 or 1");
        return value == 1;
    };
    return CgroupEvents{flag("populated"), flag("frozen")};
}

namespace {

// The whole file from offset 0 (cgroup files are regenerated by a read from there); false with
// errno set when a read fails.
bool pread_all(int fd, std::string& text) {
    char buf[4096];
    for (off_t offset = 0;;) {
        ssize_t n = ::pread(fd, buf, sizeof buf, offset);
        if (n == 0) return true;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return false;
        text.append(buf, static_cast<size_t>(n));
        offset += n;
    }
}

} // namespace

GroupReader::GroupReader(std::string dir, FdBudget* budget) : dir_(std::move(dir)), budget_(budget) { fds_.fill(-1); }

GroupReader::~GroupReader() {
    for (int file = 0; file < file_count; ++file) close_kept(static_cast<File>(file));
}

void GroupReader::close_kept(File file) {
    if (fds_[file] < 0) return;
    ::close(fds_[file]);
    fds_[file] = -1;
    budget_->give_back();
}

const char* GroupReader::name(File file) {
    static constexpr const char* kNames[file_count] = {"cpu.stat", "memory.current", "memory.stat", "memory.events",
                                                       "pids.current", "io.stat", "cgroup.events"};
    return kNames[file];
}

std::string GroupReader::text(File file) {
    const std::string path = dir_ + "/" + name(file);
    int fd = fds_[file];
    if (fd < 0) {
        if (skip_[file] > 0) {
            --skip_[file];
            throw ParseError(missing_[file]);
        }
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            const std::string why = "cannot read " + path + ": " + std::strerror(errno);
            if (errno == EMFILE || errno == ENFILE) throw ParseError(why); // not missing: out of fds for now
            missing_[file] = why;
            skip_[file] = kRetryMissing;
            throw ParseError(why);
        }
        if (budget_ && budget_->take()) fds_[file] = fd;
    }
    std::string text;
    const bool read = pread_all(fd, text);
    const std::string why = read ? std::string() : "cannot read " + path + ": " + std::strerror(errno);
    if (fds_[file] != fd) ::close(fd); // the budget had no room for it
    else if (!read) close_kept(file);  // the group went away, or the file did: open it again next time
    if (!read) throw ParseError(why);
    return text;
}

GroupSample GroupReader::read(GroupFiles files) {
    GroupSample sample;
    sample.dir = dir_;
    // Reading and parsing fail apart: a read error gets the file's name in front, a parse
    // error already starts with it.
    auto degrade = [&](File file, auto parse, auto& field) {
        std::string content;
        try {
            content = text(file);
        } catch (const std::exception& e) {
            sample.unavailable.push_back(std::string(name(file)) + ": " + printable(e.what(), 240));
            return;
        }
        try {
            field = parse(content, name(file));
        } catch (const std::exception& e) {
            sample.unavailable.push_back(printable(e.what(), 240));
        }
    };
    // memory.stat and io.stat are the detail files; the rest are periodic. Kept in one order.
    const bool periodic = files != GroupFiles::detail, detail = files != GroupFiles::periodic;
    if (periodic) degrade(cpu_stat, parse_cpu_stat, sample.cpu_stat);
    if (periodic) degrade(memory_current, parse_single_value, sample.memory_current_bytes);
    if (detail) degrade(memory_stat, parse_memory_stat, sample.memory_stat);
    if (periodic) degrade(memory_events, parse_memory_events, sample.memory_events);
    if (periodic) degrade(pids_current, parse_single_value, sample.pids_current);
    if (detail) degrade(io_stat, parse_io_stat, sample.io_stat);
    if (periodic) degrade(cgroup_events, parse_cgroup_events, sample.cgroup_events);
    return sample;
}

GroupSample read_group(const std::string& dir, GroupFiles files) { return GroupReader(dir).read(files); }

nlohmann::json CpuStat::to_json() const {
    using detail::json_or_null;
    return {{"usage_usec", json_or_null(usage_usec)},         {"user_usec", json_or_null(user_usec)},
            {"system_usec", json_or_null(system_usec)},       {"nr_periods", json_or_null(nr_periods)},
            {"nr_throttled", json_or_null(nr_throttled)},     {"throttled_usec", json_or_null(throttled_usec)}};
}

nlohmann::json MemoryStat::to_json() const {
    using detail::json_or_null;
    return {{"anon_bytes", anon_bytes},
            {"file_bytes", file_bytes},
            {"shmem_bytes", json_or_null(shmem_bytes)},
            {"slab_bytes", json_or_null(slab_bytes)},
            {"sock_bytes", json_or_null(sock_bytes)},
            {"pgmajfault", json_or_null(pgmajfault)}};
}

nlohmann::json MemoryEvents::to_json() const {
    return {{"low", low}, {"high", high}, {"max", max}, {"oom", oom}, {"oom_kill", oom_kill}};
}

nlohmann::json IoStat::to_json() const {
    return {{"rbytes", rbytes}, {"wbytes", wbytes}, {"rios", rios},         {"wios", wios},
            {"dbytes", dbytes}, {"dios", dios},     {"devices", devices}};
}

nlohmann::json CgroupEvents::to_json() const { return {{"populated", populated}, {"frozen", frozen}}; }

nlohmann::json GroupSample::to_json() const {
    using detail::json_or_null;
    return {{"dir", dir},
            {"cpu_stat", json_or_null(cpu_stat)},
            {"memory_current_bytes", json_or_null(memory_current_bytes)},
            {"memory_stat", json_or_null(memory_stat)},
            {"memory_events", json_or_null(memory_events)},
            {"pids_current", json_or_null(pids_current)},
            {"io_stat", json_or_null(io_stat)},
            {"cgroup_events", json_or_null(cgroup_events)},
            {"unavailable", unavailable}};
}

} // namespace resmgr::monitor
