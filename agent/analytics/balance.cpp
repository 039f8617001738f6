#include "analytics/balance.hpp"

#include <algorithm>

namespace resmgr::analytics {

BalancePlan plan_balance(const std::vector<BalanceMember>& members, const BalanceOptions& o) {
    BalancePlan plan;
    std::vector<std::size_t> borrowers, keepers;
    for (std::size_t i = 0; i < members.size(); ++i) {
        const BalanceMember& m = members[i];
        BalanceEntry e{m.id};
        if (m.used && m.size > 0) {
            const double used = *m.used;
            if (used >= o.busy_above * (m.size + m.loan)) {
                e.role = BalanceRole::borrower;
                borrowers.push_back(i);
            } else if (m.loan > 0 && used > m.size) {
                e.role = BalanceRole::keeps_loan;
                keepers.push_back(i);
            } else if (used < o.idle_below * m.size) {
                e.role = BalanceRole::lender;
                e.idle = std::max(0.0, m.size - used * (1 + o.margin));
                plan.pool += e.idle;
            }
        }
        plan.entries.push_back(e);
    }
    const auto cap = [&](std::size_t i) { return std::max(0.0, o.node_cores - members[i].size); };

    // Kept loans first: what a former borrower still uses, scaled down if the pool shrank.
    double kept_wanted = 0;
    for (std::size_t i : keepers) kept_wanted += std::min(cap(i), *members[i].used * (1 + o.margin) - members[i].size);
    const double kept_share = kept_wanted > plan.pool && kept_wanted > 0 ? plan.pool / kept_wanted : 1.0;
    double left = plan.pool;
    for (std::size_t i : keepers) {
        const double loan = std::min(cap(i), *members[i].used * (1 + o.margin) - members[i].size) * kept_share;
        plan.entries[i].loan = loan;
        left -= loan;
    }

    // The rest to borrowers by weight, water-filling around the node-size caps.
    std::vector<std::size_t> open = borrowers;
    while (left > o.min_loan && !open.empty()) {
        double weights = 0;
        for (std::size_t i : open) weights += o.strategy == BalanceStrategy::even ? 1.0 : std::max(1, members[i].priority);
        double given = 0;
        std::vector<std::size_t> still_open;
        for (std::size_t i : open) {
            const double w = o.strategy == BalanceStrategy::even ? 1.0 : std::max(1, members[i].priority);
            const double share = left * w / weights;
            const double room = cap(i) - plan.entries[i].loan;
            const double take = std::min(share, room);
            plan.entries[i].loan += take;
            given += take;
            if (room > share) still_open.push_back(i);
        }
        left -= given;
        if (still_open.size() == open.size()) break; // nobody capped: all of it was shared
        open = std::move(still_open);
    }
    for (auto& e : plan.entries) {
        if (e.loan < o.min_loan) e.loan = 0;
        plan.lent += e.loan;
    }
    return plan;
}

const char* to_string(BalanceRole role) {
    switch (role) {
    case BalanceRole::lender: return "lender";
    case BalanceRole::borrower: return "borrower";
    case BalanceRole::keeps_loan: return "keeps_loan";
    case BalanceRole::neither: return "neither";
    }
    return "neither";
}

std::optional<BalanceStrategy> balance_strategy_from_string(const std::string& text) {
    if (text.empty() || text == "priority_weighted") return BalanceStrategy::priority_weighted;
    if (text == "even") return BalanceStrategy::even;
    return std::nullopt;
}

} // namespace resmgr::analytics
