// Sizing an allocation from its owner's recorded runs, shared by optimize and allocate's
// "resources": "auto" (both in the operation groups; the model itself is analytics/sizing).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analytics/sizing.hpp"
#include "history/history_store.hpp"
#include "resmgr/model.hpp"

namespace resmgr::server {

struct SizedFromHistory {
    analytics::Sizing sizing;
    std::vector<analytics::RunRecord> runs;
    std::string basis; // "workflow_type build" or "workflow wf-42"
};

// The runs of `workflow_type` (else of `workflow_id`) that `owner` recorded, and their sizing.
SizedFromHistory size_from_history(const history::HistoryStore& store, std::uint32_t owner, const std::string& workflow_type,
                                   const std::string& workflow_id, TimePoint now, const analytics::SizingOptions& options = {});
// The method, the runs it learned from and the back-test, as the operations show them.
nlohmann::json sizing_json(const analytics::Sizing& sizing);

} // namespace resmgr::server
