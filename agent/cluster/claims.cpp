#include "cluster/claims.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "resmgr/protocol.hpp"

namespace resmgr::cluster {

using nlohmann::json;

namespace {

// One claim call's budget per endpoint: short, since the loop waits for it.
constexpr Millis kClaimTimeout{std::chrono::milliseconds(500)};

bool under(const std::string& file, const std::string& dir) {
    if (dir == "/") return true;
    return file == dir || (file.size() > dir.size() && file.compare(0, dir.size(), dir) == 0 && file[dir.size()] == '/');
}

std::string describe(const std::optional<KeyValue>& current) {
    if (!current) return "another node (its claim went as it was read)";
    try {
        const ClaimHolder h = ClaimHolder::from_json(json::parse(current->value));
        return "node " + h.node + " (workflow " + h.workflow_id + ", since " + format_timestamp(h.since) + ")";
    } catch (const std::exception& e) {
        return "an unreadable claim (" + std::string(e.what()) + ")";
    }
}

// The node a claim's value names; empty when it does not parse.
std::string holder_node(const KeyValue& current) {
    try {
        return ClaimHolder::from_json(json::parse(current.value)).node;
    } catch (const std::exception&) {
        return {};
    }
}

// Whether the last read of the claims shows one of `files` held by another node.
bool any_held(const std::vector<std::string>& files, const std::map<std::string, ClaimHolder>& claims_by_others) {
    return std::any_of(files.begin(), files.end(), [&](const std::string& f) { return claims_by_others.count(f) > 0; });
}

} // namespace

std::string ClaimHolder::new_token() {
    static thread_local std::mt19937_64 random{std::random_device{}()};
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(random()));
    return text;
}

json ClaimHolder::to_json() const {
    return {{"node", node}, {"workflow_id", workflow_id}, {"since", format_timestamp(since)}, {"token", token}};
}

ClaimHolder ClaimHolder::from_json(const json& j) {
    if (!j.is_object()) throw std::invalid_argument("not a JSON object");
    ClaimHolder h;
    for (const char* key : {"node", "workflow_id", "since"})
        if (!j.contains(key) || !j[key].is_string()) throw std::invalid_argument(std::string("\"") + key + "\" is missing or not a string");
    h.node = j["node"];
    h.workflow_id = j["workflow_id"];
    auto since = parse_timestamp(j["since"].get<std::string>());
    if (!since) throw std::invalid_argument("\"since\" is not an RFC 3339 time");
    h.since = *since;
    h.token = j.contains("token") && j["token"].is_string() ? j["token"].get<std::string>() : "";
    return h;
}

std::vector<std::string> cluster_scoped(const std::vector<std::string>& files, bool file_scope_cluster, const std::vector<std::string>& shared_paths) {
    if (file_scope_cluster) return files;
    std::vector<std::string> out;
    for (const auto& f : files)
        for (const auto& dir : shared_paths)
            if (under(f, dir)) {
                out.push_back(f);
                break;
            }
    return out;
}

std::map<std::string, ClaimHolder> claims_of_others(const std::vector<KeyValue>& claims, const std::string& self,
                                                    std::vector<std::string>& rejected) {
    std::map<std::string, ClaimHolder> out;
    const std::string prefix = kClaimsPrefix;
    for (const auto& kv : claims) {
        const std::string file = kv.key.substr(std::min(prefix.size(), kv.key.size()));
        try {
            // Anyone who can write to etcd can write here: only plain absolute paths are held.
            if (kv.key.compare(0, prefix.size(), prefix) != 0 || file.empty() || file[0] != '/' ||
                std::filesystem::path(file).lexically_normal().string() != file || file.size() > 4096)
                throw std::invalid_argument("not a claim of a normal absolute path");
            ClaimHolder h = ClaimHolder::from_json(json::parse(kv.value));
            if (h.node != self) out.emplace(file, std::move(h));
        } catch (const std::exception& e) {
            rejected.push_back(kv.key + ": " + e.what());
        }
    }
    return out;
}

ClusterClaims::ClusterClaims(const ClusterConfig& config, Lease lease, std::unique_ptr<Transport> transport)
    : config_(config), lease_(std::move(lease)), etcd_(config.endpoints, std::move(transport), kClaimTimeout) {}

