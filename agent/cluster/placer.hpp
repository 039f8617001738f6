// Placement against etcd (issue 17, item 4): `cluster place` reads every live node's record and
// every booking in one transaction (one revision), lets the pure core decide (placement.hpp), and
// books the room with a transaction that holds only if neither the chosen node's record nor its
// booking sequence key changed since that read. Two orchestrators placing at once: one of the
// two transactions fails its comparison and that placer reads again, so a room is never booked
// twice. The booking's key is under a lease of its own, of the booking's timeout: etcd drops it
// unless the node admits the allocation first (allocate with "booking"). Then the node lists it
// as admitted in its record (whose figures hold the allocation), and once a record saying so is
// published, deletes the key (settle): at no instant do placers count the room twice or not at
// all. Synchronous on the event loop, as claims are (BENCHMARKS has the cost), within kDeadline.
//
// What a booking holds on its node: `allocate` without that booking is refused the room (as the
// node last read its bookings, each second). Not yet: an allocation queued earlier and started
// later, a preemption, a reallocate or a reservation's window opening take no account of it
// (the admission core does not know bookings); the allocation of the booking is then refused
// RESOURCE_EXHAUSTED by the node's own admission, as any allocate would be.
// May call: cluster/etcd, cluster/placement, cluster/membership, cluster/config, model.
#pragma once

#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "cluster/config.hpp"
#include "cluster/etcd.hpp"
#include "cluster/placement.hpp"

namespace resmgr::cluster {

class ClusterPlacer {
public:
    static constexpr int kMaxAttempts = 16; // comparisons lost to other placers before CONFLICT
    static constexpr Millis kDeadline{std::chrono::seconds(3)}; // no new attempt after it: the loop waits on each
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

    // The booking `id` for this node as etcd holds it now. NOT_FOUND: expired, or another node's;
    // CONFLICT: already redeemed here.
    Booking redeem(const std::string& id);
    // This node admitted an allocation for `booking`: listed in its record until settled.
    void admitted(const Booking& booking) { admitted_.insert(booking.booking_id); }
    // For the node's record: at most kMaxPublishedBookings (past the cap, placers count a booking
    // against the node's free room a while longer: under-booked, never booked twice).
    std::vector<std::string> admitted_ids() const;
    // Each tick: deletes the keys of the admitted bookings that a published record lists
    // (`published`), and forgets them. A delete etcd does not take is tried again next tick.
    void settle(const std::vector<std::string>& published);
    // The room bookings on this node still hold: not admitted, not `except` (the one being
    // redeemed), and not past their expiry (etcd has dropped them; a read of a while ago that
    // etcd could not refresh still lists them).
    Amounts held(const std::vector<Booking>& on_this_node, const std::string& except, TimePoint now) const;

private:
    [[noreturn]] void unavailable(const std::exception& e) const;

    const ClusterConfig& config_;
    EtcdClient etcd_;
    std::set<std::string> admitted_; // booking ids admitted here, their keys not yet deleted
};

} // namespace resmgr::cluster
