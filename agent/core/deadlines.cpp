#include "core/deadlines.hpp"

namespace resmgr::core {

std::vector<std::string> due_to_start(const Ledger& ledger, TimePoint now) {
    std::vector<std::string> out;
    for (auto& id : ledger.reserved_ids()) {
        const Allocation& a = *ledger.find(id);
        if (a.start_at && *a.start_at <= now && !ledger.holdings().blocking_holder(a)) out.push_back(id);
    }
    return out;
}

std::vector<std::string> lapsed_reservations(const Ledger& ledger, TimePoint now) {
    std::vector<std::string> out;
    for (auto& id : ledger.reserved_ids()) {
        const Allocation& a = *ledger.find(id);
        if (a.expires_at && *a.expires_at <= now && ledger.holdings().blocking_holder(a)) out.push_back(id);
    }
    return out;
}

size_t queue_position(const Ledger& ledger, const std::string& id) {
    const Allocation* me = ledger.find(id);
    if (!me || me->status != AllocationStatus::queued) return 0;
    size_t ahead = 0;
    for (auto& other_id : ledger.queued_ids()) {
        const Allocation& a = *ledger.find(other_id);
        if (a.priority.value > me->priority.value || (a.priority.value == me->priority.value && a.queue_seq < me->queue_seq)) ++ahead;
    }
    return ahead + 1;
}

namespace {

// The allocations whose own deadline has come (the ledger's index) and for which `due` holds.
template <class Due>
std::vector<std::string> due_where(const Ledger& ledger, TimePoint now, Due due) {
    std::vector<std::string> out;
    for (auto& id : ledger.due_by(now))
        if (due(*ledger.find(id))) out.push_back(id);
    return out;
}

} // namespace

std::vector<std::string> due_to_expire(const Ledger& ledger, TimePoint now) {
    return due_where(ledger, now, [now](const Allocation& a) {
        return (a.status == AllocationStatus::active || a.status == AllocationStatus::paused) && !a.terminating_since && a.expires_at &&
               *a.expires_at <= now;
    });
}

std::vector<std::string> due_to_kill(const Ledger& ledger, TimePoint now) {
    return due_where(ledger, now, [now](const Allocation& a) { return a.terminating_since && *a.terminating_since + a.auto_release.grace_period <= now; });
}

std::vector<std::string> due_to_complete(const Ledger& ledger, TimePoint now) {
    return due_where(ledger, now, [now](const Allocation& a) { return a.idle_since && *a.idle_since + a.auto_release.grace_period <= now; });
}

std::optional<TimePoint> next_deadline(const Ledger& ledger) {
    std::optional<TimePoint> next = ledger.earliest_deadline();
    auto consider = [&](TimePoint t) { if (!next || t < *next) next = t; };
    // A reservation waiting for a file wakes nobody before its window closes: the holder's
    // release starts it (refill), or the window lapses.
    for (auto& id : ledger.reserved_ids()) {
        const Allocation& a = *ledger.find(id);
        if (a.start_at) consider(ledger.holdings().blocking_holder(a) && a.expires_at ? *a.expires_at : *a.start_at);
    }
    return next;
}

} // namespace resmgr::core
