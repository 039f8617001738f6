// Parsers for one cgroup v2 directory's statistics files, and read_group.
#include "monitor/group_stats.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <span>

#include "monitor/proc.hpp"

namespace resmgr::monitor {
namespace {

using detail::fail;
using detail::parse_u64;
using detail::printable;
using detail::split_fields;
using detail::split_lines;

// The values of `keys` in a flat-keyed file, each from its first line (as parse_flat_keyed keeps
// it). parse_flat_keyed quotes the offending line raw; re-throw it printable so the message can go
// to JSON. An empty file is malformed: the kernel always writes these keys.
template <std::size_t N>
std::array<std::optional<std::uint64_t>, N> keyed_values(std::string_view text, const std::string& name,
                                                         const std::array<std::string_view, N>& keys) {
    if (text.empty()) fail(name, 1, "empty", text);
    std::array<std::optional<std::uint64_t>, N> values;
    try {
        scan_flat_keyed(text, name, [&](std::string_view key, std::uint64_t value) {
            for (std::size_t i = 0; i < N; ++i)
                if (keys[i] == key && !values[i]) values[i] = value;
        });
    } catch (const ParseError& e) {
        throw ParseError(printable(e.what(), 240));
    }
    return values;
}

std::uint64_t required(const std::optional<std::uint64_t>& value, std::string_view key, const std::string& name) {
    if (!value) throw ParseError(name + ": no '" + std::string(key) + "' key");
    return *value;
}

bool is_device_number(std::string_view field) {
    auto colon = field.find(':');
    return colon != std::string_view::npos && parse_u64(field.substr(0, colon)) &&
           parse_u64(field.substr(colon + 1));
}

} // namespace

CpuStat parse_cpu_stat(std::string_view text, const std::string& name) {
    static constexpr std::array<std::string_view, 6> keys{"usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec"};
    const auto v = keyed_values(text, name, keys);
    return CpuStat{v[0], v[1], v[2], v[3], v[4], v[5]};
}

std::uint64_t parse_single_value(std::string_view text, const std::string& name) {
    auto line = text.substr(0, text.find('\n'));
    auto value = parse_u64(line);
    // Exactly one line: the number, then at most the kernel's trailing newline.
    if (!value || text.size() > line.size() + 1) fail(name, 1, "expected one integer", text);
    return *value;
}

MemoryStat parse_memory_stat(std::string_view text, const std::string& name) {
    static constexpr std::array<std::string_view, 6> keys{"anon", "file", "shmem", "slab", "sock", "pgmajfault"};
    const auto v = keyed_values(text, name, keys);
    // Braced: anon is checked before file, so the message names the first missing.
    return MemoryStat{required(v[0], keys[0], name), required(v[1], keys[1], name), v[2], v[3], v[4], v[5]};
}

MemoryEvents parse_memory_events(std::string_view text, const std::string& name) {
    static constexpr std::array<std::string_view, 5> keys{"low", "high", "max", "oom", "oom_kill"};
    const auto v = keyed_values(text, name, keys);
    return MemoryEvents{required(v[0], keys[0], name), required(v[1], keys[1], name), required(v[2], keys[2], name),
                        required(v[3], keys[3], name), required(v[4], keys[4], name)};
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
    static constexpr std::array<std::string_view, 2> keys{"populated", "frozen"};
    const auto v = keyed_values(text, name, keys);
    auto flag = [&](std::size_t i) {
        const auto value = required(v[i], keys[i], name);
        if (value > 1)
            throw ParseError(name + ": '" + std::string(keys[i]) + "' is " + std::to_string(value) + ", expected 0 or 1");
        return value == 1;
    };
    return CgroupEvents{flag(0), flag(1)};
}

namespace {

// The whole file from offset 0 (cgroup files are regenerated by a read from there) into `buffer`,
// which keeps its size between reads: one buffer for every group's files, so a pass allocates
// nothing to read them. nullopt with errno set when a read fails.
std::optional<std::string_view> pread_all(int fd, std::vector<char>& buffer) {
    constexpr std::size_t kChunk = 4096;
    std::size_t used = 0;
    for (;;) {
        if (buffer.size() < used + kChunk) buffer.resize(used + kChunk);
        const ssize_t n = ::pread(fd, buffer.data() + used, kChunk, static_cast<off_t>(used));
        if (n == 0) return std::string_view(buffer.data(), used);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::nullopt;
        used += static_cast<std::size_t>(n);
    }
}

std::vector<char>& read_buffer() {
    thread_local std::vector<char> buffer;
    return buffer;
}

} // namespace

GroupReader::GroupReader(const std::string& dir, FdBudget* budget) : dir_(std::make_shared<const std::string>(dir)), budget_(budget) {
    fds_.fill(-1);
}

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

// Without the group's path (the sample's `dir` has it): each sample of every group keeps these
// while a controller is missing, three a group on a hybrid host.
std::string GroupReader::cannot_read(File file, int error) {
    return std::string(name(file)) + ": cannot read (" + std::strerror(error) + ")";
}

std::optional<std::string_view> GroupReader::text(File file, int& error, int dir_fd) {
    int fd = fds_[file];
    if (fd < 0) {
        if (skip_[file] > 0) {
            --skip_[file];
            error = missing_errno_[file];
            return std::nullopt;
        }
        fd = dir_fd >= 0 ? ::openat(dir_fd, name(file), O_RDONLY | O_CLOEXEC) : ::open((*dir_ + "/" + name(file)).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            error = errno;
            if (error != EMFILE && error != ENFILE) { // those are not missing: out of fds for now
                missing_errno_[file] = error;
                skip_[file] = kRetryMissing;
            }
            return std::nullopt;
        }
        if (budget_ && budget_->take()) fds_[file] = fd;
    }
    const auto text = pread_all(fd, read_buffer());
    error = errno;
    if (fds_[file] != fd) ::close(fd); // the budget had no room for it
    else if (!text) close_kept(file);  // the group went away, or the file did: open it again next time
    return text;
}

GroupSample GroupReader::read(GroupFiles files) {
    GroupSample sample;
    sample.dir = dir_;
    Reasons reasons;
    // Nothing kept (no budget): the files are opened by name from the group's directory, one path
    // walk for them all instead of one each (a one-time read of five files, as `usage`'s detail
    // makes, spent a third of it on the walks). Where the directory cannot be opened, each file
    // says why.
    const DirFd dir{budget_ ? -1 : ::open(dir_->c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)};
    // Reading and parsing fail apart: a read error gets the file's name in front, a parse
    // error already starts with it.
    auto degrade = [&](File file, auto parse, auto& field) {
        int error = 0;
        const auto content = text(file, error, dir.fd);
        if (!content) {
            reasons.push_back(cannot_read(file, error));
            return;
        }
        try {
            field = parse(*content, name(file));
        } catch (const std::exception& e) {
            reasons.push_back(printable(e.what(), 240));
        }
    };
    // memory.stat and io.stat are the detail files; the rest are periodic. Kept in one order.
    const bool periodic = files != GroupFiles::detail, detail = files != GroupFiles::periodic;
    if (periodic) degrade(cpu_stat, parse_cpu_stat, sample.cpu_stat);
    if (periodic) degrade(memory_current, parse_single_value, sample.memory_current_bytes);
    auto boxed = [](auto parse) {
        return [parse](std::string_view text, const std::string& name) { return std::make_shared<const decltype(parse(text, name))>(parse(text, name)); };
    };
    if (detail) degrade(memory_stat, boxed(parse_memory_stat), sample.memory_stat);
    if (periodic) degrade(memory_events, parse_memory_events, sample.memory_events);
    if (periodic) degrade(pids_current, parse_single_value, sample.pids_current);
    if (detail) degrade(io_stat, boxed(parse_io_stat), sample.io_stat);
    if (periodic) degrade(cgroup_events, parse_cgroup_events, sample.cgroup_events);
    if (!reasons.empty()) sample.unavailable = std::make_shared<const Reasons>(std::move(reasons));
    return sample;
}

const Reasons& GroupSample::reasons() const {
    static const Reasons none;
    return unavailable ? *unavailable : none;
}

void ReasonsPool::share(GroupSample& sample, const std::shared_ptr<const Reasons>& before) {
    if (!sample.unavailable) return;
    for (const auto& list : lists_)
        if (*list == *sample.unavailable) {
            sample.unavailable = list;
            return;
        }
    if (before && *before == *sample.unavailable) sample.unavailable = before;
    if (lists_.size() < kLists) lists_.push_back(sample.unavailable);
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
    return {{"dir", dir ? nlohmann::json(*dir) : nlohmann::json(nullptr)},
            {"cpu_stat", json_or_null(cpu_stat)},
            {"memory_current_bytes", json_or_null(memory_current_bytes)},
            {"memory_stat", json_or_null(memory_stat)},
            {"memory_events", json_or_null(memory_events)},
            {"pids_current", json_or_null(pids_current)},
            {"io_stat", json_or_null(io_stat)},
            {"cgroup_events", json_or_null(cgroup_events)},
            {"unavailable", reasons()}};
}

} // namespace resmgr::monitor
