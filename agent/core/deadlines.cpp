#include "core/deadlines.hpp"

namespace resmgr::core {

std::vector<std::string> due_to_start(const Ledger& ledger, TimePoint now) {
    std::vector<std::string> out;
    for (auto& [id, a] : ledger.allocations())
        if (a.status == AllocationStatus::reserved && a.start_at && *a.start_at <= now && !ledger.holdings().blocking_holder(a))
            out.push_back(id);
    return out;
}

std::vector<std::string> lapsed_reservations(const Ledger& ledger, TimePoint now) {
    std::vector<std::string> out;
    for (auto& [id, a] : ledger.allocations())
        if (a.status == AllocationStatus::reserved && a.expires_at && *a.expires_at <= now && ledger.holdings().blocking_holder(a)) out.push_back(id);
    return out;
}

size_t queue_position(const Ledger& ledger, const std::string& id) {
    const Allocation* me = ledger.find(id);
    if (!me || me->status != AllocationStatus::queued) return 0;
    size_t ahead = 0;
    for (auto& [other_id, a] : ledger.allocations())
        if (a.status == AllocationStatus::queued &&
            (a.priority.value > me->priority.value || (a.priority.value == me->priority.value && a.queue_seq < me->queue_seq)))
            ++ahead;
    return ahead + 1;
}

std::vector<std::string> due_to_expire(const Ledger& ledger, TimePoint now) {
    std::vector<std::string> out;
    for (auto& [id, a] : ledger.allocations())
        if ((a.status == AllocationStatus::active || a.status == AllocationStatus::paused) && !a.terminating_since && a.expires_at &&
            *a.expires_at <= now)
            out.push_back(id);
    return out;
}

std::vector<std::string> due_to_kill(const Ledger& ledger, TimePoint now) {
    std::vector<std::string> out;
    for (auto& [id, a] : ledger.allocations())
        if (a.terminating_since && *a.terminating_since + a.auto_release.grace_period <= now) out.push_back(id);
    return out;
}

std::vector<std::string> due_to_complete(const Ledger& ledger, TimePoint now) {
    std::vector<std::string> out;
    for (auto& [id, a] : ledger.allocations())
        if (a.idle_since && *a.idle_since + a.auto_release.grace_period <= now) out.push_back(id);
    return out;
}

std::optional<TimePoint> next_deadline(const Ledger& ledger) {
    std::optional<TimePoint> next;
    auto consider = [&](TimePoint t) { if (!next || t < *next) next = t; };
    for (auto& [id, a] : ledger.allocations()) {
        if (a.idle_since) consider(*a.idle_since + a.auto_release.grace_period);
        if (a.terminating_since) consider(*a.terminating_since + a.auto_release.grace_period);
        else if ((a.status == AllocationStatus::active || a.status == AllocationStatus::paused) && a.expires_at) consider(*a.expires_at);
        // A reservation waiting for a file wakes nobody before its window closes: the holder's
        // release starts it (refill), or the window lapses.
        else if (a.status == AllocationStatus::reserved && a.start_at) consider(ledger.holdings().blocking_holder(a) && a.expires_at ? *a.expires_at : *a.start_at);
    }
    return next;
}

} // namespace resmgr::core
