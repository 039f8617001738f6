// A queued request's progress line.
#include "cli/progress.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "cli/json_read.hpp"

namespace resmgr::cli {
namespace {

using nlohmann::json;

double number_or_0(const json& j) { return number(j).value_or(0); }

std::string amount(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

std::vector<std::string> strings(const json& list) {
    std::vector<std::string> out;
    if (list.is_array())
        for (const auto& s : list)
            if (s.is_string()) out.push_back(s.get<std::string>());
    return out;
}

bool holds(const json& a) {
    const json& s = at(a, "status");
    return s == "active" || s == "paused";
}

} // namespace

std::string queue_progress(const json& status_result, const std::string& allocation_id) {
    const json& list = at(status_result, "allocations");
    if (!list.is_array()) return "";
    const json* me = nullptr;
    for (const auto& a : list)
        if (at(a, "allocation_id") == allocation_id) me = &a;
    if (!me || at(*me, "status") != "queued") return "";
    std::vector<std::string> reasons;
    const json& asked = at(*me, "resources");
    const json& capacity = at(status_result, "capacity");
    const double cpu = number_or_0(at(asked, "cpu_cores")), cpu_free = number_or_0(at(at(capacity, "cpu_cores"), "available"));
    if (cpu > 0 && cpu > cpu_free + 1e-9) reasons.push_back(amount(cpu) + " CPU cores (" + amount(cpu_free) + " free)");
    const double memory = number_or_0(at(asked, "memory_gb")), memory_free = number_or_0(at(at(capacity, "memory"), "available_gb"));
    if (memory > 0 && memory > memory_free + 1e-9) reasons.push_back(amount(memory) + " GiB of memory (" + amount(memory_free) + " free)");
    const double agents = number_or_0(at(asked, "agents")), agents_free = number_or_0(at(at(capacity, "agent_pool"), "available_agents"));
    if (agents > 0 && agents > agents_free) reasons.push_back(amount(agents) + " agent slots (" + amount(agents_free) + " free)");
    const json& constraints = at(*me, "constraints");
    for (const auto& avoided : strings(at(constraints, "conflict_avoidance")))
        for (const auto& a : list)
            if (holds(a) && at(a, "workflow_id") == avoided) {
                reasons.push_back("workflow " + avoided + " to end (conflict_avoidance)");
                break;
            }
    for (const auto& file : strings(at(constraints, "exclusive_access")))
        for (const auto& a : list) {
            if (&a == me || !holds(a)) continue;
            const auto theirs = strings(at(at(a, "constraints"), "exclusive_access"));
            if (std::find(theirs.begin(), theirs.end(), file) == theirs.end()) continue;
            reasons.push_back(file + " (held by " + text(at(a, "allocation_id"), "?") + " of " + text(at(a, "workflow_id"), "?") + ")");
            break;
        }
    const long long position = at(*me, "queue_position").is_number() ? at(*me, "queue_position").get<long long>() : 0;
    std::string line = position > 0 ? "position " + std::to_string(position) + " in the queue" : "queued";
    if (!reasons.empty()) {
        line += "; waiting for: ";
        for (size_t i = 0; i < reasons.size(); ++i) line += (i ? ", " : "") + reasons[i];
    } else if (position > 1) {
        line += "; waiting for the " + std::to_string(position - 1) + " request(s) ahead of it";
    }
    return line;
}

} // namespace resmgr::cli