void ClusterClaims::unavailable(const std::string& why) const {
    throw ApiError(ErrorCode::CLUSTER_UNAVAILABLE, "Cluster-scoped exclusive files cannot be claimed now", why, {"exclusive_files"},
                   {"Check that the etcd members (" + join_endpoints(config_.endpoints) + ") run and this host reaches them: resmgr cluster status"},
                   {"Allocate with \"file_scope\": \"local\" for files outside cluster.shared_paths"});
}

void ClusterClaims::claim(const std::vector<std::string>& files, const std::string& workflow_id, TimePoint now) {
    if (files.empty()) return;
    const std::int64_t lease = lease_.held();
    if (!lease) {
        const std::string problem = lease_.problem();
        unavailable("this node holds no lease in etcd: " + (problem.empty() ? "not registered yet" : problem));
    }
    const std::string value = ClaimHolder{config_.node_name, workflow_id, now}.to_json().dump();
    std::vector<std::string> made;
    auto undo = [&] {
        for (const auto& f : made) release(f);
    };
    for (const auto& file : files) {
        if (auto it = claims_.find(file); it != claims_.end()) {
            if (it->second.allocation_id.empty() && it->second.lease == lease) continue; // unbound: this request takes it over
            undo();
            throw ApiError(ErrorCode::CONFLICT, "File " + file + " is held by " + it->second.allocation_id + " on this node", "", {"file:" + file});
        }
        // A member may have applied a write before its answer was lost: delete it (value-checked) later.
        auto answer_lost = [&](const std::exception& e) {
            drops_[file] = value;
            undo();
            unavailable(e.what());
        };
        TxnOutcome outcome;
        try {
            outcome = etcd_.create_if_absent(key(file), value, lease);
        } catch (const std::exception& e) {
            answer_lost(e);
        }
        // Applied by a member whose answer timed out, then refused on the retry: it is this claim.
        bool ours = outcome.current && outcome.current->value == value;
        // This node's own, of a run before a restart (no allocation here holds it): taken over.
        if (!outcome.succeeded && !ours && outcome.current && holder_node(*outcome.current) == config_.node_name) {
            try {
                ours = etcd_.replace_if_value(key(file), outcome.current->value, value, lease).succeeded;
            } catch (const std::exception& e) {
                answer_lost(e);
            }
        }
        if (!outcome.succeeded && !ours) {
            undo();
            throw ApiError(ErrorCode::CONFLICT, "File " + file + " is held across the cluster by " + describe(outcome.current), "", {"file:" + file},
                           {"Wait for its holder to finish, or allocate with \"wait\": true on that node"});
        }
        claims_[file] = Claim{"", value, lease, {}};
        made.push_back(file);
    }
}

void ClusterClaims::unbind(const std::string& file) {
    if (auto it = claims_.find(file); it != claims_.end()) it->second.allocation_id.clear();
}

void ClusterClaims::bind(const std::vector<std::string>& files, const std::string& allocation_id) {
    for (const auto& f : files) {
        if (allocation_id.empty()) release(f);
        else if (auto it = claims_.find(f); it != claims_.end()) it->second.allocation_id = allocation_id;
    }
}

void ClusterClaims::adopt(const std::vector<std::string>& files, const std::string& allocation_id, const std::string& workflow_id, TimePoint now) {
    for (const auto& f : files) claims_[f] = Claim{allocation_id, ClaimHolder{config_.node_name, workflow_id, now}.to_json().dump(), 0, {}};
}

std::optional<std::string> ClusterClaims::holder(const std::string& file) const {
    auto it = claims_.find(file);
    return it == claims_.end() ? std::nullopt : std::optional<std::string>(it->second.allocation_id);
}

std::vector<std::string> ClusterClaims::files_of(const std::string& allocation_id) const {
    std::vector<std::string> out;
    for (const auto& [file, c] : claims_)
        if (c.allocation_id == allocation_id) out.push_back(file);
    return out;
}

void ClusterClaims::release(const std::string& file) {
    auto it = claims_.find(file);
    if (it == claims_.end()) return;
    const std::string value = it->second.value;
    const bool made = it->second.lease != 0;
    claims_.erase(it);
    if (!made) return; // never claimed in this run: nothing of ours to delete
    try {
        etcd_.delete_if_value(key(file), value); // not ours any more (lease expired, taken): nothing to do
    } catch (const std::exception& e) {
        spdlog::warn("cluster: the claim on {} stays in etcd until a retry succeeds: {}", file, e.what());
        drops_[file] = value;
    }
}

