// The record of one finished run (analytics::RunRecord) from the allocation as it ended and the
// counters read just before its group went (Lifecycle's final counters). Pure: no I/O.
// May call: analytics, model.
#pragma once

#include <nlohmann/json.hpp>

#include "analytics/run_record.hpp"
#include "resmgr/model.hpp"

namespace resmgr::lifecycle {

// `reason` is the end's reason as Lifecycle::finish has it ("completed: its group is empty",
// "failed", "expired", "released", ...). Figures the counters lack stay unmeasured (nullopt).
analytics::RunRecord run_record_of(const Allocation& ended, const std::string& reason, const nlohmann::json& counters, TimePoint ended_at);

} // namespace resmgr::lifecycle
