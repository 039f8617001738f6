#include "cluster/member.hpp"

#include <spdlog/spdlog.h>

namespace resmgr::cluster {

using nlohmann::json;
using Steady = std::chrono::steady_clock;

namespace {

// One etcd call's time budget: a third of the TTL, so that a stopped member and a retry on the
// next still fit inside one renewal period.
Millis call_timeout(Millis ttl) { return std::min<Millis>(ttl / 3, std::chrono::seconds(2)); }

} // namespace

ClusterMember::ClusterMember(ClusterConfig config, std::unique_ptr<Transport> transport)
    : config_(std::move(config)), etcd_(config_.endpoints, std::move(transport), call_timeout(config_.lease_ttl)) {
    lease_clock_.ttl = config_.lease_ttl;
}

ClusterMember::~ClusterMember() { stop(true); }

void ClusterMember::offer(NodeStatus status) {
    std::lock_guard lock(mutex_);
    const bool changed = !offered_ || !offered_->same_figures(status);
    offered_ = std::move(status);
    if (changed) wake_.notify_one(); // published now, not at the next tick (rate-limited by should_publish)
}

void ClusterMember::start() {
    if (thread_.joinable()) return;
    thread_ = std::thread([this] { run(); });
}

void ClusterMember::run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        lock.unlock();
        step(Steady::now());
        lock.lock();
        wake_.wait_for(lock, std::min<Millis>(kTick, config_.lease_ttl / 3), [this] { return stopping_; });
    }
}

void ClusterMember::step(Steady::time_point now) {
    std::optional<NodeStatus> offered;
    std::int64_t lease = 0;
    LeaseClock clock;
    {
        std::lock_guard lock(mutex_);
        offered = offered_;
        lease = lease_;
        clock = lease_clock_;
    }
    try {
        if (lease && clock.renewal_due(now)) {
            const auto sent = Steady::now();
            if (etcd_.keep_alive(lease) > 0) {
                clock.renewed = sent;
            } else {
                spdlog::warn("cluster: lease {:x} expired in etcd; registering again", lease);
                lease = 0;
                published_.reset();
                std::lock_guard lock(mutex_); // the loop stops counting on it now, not after the new grant
                lease_ = 0;
            }
        }
        if (!lease || !clock.held(Steady::now())) {
            const auto sent = Steady::now();
            lease = etcd_.grant_lease(config_.lease_ttl);
            clock.renewed = sent;
            published_.reset();
            spdlog::info("cluster: node {} holds lease {:x} (TTL {}) at {}", config_.node_name, lease, format_duration(config_.lease_ttl),
                         etcd_.current_endpoint());
        }
        {
            std::lock_guard lock(mutex_);
            lease_ = lease;
            lease_clock_ = clock;
        }
        if (offered && should_publish(published_, published_at_, *offered, now, kMinPublishInterval, config_.lease_ttl))
            publish(*offered, now);
        // One transaction: one revision, one round trip.
        const auto read = etcd_.range_prefixes({kNodesPrefix, kMembersPrefix, kClaimsPrefix, kBookingsPrefix + config_.node_name + "/"});
        ClusterView view = build_view(read[0], read[1], config_.node_name);
        std::map<std::string, ClaimHolder> others = claims_of_others(read[2], config_.node_name, view.rejected);
        std::vector<Booking> bookings = std::move(bookings_by_node(read[3], view.rejected)[config_.node_name]);
        std::lock_guard lock(mutex_);
        view_ = std::move(view);
        claims_by_others_ = std::move(others);
        bookings_here_ = std::move(bookings);
        view_read_at_ = Clock::now();
        if (!problem_.empty()) spdlog::info("cluster: etcd answers again at {}", etcd_.current_endpoint());
        problem_.clear();
        unreachable_since_.reset();
        endpoint_ = etcd_.current_endpoint();
    } catch (const std::exception& e) {
        std::lock_guard lock(mutex_);
        lease_ = lease;
        lease_clock_ = clock;
        if (problem_ != e.what()) spdlog::warn("cluster: {}", e.what());
        problem_ = e.what();
        if (!unreachable_since_) unreachable_since_ = Clock::now();
    }
}

void ClusterMember::publish(NodeStatus status, Steady::time_point now) {
    std::int64_t lease = 0;
    {
        std::lock_guard lock(mutex_);
        lease = lease_;
    }
    status.updated_at = Clock::now();
    const std::string value = status.to_json().dump();
    etcd_.put(kNodesPrefix + config_.node_name, value, lease);
    etcd_.put(kMembersPrefix + config_.node_name, value);
    {
        std::lock_guard lock(mutex_);
        published_bookings_ = status.bookings_admitted;
    }
    published_ = std::move(status);
    published_at_ = now;
}

void ClusterMember::stop(bool revoke) {
    {
        std::lock_guard lock(mutex_);
        if (!thread_.joinable()) return;
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
    try {
        if (published_) {
            NodeStatus last = *published_;
            last.left = true;
            last.updated_at = Clock::now();
            etcd_.put(kMembersPrefix + config_.node_name, last.to_json().dump());
        }
        if (lease_ && revoke) etcd_.revoke(lease_);
        spdlog::info("cluster: node {} left ({})", config_.node_name,
                     revoke ? "lease revoked" : "its lease left to expire: the claims of its allocations, which outlive it, stay held until then");
    } catch (const std::exception& e) {
        spdlog::warn("cluster: leaving: {} (the node's record goes when its lease expires)", e.what());
    }
}

json ClusterMember::status() const {
    std::lock_guard lock(mutex_);
    const auto now = Steady::now();
    json nodes = json::array();
    for (const auto& row : view_.nodes) nodes.push_back(row.to_json());
    json lease{{"id", lease_ ? json(fmt::format("{:x}", lease_)) : json(nullptr)},
               {"ttl", format_duration(config_.lease_ttl)},
               {"held", lease_ != 0 && lease_clock_.held(now)}};
    if (lease_clock_.renewed)
        lease["renewed_ago"] = format_duration(std::chrono::duration_cast<Millis>(now - *lease_clock_.renewed));
    json etcd{{"endpoints", config_.endpoints},
              {"reachable", problem_.empty() && view_read_at_.has_value()},
              {"endpoint", endpoint_.empty() ? json(nullptr) : json(endpoint_)},
              {"problem", problem_.empty() ? json(nullptr) : json(problem_)},
              {"unreachable_since", unreachable_since_ ? json(format_timestamp(*unreachable_since_)) : json(nullptr)}};
    return {{"node_name", config_.node_name},
            {"etcd", etcd},
            {"lease", lease},
            {"nodes", nodes},
            {"rejected_records", view_.rejected},
            {"read_at", view_read_at_ ? json(format_timestamp(*view_read_at_)) : json(nullptr)}};
}

std::map<std::string, ClaimHolder> ClusterMember::claims_by_others() const {
    std::lock_guard lock(mutex_);
    return claims_by_others_;
}

std::vector<Booking> ClusterMember::bookings_here() const {
    std::lock_guard lock(mutex_);
    return bookings_here_;
}

std::vector<std::string> ClusterMember::published_bookings() const {
    std::lock_guard lock(mutex_);
    return published_bookings_;
}

std::int64_t ClusterMember::held_lease() const {
    std::lock_guard lock(mutex_);
    return lease_clock_.held(Steady::now()) ? lease_ : 0;
}

std::string ClusterMember::problem() const {
    std::lock_guard lock(mutex_);
    if (!problem_.empty()) return problem_;
    return view_read_at_ ? std::string() : "etcd has not answered yet";
}

} // namespace resmgr::cluster
