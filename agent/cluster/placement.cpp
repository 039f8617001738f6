#include "cluster/placement.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "cluster/fields.hpp"

namespace resmgr::cluster {

using nlohmann::json;
using namespace fields;

namespace {

// What is left after the request, as shares of the node's capacity, summed over the dimensions
// that have one (agents only when asked for: a request without agents leaves the pool alone).
double left_over(const NodeStatus& node, const Amounts& room, const Amounts& wanted) {
    double sum = 0;
    if (node.capacity.cpu_cores > 0) sum += (room.cpu_cores - wanted.cpu_cores) / node.capacity.cpu_cores;
    if (node.capacity.memory_gb > 0) sum += (room.memory_gb - wanted.memory_gb) / node.capacity.memory_gb;
    if (wanted.agents > 0 && node.capacity.agents > 0) sum += static_cast<double>(room.agents - wanted.agents) / node.capacity.agents;
    return sum;
}

// The room at the tightest instant of [now, now + duration): now, and each reservation start
// inside, with every reservation open then taken away.
Amounts tightest_room(const NodeStatus& node, const Amounts& free_now, TimePoint now, Millis duration) {
    std::vector<TimePoint> instants{now};
    for (const auto& r : node.reservations)
        if (r.start > now && r.start < now + duration) instants.push_back(r.start);
    Amounts tightest = free_now;
    for (TimePoint t : instants) {
        Amounts room = free_now;
        for (const auto& r : node.reservations)
            if (r.start <= t && (!r.end || *r.end > t)) room = room - r.amounts;
        tightest.cpu_cores = std::min(tightest.cpu_cores, room.cpu_cores);
        tightest.memory_gb = std::min(tightest.memory_gb, room.memory_gb);
        tightest.agents = std::min(tightest.agents, room.agents);
    }
    return tightest;
}

} // namespace

bool valid_booking_id(std::string_view id) {
    if (id.size() != 19 || id.substr(0, 3) != "bk_") return false;
    return std::all_of(id.begin() + 3, id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

json Booking::to_json() const {
    return {{"booking_id", booking_id}, {"node", node}, {"workflow_id", workflow_id}, {"placed_by", placed_by},
            {"resources", amounts_json(amounts)}, {"priority", priority.value},
            {"placed_at", format_timestamp(placed_at)}, {"expires_at", format_timestamp(expires_at)}};
}

Booking Booking::from_json(const json& j) {
    if (!j.is_object()) throw std::invalid_argument("not a JSON object");
    Booking b;
    b.booking_id = string(j, "booking_id");
    if (!valid_booking_id(b.booking_id)) throw std::invalid_argument("\"booking_id\" is not bk_ and 16 hex digits");
    b.node = string(j, "node");
    b.workflow_id = string(j, "workflow_id");
    b.placed_by = string(j, "placed_by");
    b.amounts = fields::amounts(j, "resources");
    if (b.amounts.cpu_cores < 0 || b.amounts.memory_gb < 0) throw std::invalid_argument("\"resources\" holds a negative amount");
    b.priority.value = static_cast<int>(number_in(j, "priority", 0, 100));
    b.placed_at = time(j, "placed_at");
    b.expires_at = time(j, "expires_at");
    return b;
}

std::map<std::string, std::vector<Booking>> bookings_by_node(const std::vector<KeyValue>& kvs, std::vector<std::string>& rejected) {
    std::map<std::string, std::vector<Booking>> out;
    const std::string prefix = kBookingsPrefix;
    for (const auto& kv : kvs) {
        try {
            Booking b = Booking::from_json(json::parse(kv.value));
            if (kv.key != prefix + b.node + "/" + b.booking_id) throw std::invalid_argument("its key names another node or booking");
            out[b.node].push_back(std::move(b));
        } catch (const std::exception& e) {
            rejected.push_back(kv.key + ": " + e.what());
        }
    }
    return out;
}

json Candidate::to_json() const {
    return {{"node", node}, {"fits", fits}, {"under_pressure", under_pressure}, {"room", amounts_json(room)},
            {"left_over", std::round(left_over * 1000) / 1000}, {"reason", reason}};
}

Placement decide(const std::vector<NodeStatus>& live, const std::map<std::string, std::vector<Booking>>& bookings, const PlacementAsk& ask,
                 TimePoint now) {
    Placement out;
    const bool may_take_pressure = ask.priority.band() >= PriorityBand::high;
    for (const auto& node : live) {
        Candidate c;
        c.node = node.node_name;
        c.under_pressure = !node.pressure_raised.empty();
        Amounts free_now = node.free;
        if (auto it = bookings.find(node.node_name); it != bookings.end())
            for (const auto& b : it->second)
                if (std::find(node.bookings_admitted.begin(), node.bookings_admitted.end(), b.booking_id) == node.bookings_admitted.end())
                    free_now = free_now - b.amounts;
        c.room = tightest_room(node, free_now, now, ask.duration);
        c.reason = c.room.shortfall(ask.wanted, "free");
        std::string raised;
        for (const auto& s : node.pressure_raised) raised += (raised.empty() ? "" : ", ") + s;
        if (c.reason.empty() && c.under_pressure && !may_take_pressure)
            c.reason = "under pressure (" + raised + "): takes only high or critical priority work";
        c.fits = c.reason.empty();
        if (c.fits) {
            c.left_over = left_over(node, c.room, ask.wanted);
            if (c.under_pressure) c.reason = "under pressure (" + raised + "): used only when no calm node has room";
        }
        out.candidates.push_back(std::move(c));
    }
    std::stable_sort(out.candidates.begin(), out.candidates.end(), [](const Candidate& a, const Candidate& b) {
        if (a.fits != b.fits) return a.fits;
        if (a.under_pressure != b.under_pressure) return !a.under_pressure;
        if (a.left_over != b.left_over) return a.left_over < b.left_over;
        return a.node < b.node;
    });
    if (!out.candidates.empty() && out.candidates.front().fits) out.node = out.candidates.front().node;
    return out;
}

} // namespace resmgr::cluster
