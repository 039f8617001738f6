// The cluster operations (issue 17): `cluster status`, every node this node's etcd knows, live or
// gone, from the member thread's cache (never waiting on etcd); and the node's own figures that
// the loop offers the member thread to publish.
#include "cluster/member.hpp"
#include "server/router.hpp"

namespace resmgr::server {

using nlohmann::json;

cluster::NodeStatus cluster_node_status(const Context& ctx, const std::string& node_name, TimePoint started_at) {
    const core::Availability a = ctx.ledger().admission().availability();
    constexpr double kGiB = 1024.0 * 1024 * 1024;
    cluster::NodeStatus s;
    s.node_name = node_name;
    s.capacity = {a.cpu_total - a.cpu_reserved, static_cast<double>(a.memory_total - a.memory_reserved) / kGiB, a.agents_max};
    s.allocated = {a.cpu_allocated, static_cast<double>(a.memory_allocated) / kGiB, a.agents_allocated};
    s.free = {a.cpu_available, static_cast<double>(a.memory_available) / kGiB, a.agents_available};
    s.allocations = ctx.ledger().allocations().size();
    const json pressure = ctx.pressure.to_json(ctx.monitoring);
    for (const auto& [name, signal] : pressure["signals"].items())
        if (signal.value("raised", false)) s.pressure_raised.push_back(name);
    s.pressure_steps_held = pressure["held"].size();
    s.version = ctx.daemon_info.value("version", "");
    s.pid = ctx.daemon_info.value("pid", 0L);
    s.started_at = started_at;
    return s;
}

namespace {

SuccessBody cluster_status(const Call& call) {
    const cluster::ClusterMember* member = call.ctx.cluster;
    if (!member)
        throw ApiError(ErrorCode::UNSUPPORTED, "this node is not in a cluster", "resmgrd was started without etcd endpoints", {},
                       {"start resmgrd with --cluster http://HOST:2379[,...] --node-name NAME, or give the config file a top-level "
                        "\"cluster\": {\"etcd\": [...], \"node_name\": ...}"});
    SuccessBody body;
    body.result = member->status();
    if (const std::string problem = member->problem(); !problem.empty())
        body.recommendations.push_back("etcd (" + join_endpoints(member->config().endpoints) + ") does not answer: " + problem +
                                       "; local allocations go on, the nodes shown are as last read");
    return body;
}

} // namespace

std::string join_endpoints(const std::vector<std::string>& endpoints) {
    std::string out;
    for (const auto& e : endpoints) out += (out.empty() ? "" : ", ") + e;
    return out;
}

void register_cluster_operations(Router& router) { router.add("cluster", "status", cluster_status); }

} // namespace resmgr::server
