// The ledger's clock questions, pure: which allocations are due for an action at `now`, and when
// the next one is. The lifecycle (agent/lifecycle/completion) takes the actions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/ledger.hpp"

namespace resmgr::core {

// Active allocations whose duration ran out by `now`.
std::vector<std::string> due_to_expire(const Ledger& ledger, TimePoint now);
// Terminating allocations whose grace period ran out by `now` (time for cgroup.kill).
std::vector<std::string> due_to_kill(const Ledger& ledger, TimePoint now);
// Allocations whose group has stayed empty for their grace period by `now` (complete).
std::vector<std::string> due_to_complete(const Ledger& ledger, TimePoint now);
// The earliest moment one of the above (or a reservation's start) becomes true, if any.
std::optional<TimePoint> next_deadline(const Ledger& ledger);
// Reservations whose window has opened and whose files are free (a predecessor still holding
// one, e.g. in its grace period, makes it wait).
std::vector<std::string> due_to_start(const Ledger& ledger, TimePoint now);
// Reservations whose whole window passed while another allocation still held one of their files.
std::vector<std::string> lapsed_reservations(const Ledger& ledger, TimePoint now);
// 1-based place in the queue; 0 when not queued.
size_t queue_position(const Ledger& ledger, const std::string& id);

} // namespace resmgr::core
