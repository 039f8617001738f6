#include "lifecycle/adjustments.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace resmgr::lifecycle {

cgroup::Limits adjusted_limits(const Allocation& a, const core::Policy& policy, const LiveAdjustments& adjustments) {
    cgroup::Limits limits = core::limits_for(a, policy);
    auto it = adjustments.find(a.allocation_id);
    if (it == adjustments.end()) return limits;
    const LiveAdjustment& adj = it->second;
    if (adj.cpu_loan > 0 && limits.cpu_quota_us)
        limits.cpu_quota_us = static_cast<std::uint64_t>(std::llround((a.resources.cpu_cores + adj.cpu_loan) * static_cast<double>(limits.cpu_period_us)));
    if (adj.memory_high_ratio && limits.memory_max)
        limits.memory_high = static_cast<std::uint64_t>(static_cast<double>(*limits.memory_max) * std::clamp(*adj.memory_high_ratio, 0.1, 1.0));
    if (adj.cpu_weight_factor != 1)
        limits.cpu_weight = static_cast<std::uint64_t>(std::clamp<long long>(std::llround(static_cast<double>(limits.cpu_weight) * adj.cpu_weight_factor), 1, 10000));
    if (adj.pressure_memory_high) limits.memory_high = std::min(limits.memory_high.value_or(UINT64_MAX), *adj.pressure_memory_high);
    if (adj.pressure_cpu_weight) limits.cpu_weight = std::clamp<std::uint64_t>(*adj.pressure_cpu_weight, 1, limits.cpu_weight);
    if (adj.pressure_cpu_max_cores) {
        auto cap = static_cast<std::uint64_t>(std::max(1000.0, std::round(*adj.pressure_cpu_max_cores * static_cast<double>(limits.cpu_period_us))));
        limits.cpu_quota_us = std::min(limits.cpu_quota_us.value_or(UINT64_MAX), cap);
    }
    return limits;
}

} // namespace resmgr::lifecycle
