#include "cluster/placer.hpp"

#include <spdlog/spdlog.h>

#include "resmgr/protocol.hpp"

namespace resmgr::cluster {

using nlohmann::json;

namespace {

constexpr Millis kPlaceTimeout{std::chrono::milliseconds(500)}; // per etcd call, as claims

// The live nodes' records; one that does not parse is named and skipped.
std::vector<std::pair<NodeStatus, std::int64_t>> live_nodes(const std::vector<KeyValue>& kvs, std::vector<std::string>& rejected) {
    std::vector<std::pair<NodeStatus, std::int64_t>> out;
    for (const auto& kv : kvs) {
        try {
            NodeStatus s = NodeStatus::from_json(json::parse(kv.value));
            if (kv.key != kNodesPrefix + s.node_name) throw std::invalid_argument("names node \"" + s.node_name + "\"");
            out.emplace_back(std::move(s), kv.mod_revision);
        } catch (const std::exception& e) {
            rejected.push_back(kv.key + ": " + e.what());
        }
    }
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

void ClusterPlacer::unavailable(const std::string& why) const {
    throw ApiError(ErrorCode::CLUSTER_UNAVAILABLE, "Placement needs etcd, which does not answer", why, {},
                   {"Check that the etcd members (" + join_endpoints(config_.endpoints) + ") run and this host reaches them: resmgr cluster status"},
                   {"Allocate on a node of your choosing without a booking"});
}

ClusterPlacer::Placed ClusterPlacer::place(const PlacementAsk& ask, const std::string& workflow_id, Millis timeout, bool dry_run, TimePoint now) {
    Placed out;
    std::int64_t lease = 0;
    try {
        for (out.attempts = 1; out.attempts <= kMaxAttempts; ++out.attempts) {
            out.rejected.clear();
            const auto read = etcd_.range_prefixes({kNodesPrefix, kBookingsPrefix, kBookingSeqPrefix});
            const auto nodes = live_nodes(read[0], out.rejected);
            std::vector<NodeStatus> statuses;
            for (const auto& [s, _] : nodes) statuses.push_back(s);
            out.placement = decide(statuses, bookings_by_node(read[1], out.rejected), ask, now);
            if (!out.placement.node) {
                std::string why;
                for (const auto& c : out.placement.candidates) why += (why.empty() ? "" : "; ") + c.node + ": " + c.reason;
                throw ApiError(ErrorCode::RESOURCE_EXHAUSTED, "No node of the cluster has room for this request",
                               nodes.empty() ? "no live node is registered in etcd" : why, {},
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
            b.expires_at = now + std::chrono::duration_cast<std::chrono::seconds>(timeout);
            std::int64_t record_revision = 0;
            for (const auto& [s, revision] : nodes)
                if (s.node_name == node) record_revision = revision;
            const std::string seq_key = kBookingSeqPrefix + node;
            if (etcd_.put_if_unchanged({{kNodesPrefix + node, record_revision}, {seq_key, revision_of(read[2], seq_key)}},
                                       {{kBookingsPrefix + node + "/" + b.booking_id, b.to_json().dump(), lease}, {seq_key, b.booking_id, 0}})) {
                out.booking = std::move(b);
                return out;
            }
        }
    } catch (const EtcdUnavailable& e) {
        unavailable(e.what());
    } catch (const EtcdError& e) {
        unavailable(e.what());
    }
    throw ApiError(ErrorCode::CONFLICT, "Placement lost " + std::to_string(kMaxAttempts) + " races in a row to other placers", "", {},
                   {"Ask again: each lost race means another booking was made meanwhile"});
}

Booking ClusterPlacer::redeem(const std::string& id) {
    if (!valid_booking_id(id))
        throw ApiError(ErrorCode::INVALID_REQUEST, "'booking' must be a booking id as resmgr cluster place answers it (bk_ and 16 hex digits)",
                       "got \"" + id.substr(0, 40) + "\"", {"booking"});
    std::optional<KeyValue> kv;
    try {
        kv = etcd_.get(kBookingsPrefix + config_.node_name + "/" + id);
    } catch (const EtcdUnavailable& e) {
        unavailable(e.what());
    } catch (const EtcdError& e) {
        unavailable(e.what());
    }
    if (!kv)
        throw ApiError(ErrorCode::NOT_FOUND, "Booking " + id + " is not held on node " + config_.node_name,
                       "it expired (its timeout passed before this allocate) or it books another node", {"booking:" + id},
                       {"Place again with resmgr cluster place and allocate on the node it answers, within its timeout"});
    try {
        return Booking::from_json(json::parse(kv->value));
    } catch (const std::exception& e) {
        throw ApiError(ErrorCode::CONFLICT, "Booking " + id + " in etcd does not parse", e.what(), {"booking:" + id});
    }
}

namespace {

constexpr auto kClockSlack = std::chrono::minutes(1);

} // namespace

void ClusterPlacer::admitted(const Booking& booking, TimePoint now) {
    std::erase_if(admitted_, [&](const auto& entry) { return entry.second + kClockSlack < now; }); // etcd dropped their keys
    admitted_[booking.booking_id] = booking.expires_at;
}

std::vector<std::string> ClusterPlacer::admitted_ids(TimePoint now) const {
    std::vector<std::string> out;
    for (const auto& [id, expires_at] : admitted_)
        // Past the cap, a booking is counted against the node's free room by placers: room is
        // under-booked for a while, never booked twice.
        if (expires_at + kClockSlack >= now && out.size() < kMaxPublishedBookings) out.push_back(id);
    return out;
}

Amounts ClusterPlacer::held(const std::vector<Booking>& on_this_node, const std::string& except) const {
    Amounts sum;
    for (const auto& b : on_this_node) {
        if (b.booking_id == except || admitted_.count(b.booking_id)) continue;
        sum.cpu_cores += b.amounts.cpu_cores;
        sum.memory_gb += b.amounts.memory_gb;
        sum.agents += b.amounts.agents;
    }
    return sum;
}

} // namespace resmgr::cluster
