// The cluster operations (issue 17): `cluster status`, every node this node's etcd knows, live or
// gone, from the member thread's cache (never waiting on etcd); and the node's own figures that
// the loop offers the member thread to publish.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "cluster/agent_pool.hpp"
#include "cluster/claims.hpp"
#include "cluster/fields.hpp"
#include "cluster/member.hpp"
#include "cluster/placer.hpp"
#include "resmgr/json.hpp"
#include "server/event_loop.hpp"
#include "server/router.hpp"

namespace resmgr::server {

using nlohmann::json;

namespace {

cluster::Amounts amounts_of(const Resources& r) { return {r.cpu_cores, r.memory_gb(), r.agents}; }

} // namespace

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
    // Its reservations, the soonest first, for placement to keep their windows free.
    for (const auto& [id, alloc] : ctx.ledger().allocations())
        if (alloc.status == AllocationStatus::reserved && alloc.start_at)
            s.reservations.push_back({*alloc.start_at, alloc.expires_at, amounts_of(alloc.resources)});
    std::sort(s.reservations.begin(), s.reservations.end(), [](const auto& a, const auto& b) { return a.start < b.start; });
    if (s.reservations.size() > cluster::kMaxPublishedReservations) s.reservations.resize(cluster::kMaxPublishedReservations);
    if (ctx.placer) s.bookings_admitted = ctx.placer->admitted_ids();
    return s;
}

std::optional<cluster::Booking> redeem_booking(Context& ctx, const AllocationRequest& request, const json& booking) {
    if (!ctx.placer) {
        if (booking.is_null()) return std::nullopt;
        throw ApiError(ErrorCode::UNSUPPORTED, "\"booking\" needs a node in a cluster", "resmgrd was started without --cluster", {"booking"},
                       {"Allocate without \"booking\""});
    }
    std::optional<cluster::Booking> b;
    if (!booking.is_null()) {
        b = ctx.placer->redeem(booking.get<std::string>());
        const std::string over = b->amounts.shortfall(amounts_of(request.resources), "booked");
        if (!over.empty())
            throw ApiError(ErrorCode::INVALID_REQUEST, "The allocation asks for more than booking " + b->booking_id + " holds", over,
                           {"booking:" + b->booking_id}, {"Place again for what the allocation needs"});
        // The booking's priority chose the node (pressure admits only high and critical): the
        // allocation keeps it.
        if (b->workflow_id != request.workflow_id || b->priority != request.priority)
            throw ApiError(ErrorCode::INVALID_REQUEST, "Booking " + b->booking_id + " was placed for workflow " + b->workflow_id + " at priority " +
                           std::to_string(b->priority.value) + "; the allocation must match both", "", {"booking:" + b->booking_id});
    }
    // The room others' bookings hold is not this allocation's to take.
    const cluster::Amounts held = ctx.placer->held(ctx.cluster->bookings_here(), b ? b->booking_id : "", ctx.clock());
    if (held.cpu_cores > 0 || held.memory_gb > 0 || held.agents > 0) {
        const core::Admission admission = ctx.ledger().admission();
        Resources with_held = request.resources;
        with_held.cpu_cores += held.cpu_cores;
        // Clamped: the sum of what etcd says may be anything; past 1 PiB nothing fits anyway.
        with_held.memory_bytes += static_cast<std::uint64_t>(std::min(held.memory_gb, 1e6) * static_cast<double>(kGiB));
        with_held.agents += std::min(held.agents, 1 << 20);
        if (admission.fits_now(request.resources) && !admission.fits_now(with_held))
            throw ApiError(ErrorCode::RESOURCE_EXHAUSTED, "The room left on this node is booked by placements",
                           "held by bookings: " + cluster::fields::amounts_json(held).dump(), {},
                           {"Allocate when the bookings are admitted or expire (their timeout), or place with resmgr cluster place"});
    }
    return b;
}

void booking_admitted(Context& ctx, const cluster::Booking& booking) { ctx.placer->admitted(booking); }

