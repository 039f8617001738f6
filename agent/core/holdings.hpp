// What the allocations that hold capacity hold, summed as they change, so an admission decision
// costs O(log n), not a scan: node and per-workflow totals, which workflows are held and avoided
// (conflict_avoidance), and who holds which exclusive file. Owned by the Ledger, which accounts
// every change here; read by Admission. Pure: no I/O. May call: model.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "resmgr/model.hpp"

namespace resmgr::core {

// Expired with on_timeout=false still runs; reserved and queued hold nothing yet.
bool holds_capacity(const Allocation& a);

// Integer micro-cores, so adding and removing fractional cores never drifts.
std::int64_t micro_cores(double cores);

struct HeldTotals {
    std::int64_t cpu_micro = 0;
    std::uint64_t memory = 0;
    int agents = 0;
    std::uint64_t storage = 0; // bytes of temporary directories promised
    void add(const Resources& r, int sign);
    // What `a` occupies in its status: a paused (frozen) allocation holds no CPU, same memory.
    void add_held(const Allocation& a, int sign);
};

class Holdings {
public:
    // Counts `a` in (+1) or out (-1); allocations that hold no capacity are not counted.
    void account(const Allocation& a, int sign);
    const HeldTotals& node() const { return node_; }
    // Workflow names belong to their owner: uid 1000's "ci" and root's "ci" are two workflows.
    HeldTotals workflow(std::uint32_t uid, const std::string& workflow) const;
    // False when no holder avoids the request's workflow and the request avoids no held
    // workflow: the common case, decided without a scan.
    bool avoidance_possible(const AllocationRequest& request) const;
    // The running allocation holding `path` exclusively, if any.
    std::optional<std::string> file_holder(const std::string& path) const;
    // The allocation other than `a` that holds one of a's exclusive files now.
    std::optional<std::string> blocking_holder(const Allocation& a) const;

private:
    HeldTotals node_;
    std::map<std::string, HeldTotals> workflows_; // by owner uid + "/" + workflow
    std::map<std::string, int> holding_per_workflow_;
    std::map<std::string, int> avoided_by_holders_; // how many holders list each workflow to avoid
    std::map<std::string, std::string> file_holders_; // path -> holder
};

} // namespace resmgr::core
