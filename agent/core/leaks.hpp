// Leak detection (the seed's recovery_procedures.resource_leak_detection), as decisions: from the
// groups found under resmgrd's own parent, the ledger's allocations, which of the suspicious
// groups still hold processes and the temp root's entries, the leaks of one pass; and, across
// passes, which of them to act on. Pure: names, allocations and the clock in, findings out. The
// lifecycle's LeakDetector gathers the inputs and acts (lifecycle/leak_detector.hpp).
// May call: model, core.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/policy.hpp"
#include "resmgr/model.hpp"

namespace resmgr::core {

enum class LeakKind {
    unclaimed_group,      // a group no allocation holding capacity claims (processes or not)
    vanished_group,       // an allocation holding capacity whose group is gone
    ended_with_processes, // the group of an ended allocation still runs processes
    orphan_temp_dir,      // a temporary directory no allocation holding capacity claims
};
std::string to_string(LeakKind kind);

// A name resmgrd could have given a group: an allocation id (generated alloc_<hex>, or a
// reservation_id: 1-64 of [A-Za-z0-9_]). Anything else under the parent (dots, dashes, a
// keeper's or another tool's directory) was never made here and is left alone.
bool valid_allocation_id(std::string_view name);

struct LeakFinding {
    LeakKind kind = LeakKind::unclaimed_group;
    std::string subject;    // the group, allocation id or directory name
    TimePoint first_seen{}; // the first pass that saw it (LeakTracker keeps it across passes)
    std::string detail;
    bool has_processes = false; // groups: processes were still in it
    bool confirmed = false;     // seen in two consecutive passes: acted on
    bool escalated = false;     // still there escalation_timeout after first_seen
    nlohmann::json to_json() const;
};

struct LeakInputs {
    // The child groups under resmgrd's allocations parent, as the backend lists them; nullopt
    // when the backend keeps no groups (accounting): no group findings at all then.
    std::optional<std::vector<std::string>> groups;
    const std::map<std::string, Allocation>* allocations = nullptr;
    std::set<std::string> ended;           // ids of allocations resmgrd ended (its recent ends)
    std::set<std::string> with_processes;  // of the groups no live allocation claims: those with processes
    std::optional<std::vector<std::string>> temp_entries; // the temp root's names; nullopt: no temp root
    TimePoint now{};
};

// One pass's findings (first_seen = now, nothing confirmed yet), sorted by kind and subject.
// A group of an allocation holding capacity is never a finding.
std::vector<LeakFinding> find_leaks(const LeakInputs& in);

// The names find_leaks needs processes checked for: resmgrd-named groups no live allocation claims.
std::vector<std::string> unclaimed_groups(const std::vector<std::string>& groups, const std::map<std::string, Allocation>& allocations);

// Whether a finding still holds against the ledger as it is now. Acting on a pass's findings one
// by one can end allocations (a vanished group), which admits queued ones: a group or directory
// listed as unclaimed may belong to an allocation holding capacity by the time it is acted on.
bool still_leaked(const LeakFinding& finding, const std::map<std::string, Allocation>& allocations);

// Remembers the findings of the previous pass: a finding is confirmed when the previous pass
// saw it too (a group being made right now is not a leak), keeps its first_seen, and escalates
// once it has been there escalation_timeout. A finding missing from a pass starts over.
class LeakTracker {
public:
    std::vector<LeakFinding> observe(std::vector<LeakFinding> findings, TimePoint now, Seconds escalation_timeout);

private:
    std::map<std::pair<LeakKind, std::string>, TimePoint> seen_;
};

// One pass's verdict for the event: the confirmed leaked groups' share of resmgrd's groups.
struct LeakPassSummary {
    int groups = 0;        // resmgrd-named groups listed
    int leaked_groups = 0; // confirmed unclaimed_group + ended_with_processes findings
    double leak_rate = 0;  // percent of groups (0 with no groups)
    bool over_threshold = false;
    bool escalated = false; // any confirmed finding escalated
    bool error() const { return over_threshold || escalated; }
};
LeakPassSummary summarize_leaks(const std::vector<LeakFinding>& findings, const std::optional<std::vector<std::string>>& groups,
                                const Policy::LeakDetection& policy);

} // namespace resmgr::core
