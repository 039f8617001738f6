#include "analytics/run_record.hpp"

namespace resmgr::analytics {

namespace {
constexpr struct { RunOutcome outcome; const char* name; } kOutcomeNames[] = {
    {RunOutcome::completed, "completed"}, {RunOutcome::failed, "failed"},
    {RunOutcome::oom_killed, "oom_killed"}, {RunOutcome::expired, "expired"},
    {RunOutcome::released, "released"},
};
} // namespace

const char* to_string(RunOutcome outcome) {
    for (const auto& row : kOutcomeNames)
        if (row.outcome == outcome) return row.name;
    return "completed";
}

std::optional<RunOutcome> run_outcome_from_string(const std::string& text) {
    for (const auto& row : kOutcomeNames)
        if (text == row.name) return row.outcome;
    return std::nullopt;
}

void set_exit(RunRecord& run, int exit_code) {
    run.exit_code = exit_code;
    if (exit_code != 0 && run.outcome == RunOutcome::completed) run.outcome = RunOutcome::failed;
}

} // namespace resmgr::analytics
