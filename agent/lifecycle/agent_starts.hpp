// Agent starts (`attach` with an agent): each goes through the slot queue (core/agent_slots).
// With a free slot in its allocation and no hold it starts at once (Lifecycle::attach); without
// one, or while the pressure responder holds an enforced queue_agents step, it waits when the
// client asked to (`wait_slot`; while held, `wait_held` when it did not say), and is refused with
// RESOURCE_EXHAUSTED otherwise, or when its deadline passes (saying how long it waited). Waiting is answered at once as "queued", and the client asks again until it
// starts: the way a queued allocation waits. Only an agent's exit frees a slot; idle agents keep
// theirs (the responder lists them so a person can stop them).
// May call: lifecycle (as its friend: the ledger, the agent pool, the clock), core, monitor.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/agent_slots.hpp"
#include "lifecycle/lifecycle.hpp"
#include "lifecycle/pressure_responder.hpp"

namespace resmgr::lifecycle {

class AgentStarts {
public:
    AgentStarts(Lifecycle& life, const PressureResponder& pressure) : life_(life), pressure_(pressure) {}

    // `target.agent` set, the allocation authorized by the caller. start: attached (waited says how
    // long it waited); queued: not yet, ask again. Throws ApiError (refused, expired, CONFLICT for a
    // name already running) or BackendError from the attach.
    // `wait` and `wait_held` as core::SlotAsk has them.
    core::SlotDecision start(const std::string& id, const AttachTarget& target, std::uint32_t uid, std::optional<Millis> wait,
                             std::optional<Millis> wait_held);
    // The queue (who, since, position), the slot waits and whether starts are held.
    nlohmann::json to_json() const;

private:
    Lifecycle& life_;
    bool slot_free(const Allocation& a) const;

    const PressureResponder& pressure_;
    core::SlotQueue queue_;
};

} // namespace resmgr::lifecycle
