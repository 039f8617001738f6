// Agent starts through the slot queue (see agent_starts.hpp): the queue's decision, then the
// lifecycle's attach.
#include "lifecycle/agent_starts.hpp"

#include <spdlog/spdlog.h>

namespace resmgr::lifecycle {

using nlohmann::json;

bool AgentStarts::slot_free(const Allocation& a) const {
    return core::holds_capacity(a) && life_.monitoring_->agents().live(a.allocation_id) < a.resources.agents;
}

core::SlotDecision AgentStarts::start(const std::string& id, const AttachTarget& target, std::uint32_t uid, std::optional<Millis> wait,
                                      std::optional<Millis> wait_held) {
    const Allocation* a = life_.ledger_.find(id);
    if (!a) throw ApiError(ErrorCode::NOT_FOUND, "Allocation " + id + " not found");
    if (!core::holds_capacity(*a) || !life_.monitoring_) {
        life_.attach(id, target); // says why it cannot: not running, no monitoring
        return {};
    }
    auto& pool = life_.monitoring_->agents();
    const int in_use = pool.live(id);
    try {
        pool.check_slot(*a, target.agent);
    } catch (const ApiError& e) {
        if (e.code != ErrorCode::RESOURCE_EXHAUSTED) throw; // the name runs already
    }
    core::SlotGate gate{slot_free(*a), pressure_.agent_starts_held(), {}};
    for (const auto& waiting : queue_.waiting_allocations())
        if (const Allocation* other = life_.ledger_.find(waiting); other && slot_free(*other)) gate.free_slots_in.insert(waiting);
    const core::SlotAsk ask{id, target.agent, target.pid, uid, a->priority, wait, wait_held};
    const core::SlotDecision decision = queue_.decide(ask, gate, life_.clock_());
    const std::string slots = std::to_string(in_use) + " of " + std::to_string(a->resources.agents) + " agent slot(s) in use";
    switch (decision.verdict) {
    case core::SlotVerdict::start:
        life_.attach(id, target);
        if (decision.waited > Millis(0))
            spdlog::info("agent {} of {} started after {} waiting for a slot", target.agent, id, format_duration(decision.waited));
        return decision;
    case core::SlotVerdict::queued: return decision;
    case core::SlotVerdict::refuse:
        if (!gate.held.empty())
            throw ApiError(ErrorCode::RESOURCE_EXHAUSTED, "New agent starts are held by the pressure responder (queue_agents)", gate.held,
                           {"agents"}, {"Wait for a slot: resmgr-run --agent NAME --wait-slot 5m", "Stop idle agents (resmgr status pressure lists them)"});
        throw ApiError(ErrorCode::RESOURCE_EXHAUSTED, "Allocation '" + id + "' has no free agent slot",
                       slots + (gate.slot_free ? "; earlier starts wait for the free one" : ""), {"agents"},
                       {"Reallocate with more agents (resmgr reallocate ... '{\"resources\":{\"agents\":N}}')",
                        "Wait for a slot: resmgr-run --agent NAME --wait-slot 5m"});
    case core::SlotVerdict::expired:
        throw ApiError(ErrorCode::RESOURCE_EXHAUSTED, "No agent slot became free in allocation '" + id + "' within the wait",
                       "waited " + format_duration(decision.waited) + "; " + slots + (gate.held.empty() ? "" : "; starts held: " + gate.held),
                       {"agents"}, {"Wait longer (--wait-slot)", "Reallocate with more agents"});
    }
    return decision;
}

json AgentStarts::to_json() const {
    json j = queue_.to_json(life_.clock_());
    const std::string held = pressure_.agent_starts_held();
    j["held"] = held.empty() ? json(nullptr) : json(held);
    return j;
}

} // namespace resmgr::lifecycle
