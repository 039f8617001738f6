// Live adjustments on top of an allocation's size: what balance lends (extra cpu.max), what tune
// moves (memory.high, cpu.weight) and what the pressure responder holds back (lower memory.high,
// cpu.weight and cpu.max, a freeze). The ledger never sees them: admission counts sizes only.
// Loans and tune's knobs are not persisted: a restart re-creates every group at its size; the
// responder's are in its own state file (pressure_responder.hpp) and come back with it. Every
// group write of the lifecycle goes through adjusted_limits, so a reallocate, preemption or
// restore keeps them.
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
    // The pressure responder's: each a ceiling over whatever the rest gives.
    std::optional<std::uint64_t> pressure_memory_high; // bytes
    std::optional<std::uint64_t> pressure_cpu_weight;
    std::optional<double> pressure_cpu_max_cores;
    bool pressure_frozen = false;
    bool empty() const {
        return cpu_loan == 0 && !memory_high_ratio && cpu_weight_factor == 1 && !pressure_memory_high && !pressure_cpu_weight &&
               !pressure_cpu_max_cores && !pressure_frozen;
    }
};

using LiveAdjustments = std::map<std::string, LiveAdjustment>; // by allocation id

cgroup::Limits adjusted_limits(const Allocation& a, const core::Policy& policy, const LiveAdjustments& adjustments);

} // namespace resmgr::lifecycle