void ClusterClaims::tick() {
    for (auto it = drops_.begin(); it != drops_.end();) {
        try {
            etcd_.delete_if_value(key(it->first), it->second);
            it = drops_.erase(it);
        } catch (const std::exception&) {
            break; // etcd still away: the rest wait for the next tick too
        }
    }
    const std::int64_t lease = lease_.held();
    if (!lease) return;
    for (auto& [file, c] : claims_) {
        if (c.lease == lease) continue;
        std::string problem;
        try {
            // The claim of before (this node's, under a lease that lapsed or a run that ended)
            // may still be there: take it over; else claim it afresh.
            ClaimHolder fresh_holder{config_.node_name, ClaimHolder::from_json(json::parse(c.value)).workflow_id, Clock::now()};
            const std::string fresh = fresh_holder.to_json().dump();
            TxnOutcome outcome = etcd_.create_if_absent(key(file), fresh, lease);
            if (!outcome.succeeded && outcome.current && outcome.current->value != fresh) {
                bool ours = false;
                try {
                    ours = ClaimHolder::from_json(json::parse(outcome.current->value)).node == config_.node_name;
                } catch (const std::exception&) {
                }
                if (ours) outcome = etcd_.replace_if_value(key(file), outcome.current->value, fresh, lease);
            }
            if (outcome.succeeded || (outcome.current && outcome.current->value == fresh)) {
                c.value = fresh;
                c.lease = lease;
                c.problem.clear();
                continue;
            }
            problem = "held by " + describe(outcome.current) + "; " + c.allocation_id + " stays frozen until this node gets it back";
        } catch (const std::exception& e) {
            problem = e.what();
        }
        if (problem != c.problem) spdlog::warn("cluster: claiming {} again: {}", file, problem);
        c.problem = problem;
    }
}

std::set<std::string> ClusterClaims::unconfirmed() const {
    const std::int64_t lease = lease_.held();
    std::set<std::string> out;
    for (const auto& [_, c] : claims_)
        if (!c.allocation_id.empty() && (!lease || c.lease != lease)) out.insert(c.allocation_id);
    return out;
}

void ClusterClaims::wait_for(const std::vector<std::string>& files, const std::string& allocation_id, const std::string& workflow_id) {
    waiting_[allocation_id] = Waiting{files, workflow_id};
}

bool ClusterClaims::claim_waiting(const std::string& allocation_id, TimePoint now, const std::map<std::string, ClaimHolder>& claims_by_others) {
    auto it = waiting_.find(allocation_id);
    if (it == waiting_.end()) return true;
    if (any_held(it->second.files, claims_by_others)) return false;
    try {
        claim(it->second.files, it->second.workflow_id, now);
    } catch (const ApiError&) {
        return false; // still held (the read was late), or etcd away: it waits on
    } catch (const std::exception& e) {
        spdlog::error("cluster: {} cannot claim the files it waits for: {}", allocation_id, e.what());
        return false;
    }
    bind(it->second.files, allocation_id);
    spdlog::info("cluster: {} claimed the files it waited for", allocation_id);
    waiting_.erase(it);
    return true;
}

bool ClusterClaims::waiting_may_claim(const std::map<std::string, ClaimHolder>& claims_by_others) const {
    // Held here by another allocation: its release tries the queue itself.
    return std::any_of(waiting_.begin(), waiting_.end(), [&](const auto& entry) { return !any_held(entry.second.files, claims_by_others); });
}

void ClusterClaims::forget_waiting(const std::function<bool(const std::string&)>& still_queued) {
    std::erase_if(waiting_, [&](const auto& entry) { return !still_queued(entry.first); });
}

json ClusterClaims::status() const {
    const std::int64_t lease = lease_.held();
    json list = json::array();
    for (const auto& [file, c] : claims_)
        list.push_back({{"file", file}, {"allocation_id", c.allocation_id}, {"held", c.lease != 0 && c.lease == lease},
                        {"problem", c.problem.empty() ? json(nullptr) : json(c.problem)}});
    json drops = json::array();
    for (const auto& [file, _] : drops_) drops.push_back(file);
    json remote = json::array();
    for (const auto& [file, node] : remote_holds_) remote.push_back({{"file", file}, {"node", node}});
    json waiting = json::array();
    for (const auto& [id, w] : waiting_) waiting.push_back({{"allocation_id", id}, {"files", w.files}});
    return {{"claims", list}, {"drops_pending", drops}, {"fenced", fenced_}, {"held_for_other_nodes", remote},
            {"waiting", waiting}, {"shared_paths", config_.shared_paths}};
}

} // namespace resmgr::cluster
