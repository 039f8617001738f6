// Balancing CPU between running allocations: idle CPU of some is lent to busy ones, as extra
// cpu.max above their own size, and taken back as soon as its owners use it again. Pure: each
// allocation's size, current loan and the cores it used over the last sampling interval in; the
// loan each should have out. No I/O; the lifecycle's CpuLending applies the plan every pass.
//
// Method (named in every answer as kBalanceMethod):
//   - a lender uses less than `idle_below` of its own size; it lends what it does not use
//     beyond its use + `margin` (its own cpu.max never changes, so it can always use its size);
//   - a borrower uses at least `busy_above` of its cpu.max (own size + loan): it is held back;
//   - a former borrower that is no longer held back keeps the loan it uses (+margin), no more;
//   - the pool (what lenders do not use) goes first to those kept loans, the rest to borrowers
//     in proportion to their weight (priority, or equal with the even strategy), each capped so
//     that its cpu.max never exceeds the node's cores; what a cap leaves is shared again;
//   - a lender that needs its CPU back shrinks the pool at the next pass, and every loan with it:
//     nothing is lent that its owner uses, for longer than one sampling interval.
// May call: nothing.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace resmgr::analytics {

inline constexpr const char* kBalanceMethod =
    "lenders (use < 50 % of their size) lend all but their use +25 %; borrowers (use >= 90 % of cpu.max) share the pool "
    "by priority weight, cpu.max capped at the node's cores; recomputed every sampling pass from cpu.stat";

struct BalanceMember {
    std::string id;
    int priority = 50;
    double size = 0;             // the allocation's own CPU cores (cpu.max without a loan)
    double loan = 0;             // cores lent to it now
    std::optional<double> used;  // cores used over the last sampling interval; nullopt: not sampled yet
};

enum class BalanceStrategy { priority_weighted, even };

struct BalanceOptions {
    BalanceStrategy strategy = BalanceStrategy::priority_weighted;
    double idle_below = 0.5;
    double busy_above = 0.9;
    double margin = 0.25;
    double node_cores = 0; // the machine's CPUs: no cpu.max above it
    double min_loan = 0.01; // smaller loans are not worth a cgroup write
};

enum class BalanceRole { lender, borrower, keeps_loan, neither };

struct BalanceEntry {
    std::string id;
    BalanceRole role = BalanceRole::neither;
    double idle = 0; // what a lender puts in the pool
    double loan = 0; // what it should be lent from now on
};

struct BalancePlan {
    std::vector<BalanceEntry> entries; // in the members' order
    double pool = 0;                   // cores lenders do not use
    double lent = 0;                   // cores lent out in this plan
};

BalancePlan plan_balance(const std::vector<BalanceMember>& members, const BalanceOptions& options);

const char* to_string(BalanceRole role);
std::optional<BalanceStrategy> balance_strategy_from_string(const std::string& text);

} // namespace resmgr::analytics
