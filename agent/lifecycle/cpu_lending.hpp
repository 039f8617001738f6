// `balance`: lending idle CPU of some running allocations to busy ones. The plan is pure
// (analytics/balance); this applies it through the lifecycle's backend every sampling pass while
// balancing is on: a borrower's cpu.max becomes its size + its loan, nothing else changes (the
// ledger keeps every allocation's own size, so admission never counts a loan). Loans are not
// persisted (adjustments.hpp): a restart re-creates every group at its own size, and turning
// balancing off gives them back at once.
// May call: lifecycle (as its friend: the loans and the backend), analytics, monitor, core.
#pragma once

#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "analytics/balance.hpp"
#include "lifecycle/adjustments.hpp"
#include "monitor/sampler.hpp"

namespace resmgr::lifecycle {

class Lifecycle;

class CpuLending {
public:
    struct Settings {
        analytics::BalanceStrategy strategy = analytics::BalanceStrategy::priority_weighted;
        std::string strategy_name = "priority_weighted";
        TimePoint since{};
        std::uint32_t by_uid = 0;
    };

    explicit CpuLending(Lifecycle& life) : life_(life) {}

    // The plan for the running allocations from the latest sample (no sample: nobody's use is
    // known and nothing is lent).
    analytics::BalancePlan plan(const monitor::Snapshot* latest, analytics::BalanceStrategy strategy) const;
    // Lends by `plan` now; returns how many groups were written.
    int apply(const analytics::BalancePlan& plan);
    void enable(const Settings& settings) { settings_ = settings; }
    // Every loan goes back now; returns how many groups were written.
    int disable();
    // Each sampling pass: re-plans and applies while enabled.
    void on_sample(const monitor::Snapshot* latest);
    const std::optional<Settings>& settings() const { return settings_; }
    nlohmann::json plan_json(const analytics::BalancePlan& plan) const;

private:
    // One borrower's cpu.max, written; false when its group refused it (the loan is dropped).
    bool lend(const std::string& id, double loan);

    Lifecycle& life_;
    std::optional<Settings> settings_;
};

} // namespace resmgr::lifecycle
