// The cluster operations (issue 17): `cluster status`, every node this node's etcd knows, live or
// gone, from the member thread's cache (never waiting on etcd); and the node's own figures that
// the loop offers the member thread to publish.
#include <algorithm>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "cluster/claims.hpp"
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

std::vector<std::string> claim_cluster_files(Context& ctx, const AllocationRequest& request) {
    if (!ctx.claims) {
        if (request.constraints.cluster_files && !request.constraints.exclusive_access.empty())
            throw ApiError(ErrorCode::UNSUPPORTED, "file_scope \"cluster\" needs a node in a cluster", "resmgrd was started without --cluster",
                           {"exclusive_files"}, {"Start resmgrd with --cluster, or allocate with \"file_scope\": \"local\""});
        return {};
    }
    std::vector<std::string> files = cluster::cluster_scoped(request.constraints.exclusive_access, request.constraints.cluster_files,
                                                             ctx.cluster->config().shared_paths);
    // A holder of this node that was released and is still ending (its group not yet empty)
    // no longer holds the file in the ledger; its claim is taken over, as the ledger's hold is.
    for (const auto& f : files)
        if (auto holder = ctx.claims->holder(f); holder && !holder->empty())
            if (const Allocation* a = ctx.ledger().find(*holder); !a || a->terminating_since || a->status != AllocationStatus::active)
                ctx.claims->unbind(f);
    ctx.claims->claim(files, request.workflow_id, ctx.clock());
    return files;
}

void bind_cluster_files(Context& ctx, const std::vector<std::string>& files, const std::string& allocation_id) {
    if (ctx.claims) ctx.claims->bind(files, allocation_id);
}

void adopt_cluster_files(Context& ctx) {
    if (!ctx.claims) return;
    for (const auto& [id, a] : ctx.ledger().allocations()) {
        const auto files = cluster::cluster_scoped(a.constraints.exclusive_access, a.constraints.cluster_files, ctx.cluster->config().shared_paths);
        if (!files.empty()) ctx.claims->adopt(files, id, a.workflow_id, ctx.clock());
    }
}

namespace {

// Freezes the holders of claims this node cannot vouch for, thaws those it can again.
void fence(Context& ctx) {
    std::set<std::string>& fenced = ctx.claims->fenced();
    const std::set<std::string> unconfirmed = ctx.claims->unconfirmed();
    auto freeze = [&](const std::string& id, bool frozen) {
        const Allocation* a = ctx.ledger().find(id);
        if (!a || a->status != AllocationStatus::active) return false;
        try {
            ctx.lifecycle.backend().freeze(id, frozen);
        } catch (const cgroup::BackendError& e) {
            spdlog::error("cluster: cannot {} {}: {}", frozen ? "freeze" : "thaw", id, e.what());
            return false;
        }
        ctx.events.emit(events::EventType::conflict,
                        frozen ? "cluster: " + id + " frozen: this node cannot vouch for its cluster-scoped files (lease not held)"
                               : "cluster: " + id + " thawed: its cluster-scoped files are claimed again",
                        a->workflow_id, id, {{"scope", "cluster"}, {"fenced", frozen}});
        spdlog::warn("cluster: {} {}", id, frozen ? "frozen (fenced: claims not held)" : "thawed (claims held again)");
        return true;
    };
    for (const auto& id : unconfirmed)
        if (!fenced.count(id) && freeze(id, true)) fenced.insert(id);
    for (auto it = fenced.begin(); it != fenced.end();) {
        if (unconfirmed.count(*it)) {
            ++it;
            continue;
        }
        freeze(*it, false);
        it = fenced.erase(it);
    }
}

// The guard holds what other nodes claim (read by the member thread each second), and lets go
// of what they no longer do.
void sync_remote_holds(Context& ctx) {
    if (!ctx.files.guard()) return; // admission is what refuses them then (the claim in etcd)
    std::map<std::string, std::string>& held = ctx.claims->remote_holds();
    const std::map<std::string, cluster::ClaimHolder> wanted = ctx.cluster->claims_by_others();
    for (auto it = held.begin(); it != held.end();) {
        auto w = wanted.find(it->first);
        if (w != wanted.end() && w->second.node == it->second) {
            ++it;
            continue;
        }
        ctx.files.release_for_node(it->first, it->second);
        it = held.erase(it);
    }
    for (const auto& [file, holder] : wanted) {
        if (held.count(file)) continue;
        // One try per claim: a file the guard refuses (a local hold of it with file_scope "local")
        // is logged once, not each second.
        if (auto error = ctx.files.hold_for_node(file, holder.node, holder.workflow_id))
            spdlog::warn("cluster: {} (claimed by node {}) is not guarded here: {}", file, holder.node, *error);
        held[file] = holder.node;
    }
}

} // namespace

void on_cluster_tick(Context& ctx) {
    if (!ctx.claims) return;
    for (const auto& [file, id] : ctx.claims->tick()) {
        const Allocation* a = ctx.ledger().find(id);
        if (!a || std::find(a->constraints.exclusive_access.begin(), a->constraints.exclusive_access.end(), file) == a->constraints.exclusive_access.end())
            continue;
        ctx.lifecycle.move_file(file, id, std::nullopt);
        ctx.events.emit(events::EventType::conflict, "cluster: " + file + " is held by another node now; " + id + " no longer holds it",
                        a->workflow_id, id, {{"file", file}, {"scope", "cluster"}});
    }
    fence(ctx);
    sync_remote_holds(ctx);
}

void on_files_released(Context& ctx, const std::string& id, const std::optional<std::string>& file) {
    if (!ctx.claims) return;
    // The whole allocation ended: its claims go.
    if (!file) {
        for (const auto& f : ctx.claims->files_of(id)) ctx.claims->release(f);
        return;
    }
    if (ctx.claims->holder(*file) != id) return;
    // One file let go of (resolve-conflicts): handed over to another running allocation of this
    // node (Lifecycle::move_file gave it the file first), the claim stays and follows it.
    for (const auto& [other, a] : ctx.ledger().allocations())
        if (other != id && a.status == AllocationStatus::active && !a.terminating_since &&
            std::find(a.constraints.exclusive_access.begin(), a.constraints.exclusive_access.end(), *file) != a.constraints.exclusive_access.end()) {
            ctx.claims->bind({*file}, other);
            return;
        }
    ctx.claims->release(*file);
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
    if (call.ctx.claims) body.result["files"] = call.ctx.claims->status();
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
