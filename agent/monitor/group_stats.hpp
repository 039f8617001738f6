// Per-allocation samples from one cgroup v2 directory: cpu.stat, memory.current, memory.stat,
// memory.events, pids.current, io.stat, cgroup.events. Parsers take the file's text and a name
// for messages and throw ParseError ("name:line: reason") on malformed input; read_group
// degrades each file on its own (a hybrid or accounting-only host lacks most of them).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "monitor/node.hpp"

namespace resmgr::monitor {

// Without the cpu controller the kernel writes only the usage keys, so every key is optional.
struct CpuStat {
    std::optional<std::uint64_t> usage_usec;
    std::optional<std::uint64_t> user_usec;
    std::optional<std::uint64_t> system_usec;
    std::optional<std::uint64_t> nr_periods;
    std::optional<std::uint64_t> nr_throttled;
    std::optional<std::uint64_t> throttled_usec;
    nlohmann::json to_json() const;
};

// anon and file are always written; the rest depend on kernel version and config.
struct MemoryStat {
    std::uint64_t anon_bytes = 0;
    std::uint64_t file_bytes = 0;
    std::optional<std::uint64_t> shmem_bytes;
    std::optional<std::uint64_t> slab_bytes;
    std::optional<std::uint64_t> sock_bytes;
    std::optional<std::uint64_t> pgmajfault;
    nlohmann::json to_json() const;
};

// Counts since the group was created.
struct MemoryEvents {
    std::uint64_t low = 0;
    std::uint64_t high = 0;
    std::uint64_t max = 0;
    std::uint64_t oom = 0;
    std::uint64_t oom_kill = 0;
    nlohmann::json to_json() const;
};

// io.stat summed over devices; the kernel lists only devices the group has done IO on.
struct IoStat {
    std::uint64_t rbytes = 0;
    std::uint64_t wbytes = 0;
    std::uint64_t rios = 0;
    std::uint64_t wios = 0;
    std::uint64_t dbytes = 0;
    std::uint64_t dios = 0;
    std::uint64_t devices = 0;
    nlohmann::json to_json() const;
};

struct CgroupEvents {
    bool populated = false;
    bool frozen = false;
    nlohmann::json to_json() const;
};

CpuStat parse_cpu_stat(std::string_view text, const std::string& name = "cpu.stat");
// memory.current, pids.current: one integer.
std::uint64_t parse_single_value(std::string_view text, const std::string& name);
MemoryStat parse_memory_stat(std::string_view text, const std::string& name = "memory.stat");
MemoryEvents parse_memory_events(std::string_view text, const std::string& name = "memory.events");
IoStat parse_io_stat(std::string_view text, const std::string& name = "io.stat");
CgroupEvents parse_cgroup_events(std::string_view text, const std::string& name = "cgroup.events");

// "file: reason", one per file that could not be read or parsed.
using Reasons = std::vector<std::string>;

struct GroupSample {
    // Shared with the reader that read it: the sampler's snapshot keeps one copy of each group's
    // path, not one in the reader and one in the sample.
    std::shared_ptr<const std::string> dir;
    std::optional<CpuStat> cpu_stat;
    std::optional<std::uint64_t> memory_current_bytes;
    // memory.stat and io.stat: read on demand only (GroupFiles::detail), so held by pointer: the
    // sampler's snapshot keeps 16 bytes a group for each, not the 88 and 64 of an optional.
    std::shared_ptr<const MemoryStat> memory_stat;
    std::optional<MemoryEvents> memory_events;
    std::optional<std::uint64_t> pids_current;
    std::shared_ptr<const IoStat> io_stat;
    std::optional<CgroupEvents> cgroup_events;
    // Why fields are empty; null when every file was read. Shared by samples that lack the same
    // files for the same reasons (see ReasonsPool): on a hybrid host every group lacks three, and
    // one list for the whole snapshot replaced ~180 bytes of strings a group.
    std::shared_ptr<const Reasons> unavailable;
    const Reasons& reasons() const; // the list, empty when none
    nlohmann::json to_json() const;
};

// Lets samples with equal reasons share one list. Holds at most kLists distinct lists (the usual
// node has one or two); a list beyond them stays the sample's own, so distinct parse messages
// cannot make each share cost a walk of many lists.
class ReasonsPool {
public:
    static constexpr std::size_t kLists = 8;
    // `sample`'s reasons become an equal list of the pool's, else `before` when equal (the list the
    // group's previous sample held, so its storage stays from pass to pass), and join the pool.
    void share(GroupSample& sample, const std::shared_ptr<const Reasons>& before = nullptr);

private:
    std::vector<std::shared_ptr<const Reasons>> lists_;
};

// Which files a read covers. The sampling pass reads `periodic` (what rates, thresholds, OOM
// detection, agent states and the history need); memory.stat and io.stat, the costliest for the
// kernel to generate and shown only by `usage`, are read on demand as `detail`.
enum class GroupFiles { all, periodic, detail };

// How many group files the readers sharing it may keep open, all together. Every kept file is
// one of the daemon's fds, which its clients and the file guard need too: one kept per file and
// group let allocations use up the fds (issue 18). A file past the budget is opened for the read
// and closed again: a path walk more, as for any file while the budget is spent.
class FdBudget {
public:
    explicit FdBudget(size_t fds) : left_(fds) {}
    bool take() { return left_ > 0 ? (--left_, true) : false; }
    void give_back() { ++left_; }
    size_t left() const { return left_; }

private:
    size_t left_;
};

// Reads one group's files, keeping them open between reads while `budget` allows: a later read
// is then one pread per file and no path walk, which is most of what a sampling pass costs with
// 100 groups. Without a budget nothing is kept. A file that is missing (its controller is not
// enabled) is tried again only every kRetryMissing reads; one that could not be opened for want
// of fds, at the next read. Never throws: every file that cannot be read or parsed is reported
// in `unavailable`.
class GroupReader {
public:
    static constexpr unsigned kRetryMissing = 30;

    explicit GroupReader(const std::string& dir, FdBudget* budget = nullptr);
    ~GroupReader();
    GroupReader(const GroupReader&) = delete;
    GroupReader& operator=(const GroupReader&) = delete;

    GroupSample read(GroupFiles files);
    const std::string& dir() const { return *dir_; }

private:
    enum File { cpu_stat, memory_current, memory_stat, memory_events, pids_current, io_stat, cgroup_events, file_count };
    static const char* name(File file);
    static std::string cannot_read(File file, int error);
    // The file's text in this thread's read buffer, good until the next read; nullopt with
    // `error` set when it cannot be read (no exception: a missing controller's files fail at
    // every group of every pass). Opened from `dir_fd` when it is one (>= 0), else by path.
    std::optional<std::string_view> text(File file, int& error, int dir_fd);
    void close_kept(File file);

    std::shared_ptr<const std::string> dir_;
    FdBudget* budget_;
    std::array<int, file_count> fds_; // kept open, each taken from budget_
    std::array<std::uint8_t, file_count> skip_{}; // reads left before a missing file is tried again
    std::array<int, file_count> missing_errno_{}; // why it is missing: the errno of its open
};

// One read of a group, nothing kept open.
GroupSample read_group(const std::string& dir, GroupFiles files = GroupFiles::all);

} // namespace resmgr::monitor
