// Running sums of what held allocations hold (see holdings.hpp).
#include "core/holdings.hpp"

#include <cmath>

namespace resmgr::core {
namespace {

std::string workflow_key(std::uint32_t uid, const std::string& workflow) { return std::to_string(uid) + "/" + workflow; }

} // namespace

bool holds_capacity(const Allocation& a) {
    return a.status == AllocationStatus::active || a.status == AllocationStatus::paused || a.status == AllocationStatus::expired;
}

std::int64_t micro_cores(double cores) { return std::llround(cores * 1e6); }

void HeldTotals::add(const Resources& r, int sign) {
    cpu_micro += sign * micro_cores(r.cpu_cores);
    memory = sign > 0 ? memory + r.memory_bytes : memory - r.memory_bytes;
    agents += sign * r.agents;
    storage = sign > 0 ? storage + r.storage_bytes : storage - r.storage_bytes;
}

void HeldTotals::add_held(const Allocation& a, int sign) {
    if (a.status != AllocationStatus::paused) cpu_micro += sign * micro_cores(a.resources.cpu_cores);
    memory = sign > 0 ? memory + a.resources.memory_bytes : memory - a.resources.memory_bytes;
    agents += sign * a.resources.agents;
    storage = sign > 0 ? storage + a.resources.storage_bytes : storage - a.resources.storage_bytes;
}

void Holdings::account(const Allocation& a, int sign) {
    if (!holds_capacity(a)) return;
    auto count = [sign](std::map<std::string, int>& m, const std::string& key) {
        if ((m[key] += sign) == 0) m.erase(key);
    };
    count(holding_per_workflow_, a.workflow_id);
    for (auto& avoided : a.constraints.conflict_avoidance) count(avoided_by_holders_, avoided);
    for (auto& file : a.constraints.exclusive_access) {
        if (sign > 0) file_holders_.emplace(file, a.allocation_id);
        else if (auto it = file_holders_.find(file); it != file_holders_.end() && it->second == a.allocation_id) file_holders_.erase(it);
    }
    node_.add_held(a, sign);
    const std::string key = workflow_key(a.owner.uid, a.workflow_id);
    HeldTotals& w = workflows_[key];
    w.add_held(a, sign);
    if (w.cpu_micro == 0 && w.memory == 0 && w.agents == 0) workflows_.erase(key);
}

HeldTotals Holdings::workflow(std::uint32_t uid, const std::string& workflow) const {
    auto it = workflows_.find(workflow_key(uid, workflow));
    return it == workflows_.end() ? HeldTotals{} : it->second;
}

bool Holdings::avoidance_possible(const AllocationRequest& request) const {
    if (avoided_by_holders_.count(request.workflow_id) > 0) return true;
    for (auto& w : request.constraints.conflict_avoidance)
        if (holding_per_workflow_.count(w) > 0) return true;
    return false;
}

std::optional<std::string> Holdings::file_holder(const std::string& path) const {
    auto it = file_holders_.find(path);
    if (it == file_holders_.end()) return std::nullopt;
    return it->second;
}

std::optional<std::string> Holdings::blocking_holder(const Allocation& a) const {
    for (auto& file : a.constraints.exclusive_access)
        if (auto it = file_holders_.find(file); it != file_holders_.end() && it->second != a.allocation_id) return it->second;
    return std::nullopt;
}

} // namespace resmgr::core
