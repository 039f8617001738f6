// Placement against etcd (issue 17, item 4): `cluster place` reads every live node's record and
// every booking in one transaction (one revision), lets the pure core decide (placement.hpp), and
// books the room with a transaction that holds only if neither the chosen node's record nor its
// booking sequence key changed since that read. Two orchestrators placing at once: one of the
// two transactions fails its comparison and that placer reads again, so a room is never booked
// twice. The booking's key is under a lease of its own, of the booking's timeout: etcd drops it
// unless the node admits the allocation first (allocate with "booking"), and the node then lists
// it as admitted in its record. Synchronous on the event loop, as claims are (BENCHMARKS has the
// cost); read by the node that is asked, about any node.
// May call: cluster/etcd, cluster/placement, cluster/membership, cluster/config, model.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cluster/config.hpp"
#include "cluster/etcd.hpp"
#include "cluster/placement.hpp"

namespace resmgr::cluster {

class ClusterPlacer {
public:
    static constexpr int kMaxAttempts = 8; // comparisons lost to other placers before CONFLICT
    static constexpr Millis kMinTimeout{std::chrono::seconds(2)}, kMaxTimeout{std::chrono::minutes(10)};

    ClusterPlacer(const ClusterConfig& config, std::unique_ptr<Transport> transport);

    struct Placed {
        Placement placement;
        std::optional<Booking> booking; // none for a dry run
        int attempts = 0;
        std::vector<std::string> rejected; // records that did not parse (skipped)
    };
    // Decides and, unless `dry_run`, books for `timeout`. ApiError: RESOURCE_EXHAUSTED (no node
    // has room; the details give each node's reason), CONFLICT (lost kMaxAttempts races),
    // CLUSTER_UNAVAILABLE (etcd does not answer).
    Placed place(const PlacementAsk& ask, const std::string& workflow_id, Millis timeout, bool dry_run, TimePoint now);

    // The booking `id` for this node as etcd holds it now. NOT_FOUND: expired, or another node's.
    Booking redeem(const std::string& id);
    // This node admitted an allocation for `booking`: listed in its record until it expires.
    void admitted(const Booking& booking, TimePoint now);
    // Those not yet past their expiry by a minute (the placer's clock wrote it, this node's reads
    // it), at most kMaxPublishedBookings.
    std::vector<std::string> admitted_ids(TimePoint now) const;
    // The room bookings on this node still hold (not admitted; `except` is the one being redeemed).
    Amounts held(const std::vector<Booking>& on_this_node, const std::string& except) const;

private:
    [[noreturn]] void unavailable(const std::string& why) const;

    const ClusterConfig& config_;
    EtcdClient etcd_;
    std::map<std::string, TimePoint> admitted_; // booking id -> its expiry
};

} // namespace resmgr::cluster
