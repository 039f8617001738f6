#include "lifecycle/cpu_lending.hpp"

#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>

#include "core/holdings.hpp"
#include "lifecycle/lifecycle.hpp"

namespace resmgr::lifecycle {

using nlohmann::json;

analytics::BalancePlan CpuLending::plan(const monitor::Snapshot* latest, analytics::BalanceStrategy strategy) const {
    analytics::BalanceOptions options;
    options.strategy = strategy;
    options.node_cores = life_.ledger_.admission().availability().cpu_total;
    std::vector<analytics::BalanceMember> members;
    for (const auto& [id, a] : life_.ledger_.allocations()) {
        // Only running groups with a CPU size take part: a paused one uses nothing and lends
        // nothing (its CPU already went to whoever preempted it), an uncapped one has no cpu.max.
        if (!core::holds_capacity(a) || a.status != AllocationStatus::active || a.resources.cpu_cores <= 0) continue;
        analytics::BalanceMember m{id, a.priority.value, a.resources.cpu_cores, 0, std::nullopt};
        if (auto it = life_.adjustments_.find(id); it != life_.adjustments_.end()) m.loan = it->second.cpu_loan;
        if (latest)
            if (auto g = latest->groups.find(id); g != latest->groups.end()) m.used = g->second.cpu_cores;
        members.push_back(m);
    }
    return analytics::plan_balance(members, options);
}

bool CpuLending::lend(const std::string& id, double loan) {
    const Allocation* a = life_.ledger_.find(id);
    if (!a) return false;
    life_.adjustments_[id].cpu_loan = loan;
    if (life_.adjust(id)) return true;
    spdlog::warn("balance: {} could not take cpu.max for a loan of {:.3f} cores", id, loan);
    return false;
}

int CpuLending::apply(const analytics::BalancePlan& plan) {
    int written = 0;
    // Loans of allocations that left the plan (ended, paused) go back first.
    std::vector<std::string> gone;
    for (const auto& [id, adj] : life_.adjustments_)
        if (adj.cpu_loan > 0 && std::none_of(plan.entries.begin(), plan.entries.end(), [&](const auto& e) { return e.id == id; })) gone.push_back(id);
    for (const auto& id : gone) written += lend(id, 0);
    for (const auto& e : plan.entries) {
        auto it = life_.adjustments_.find(e.id);
        const double now = it == life_.adjustments_.end() ? 0 : it->second.cpu_loan;
        // A change under a millicore is not a cgroup write (cpu.max is set in microseconds per 100 ms).
        if (std::abs(now - e.loan) < 0.001) continue;
        written += lend(e.id, e.loan);
    }
    return written;
}

int CpuLending::disable() {
    settings_.reset();
    return apply(analytics::BalancePlan{});
}

void CpuLending::on_sample(const monitor::Snapshot* latest) {
    if (!settings_) return;
    apply(plan(latest, settings_->strategy));
}

json CpuLending::plan_json(const analytics::BalancePlan& plan) const {
    json entries = json::array();
    auto round3 = [](double v) { return std::round(v * 1000) / 1000; };
    for (const auto& e : plan.entries) {
        const Allocation* a = life_.ledger_.find(e.id);
        if (!a) continue;
        json j{{"allocation_id", e.id}, {"workflow_id", a->workflow_id}, {"priority", a->priority.value}, {"role", analytics::to_string(e.role)},
               {"size_cpu_cores", a->resources.cpu_cores}, {"loan_cpu_cores", round3(e.loan)}, {"cpu_max_cores", round3(a->resources.cpu_cores + e.loan)}};
        if (e.role == analytics::BalanceRole::lender) j["idle_cpu_cores"] = round3(e.idle);
        entries.push_back(std::move(j));
    }
    return {{"allocations", entries}, {"pool_cpu_cores", round3(plan.pool)}, {"lent_cpu_cores", round3(plan.lent)}, {"method", analytics::kBalanceMethod}};
}

} // namespace resmgr::lifecycle