ClusterShare take_cluster_share(Context& ctx, const AllocationRequest& request, bool wait) {
    ClusterShare share;
    if (!ctx.claims) {
        if (request.constraints.cluster_files && !request.constraints.exclusive_access.empty())
            throw ApiError(ErrorCode::UNSUPPORTED, "file_scope \"cluster\" needs a node in a cluster", "resmgrd was started without --cluster",
                           {"exclusive_files"}, {"Start resmgrd with --cluster, or allocate with \"file_scope\": \"local\""});
        return share;
    }
    share.files = cluster::cluster_scoped(request.constraints.exclusive_access, request.constraints.cluster_files,
                                          ctx.cluster->config().shared_paths);
    // A holder of this node that was released and is still ending (its group not yet empty)
    // no longer holds the file in the ledger; its claim is taken over, as the ledger's hold is.
    // Should the claim fail, the ending holders get theirs back (their end drops them).
    std::vector<std::pair<std::string, std::string>> taken_over;
    auto give_back = [&] {
        for (const auto& [f, holder] : taken_over) ctx.claims->bind({f}, holder);
        for (const auto& f : share.files)
            if (ctx.claims->holder(f) == std::string()) ctx.claims->bind({f}, ""); // given back
    };
    for (const auto& f : share.files)
        if (auto holder = ctx.claims->holder(f); holder && !holder->empty())
            if (const Allocation* a = ctx.ledger().find(*holder); !a || a->terminating_since) {
                ctx.claims->unbind(f);
                taken_over.emplace_back(f, *holder);
            }
    try {
        try {
            ctx.claims->claim(share.files, request.workflow_id, ctx.clock());
        } catch (const ApiError& e) {
            // With `wait`, a file held elsewhere queues the allocation: it claims it when free.
            if (!wait || e.code != ErrorCode::CONFLICT) throw;
            share.held_elsewhere = e.what();
            give_back(); // the ending holders keep theirs until it may start
        }
        // Its agent slots are taken now, as any queued allocation's are.
        share.agent_slots = ctx.agent_pool->take(request.resources.agents, request.workflow_id);
    } catch (...) {
        give_back();
        throw;
    }
    return share;
}

void refuse_cluster_share_in_reservation(Context& ctx, const AllocationRequest& request) {
    const bool files = !request.constraints.exclusive_access.empty() &&
                       (request.constraints.cluster_files ||
                        (ctx.cluster && !cluster::cluster_scoped(request.constraints.exclusive_access, false, ctx.cluster->config().shared_paths).empty()));
    const bool agents = ctx.agent_pool && ctx.agent_pool->enabled() && request.resources.agents > 0;
    if (files || agents)
        throw ApiError(ErrorCode::UNSUPPORTED, std::string("A reservation cannot book ") + (files ? "cluster-scoped exclusive files" : "agents of the cluster's pool") + " yet",
                       "nothing would claim them in etcd when its window opens", {files ? "exclusive_files" : "agents"},
                       {"Allocate when the window opens instead"});
}

void bind_cluster_share(Context& ctx, const ClusterShare& share, const Allocation* allocation) {
    if (!ctx.claims) return;
    const std::string allocation_id = allocation ? allocation->allocation_id : ""; // empty: given back
    if (share.held_elsewhere.empty()) ctx.claims->bind(share.files, allocation_id);
    else if (allocation) ctx.claims->wait_for(share.files, allocation_id, allocation->workflow_id);
    ctx.agent_pool->bind(share.agent_slots, allocation_id);
}

void adopt_cluster_shares(Context& ctx) {
    if (!ctx.claims) return;
    for (const auto& [id, a] : ctx.ledger().allocations()) {
        const auto files = cluster::cluster_scoped(a.constraints.exclusive_access, a.constraints.cluster_files, ctx.cluster->config().shared_paths);
        // A queued one claims its files again when it may start, as one that waits for them.
        if (a.status == AllocationStatus::queued && !files.empty()) ctx.claims->wait_for(files, id, a.workflow_id);
        if (a.status != AllocationStatus::active && a.status != AllocationStatus::queued) continue;
        if (a.status == AllocationStatus::active && !files.empty()) ctx.claims->adopt(files, id, a.workflow_id, ctx.clock());
        ctx.agent_pool->want(id, a.resources.agents, a.workflow_id); // held while queued, as at allocate
    }
    fence(ctx); // frozen now, thawed at the first tick that holds their claims again
}

