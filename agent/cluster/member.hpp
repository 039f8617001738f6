// This node's membership, kept by a thread of its own so that etcd's latency or absence never
// holds the event loop: it grants a lease, publishes the node's record under it (on change, at
// most once a second, and at every heartbeat), keeps the lease alive at a third of its TTL, and
// reads every node's record into a cache that `cluster status` answers from without waiting.
// etcd unreachable, at start or later: local work goes on; the status says since when and why.
// The loop hands the node's figures over with offer(); nothing else crosses the two threads.
// May call: cluster/etcd, cluster/membership, cluster/config, cluster/claims (ClaimHolder), cluster/placement (Booking).
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "cluster/claims.hpp"
#include "cluster/config.hpp"
#include "cluster/etcd.hpp"
#include "cluster/membership.hpp"
#include "cluster/placement.hpp"

namespace resmgr::cluster {

class ClusterMember {
public:
    // How often the thread wakes: renewal, publishing and the view's refresh; at most a third of the TTL.
    static constexpr Millis kTick{std::chrono::seconds(1)};
    static constexpr Millis kMinPublishInterval{std::chrono::seconds(1)};

    ClusterMember(ClusterConfig config, std::unique_ptr<Transport> transport);
    ~ClusterMember(); // stop()
    ClusterMember(const ClusterMember&) = delete;
    ClusterMember& operator=(const ClusterMember&) = delete;

    // The node's current figures (from the loop); published by the thread when they changed.
    void offer(NodeStatus status);
    void start();
    // Marks this node as shut down in its membership record and joins the thread; with `revoke`,
    // revokes the lease (its records go at once, not after the TTL). Without it the lease runs
    // out by itself: what the node's allocations claim stays held while it restarts. Best
    // effort: etcd may be gone.
    void stop(bool revoke);

    // The cluster-scoped files other nodes claim (file -> holder), as last read: this node's
    // guard holds them against its own workflows.
    std::map<std::string, ClaimHolder> claims_by_others() const;
    // The placement bookings on this node, as last read (each second): the room they hold is
    // not given to other allocations while they last.
    std::vector<Booking> bookings_here() const;
    // The admitted bookings the last record published lists (ClusterPlacer::settle).
    std::vector<std::string> published_bookings() const;
    // The lease this node's claims go under: 0 while it is not held by this node's clock.
    std::int64_t held_lease() const;
    // `cluster status`: this node, etcd's reachability, the lease, and every node known.
    nlohmann::json status() const;
    // For doctor: empty when etcd answered at the last attempt, else why not (naming the endpoints).
    std::string problem() const;
    const ClusterConfig& config() const { return config_; }

private:
    void run();
    void step(std::chrono::steady_clock::time_point now);
    void publish(NodeStatus status, std::chrono::steady_clock::time_point now);

    const ClusterConfig config_;
    EtcdClient etcd_; // the thread's alone (start and stop call it only when the thread is not running)

    mutable std::mutex mutex_; // guards what follows
    std::condition_variable wake_;
    bool stopping_ = false;
    std::optional<NodeStatus> offered_;
    ClusterView view_;
    std::map<std::string, ClaimHolder> claims_by_others_;
    std::vector<Booking> bookings_here_;
    std::vector<std::string> published_bookings_;
    std::optional<TimePoint> view_read_at_;
    std::string problem_; // the last failure, cleared by the next success
    std::optional<TimePoint> unreachable_since_;
    std::int64_t lease_ = 0;
    LeaseClock lease_clock_;
    std::string endpoint_;

    // The thread's own.
    std::optional<NodeStatus> published_;
    std::optional<std::chrono::steady_clock::time_point> published_at_;
    std::thread thread_;
};

} // namespace resmgr::cluster
