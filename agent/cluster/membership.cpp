#include "cluster/membership.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <stdexcept>

#include "cluster/fields.hpp"

namespace resmgr::cluster {

using nlohmann::json;

namespace {

using namespace fields;

std::string key_name(const std::string& key, const char* prefix) { return key.substr(std::string(prefix).size()); }

} // namespace

std::string Amounts::shortfall(const Amounts& wanted, const char* of_what) const {
    constexpr double kEpsilon = 1e-9;
    auto words = [&](const char* what, double has, double wants) {
        char text[200];
        std::snprintf(text, sizeof text, "%s: %.2f wanted, %.2f %s", what, wants, has, of_what);
        return std::string(text);
    };
    if (wanted.cpu_cores > cpu_cores + kEpsilon) return words("cpu_cores", cpu_cores, wanted.cpu_cores);
    if (wanted.memory_gb > memory_gb + kEpsilon) return words("memory_gb", memory_gb, wanted.memory_gb);
    if (wanted.agents > agents) return words("agents", agents, wanted.agents);
    return {};
}

bool NodeStatus::same_figures(const NodeStatus& o) const {
    return node_name == o.node_name && capacity == o.capacity && allocated == o.allocated && free == o.free && allocations == o.allocations &&
           pressure_raised == o.pressure_raised && pressure_steps_held == o.pressure_steps_held && version == o.version && pid == o.pid &&
           started_at == o.started_at && left == o.left && reservations == o.reservations && bookings_admitted == o.bookings_admitted;
}

json NodeStatus::to_json() const {
    return {{"node_name", node_name},
            {"capacity", amounts_json(capacity)},
            {"allocated", amounts_json(allocated)},
            {"free", amounts_json(free)},
            {"allocations", allocations},
            {"pressure", {{"raised", pressure_raised}, {"steps_held", pressure_steps_held}}},
            {"version", version},
            {"pid", pid},
            {"started_at", format_timestamp(started_at)},
            {"updated_at", format_timestamp(updated_at)},
            {"left", left},
            {"reservations", reservations_json()},
            {"bookings_admitted", bookings_admitted}};
}

json NodeStatus::reservations_json() const {
    json out = json::array();
    for (const auto& r : reservations)
        out.push_back({{"start", format_timestamp(r.start)}, {"end", r.end ? json(format_timestamp(*r.end)) : json(nullptr)}, {"resources", amounts_json(r.amounts)}});
    return out;
}

NodeStatus NodeStatus::from_json(const json& j) {
    if (!j.is_object()) throw std::invalid_argument("not a JSON object");
    NodeStatus s;
    s.node_name = string(j, "node_name");
    s.capacity = amounts(j, "capacity");
    s.allocated = amounts(j, "allocated");
    s.free = amounts(j, "free");
    s.allocations = static_cast<size_t>(number_in(j, "allocations", 0, 1e9));
    const json& pressure = field(j, "pressure");
    if (!pressure.is_object()) throw std::invalid_argument("\"pressure\" is not an object");
    const json& raised = field(pressure, "raised");
    if (!raised.is_array()) throw std::invalid_argument("\"pressure.raised\" is not an array");
    for (const auto& r : raised) {
        if (!r.is_string()) throw std::invalid_argument("\"pressure.raised\" holds a non-string");
        s.pressure_raised.push_back(r.get<std::string>());
    }
    s.pressure_steps_held = static_cast<size_t>(number_in(pressure, "steps_held", 0, 1e9));
    s.version = string(j, "version");
    s.pid = static_cast<long>(number_in(j, "pid", 0, 4194304));
    s.started_at = time(j, "started_at");
    s.updated_at = time(j, "updated_at");
    if (auto it = j.find("left"); it != j.end() && it->is_boolean()) s.left = it->get<bool>();
    // Absent from the records of nodes older than placement: none.
    if (auto it = j.find("reservations"); it != j.end() && !it->is_null()) {
        if (!it->is_array() || it->size() > kMaxPublishedReservations) throw std::invalid_argument("\"reservations\" is not an array of at most 64");
        for (const auto& r : *it) {
            if (!r.is_object()) throw std::invalid_argument("\"reservations\" holds a non-object");
            ReservedWindow w{time(r, "start"), std::nullopt, amounts(r, "resources")};
            if (const json& end = field(r, "end"); !end.is_null()) w.end = time(r, "end");
            s.reservations.push_back(w);
        }
    }
    if (auto it = j.find("bookings_admitted"); it != j.end() && !it->is_null()) {
        if (!it->is_array() || it->size() > kMaxPublishedBookings) throw std::invalid_argument("\"bookings_admitted\" is not an array of at most 256");
        for (const auto& b : *it) {
            if (!b.is_string()) throw std::invalid_argument("\"bookings_admitted\" holds a non-string");
            s.bookings_admitted.push_back(b.get<std::string>());
        }
    }
    return s;
}

bool should_publish(const std::optional<NodeStatus>& published, std::optional<std::chrono::steady_clock::time_point> published_at,
                    const NodeStatus& now_status, std::chrono::steady_clock::time_point now, Millis min_interval, Millis heartbeat) {
    if (!published || !published_at) return true;
    const auto since = now - *published_at;
    if (since >= heartbeat) return true;
    return !published->same_figures(now_status) && since >= min_interval;
}

const char* to_string(NodeRow::State state) { return state == NodeRow::State::live ? "live" : "gone"; }

json NodeRow::to_json() const {
    json j = status.to_json();
    j.erase("left");
    j["state"] = cluster::to_string(state);
    j["last_seen"] = j["updated_at"];
    j.erase("updated_at");
    if (state == State::gone) j["gone_reason"] = gone_reason;
    j["self"] = self;
    return j;
}

std::optional<NodeStatus> parse_node_record(const KeyValue& kv, const char* prefix, std::vector<std::string>& rejected) {
    try {
        NodeStatus s = NodeStatus::from_json(json::parse(kv.value));
        if (s.node_name != key_name(kv.key, prefix)) throw std::invalid_argument("names node \"" + s.node_name + "\"");
        return s;
    } catch (const std::exception& e) {
        rejected.push_back(kv.key + ": " + e.what());
        return std::nullopt;
    }
}

ClusterView build_view(const std::vector<KeyValue>& live, const std::vector<KeyValue>& members, const std::string& self) {
    ClusterView view;
    std::map<std::string, NodeRow> rows;
    auto parse = [&](const KeyValue& kv, const char* prefix) { return parse_node_record(kv, prefix, view.rejected); };
    for (const auto& kv : live)
        if (auto s = parse(kv, kNodesPrefix)) rows[s->node_name] = NodeRow{*s, NodeRow::State::live, {}, s->node_name == self};
    for (const auto& kv : members) {
        auto s = parse(kv, kMembersPrefix);
        if (!s || rows.count(s->node_name)) continue;
        rows[s->node_name] = NodeRow{*s, NodeRow::State::gone, s->left ? "shut down" : "lease expired", s->node_name == self};
    }
    for (auto& [_, row] : rows) view.nodes.push_back(std::move(row));
    return view;
}

} // namespace resmgr::cluster
