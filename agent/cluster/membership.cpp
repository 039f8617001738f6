#include "cluster/membership.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace resmgr::cluster {

using nlohmann::json;

namespace {

json amounts_json(const Amounts& a) { return {{"cpu_cores", a.cpu_cores}, {"memory_gb", a.memory_gb}, {"agents", a.agents}}; }

const json& field(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end()) throw std::invalid_argument(std::string("no \"") + key + "\"");
    return *it;
}

double number_field(const json& j, const char* key) {
    const json& v = field(j, key);
    if (!v.is_number()) throw std::invalid_argument(std::string("\"") + key + "\" is not a number");
    return v.get<double>();
}

std::string string_field(const json& j, const char* key) {
    const json& v = field(j, key);
    if (!v.is_string()) throw std::invalid_argument(std::string("\"") + key + "\" is not a string");
    return v.get<std::string>();
}

TimePoint time_field(const json& j, const char* key) {
    auto t = parse_timestamp(string_field(j, key));
    if (!t) throw std::invalid_argument(std::string("\"") + key + "\" is not an RFC 3339 time");
    return *t;
}

Amounts amounts_field(const json& j, const char* key) {
    const json& v = field(j, key);
    if (!v.is_object()) throw std::invalid_argument(std::string("\"") + key + "\" is not an object");
    const double agents = number_field(v, "agents");
    if (agents < 0 || agents > 1e6) throw std::invalid_argument(std::string("\"") + key + ".agents\" is out of range");
    return {number_field(v, "cpu_cores"), number_field(v, "memory_gb"), static_cast<int>(agents)};
}

std::string key_name(const std::string& key, const char* prefix) { return key.substr(std::string(prefix).size()); }

} // namespace

bool NodeStatus::same_figures(const NodeStatus& o) const {
    return node_name == o.node_name && capacity == o.capacity && allocated == o.allocated && free == o.free && allocations == o.allocations &&
           pressure_raised == o.pressure_raised && pressure_steps_held == o.pressure_steps_held && version == o.version && pid == o.pid &&
           started_at == o.started_at && left == o.left;
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
            {"left", left}};
}

NodeStatus NodeStatus::from_json(const json& j) {
    if (!j.is_object()) throw std::invalid_argument("not a JSON object");
    NodeStatus s;
    s.node_name = string_field(j, "node_name");
    s.capacity = amounts_field(j, "capacity");
    s.allocated = amounts_field(j, "allocated");
    s.free = amounts_field(j, "free");
    const double allocations = number_field(j, "allocations");
    if (allocations < 0 || allocations > 1e9) throw std::invalid_argument("\"allocations\" is out of range");
    s.allocations = static_cast<size_t>(allocations);
    const json& pressure = field(j, "pressure");
    if (!pressure.is_object()) throw std::invalid_argument("\"pressure\" is not an object");
    const json& raised = field(pressure, "raised");
    if (!raised.is_array()) throw std::invalid_argument("\"pressure.raised\" is not an array");
    for (const auto& r : raised) {
        if (!r.is_string()) throw std::invalid_argument("\"pressure.raised\" holds a non-string");
        s.pressure_raised.push_back(r.get<std::string>());
    }
    const double held = number_field(pressure, "steps_held");
    if (held < 0 || held > 1e9) throw std::invalid_argument("\"pressure.steps_held\" is out of range");
    s.pressure_steps_held = static_cast<size_t>(held);
    s.version = string_field(j, "version");
    const double pid = number_field(j, "pid");
    if (pid < 0 || pid > 4194304) throw std::invalid_argument("\"pid\" is out of range");
    s.pid = static_cast<long>(pid);
    s.started_at = time_field(j, "started_at");
    s.updated_at = time_field(j, "updated_at");
    if (auto it = j.find("left"); it != j.end() && it->is_boolean()) s.left = it->get<bool>();
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

ClusterView build_view(const std::vector<KeyValue>& live, const std::vector<KeyValue>& members, const std::string& self) {
    ClusterView view;
    std::map<std::string, NodeRow> rows;
    auto parse = [&](const KeyValue& kv, const char* prefix) -> std::optional<NodeStatus> {
        try {
            NodeStatus s = NodeStatus::from_json(json::parse(kv.value));
            if (s.node_name != key_name(kv.key, prefix)) throw std::invalid_argument("names node \"" + s.node_name + "\"");
            return s;
        } catch (const std::exception& e) {
            view.rejected.push_back(kv.key + ": " + e.what());
            return std::nullopt;
        }
    };
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
