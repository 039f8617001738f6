// The agent pool: agents observed in their own child groups (`resmgr-run --agent NAME`), not
// declared. It owns the agents' records and their states (active, idle, exited, failed), judged
// from each sampling pass; it reads allocations, never changes them.
#pragma once

#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "monitor/sampler.hpp"
#include "resmgr/model.hpp"

namespace resmgr::monitor {

// One process started with `resmgr-run --agent NAME`, living in its own child group.
struct Agent {
    enum class State { active, idle, exited, failed };
    std::string allocation_id, workflow_id, name;
    pid_t pid = 0;
    std::string cgroup_dir; // empty when the backend has no groups (accounting)
    TimePoint started{}, last_active{};
    State state = State::active;
    std::optional<int> exit_status; // as the shell reports it: 128+N for signal N
    std::string reason;             // why failed
    double cpu_cores = 0;           // at the last sample
    bool live() const { return state == State::active || state == State::idle; }
    nlohmann::json to_json() const;
};
std::string to_string(Agent::State state);

class AgentPool {
public:
    static constexpr size_t kMaxEndedAgents = 64;

    // ApiError CONFLICT when the name runs already, RESOURCE_EXHAUSTED without a free slot.
    void check_slot(const Allocation& allocation, const std::string& name) const;
    // `cgroup_dir`: the agent's own group, empty when it cannot be watched.
    void started(const Allocation& allocation, const std::string& name, pid_t pid, std::string cgroup_dir, TimePoint now);
    // False when no such agent is known.
    bool exited(const std::string& allocation_id, const std::string& name, std::optional<int> exit_status);
    int live(const std::string& allocation_id = {}) const; // "" = all
    // The allocation ended: its live agents become exited; only the newest kMaxEndedAgents
    // ended agents are kept, so failures stay visible after their allocation is gone.
    void forget_allocation(const std::string& allocation_id);
    // Each pass: CPU used, OOM kills, emptied groups and idleness decide the states.
    void update(const Snapshot& snap, TimePoint now, Millis idle_after);
    // The live agents' groups, for the sampler.
    void add_groups(std::vector<GroupProbe>& groups) const;
    const std::map<std::string, Agent>& agents() const { return agents_; } // "<allocation id>/<name>"

private:
    std::map<std::string, Agent> agents_;
};

} // namespace resmgr::monitor
