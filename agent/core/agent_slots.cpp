#include "core/agent_slots.hpp"

#include <algorithm>
#include <cmath>

#include "resmgr/protocol.hpp"

namespace resmgr::core {

using nlohmann::json;

namespace {

bool ahead(const SlotWaiter& a, const SlotWaiter& b) {
    if (a.priority.band() != b.priority.band()) return a.priority.band() > b.priority.band();
    return a.arrival < b.arrival;
}

double seconds(Millis d) { return static_cast<double>(d.count()) / 1000.0; }

} // namespace

std::string to_string(SlotVerdict verdict) {
    switch (verdict) {
    case SlotVerdict::start: return "start";
    case SlotVerdict::queued: return "queued";
    case SlotVerdict::refuse: return "refuse";
    case SlotVerdict::expired: return "expired";
    }
    return "unknown";
}

json SlotWaitSummary::to_json() const {
    json j{{"method", "nearest-rank p95 of the slot waits of the newest " + std::to_string(SlotQueue::kWaitsKept) + " agent starts"},
           {"starts", starts},
           {"needed", needed},
           {"p95_seconds", p95_seconds ? json(*p95_seconds) : json(nullptr)},
           {"max_seconds", max_seconds ? json(*max_seconds) : json(nullptr)}};
    if (!p95_seconds) j["insufficient"] = std::to_string(starts) + " start(s) recorded, " + std::to_string(needed) + " needed for a p95";
    return j;
}

SlotDecision SlotQueue::decide(const SlotAsk& ask, const SlotGate& gate, TimePoint now) {
    drop_gone(now);
    const std::string key = ask.allocation_id + "/" + ask.agent;
    const bool open = gate.slot_free && gate.held.empty();
    auto it = std::find_if(waiters_.begin(), waiters_.end(), [&](const SlotWaiter& w) { return w.key() == key; });
    if (it == waiters_.end()) {
        SlotWaiter w{ask.allocation_id, ask.agent, ask.pid, ask.uid, ask.priority, now, now, now, arrivals_ + 1};
        const bool nobody_ahead = std::none_of(waiters_.begin(), waiters_.end(),
                                               [&](const SlotWaiter& other) { return other.allocation_id == ask.allocation_id; });
        const std::optional<Millis> asked = ask.wait ? ask.wait : gate.held.empty() ? std::nullopt : ask.wait_held;
        const Millis wait = std::min(asked.value_or(Millis(0)), kMaxWait);
        // A start that would not wait takes nothing from another allocation's queued start (slots
        // are per allocation): only the order of waiting starts is kept node-wide.
        if (open && nobody_ahead && (wait <= Millis(0) || !outranked(w, gate))) {
            started(Millis(0));
            return {SlotVerdict::start, Millis(0), 0};
        }
        if (wait <= Millis(0)) return {SlotVerdict::refuse, Millis(0), 0};
        const auto mine = std::count_if(waiters_.begin(), waiters_.end(), [&](const SlotWaiter& w) { return w.uid == ask.uid; });
        if (static_cast<std::size_t>(mine) >= kMaxPerUser)
            throw ApiError(ErrorCode::RESOURCE_EXHAUSTED, "Too many agent starts of this user wait for a slot",
                           std::to_string(mine) + " queued, at most " + std::to_string(kMaxPerUser) + " per user", {"agents"},
                           {"Wait for some of them to start or give up"});
        w.deadline = now + wait;
        w.arrival = ++arrivals_;
        waiters_.push_back(std::move(w));
        return {SlotVerdict::queued, Millis(0), position(key)};
    }
    if (it->pid != ask.pid)
        throw ApiError(ErrorCode::CONFLICT, "A start of agent '" + ask.agent + "' already waits for a slot in allocation '" + ask.allocation_id + "'",
                       "pid " + std::to_string(it->pid), {"agent"}, {"Pick another agent name"});
    it->last_asked = now;
    const Millis waited = std::chrono::duration_cast<Millis>(now - it->since);
    if (open && first_of_allocation(*it) && !outranked(*it, gate)) {
        remove(key);
        started(waited);
        return {SlotVerdict::start, waited, 0};
    }
    if (now >= it->deadline) {
        remove(key);
        return {SlotVerdict::expired, waited, 0};
    }
    return {SlotVerdict::queued, waited, position(key)};
}

std::vector<SlotWaiter> SlotQueue::ordered() const {
    std::vector<SlotWaiter> out = waiters_;
    std::sort(out.begin(), out.end(), ahead);
    return out;
}

std::set<std::string> SlotQueue::waiting_allocations() const {
    std::set<std::string> out;
    for (const auto& w : waiters_) out.insert(w.allocation_id);
    return out;
}

SlotWaitSummary SlotQueue::waits() const {
    SlotWaitSummary s;
    s.starts = waits_.size();
    s.needed = kWaitsNeeded;
    if (waits_.empty()) return s;
    std::vector<Millis> sorted(waits_.begin(), waits_.end());
    std::sort(sorted.begin(), sorted.end());
    s.max_seconds = seconds(sorted.back());
    if (sorted.size() < kWaitsNeeded) return s;
    const auto rank = static_cast<std::size_t>(std::ceil(0.95 * static_cast<double>(sorted.size())));
    s.p95_seconds = seconds(sorted[rank - 1]);
    return s;
}

json SlotQueue::to_json(TimePoint now) const {
    json queue = json::array();
    std::size_t position = 0;
    for (const auto& w : ordered())
        queue.push_back({{"position", ++position},
                         {"allocation_id", w.allocation_id},
                         {"agent", w.agent},
                         {"pid", w.pid},
                         {"uid", w.uid},
                         {"priority", w.priority.value},
                         {"since", format_timestamp(w.since)},
                         {"waited_seconds", seconds(std::chrono::duration_cast<Millis>(now - w.since))},
                         {"deadline", format_timestamp(w.deadline)}});
    return {{"queued", queue}, {"slot_wait", waits().to_json()}};
}

void SlotQueue::drop_gone(TimePoint now) {
    std::erase_if(waiters_, [&](const SlotWaiter& w) { return now - w.last_asked >= kGoneAfter; });
}

std::size_t SlotQueue::position(const std::string& key) const {
    const auto order = ordered();
    for (std::size_t i = 0; i < order.size(); ++i)
        if (order[i].key() == key) return i + 1;
    return 0;
}

bool SlotQueue::first_of_allocation(const SlotWaiter& waiter) const {
    for (const auto& w : ordered())
        if (w.allocation_id == waiter.allocation_id) return w.key() == waiter.key();
    return false;
}

bool SlotQueue::outranked(const SlotWaiter& waiter, const SlotGate& gate) const {
    return std::any_of(waiters_.begin(), waiters_.end(), [&](const SlotWaiter& w) {
        return w.allocation_id != waiter.allocation_id && ahead(w, waiter) && gate.free_slots_in.count(w.allocation_id);
    });
}

void SlotQueue::remove(const std::string& key) {
    std::erase_if(waiters_, [&](const SlotWaiter& w) { return w.key() == key; });
}

void SlotQueue::started(Millis waited) {
    waits_.push_back(waited);
    if (waits_.size() > kWaitsKept) waits_.pop_front();
}

} // namespace resmgr::core
