// Placement (issue 17, item 4), the pure core: which live node has room for a request, and the
// bookings that hold that room until the node admits the allocation. No I/O: the placer
// (placer.hpp) reads the records from etcd, asks decide(), and books the answer.
//
// A node's room ("free" in what placement answers) is what it published as free, less the bookings on it that it has not admitted
// yet (an admitted one is already in its `allocated`), less, at each instant of the request's
// window where one starts, the reservations it published. Pressure: a node whose responder has a
// signal raised takes no low or medium priority work; high and critical go there only when no
// calm node has room. Among the nodes with room, best fit: the least room left over (the sum,
// over CPU, memory and, when asked, agents, of what is left as a share of the node's capacity),
// so large holes stay whole for large requests; ties by name.
// May call: cluster/membership, cluster/fields, model.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/membership.hpp"
#include "resmgr/model.hpp"

namespace resmgr::cluster {

inline constexpr const char* kBookingsPrefix = "/resmgr/bookings/";       // + node + "/" + booking id, under the booking's own lease
inline constexpr const char* kBookingSeqPrefix = "/resmgr/booking-seq/"; // + node: changed by every booking on it (the txn compares it)

// Room held on one node for an allocation an orchestrator will make there. Its etcd key is under
// a lease of its timeout: etcd drops it when the node did not admit the allocation in time.
struct Booking {
    std::string booking_id, node, workflow_id, placed_by;
    Amounts amounts;
    Priority priority;
    TimePoint placed_at{}, expires_at{};
    nlohmann::json to_json() const;
    static Booking from_json(const nlohmann::json& j); // throws std::invalid_argument
};

// "bk_" and 16 hex digits, as the placer makes them (random_id): anything else is refused before
// it becomes part of an etcd key.
bool valid_booking_id(std::string_view id);

// The bookings under kBookingsPrefix by node; a record that does not parse, or whose key does not
// match it, is named in `rejected` and skipped.
std::map<std::string, std::vector<Booking>> bookings_by_node(const std::vector<KeyValue>& kvs, std::vector<std::string>& rejected);

struct PlacementAsk {
    Amounts wanted;
    Priority priority;
    Millis duration{}; // the window checked against published reservations, from now
};

struct Candidate {
    std::string node;
    bool fits = false;
    bool under_pressure = false;
    Amounts room;          // at the tightest instant of the window, before this request
    double left_over = 0;  // the best-fit score: lower is a tighter fit
    std::string reason;    // why it does not fit, or why it ranks where it does
    nlohmann::json to_json() const;
};

struct Placement {
    std::optional<std::string> node;
    std::vector<Candidate> candidates; // best first; those that do not fit last
};

// `live`: the records under kNodesPrefix (parsed); `bookings`: by node.
Placement decide(const std::vector<NodeStatus>& live, const std::map<std::string, std::vector<Booking>>& bookings,
                 const PlacementAsk& ask, TimePoint now);

} // namespace resmgr::cluster
