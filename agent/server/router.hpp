// agent/server holds the protocol: the router (this), its table of operations, the operation
// groups (ops/), the socket server and the event loop. The router turns one request, already
// attributed to a kernel-verified peer, into one envelope: it finds the operation's row (the
// names and parameter specs are resmgr/operations.hpp's catalog), checks who may call it and its
// parameters, runs the handler, measures execution_time, and turns every failure into the
// seed's error envelope: BackendError into BACKEND_ERROR here and nowhere else. Allocations
// refused for capacity, policy or a conflict are reported as events here too.
// May call: lifecycle, monitor, events, model; the handlers below it never call back up.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/membership.hpp"
#include "cluster/placement.hpp"
#include "lifecycle/agent_starts.hpp"
#include "lifecycle/leak_detector.hpp"
#include "lifecycle/lifecycle.hpp"
#include "lifecycle/pressure_responder.hpp"
#include "lifecycle/tuner.hpp"
#include "monitor/proc.hpp"
#include "resmgr/operations.hpp"
#include "resmgr/protocol.hpp"

namespace resmgr::cluster {
class ClusterMember;
class ClusterClaims;
class ClusterAgentPool;
class ClusterPlacer;
}

namespace resmgr::server {

// What every handler may use: the lifecycle (the one writer), the exclusive files, events,
// monitoring (when running) and the host's facts.
struct Context {
    using IdentifyFn = std::function<std::optional<monitor::ProcessIdentity>(long pid)>;
    using LookupUserFn = std::function<core::UserIdentity(std::uint32_t uid)>;

    lifecycle::Lifecycle& lifecycle;
    lifecycle::ExclusiveFiles& files;
    lifecycle::CpuLending& lending; // balance
    lifecycle::Tuner& tuner;        // tune
    lifecycle::PressureResponder& pressure; // status pressure
    lifecycle::AgentStarts& agent_starts;   // attach of an agent: the slot queue
    lifecycle::LeakDetector& leaks;         // doctor: the last leak pass, degraded workflow types
    events::Notifier& events;
    std::function<TimePoint()> clock;
    nlohmann::json host_report; // the probe's JSON (agent/cgroup/probe), shown by doctor
    nlohmann::json daemon_info;
    // Who a process is (parent, uids), for attach permissions; /proc by default.
    IdentifyFn identify;
    // Who a uid is (name, groups), for priority_privileges; the user database by default.
    LookupUserFn lookup_user;
    monitor::Monitoring* monitoring = nullptr; // none: the monitoring operations are UNSUPPORTED
    history::History* history = nullptr;       // none: no runs to show, the history operations are UNSUPPORTED
    cluster::ClusterMember* cluster = nullptr; // none: this node is not in a cluster (cluster operations are UNSUPPORTED)
    cluster::ClusterClaims* claims = nullptr;  // with `cluster`: the cluster-scoped exclusive files
    cluster::ClusterAgentPool* agent_pool = nullptr; // with `cluster`: cluster.max_agents across the nodes
    cluster::ClusterPlacer* placer = nullptr;        // with `cluster`: cluster place, and allocate with a booking

    const core::Ledger& ledger() const { return lifecycle.ledger(); }
    // UNSUPPORTED when monitoring is not running.
    monitor::Monitoring& require_monitoring() const;
    // UNSUPPORTED when the history database is off, saying why.
    history::HistoryStore& require_history() const;
};

// One call of a handler: the request, who asked, and the context.
struct Call {
    const Request& request;
    const Owner& peer;
    Context& ctx;
    const OperationSpec& spec; // the catalog row the request was routed by
    const nlohmann::json& params() const { return request.params; }
    // A parameter's value, or the default its spec declares when absent or null.
    const nlohmann::json& param(const char* key) const { return param_or_default(request.params, spec.params, key); }
    // A duration parameter (check_params checked its form) or its declared default.
    Millis duration_param(const char* key) const { return *parse_duration(param(key).get<std::string>()); }
};

using Handler = SuccessBody (*)(const Call& call);

struct Operation {
    const OperationSpec* spec; // from the catalog: name, resource type, params, caller
    Handler handler;
};

class Router {
public:
    explicit Router(Context& context);

