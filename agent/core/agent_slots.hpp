// The agent slot queue: starts of agents (`resmgr-run --agent NAME --wait-slot D`) that found no
// free slot in their allocation, or found new agent starts held by the pressure responder
// (queue_agents), wait here until a slot frees, the hold is given back, or their deadline passes.
// Order: higher priority band first, then arrival. A waiter starts only when no waiter of the
// same allocation is ahead of it. Waiters ask again while they wait (resmgr-run every 200 ms,
// like a queued allocation's status query); one that stops asking has gone and leaves the queue.
// It also keeps the newest slot waits of started agents for their p95.
// Pure: requests, the clock and what the pool says in; decisions out. lifecycle/agent_starts acts.
// May call: model.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "resmgr/model.hpp"

namespace resmgr::core {

struct SlotWaiter {
    std::string allocation_id, agent;
    long long pid = 0;
    std::uint32_t uid = 0;
    Priority priority;
    TimePoint since{}, deadline{}, last_asked{};
    std::uint64_t arrival = 0; // ties within a band: the earlier first
    std::string key() const { return allocation_id + "/" + agent; }
};

// What was asked: start now, or wait for a slot up to `wait`.
struct SlotAsk {
    std::string allocation_id, agent;
    long long pid = 0;
    std::uint32_t uid = 0;
    Priority priority;
    std::optional<Millis> wait;      // up to how long to wait for a slot; none: refuse at once
    std::optional<Millis> wait_held{}; // without `wait`: how long to wait while starts are held (resmgr-run: 5m)
};

// What the pool and the pressure responder say at this ask.
struct SlotGate {
    bool slot_free = false;
    std::string held; // the pressure responder's queue_agents hold, why; empty when not held
    // The allocations of queued starts that have a free slot now: a start never overtakes a
    // start of another allocation ahead of it that could start too (node-wide priority order,
    // which matters when a hold is given back and every waiter could start at once).
    std::set<std::string> free_slots_in{};
};

enum class SlotVerdict { start, queued, refuse, expired };

struct SlotDecision {
    SlotVerdict verdict = SlotVerdict::start;
    Millis waited{0};     // start/expired: how long it waited
    std::size_t position = 0; // queued: 1-based in the node's queue
};

// How the newest slot waits spread: nearest-rank p95 over the newest kWaitsKept starts; needs
// kWaitsNeeded of them for a p95 (fewer: count only).
struct SlotWaitSummary {
    std::size_t starts = 0, needed = 0;
    std::optional<double> p95_seconds, max_seconds;
    nlohmann::json to_json() const;
};

class SlotQueue {
public:
    static constexpr std::size_t kMaxPerUser = 64;        // queued starts of one uid
    static constexpr Millis kMaxWait{24 * 3600 * 1000LL}; // longest wait a client may ask for
    static constexpr Millis kGoneAfter{5'000};            // a waiter that stops asking this long is gone
    static constexpr std::size_t kWaitsKept = 100, kWaitsNeeded = 20;

    // One ask (a first one, or a waiter asking again). Drops the gone waiters first. Throws
    // ApiError RESOURCE_EXHAUSTED when the uid has kMaxPerUser queued starts already.
    SlotDecision decide(const SlotAsk& ask, const SlotGate& gate, TimePoint now);
    // Waiters in order (first = next to start).
    std::vector<SlotWaiter> ordered() const;
    // The allocations some waiter waits in, each once (no sort: an ask needs only which).
    std::set<std::string> waiting_allocations() const;
    std::size_t size() const { return waiters_.size(); }
    SlotWaitSummary waits() const;
    // `status pressure` / `status agents`: the queue (who, since, position) and the waits.
    nlohmann::json to_json(TimePoint now) const;

private:
    void drop_gone(TimePoint now);
    std::size_t position(const std::string& key) const;
    bool first_of_allocation(const SlotWaiter& waiter) const;
    bool outranked(const SlotWaiter& waiter, const SlotGate& gate) const;
    void remove(const std::string& key);
    void started(Millis waited);

    std::vector<SlotWaiter> waiters_;
    std::deque<Millis> waits_; // newest last
    std::uint64_t arrivals_ = 0;
};

std::string to_string(SlotVerdict verdict);

} // namespace resmgr::core