namespace {

// The freezer state fencing wants, written again at every tick (other parts thaw groups too:
// the pressure responder's undo, a resume), logged and reported when it changes.
void set_fenced(Context& ctx, const Allocation& a, bool frozen, bool changed) {
    try {
        ctx.lifecycle.backend().freeze(a.allocation_id, frozen);
    } catch (const cgroup::BackendError& e) {
        if (changed) spdlog::error("cluster: cannot {} {}: {}", frozen ? "freeze" : "thaw", a.allocation_id, e.what());
    }
    if (!changed) return;
    ctx.events.emit(events::EventType::conflict,
                    frozen ? "cluster: " + a.allocation_id + " frozen: this node cannot vouch for its cluster-scoped files or agent slots"
                           : "cluster: " + a.allocation_id + " thawed: its cluster-scoped files and agent slots are held again",
                    a.workflow_id, a.allocation_id, {{"scope", "cluster"}, {"fenced", frozen}});
    spdlog::warn("cluster: {} {}", a.allocation_id, frozen ? "frozen (fenced: its claims are not held)" : "thawed (its claims are held again)");
}

} // namespace

void fence(Context& ctx) {
    std::set<std::string>& fenced = ctx.claims->fenced();
    std::set<std::string> unconfirmed = ctx.claims->unconfirmed();
    unconfirmed.merge(ctx.agent_pool->unconfirmed());
    for (const auto& id : unconfirmed)
        if (const Allocation* a = ctx.ledger().find(id); a && a->status == AllocationStatus::active)
            set_fenced(ctx, *a, true, fenced.insert(id).second);
    for (auto it = fenced.begin(); it != fenced.end();) {
        if (unconfirmed.count(*it)) {
            ++it;
            continue;
        }
        // Paused by the ledger (preemption): its thaw is the resume's.
        if (const Allocation* a = ctx.ledger().find(*it); a && a->status == AllocationStatus::active) set_fenced(ctx, *a, false, true);
        it = fenced.erase(it);
    }
}

namespace {

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
        // Anyone who can write to etcd can name a path: only regular files are held for others.
        std::error_code ec;
        if (!std::filesystem::is_regular_file(file, ec)) continue;
        // One try per claim: a file the guard refuses (a local hold of it with file_scope "local")
        // is logged once, not each second.
        if (auto error = ctx.files.hold_for_node(file, holder.node, holder.workflow_id))
            spdlog::warn("cluster: {} (claimed by node {}) is not guarded here: {}", file, holder.node, *error);
        held[file] = holder.node;
    }
}

} // namespace

bool may_start_queued(Context& ctx, const Allocation& allocation) {
    // Asked for every queued allocation at each refill: the claims read (a copy) only for those that wait.
    if (!ctx.claims->waits(allocation.allocation_id)) return true;
    return ctx.claims->claim_waiting(allocation.allocation_id, ctx.clock(), ctx.cluster->claims_by_others());
}

namespace {

// Queued allocations waiting for files other nodes held: those no longer queued are forgotten,
// and when the claims read last show one's files free, the queue is tried (it claims them then).
void start_waiting(Context& ctx) {
    ctx.claims->forget_waiting([&](const std::string& id) {
        const Allocation* a = ctx.ledger().find(id);
        return a && a->status == AllocationStatus::queued;
    });
    if (ctx.claims->waiting_may_claim(ctx.cluster->claims_by_others())) ctx.lifecycle.start_queued();
}

} // namespace

void on_cluster_tick(Context& ctx) {
    if (!ctx.claims) return;
    // Fencing first, before any call to etcd can make the tick late; each step on its own, so
    // one that fails leaves the others done.
    run_handler("cluster fencing", [&] { fence(ctx); });
    run_handler("cluster agent pool", [&] { ctx.agent_pool->tick(); });
    run_handler("cluster claims", [&] { ctx.claims->tick(); });
    run_handler("cluster fencing", [&] { fence(ctx); });
    run_handler("cluster guard holds", [&] { sync_remote_holds(ctx); });
    run_handler("cluster bookings", [&] { ctx.placer->settle(ctx.cluster->published_bookings()); });
    run_handler("cluster waiting allocations", [&] { start_waiting(ctx); });
}

