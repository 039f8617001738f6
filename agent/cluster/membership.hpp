// The membership core, pure (no I/O): what a node publishes about itself (NodeStatus, its JSON
// checked field by field, since any process that can write to etcd can write a record), when to
// publish it, whether the lease still counts as held by this node's own clock, and the table of
// nodes built from what etcd holds. The member thread (member.hpp) feeds it and acts.
// May call: model.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "resmgr/model.hpp"

namespace resmgr::cluster {

// Where the records live in etcd. A node's record is under its lease, so it goes when the node
// does; its membership record is not, so the node is still listed ("gone", with when it was last
// seen) after its lease expired or it shut down.
inline constexpr const char* kNodesPrefix = "/resmgr/nodes/";
inline constexpr const char* kMembersPrefix = "/resmgr/members/";

struct Amounts {
    double cpu_cores = 0, memory_gb = 0;
    int agents = 0;
    bool operator==(const Amounts&) const = default;
    // Agents saturate at a billion either way: sums over records etcd holds may be anything.
    Amounts& operator+=(const Amounts& o) {
        cpu_cores += o.cpu_cores;
        memory_gb += o.memory_gb;
        agents = saturated(static_cast<long long>(agents) + o.agents);
        return *this;
    }
    Amounts operator-(const Amounts& o) const {
        return {cpu_cores - o.cpu_cores, memory_gb - o.memory_gb, saturated(static_cast<long long>(agents) - o.agents)};
    }
    static int saturated(long long agents) { return static_cast<int>(std::clamp(agents, -1'000'000'000LL, 1'000'000'000LL)); }
    // The first of CPU, memory and agents that lacks for `wanted`, in words; empty when it all
    // fits (figures travel as JSON doubles: within 1e-9 is a fit).
    std::string shortfall(const Amounts& wanted, const char* of_what) const;
};

// A reservation of the node (an allocation booked for a future window), published so that
// placement does not put work where a window is about to open. end: none when open-ended.
struct ReservedWindow {
    TimePoint start;
    std::optional<TimePoint> end;
    Amounts amounts;
    bool operator==(const ReservedWindow&) const = default;
};
inline constexpr size_t kMaxPublishedReservations = 64; // the soonest; a record stays small
inline constexpr size_t kMaxPublishedBookings = 256;

// One node as it publishes itself: capacity (what it may allocate), allocated, free, and the
// pressure it is under. Equality ignores updated_at: an unchanged node is not republished.
struct NodeStatus {
    std::string node_name;
    Amounts capacity, allocated, free;
    size_t allocations = 0;
    std::vector<std::string> pressure_raised; // the pressure responder's raised signals
    size_t pressure_steps_held = 0;
    std::string version;
    long pid = 0;
    TimePoint started_at{}, updated_at{};
    bool left = false; // membership record of a node that shut down cleanly
    std::vector<ReservedWindow> reservations;
    // Placement bookings this node admitted an allocation for, whose room is therefore already in
    // `allocated`: placement stops counting them against `free` (placement.hpp).
    std::vector<std::string> bookings_admitted;

    bool same_figures(const NodeStatus& other) const;
    nlohmann::json to_json() const;
    nlohmann::json reservations_json() const;
    // Throws std::invalid_argument naming the first field that is missing or of the wrong kind.
    static NodeStatus from_json(const nlohmann::json& j);
};

// Publish when the figures changed and at least `min_interval` passed since the last time
// (rate limit), or when `heartbeat` passed (the membership record's last_seen stays fresh).
bool should_publish(const std::optional<NodeStatus>& published, std::optional<std::chrono::steady_clock::time_point> published_at,
                    const NodeStatus& now_status, std::chrono::steady_clock::time_point now, Millis min_interval, Millis heartbeat);

// The lease as this node sees it: counted on for two thirds of the TTL after the last grant or
// renewal was *sent*. etcd expires it a TTL after it *received* that (later), and the loop acts
// on a lapse at its next one-second tick, so this node stops counting on its lease, and fences
// what it holds, a third of the TTL before another node can take it over.
struct LeaseClock {
    Millis ttl{};
    std::optional<std::chrono::steady_clock::time_point> renewed; // when the last successful grant/keepalive was sent

    bool held(std::chrono::steady_clock::time_point now) const { return renewed && now - *renewed < ttl * 2 / 3; }
    // Renew at a third of the TTL: one renewal may fail before this node stops counting on it.
    bool renewal_due(std::chrono::steady_clock::time_point now) const { return !renewed || now - *renewed >= ttl / 3; }
};

// One etcd key and its value, as read.
struct KeyValue {
    std::string key, value;
    std::int64_t lease = 0;
    std::int64_t mod_revision = 0; // the revision of its last change: what a transaction compares
};

struct NodeRow {
    NodeStatus status;
    enum class State { live, gone } state = State::live;
    std::string gone_reason; // "lease expired" or "shut down"
    bool self = false;
    nlohmann::json to_json() const;
};

struct ClusterView {
    std::vector<NodeRow> nodes;        // by name
    std::vector<std::string> rejected; // "KEY: why", records that did not parse (never a crash, never a row)
};

// The record at `kv` (under `prefix`), or nullopt with "KEY: why" added to `rejected` (a record
// that does not parse, or that names another node than its key).
std::optional<NodeStatus> parse_node_record(const KeyValue& kv, const char* prefix, std::vector<std::string>& rejected);

// Live: a record under kNodesPrefix. Gone: a membership record without a live one.
ClusterView build_view(const std::vector<KeyValue>& live, const std::vector<KeyValue>& members, const std::string& self);

const char* to_string(NodeRow::State state);

} // namespace resmgr::cluster
