// Temp root names and orphans (see temp_dirs.hpp).
#include "core/temp_dirs.hpp"

#include <algorithm>

#include "core/holdings.hpp"

namespace resmgr::core {

bool valid_temp_dir_name(std::string_view name) {
    return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

TempDirFindings find_orphan_temp_dirs(const std::vector<std::string>& names, const std::map<std::string, Allocation>& allocations) {
    TempDirFindings out;
    for (const auto& name : names) {
        if (!valid_temp_dir_name(name)) {
            out.foreign.push_back(name);
            continue;
        }
        auto it = allocations.find(name);
        if (it == allocations.end() || !holds_capacity(it->second)) out.orphans.push_back(name);
    }
    std::sort(out.orphans.begin(), out.orphans.end());
    std::sort(out.foreign.begin(), out.foreign.end());
    return out;
}

} // namespace resmgr::core
