// The cluster section: which etcd endpoints, this node's name, the lease's TTL and the shared
// paths, from `--cluster URLS --node-name NAME --cluster-lease-ttl D` or the config file's
// top-level "cluster" object (the flags win). Pure: parsing and checks only.
// May call: model.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "resmgr/model.hpp"

namespace resmgr::cluster {

// "http://a:2379, http://b:2379": for messages that name the endpoints.
std::string join_endpoints(const std::vector<std::string>& endpoints);

struct ClusterConfig {
    std::vector<std::string> endpoints; // http://host:port of etcd members; empty: not in a cluster
    std::string node_name;
    Millis lease_ttl{std::chrono::seconds(10)};
    std::vector<std::string> shared_paths; // absolute; files under them are exclusive cluster-wide
    int max_agents = 0;                     // agents at once across every node; 0: no cluster-wide pool

    bool enabled() const { return !endpoints.empty(); }
    nlohmann::json to_json() const;
};

// etcd refuses leases shorter than its own minimum (about 1.5 election timeouts, 2 s with its
// defaults); an hour is already far longer than a dead node should keep its claims.
inline constexpr Millis kMinLeaseTtl{std::chrono::seconds(2)};
inline constexpr Millis kMaxLeaseTtl{std::chrono::hours(1)};

// Each throws ApiError INVALID_REQUEST naming the field ("cluster.etcd[1]") and what it expected.
ClusterConfig parse_cluster_config(const nlohmann::json& section);
// "http://127.0.0.1:2379,http://127.0.0.1:2381": http URLs (the gateway is plain HTTP here; TLS is
// not supported yet, and an https URL is refused saying so), without a path.
std::vector<std::string> parse_endpoints(std::string_view list, const std::string& field = "--cluster");
// The cluster-wide agent pool's size: each agent is one key in etcd, so it is bounded.
inline constexpr int kMaxClusterAgents = 10000;
int parse_max_agents(const nlohmann::json& value, const std::string& field = "cluster.max_agents");
// From 2s to 1h ("10s").
Millis parse_lease_ttl(const nlohmann::json& value, const std::string& field = "cluster.lease_ttl");
// Letters, digits, '.', '_' and '-', 1-63 characters: it is a key segment in etcd and a column.
void check_node_name(const std::string& name, const std::string& field = "--node-name");
// The host name cut to what check_node_name takes, "node" when nothing of it is left.
std::string default_node_name();

} // namespace resmgr::cluster
