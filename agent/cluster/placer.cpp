#include "cluster/placer.hpp"

#include <spdlog/spdlog.h>

#include "resmgr/protocol.hpp"

namespace resmgr::cluster {

using nlohmann::json;

namespace {

constexpr Millis kPlaceTimeout{std::chrono::milliseconds(500)}; // per etcd call, as claims
// A booking is still counted this long past its expiry: the placer's clock wrote it, this
// node's reads it.
constexpr auto kClockSlack = std::chrono::seconds(5);

struct LiveNode {
    NodeStatus status;
    std::int64_t revision = 0;
};

std::vector<LiveNode> live_nodes(const std::vector<KeyValue>& kvs, std::vector<std::string>& rejected) {
    std::vector<LiveNode> out;
    for (const auto& kv : kvs)
        if (auto s = parse_node_record(kv, kNodesPrefix, rejected)) out.push_back({std::move(*s), kv.mod_revision});
    return out;
}

std::int64_t revision_of(const std::vector<KeyValue>& kvs, const std::string& key) {
    for (const auto& kv : kvs)
        if (kv.key == key) return kv.mod_revision;
    return 0; // absent: the comparison holds while it stays absent
}

} // namespace

ClusterPlacer::ClusterPlacer(const ClusterConfig& config, std::unique_ptr<Transport> transport)
    : config_(config), etcd_(config.endpoints, std::move(transport), kPlaceTimeout) {}

void ClusterPlacer::unavailable(const std::exception& e) const {
    const bool answered = dynamic_cast<const EtcdError*>(&e) != nullptr;
    throw ApiError(ErrorCode::CLUSTER_UNAVAILABLE, answered ? "Placement failed: etcd refused a request or answered something unreadable"
                                                            : "Placement needs etcd, which does not answer",
                   e.what(), {},
                   {"Check that the etcd members (" + join_endpoints(config_.endpoints) + ") run and this host reaches them: resmgr cluster status"},
                   {"Allocate on a node of your choosing without a booking"});
}

ClusterPlacer::Placed ClusterPlacer::place(const PlacementAsk& ask, const std::string& workflow_id, Millis timeout, bool dry_run, TimePoint now) {
    Placed out;
    std::int64_t lease = 0;
    // The lease of a placement that books nothing is given back (best effort: it expires anyway).
    auto give_back = [&] {
        if (!lease) return;
        try {
            etcd_.revoke(lease);
        } catch (const std::exception& e) {
            spdlog::debug("cluster: placement lease {:x} not revoked: {}", lease, e.what());
        }
    };
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    try {
        for (out.attempts = 1; out.attempts <= kMaxAttempts && std::chrono::steady_clock::now() < deadline; ++out.attempts) {
            out.rejected.clear();
            const auto read = etcd_.range_prefixes({kNodesPrefix, kBookingsPrefix, kBookingSeqPrefix});
            const std::vector<LiveNode> nodes = live_nodes(read[0], out.rejected);
            std::vector<NodeStatus> statuses;
            for (const auto& n : nodes) statuses.push_back(n.status);
            out.placement = decide(statuses, bookings_by_node(read[1], out.rejected), ask, now);
            if (!out.placement.node) {
                std::string why;
                for (const auto& c : out.placement.candidates) why += (why.empty() ? "" : "; ") + c.node + ": " + c.reason;
                if (nodes.empty()) why = "no live node's record is in etcd" + std::string(out.rejected.empty() ? "" : " that parses");
                for (const auto& r : out.rejected) why += "; skipped " + r;
                give_back();
                throw ApiError(ErrorCode::RESOURCE_EXHAUSTED, "No node of the cluster has room for this request", why, {},
                               {"Ask again when allocations end or bookings expire, or ask for less"});
            }
            if (dry_run) return out;
            const std::string& node = *out.placement.node;
            // One lease per placement, granted once: a lost race reuses it.
            if (!lease) lease = etcd_.grant_lease(timeout);
            Booking b;
            b.booking_id = random_id("bk");
            b.node = node;
            b.workflow_id = workflow_id;
            b.placed_by = config_.node_name;
            b.amounts = ask.wanted;
            b.priority = ask.priority;
            b.placed_at = now;
            // Rounded up to whole seconds, as the lease's TTL is.
            b.expires_at = now + std::chrono::ceil<std::chrono::seconds>(timeout);
            std::int64_t record_revision = 0;
            for (const auto& n : nodes)
                if (n.status.node_name == node) record_revision = n.revision;
            const std::string seq_key = kBookingSeqPrefix + node;
            const TxnOutcome outcome =
                etcd_.put_if_unchanged({{kNodesPrefix + node, record_revision}, {seq_key, revision_of(read[2], seq_key)}},
                                       {{kBookingsPrefix + node + "/" + b.booking_id, b.to_json().dump(), lease}, {seq_key, b.booking_id, 0}}, seq_key);
            // Applied by a member whose answer was lost, then refused on the retry: it is this booking.
            if (outcome.succeeded || (outcome.current && outcome.current->value == b.booking_id)) {
                out.booking = std::move(b);
                return out;
            }
        }
    } catch (const EtcdUnavailable& e) {
        give_back();
        unavailable(e);
    } catch (const EtcdError& e) {
        give_back();
        unavailable(e);
    }
    give_back();
    throw ApiError(ErrorCode::CONFLICT, "Placement lost " + std::to_string(out.attempts - 1) + " races in a row to other placers", "", {},
                   {"Ask again: each lost race means another booking was made meanwhile"});
}

Booking ClusterPlacer::redeem(const std::string& id) {
    if (!valid_booking_id(id))
        throw ApiError(ErrorCode::INVALID_REQUEST, "'booking' must be a booking id as resmgr cluster place answers it (bk_ and 16 hex digits)",
                       "got \"" + id.substr(0, 40) + "\"", {"booking"});
    if (admitted_.count(id))
        throw ApiError(ErrorCode::CONFLICT, "Booking " + id + " was already redeemed on this node", "", {"booking:" + id},
                       {"Place again for another allocation"});
    std::optional<KeyValue> kv;
    try {
        kv = etcd_.get(kBookingsPrefix + config_.node_name + "/" + id);
    } catch (const EtcdUnavailable& e) {
        unavailable(e);
    } catch (const EtcdError& e) {
        unavailable(e);
    }
    if (!kv)
        throw ApiError(ErrorCode::NOT_FOUND, "Booking " + id + " is not held on node " + config_.node_name,
                       "it expired (its timeout passed before this allocate), was redeemed, or books another node", {"booking:" + id},
                       {"Place again with resmgr cluster place and allocate on the node it answers, within its timeout"});
    std::vector<std::string> rejected;
    auto read = bookings_by_node({*kv}, rejected);
    if (!rejected.empty())
        throw ApiError(ErrorCode::INTERNAL_ERROR, "Booking " + id + " in etcd is not a booking resmgr wrote", rejected.front(), {"booking:" + id});
    return read.at(config_.node_name).front();
}

std::vector<std::string> ClusterPlacer::admitted_ids() const {
    std::vector<std::string> out;
    for (const auto& id : admitted_) {
        if (out.size() == kMaxPublishedBookings) break;
        out.push_back(id);
    }
    return out;
}

void ClusterPlacer::settle(const std::vector<std::string>& published) {
    for (const auto& id : published) {
        if (!admitted_.count(id)) continue;
        try {
            etcd_.delete_key(kBookingsPrefix + config_.node_name + "/" + id);
            admitted_.erase(id);
        } catch (const std::exception& e) {
            spdlog::debug("cluster: booking {} not settled yet: {}", id, e.what());
            return; // etcd away: the rest wait for the next tick too
        }
    }
}

Amounts ClusterPlacer::held(const std::vector<Booking>& on_this_node, const std::string& except, TimePoint now) const {
    Amounts sum;
    for (const auto& b : on_this_node)
        if (b.booking_id != except && !admitted_.count(b.booking_id) && b.expires_at + kClockSlack >= now) sum += b.amounts;
    return sum;
}

} // namespace resmgr::cluster
