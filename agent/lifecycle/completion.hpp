// The lifecycle's clock-and-kernel half: durations (SIGTERM, grace, cgroup.kill), groups that
// emptied (completed, or idle until their grace period passes), wrappers that went away, and
// the restart (re-adopting groups, removing orphans). It changes allocations only through the
// Lifecycle's own steps, so ledger, backend and state still have one writer.
#pragma once

#include <set>
#include <string>

#include <nlohmann/json.hpp>

namespace resmgr::lifecycle {

class Lifecycle;

class Completion {
public:
    explicit Completion(Lifecycle& lifecycle) : life_(lifecycle) {}

    // Durations: SIGTERM to expired groups, cgroup.kill once their grace period is over; idle
    // allocations whose grace passed complete.
    void on_timer();
    // cgroup.events changed: a group that held processes and is now empty has completed.
    void on_group_event(const std::string& id);
    // The resmgr-run waiting on this allocation is gone without reporting.
    void on_supervisor_exit(const std::string& id);
    // At start: re-creates (adopts) the group of every stored allocation, freezes what the
    // state says is paused, and removes groups no allocation claims. Returns what it did.
    nlohmann::json reconcile();

private:
    // An empty group: the wrapper's own allocation completes now, any other goes idle first.
    void completed_if_empty(const std::string& id);
    void complete(const std::string& id, const std::string& reason);

    Lifecycle& life_;
    // Allocations whose processes could not all be taken over from the other layout at start:
    // their own group being empty does not mean their work ended, so emptiness ends nothing
    // (they end when released, or at their duration). Cleared at each start, and as each ends.
    std::set<std::string> stranded_;
};

} // namespace resmgr::lifecycle
