#include "monitor/agent_pool.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "resmgr/protocol.hpp"

namespace resmgr::monitor {

using nlohmann::json;

std::string to_string(Agent::State state) {
    switch (state) {
    case Agent::State::active: return "active";
    case Agent::State::idle: return "idle";
    case Agent::State::exited: return "exited";
    case Agent::State::failed: return "failed";
    }
    return "unknown";
}

json Agent::to_json() const {
    return {{"allocation_id", allocation_id}, {"workflow_id", workflow_id}, {"name", name}, {"pid", pid},
            {"state", to_string(state)}, {"started", format_timestamp(started)}, {"last_active", format_timestamp(last_active)},
            {"cpu_cores_used", std::round(cpu_cores * 1000) / 1000}, {"exit_status", exit_status ? json(*exit_status) : json(nullptr)},
            {"reason", reason.empty() ? json(nullptr) : json(reason)}, {"cgroup_path", cgroup_dir}};
}

void AgentPool::check_slot(const Allocation& a, const std::string& name) const {
    if (auto it = agents_.find(a.allocation_id + "/" + name); it != agents_.end() && it->second.live())
        throw ApiError(ErrorCode::CONFLICT, "Agent '" + name + "' is already running in allocation '" + a.allocation_id + "'",
                       "pid " + std::to_string(it->second.pid), {"agent"}, {"Pick another agent name"});
    int in_use = live(a.allocation_id);
    if (in_use >= a.resources.agents)
        throw ApiError(ErrorCode::RESOURCE_EXHAUSTED, "Allocation '" + a.allocation_id + "' has no free agent slot",
                       std::to_string(in_use) + " of " + std::to_string(a.resources.agents) + " agent slot(s) in use", {"agents"},
                       {"Reallocate with more agents (resmgr reallocate ... '{\"resources\":{\"agents\":N}}')",
                        "Wait for an agent of the allocation to finish"});
}

void AgentPool::started(const Allocation& a, const std::string& name, pid_t pid, std::string cgroup_dir, TimePoint now) {
    Agent agent;
    agent.allocation_id = a.allocation_id;
    agent.workflow_id = a.workflow_id;
    agent.name = name;
    agent.pid = pid;
    agent.started = agent.last_active = now;
    agent.cgroup_dir = std::move(cgroup_dir);
    agents_[a.allocation_id + "/" + name] = std::move(agent);
}

bool AgentPool::exited(const std::string& allocation_id, const std::string& name, std::optional<int> exit_status) {
    auto it = agents_.find(allocation_id + "/" + name);
    if (it == agents_.end()) return false;
    Agent& agent = it->second;
    agent.exit_status = exit_status;
    if (agent.state == Agent::State::failed) return true; // the OOM kill seen by sampling stays the reason
    if (exit_status && *exit_status != 0) {
        agent.state = Agent::State::failed;
        agent.reason = *exit_status > 128 ? "killed by signal " + std::to_string(*exit_status - 128)
                                          : "exited with status " + std::to_string(*exit_status);
    } else {
        agent.state = Agent::State::exited;
        agent.reason.clear();
    }
    return true;
}

int AgentPool::live(const std::string& allocation_id) const {
    int n = 0;
    for (const auto& [_, agent] : agents_) n += agent.live() && (allocation_id.empty() || agent.allocation_id == allocation_id);
    return n;
}

void AgentPool::forget_allocation(const std::string& allocation_id) {
    for (auto& [_, agent] : agents_) {
        if (agent.allocation_id != allocation_id || !agent.live()) continue;
        agent.state = Agent::State::exited;
        agent.reason = "allocation ended";
    }
    std::vector<std::pair<TimePoint, std::string>> ended;
    for (const auto& [key, agent] : agents_)
        if (!agent.live()) ended.emplace_back(agent.started, key);
    if (ended.size() <= kMaxEndedAgents) return;
    std::sort(ended.begin(), ended.end());
    for (size_t i = 0; i + kMaxEndedAgents < ended.size(); ++i) agents_.erase(ended[i].second);
}

void AgentPool::update(const Snapshot& snap, TimePoint now, Millis idle_after) {
    for (auto& [key, agent] : agents_) {
        if (!agent.live()) continue;
        auto it = snap.groups.find(key);
        if (it == snap.groups.end()) continue; // no group to watch (accounting): only the wrapper's report ends it
        const auto& sample = it->second.sample;
        agent.cpu_cores = it->second.cpu_cores.value_or(0);
        // 1 ms of CPU per second: a shell waiting on input uses far less, a working agent far more.
        if (agent.cpu_cores > 0.001) agent.last_active = now;
        if (sample.memory_events && sample.memory_events->oom_kill > 0) {
            agent.state = Agent::State::failed;
            agent.reason = "oom_kill";
            continue;
        }
        if (sample.cgroup_events && !sample.cgroup_events->populated) {
            // Gone without a report from its resmgr-run: exited, status unknown.
            agent.state = Agent::State::exited;
            agent.reason = "group emptied without an exit report";
            continue;
        }
        agent.state = now - agent.last_active >= idle_after ? Agent::State::idle : Agent::State::active;
    }
}

void AgentPool::add_groups(std::vector<GroupProbe>& groups) const {
    for (const auto& [key, agent] : agents_)
        if (agent.live() && !agent.cgroup_dir.empty()) groups.push_back({key, agent.cgroup_dir});
}

} // namespace resmgr::monitor
