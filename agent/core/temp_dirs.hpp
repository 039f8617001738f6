// Which per-allocation temporary directories should exist: the names a temp root may hold (an
// allocation id, nothing a path could misread) and, from the names found there and the ledger,
// the orphans to remove (no allocation holding capacity claims them: ended, never started, or
// left by a crash). Pure: names and allocations in, decisions out. The leak detector and the
// daemon's start (restart recovery) call find_orphan_temp_dirs; lifecycle/temp_dirs acts on it.
// May call: model, core.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "resmgr/model.hpp"

namespace resmgr::core {

// An allocation id as a directory name: 1-64 of [A-Za-z0-9_-], so never ".", "..", a path, a
// hidden name or a control character.
bool valid_temp_dir_name(std::string_view name);

struct TempDirFindings {
    std::vector<std::string> orphans; // valid names no allocation holding capacity claims: remove
    std::vector<std::string> foreign; // names resmgrd never makes: reported, left alone
};

// `names`: the entries of the temp root (any order, any content). Sorted answers.
TempDirFindings find_orphan_temp_dirs(const std::vector<std::string>& names, const std::map<std::string, Allocation>& allocations);

} // namespace resmgr::core
