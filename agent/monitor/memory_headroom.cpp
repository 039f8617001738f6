// The tightest memory limit above the allocations (see memory_headroom.hpp).
#include "monitor/memory_headroom.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "monitor/group_stats.hpp"
#include "monitor/node.hpp"
#include "monitor/proc.hpp"

namespace resmgr::monitor {
namespace {

std::optional<std::string> read_small_file(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::stringstream text;
    text << in.rdbuf();
    if (!in && !in.eof()) return std::nullopt;
    return text.str();
}

} // namespace

std::optional<std::uint64_t> parse_memory_max(std::string_view text, const std::string& name) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    if (text == "max") return std::nullopt;
    return parse_single_value(text, name);
}

std::optional<MemoryHeadroom> enclosing_memory_headroom(const std::string& dir) {
    std::optional<MemoryHeadroom> tightest;
    std::error_code ec;
    for (std::filesystem::path at = dir; !at.empty() && std::filesystem::exists(at / "cgroup.procs", ec); at = at.parent_path()) {
        auto max_text = read_small_file(at / "memory.max");
        if (!max_text) break; // the root group, or no memory controller from here up
        auto current_text = read_small_file(at / "memory.current");
        if (!current_text) break;
        try {
            auto limit = parse_memory_max(*max_text, (at / "memory.max").string());
            if (limit) {
                // memory.current counts page cache too; its inactive part the kernel reclaims before
                // it stalls anyone (MemAvailable counts it as free for the same reason).
                std::uint64_t used = parse_single_value(*current_text, (at / "memory.current").string());
                if (auto stat = read_small_file(at / "memory.stat")) {
                    auto keys = parse_flat_keyed(*stat, (at / "memory.stat").string());
                    if (auto inactive = keys.find("inactive_file"); inactive != keys.end()) used -= std::min(used, inactive->second);
                }
                MemoryHeadroom h{at.string(), *limit, used};
                if (!tightest || h.free_bytes() < tightest->free_bytes()) tightest = h;
            }
        } catch (const ParseError&) {
            break;
        }
        if (at == at.parent_path()) break;
    }
    return tightest;
}

} // namespace resmgr::monitor
