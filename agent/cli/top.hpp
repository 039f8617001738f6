// `resmgr top`: the live view of the node and its allocations, and `--once` for scripts.
#pragma once

#include <string>
#include <vector>

namespace resmgr::cli {

// `args`: the program name, then top's own options (the word "top" taken out). Returns the exit
// status: 0, 1 when resmgrd cannot be asked (--once), 2 on a usage error.
int run_top(const std::vector<std::string>& args);

} // namespace resmgr::cli
