// The cluster-wide agent pool (issue 17, item 3): cluster.max_agents agents at once across every
// node. Each agent holds one slot key, /resmgr/agent-slots/<i> for i below the pool's size, put
// under the node's lease; an allocation asking for k agents takes k free slots in one transaction
// (each compared absent, all or none), so two nodes racing for the last slot cannot both get it,
// and a dead node's slots come back when its lease expires. The pool's size is the one the first
// node wrote to /resmgr/config/max_agents; a node configured otherwise says so and uses etcd's.
// On the event loop, synchronously, like the claims of files (claims.hpp).
// May call: cluster/etcd, cluster/claims (ClusterClaims::Lease), model.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/claims.hpp"
#include "cluster/config.hpp"
#include "cluster/etcd.hpp"

namespace resmgr::cluster {

inline constexpr const char* kAgentSlotsPrefix = "/resmgr/agent-slots/";
inline constexpr const char* kMaxAgentsKey = "/resmgr/config/max_agents";
// etcd's default --max-txn-ops: one transaction takes at most this many slots.
inline constexpr int kMaxSlotsPerTake = 128;

// The free slot indices below `size`, given the slot keys etcd holds; pure.
std::vector<int> free_slots(const std::vector<KeyValue>& taken, int size);

class ClusterAgentPool {
public:
    ClusterAgentPool(const ClusterConfig& config, ClusterClaims::Lease lease, std::unique_ptr<Transport> transport);

    bool enabled() const { return config_.max_agents > 0; }
    // Takes `count` slots for a request about to be admitted (0: none); RESOURCE_EXHAUSTED when
    // the pool has fewer free, saying how many are in use; CLUSTER_UNAVAILABLE without etcd or a lease.
    std::vector<std::string> take(int count, const std::string& workflow_id);
    // The slots just taken belong to this allocation (an empty id gives them back).
    void bind(const std::vector<std::string>& slots, const std::string& allocation_id);
    void give_back(const std::string& allocation_id);
    bool holds_any() const { return !held_.empty(); }
    // Start: a restored allocation with `count` agents takes its slots again at the next tick.
    void want(const std::string& allocation_id, int count, const std::string& workflow_id);
    // Each tick: gives back what etcd did not take back before; takes slots again under a new
    // lease or for restored allocations.
    void tick();
    // Allocations running agents without their slots (under the current lease): fenced.
    std::set<std::string> unconfirmed() const;
    nlohmann::json status() const;

private:
    struct Held {
        std::vector<std::string> keys;
        std::string value, workflow_id;
        int count = 0;
        std::int64_t lease = 0; // 0: to be taken again
        std::string problem;    // why the last try to take them again failed (logged when it changes)
    };
    int size();
    std::vector<std::string> take_under(int count, const std::string& value, std::int64_t lease);
    void drop(const std::vector<std::string>& keys, const std::string& value);

    const ClusterConfig& config_;
    ClusterClaims::Lease lease_;
    EtcdClient etcd_;
    std::optional<int> size_; // etcd's /resmgr/config/max_agents once read
    std::map<std::string, Held> held_; // allocation id ("" while a request is being admitted) -> slots
    std::vector<std::pair<std::vector<std::string>, std::string>> drops_; // slots and value still to delete
};

} // namespace resmgr::cluster
