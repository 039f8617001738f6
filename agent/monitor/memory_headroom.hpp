// How much memory the allocations may still take before a limit above them stops them: a slice
// capped with MemoryMax= (resmgr.slice, the delegated scope) reaches its memory.max long before
// the node's MemAvailable runs low, and there the kernel's OOM killer acts inside the slice.
// The responder judges memory_available by the tighter of the two.
// May call: monitor (its parsers). Reads cgroup files only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace resmgr::monitor {

struct MemoryHeadroom {
    std::string group;          // the limiting group's directory
    std::uint64_t limit_bytes = 0; // its memory.max
    std::uint64_t used_bytes = 0;  // its memory.current less the inactive page cache (memory.stat inactive_file)
    std::uint64_t free_bytes() const { return used_bytes >= limit_bytes ? 0 : limit_bytes - used_bytes; }
};

// A memory.max file's value: nullopt for "max" (no limit); throws ParseError when malformed.
std::optional<std::uint64_t> parse_memory_max(std::string_view text, const std::string& name);

// The ancestor of `dir` (itself included) with the least free memory under its own memory.max,
// walking up while the directories are cgroups (they have cgroup.procs). nullopt when none of them
// has a limit, or the memory controller is not enabled there (no memory.max). A file that cannot
// be read or parsed ends the walk: what was found below it stands.
std::optional<MemoryHeadroom> enclosing_memory_headroom(const std::string& dir);

} // namespace resmgr::monitor