    // Binds `handler` to the catalog's row (name, resource_type); a row the catalog lacks is a
    // programming error (std::logic_error at start, caught by the unit tests).
    void add(const std::string& name, const std::string& resource_type, Handler handler);
    const std::vector<Operation>& operations() const { return table_; }

    // Never throw: every failure becomes the seed's error envelope.
    nlohmann::json handle_line(std::string_view line, const Owner& peer);
    nlohmann::json handle(const Request& request, const Owner& peer);

    // Told of every answer: the request, its envelope and how long it took (resmgrd's metrics
    // count allocate's decisions and latency through it). Called on the loop, after the answer.
    using AnswerObserver = std::function<void(const Request&, const nlohmann::json& envelope, std::chrono::microseconds elapsed)>;
    void set_observer(AnswerObserver observer) { observer_ = std::move(observer); }

private:
    nlohmann::json answer(const Request& request, const Owner& peer);
    SuccessBody dispatch(const Request& request, const Owner& peer);
    void report_denied_allocation(const Request& request, const ApiError& error);

    Context& ctx_;
    std::vector<Operation> table_;
    AnswerObserver observer_;
};

// One register function per operation group (ops/*.cpp).
void register_allocation_operations(Router& router);
void register_conflict_operations(Router& router);
void register_monitoring_operations(Router& router);
void register_node_operations(Router& router);
void register_history_operations(Router& router);
void register_analytics_operations(Router& router);
void register_planning_operations(Router& router);
void register_cluster_operations(Router& router);

// This node's figures for its cluster record (ops/cluster.cpp): capacity, allocated, free, pressure.
cluster::NodeStatus cluster_node_status(const Context& ctx, const std::string& node_name, TimePoint started_at);
// What an allocation holds of the cluster (ops/cluster.cpp): its cluster-scoped files' claims
// and its agents' slots in the cluster's pool, taken before it is admitted (CONFLICT,
// RESOURCE_EXHAUSTED or CLUSTER_UNAVAILABLE) and bound to it after; taken again at start for the
// allocations restored; each tick, a claim another node holds now is let go of locally
// (Lifecycle::move_file) and what this node cannot vouch for is fenced (frozen). A released
// file's claim goes unless another local allocation holds the file now (resolve-conflicts).
// With `wait`, a file another node holds does not refuse the request: it is queued
// (held_elsewhere says why), and claims the file when it may start (may_start_queued).
struct ClusterShare {
    std::vector<std::string> files, agent_slots;
    std::string held_elsewhere;
};
ClusterShare take_cluster_share(Context& ctx, const AllocationRequest& request, bool wait);
// A reservation cannot book a cluster share yet (nothing takes it when its window opens):
// UNSUPPORTED for cluster-scoped files, or agents under a cluster-wide pool.
void refuse_cluster_share_in_reservation(Context& ctx, const AllocationRequest& request);
// `allocation` null: the request was refused, the share is given back.
void bind_cluster_share(Context& ctx, const ClusterShare& share, const Allocation* allocation);
// LoopHooks::may_start_queued: a queued allocation waiting for cluster-scoped files claims them.
bool may_start_queued(Context& ctx, const Allocation& allocation);
void adopt_cluster_shares(Context& ctx);
void on_cluster_tick(Context& ctx);
// Freezes the allocations whose cluster share this node cannot vouch for, thaws the rest it froze.
void fence(Context& ctx);
void on_files_released(Context& ctx, const std::string& id, const std::optional<std::string>& file);
// allocate with "booking" (a placement's): the booking as etcd holds it for this node, checked
// against the request (NOT_FOUND when expired, INVALID_REQUEST when the request asks for more);
// without one, RESOURCE_EXHAUSTED when only the room bookings on this node hold would fit it.
std::optional<cluster::Booking> redeem_booking(Context& ctx, const AllocationRequest& request, const nlohmann::json& booking);
// The allocation of `booking` is admitted: this node's record lists it (placers stop counting it).
void booking_admitted(Context& ctx, const cluster::Booking& booking);

} // namespace resmgr::server
