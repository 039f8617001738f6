#include "cluster/agent_pool.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "resmgr/protocol.hpp"

namespace resmgr::cluster {

using nlohmann::json;

namespace {

constexpr Millis kPoolTimeout{std::chrono::milliseconds(500)};
// Another node may take the free slots we read before our transaction: read and try again.
constexpr int kTakeAttempts = 4;

std::string slot_key(int i) { return kAgentSlotsPrefix + std::to_string(i); }

} // namespace

std::vector<int> free_slots(const std::vector<KeyValue>& taken, int size) {
    std::vector<bool> used(static_cast<size_t>(std::max(size, 0)), false);
    const std::string prefix = kAgentSlotsPrefix;
    for (const auto& kv : taken) {
        if (kv.key.compare(0, prefix.size(), prefix) != 0) continue;
        const std::string index = kv.key.substr(prefix.size());
        if (index.empty() || index.size() > 6 || !std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
        const int i = std::stoi(index);
        if (i < size) used[static_cast<size_t>(i)] = true;
    }
    std::vector<int> out;
    for (int i = 0; i < size; ++i)
        if (!used[static_cast<size_t>(i)]) out.push_back(i);
    return out;
}

ClusterAgentPool::ClusterAgentPool(const ClusterConfig& config, ClusterClaims::Lease lease, std::unique_ptr<Transport> transport)
    : config_(config), lease_(std::move(lease)), etcd_(config.endpoints, std::move(transport), kPoolTimeout) {}

int ClusterAgentPool::size() {
    if (size_) return *size_;
    const std::string mine = std::to_string(config_.max_agents);
    TxnOutcome outcome = etcd_.create_if_absent(kMaxAgentsKey, mine, 0);
    int size = config_.max_agents;
    if (!outcome.succeeded && outcome.current) {
        try {
            size = std::stoi(outcome.current->value);
        } catch (const std::exception&) {
            throw EtcdError(std::string(kMaxAgentsKey) + " holds \"" + outcome.current->value + "\", not a number");
        }
        if (size < 0 || size > kMaxClusterAgents) throw EtcdError(std::string(kMaxAgentsKey) + " is out of range: " + outcome.current->value);
        if (size != config_.max_agents)
            spdlog::warn("cluster: max_agents is {} here but {} in etcd ({}), set by the first node; using {}", config_.max_agents, size,
                         kMaxAgentsKey, size);
    }
    size_ = size;
    return size;
}

std::vector<std::string> ClusterAgentPool::take_under(int count, const std::string& value, std::int64_t lease) {
    const int pool = size();
    for (int attempt = 0; attempt < kTakeAttempts; ++attempt) {
        const std::vector<int> free = free_slots(etcd_.range_prefix(kAgentSlotsPrefix), pool);
        if (static_cast<int>(free.size()) < count)
            throw ApiError(ErrorCode::RESOURCE_EXHAUSTED,
                           "The cluster's agent pool is full: " + std::to_string(pool - static_cast<int>(free.size())) + " of " +
                               std::to_string(pool) + " agents in use across the nodes, " + std::to_string(count) + " asked",
                           "cluster.max_agents is " + std::to_string(pool), {"agents"},
                           {"Wait for agents on any node to finish (resmgr cluster status shows each node's)"});
        std::vector<std::string> keys;
        for (int i = 0; i < count; ++i) keys.push_back(slot_key(free[static_cast<size_t>(i)]));
        if (etcd_.create_all_if_absent(keys, value, lease)) return keys;
        // Refused: another node was first, or a member applied ours and its answer was lost
        // before the retry on the next member (then every key holds our value: they are ours).
        const std::vector<KeyValue> now = etcd_.range_prefix(kAgentSlotsPrefix);
        const auto ours = std::count_if(now.begin(), now.end(), [&](const KeyValue& kv) {
            return kv.value == value && std::find(keys.begin(), keys.end(), kv.key) != keys.end();
        });
        if (ours == count) return keys;
    }
    throw ApiError(ErrorCode::CONFLICT, "The cluster's agent pool changed under each of " + std::to_string(kTakeAttempts) + " tries",
                   "other nodes took the free slots first", {"agents"}, {"Ask again"});
}

std::vector<std::string> ClusterAgentPool::take(int count, const std::string& workflow_id) {
    if (!enabled() || count <= 0) return {};
    if (count > kMaxSlotsPerTake)
        throw ApiError(ErrorCode::INVALID_REQUEST, "At most " + std::to_string(kMaxSlotsPerTake) + " agents per allocation in a cluster pool",
                       "etcd takes at most that many keys in one transaction", {"agents"});
    const std::int64_t lease = lease_.held();
    const std::string why = lease ? "" : "this node holds no lease in etcd: " + lease_.problem();
    try {
        if (!lease) throw EtcdUnavailable(why);
        const std::string value = json{{"node", config_.node_name}, {"workflow_id", workflow_id}, {"token", ClaimHolder::new_token()}}.dump();
        std::vector<std::string> keys = take_under(count, value, lease);
        held_[""] = Held{keys, value, workflow_id, count, lease, {}};
        return keys;
    } catch (const ApiError&) {
        throw;
    } catch (const std::exception& e) {
        throw ApiError(ErrorCode::CLUSTER_UNAVAILABLE, "The cluster's agent pool cannot be asked now", e.what(), {"agents"},
                       {"Check that the etcd members run and this host reaches them: resmgr cluster status"},
                       {"Allocate without agents (cluster.max_agents counts every agent of the cluster)"});
    }
}

void ClusterAgentPool::bind(const std::vector<std::string>& slots, const std::string& allocation_id) {
    if (slots.empty()) return;
    auto it = held_.find("");
    if (it == held_.end()) return;
    Held h = std::move(it->second);
    held_.erase(it);
    if (allocation_id.empty()) drop(h.keys, h.value);
    else held_[allocation_id] = std::move(h);
}

void ClusterAgentPool::give_back(const std::string& allocation_id) {
    auto it = held_.find(allocation_id);
    if (it == held_.end() || allocation_id.empty()) return;
    if (it->second.lease) drop(it->second.keys, it->second.value);
    held_.erase(it);
}

void ClusterAgentPool::drop(const std::vector<std::string>& keys, const std::string& value) {
    std::vector<std::string> left;
    for (const auto& key : keys) {
        try {
            etcd_.delete_if_value(key, value);
        } catch (const std::exception&) {
            left.push_back(key);
        }
    }
    if (!left.empty()) {
        spdlog::warn("cluster: {} agent slot(s) stay taken in etcd until a retry succeeds", left.size());
        drops_.emplace_back(std::move(left), value);
    }
}

void ClusterAgentPool::want(const std::string& allocation_id, int count, const std::string& workflow_id) {
    if (enabled() && count > 0)
        held_[allocation_id] =
            Held{{}, json{{"node", config_.node_name}, {"workflow_id", workflow_id}, {"token", ClaimHolder::new_token()}}.dump(), workflow_id, count, 0, {}};
}

void ClusterAgentPool::tick() {
    auto drops = std::move(drops_);
    drops_.clear();
    for (auto& [keys, value] : drops) drop(keys, value);
    const std::int64_t lease = lease_.held();
    if (!lease) return;
    for (auto& [id, h] : held_) {
        if (id.empty() || h.lease == lease) continue;
        try {
            h.keys = take_under(h.count, h.value, lease); // the old lease's slots go with it
            h.lease = lease;
            h.problem.clear();
        } catch (const std::exception& e) {
            if (h.problem != e.what()) spdlog::warn("cluster: {} runs {} agent(s) without their slots in the pool: {}", id, h.count, e.what());
            h.problem = e.what();
        }
    }
}

std::set<std::string> ClusterAgentPool::unconfirmed() const {
    const std::int64_t lease = lease_.held();
    std::set<std::string> out;
    for (const auto& [id, h] : held_)
        if (!id.empty() && (!lease || h.lease != lease)) out.insert(id);
    return out;
}

json ClusterAgentPool::status() const {
    json mine = json::array();
    int agents = 0;
    for (const auto& [id, h] : held_) {
        if (id.empty()) continue;
        mine.push_back({{"allocation_id", id}, {"agents", h.count}, {"slots", h.keys}, {"held", h.lease != 0 && h.lease == lease_.held()}});
        agents += h.count;
    }
    return {{"max_agents", size_ ? json(*size_) : json(config_.max_agents)}, {"agents_here", agents}, {"allocations", mine},
            {"drops_pending", drops_.size()}};
}

} // namespace resmgr::cluster