void on_files_released(Context& ctx, const std::string& id, const std::optional<std::string>& file) {
    if (!ctx.claims) return;
    // The whole allocation ended: its claims and its agent slots go.
    if (!file) {
        for (const auto& f : ctx.claims->files_of(id)) ctx.claims->release(f);
        ctx.agent_pool->give_back(id);
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

const cluster::ClusterMember& require_cluster(const Call& call) {
    if (!call.ctx.cluster)
        throw ApiError(ErrorCode::UNSUPPORTED, "this node is not in a cluster", "resmgrd was started without etcd endpoints", {},
                       {"start resmgrd with --cluster http://HOST:2379[,...] --node-name NAME, or give the config file a top-level "
                        "\"cluster\": {\"etcd\": [...], \"node_name\": ...}"});
    return *call.ctx.cluster;
}

SuccessBody cluster_status(const Call& call) {
    const cluster::ClusterMember& member = require_cluster(call);
    SuccessBody body;
    body.result = member.status();
    if (call.ctx.claims) body.result["files"] = call.ctx.claims->status();
    if (call.ctx.agent_pool && call.ctx.agent_pool->enabled()) body.result["agent_pool"] = call.ctx.agent_pool->status();
    if (const std::string problem = member.problem(); !problem.empty())
        body.recommendations.push_back("etcd (" + cluster::join_endpoints(member.config().endpoints) + ") does not answer: " + problem +
                                       "; local allocations go on, the nodes shown are as last read");
    return body;
}

// The node with room for an allocation request, and its room booked until the allocation is
// made there with "booking" (or its timeout passes).
SuccessBody cluster_place(const Call& call) {
    require_cluster(call);
    Context& ctx = call.ctx;
    const Millis timeout = call.duration_param("timeout");
    if (timeout < cluster::ClusterPlacer::kMinTimeout || timeout > cluster::ClusterPlacer::kMaxTimeout)
        throw ApiError(ErrorCode::INVALID_REQUEST, "'timeout' must be within 2s and 10m", "got " + format_duration(timeout), {"timeout"});
    const bool dry_run = param_flag(call.params(), "dry_run");
    json params = call.params();
    params.erase("timeout");
    params.erase("dry_run");
    const AllocationRequest req = parse_allocation_request(params);
    const Millis window = std::chrono::duration_cast<Millis>(req.constraints.max_duration.value_or(ctx.ledger().policy().max_duration));
    const cluster::PlacementAsk ask{amounts_of(req.resources), req.priority, window};
    const cluster::ClusterPlacer::Placed placed = ctx.placer->place(ask, req.workflow_id, timeout, dry_run, ctx.clock());
    SuccessBody body;
    json candidates = json::array();
    for (const auto& c : placed.placement.candidates) candidates.push_back(c.to_json());
    body.result = {{"node", *placed.placement.node},
                   {"dry_run", dry_run},
                   {"candidates", candidates},
                   {"window_checked", format_duration(window)},
                   {"attempts", placed.attempts},
                   {"rejected_records", placed.rejected}};
    if (placed.booking) {
        const cluster::Booking& b = *placed.booking;
        body.result["booking_id"] = b.booking_id;
        body.result["expires_at"] = format_timestamp(b.expires_at);
        body.result["booking"] = b.to_json();
        body.recommendations.push_back("Allocate on node " + b.node + " within " + format_duration(timeout) + " with \"booking\": \"" + b.booking_id +
                                       "\" and the same workflow_id and resources (or less); after that the room is given back");
        body.resources_affected = 1;
    }
    return body;
}

} // namespace

void register_cluster_operations(Router& router) {
    router.add("cluster", "status", cluster_status);
    router.add("cluster", "place", cluster_place);
}

} // namespace resmgr::server
