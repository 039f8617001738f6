// Leak findings and their tracking across passes (see leaks.hpp).
#include "core/leaks.hpp"

#include <algorithm>
#include <tuple>

#include "core/holdings.hpp"
#include "core/temp_dirs.hpp"

namespace resmgr::core {

std::string to_string(LeakKind kind) {
    switch (kind) {
    case LeakKind::unclaimed_group: return "unclaimed_group";
    case LeakKind::vanished_group: return "vanished_group";
    case LeakKind::ended_with_processes: return "ended_with_processes";
    case LeakKind::orphan_temp_dir: return "orphan_temp_dir";
    }
    return "unclaimed_group";
}

bool valid_allocation_id(std::string_view name) {
    return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    });
}

nlohmann::json LeakFinding::to_json() const {
    return {{"kind", to_string(kind)},          {"subject", subject},     {"first_seen", format_timestamp(first_seen)},
            {"detail", detail},                 {"confirmed", confirmed}, {"escalated", escalated},
            {"has_processes", has_processes}};
}

namespace {

bool claims_group(const std::map<std::string, Allocation>& allocations, const std::string& id) {
    auto it = allocations.find(id);
    return it != allocations.end() && holds_capacity(it->second);
}

} // namespace

std::vector<std::string> unclaimed_groups(const std::vector<std::string>& groups, const std::map<std::string, Allocation>& allocations) {
    std::vector<std::string> out;
    for (const auto& g : groups)
        if (valid_allocation_id(g) && !claims_group(allocations, g)) out.push_back(g);
    std::sort(out.begin(), out.end());
    return out;
}

bool still_leaked(const LeakFinding& finding, const std::map<std::string, Allocation>& allocations) {
    switch (finding.kind) {
    case LeakKind::unclaimed_group:
    case LeakKind::ended_with_processes:
        return !claims_group(allocations, finding.subject);
    case LeakKind::vanished_group:
        return claims_group(allocations, finding.subject);
    case LeakKind::orphan_temp_dir:
        return !find_orphan_temp_dirs({finding.subject}, allocations).orphans.empty();
    }
    return false;
}

std::vector<LeakFinding> find_leaks(const LeakInputs& in) {
    static const std::map<std::string, Allocation> kNone;
    const auto& allocations = in.allocations ? *in.allocations : kNone;
    std::vector<LeakFinding> out;
    auto add = [&](LeakKind kind, const std::string& subject, std::string detail, bool processes = false) {
        out.push_back({kind, subject, in.now, std::move(detail), processes, false, false});
    };
    if (in.groups) {
        for (const auto& g : unclaimed_groups(*in.groups, allocations)) {
            const bool processes = in.with_processes.count(g) > 0;
            auto it = allocations.find(g);
            const bool ended = in.ended.count(g) > 0 || it != allocations.end();
            if (ended && processes)
                add(LeakKind::ended_with_processes, g,
                    "allocation " + g + (it != allocations.end() ? " is " + to_string(it->second.status) : " ended") +
                        " but processes still run in its group",
                    true);
            else
                add(LeakKind::unclaimed_group, g,
                    std::string("no allocation holding capacity claims this group") + (processes ? "; processes still run in it" : "; it is empty"),
                    processes);
        }
        const std::set<std::string> present(in.groups->begin(), in.groups->end());
        for (const auto& [id, a] : allocations)
            if (holds_capacity(a) && !present.count(id))
                add(LeakKind::vanished_group, id, "allocation " + id + " of workflow " + a.workflow_id + " is " + to_string(a.status) + " but its group is gone");
    }
    if (in.temp_entries)
        for (const auto& name : find_orphan_temp_dirs(*in.temp_entries, allocations).orphans)
            add(LeakKind::orphan_temp_dir, name, "no allocation holding capacity claims this temporary directory");
    std::sort(out.begin(), out.end(), [](const LeakFinding& a, const LeakFinding& b) {
        return std::tie(a.kind, a.subject) < std::tie(b.kind, b.subject);
    });
    return out;
}

std::vector<LeakFinding> LeakTracker::observe(std::vector<LeakFinding> findings, TimePoint now, Seconds escalation_timeout) {
    std::map<std::pair<LeakKind, std::string>, TimePoint> next;
    for (auto& f : findings) {
        auto key = std::make_pair(f.kind, f.subject);
        if (auto it = seen_.find(key); it != seen_.end()) {
            f.first_seen = it->second;
            f.confirmed = true;
            f.escalated = now - f.first_seen >= escalation_timeout;
        } else {
            f.first_seen = now;
        }
        next.emplace(key, f.first_seen);
    }
    seen_ = std::move(next);
    return findings;
}

LeakPassSummary summarize_leaks(const std::vector<LeakFinding>& findings, const std::optional<std::vector<std::string>>& groups,
                                const Policy::LeakDetection& policy) {
    LeakPassSummary s;
    if (groups) s.groups = static_cast<int>(std::count_if(groups->begin(), groups->end(), [](auto& g) { return valid_allocation_id(g); }));
    for (const auto& f : findings) {
        if (!f.confirmed) continue;
        s.escalated = s.escalated || f.escalated;
        if (f.kind == LeakKind::unclaimed_group || f.kind == LeakKind::ended_with_processes) ++s.leaked_groups;
    }
    if (s.groups > 0) s.leak_rate = 100.0 * s.leaked_groups / s.groups;
    s.over_threshold = s.leaked_groups > 0 && s.leak_rate >= policy.leak_threshold;
    return s;
}

} // namespace resmgr::core
