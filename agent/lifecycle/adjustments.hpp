// Live adjustments on top of an allocation's size: what balance lends (extra cpu.max) and what
// tune moves (memory.high, cpu.weight). The ledger never sees them: admission counts sizes only.
// They are not persisted: a restart re-creates every group at its size. Every group write of the
// lifecycle goes through adjusted_limits, so a reallocate, preemption or restore keeps them.
// May call: core, cgroup.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "cgroup/backend.hpp"
#include "core/ledger.hpp"

namespace resmgr::lifecycle {

struct LiveAdjustment {
    double cpu_loan = 0;                     // cores lent above the size (balance)
    std::optional<double> memory_high_ratio; // memory.high / memory.max (tune memory)
    double cpu_weight_factor = 1;            // x the band's cpu.weight (tune cpu)
    bool empty() const { return cpu_loan == 0 && !memory_high_ratio && cpu_weight_factor == 1; }
};

using LiveAdjustments = std::map<std::string, LiveAdjustment>; // by allocation id

cgroup::Limits adjusted_limits(const Allocation& a, const core::Policy& policy, const LiveAdjustments& adjustments);

} // namespace resmgr::lifecycle
