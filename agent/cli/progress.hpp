// What a queued request waits for, as `resmgr-run --wait` tells the person running it: its place
// in the line and which of capacity (what it asks against what is free now), a running workflow
// it must avoid (conflict_avoidance) and an exclusive file another allocation holds keeps it
// waiting. Pure: read from one `status` answer of resmgrd.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace resmgr::cli {

// "position 2 in the queue; waiting for: 1.5 CPU cores (0.5 free), workflow wf-b to end
// (conflict_avoidance), flake.nix (held by alloc_x of wf-c)"; "" when the allocation is not in
// `status_result` or not queued. Ahead of it in the line is said when nothing else holds it.
std::string queue_progress(const nlohmann::json& status_result, const std::string& allocation_id);

} // namespace resmgr::cli
