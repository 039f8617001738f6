// Cluster-scoped exclusive files (issue 17, item 2): a file under one of cluster.shared_paths, or
// any file of an allocation with "file_scope": "cluster", is claimed in etcd with a transaction
// (create the key if absent) under this node's lease before the local guard holds it. A claim
// held by another node is a CONFLICT naming that node. A node that dies loses its claims with its
// lease. The claims are made and dropped on the event loop, synchronously: an allocate that
// claims waits for etcd (a round trip on a quorum; BENCHMARKS has the figure), which is the
// point: it must not be admitted before the cluster agrees. A drop that etcd does not take is
// retried at every tick until it does (the claim is under a live lease and would stay held).
// May call: cluster/etcd, model; the lease is handed in (ClusterMember's, or a test's).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/config.hpp"
#include "cluster/etcd.hpp"
#include "resmgr/model.hpp"

namespace resmgr::cluster {

inline constexpr const char* kClaimsPrefix = "/resmgr/claims"; // + the file's absolute path

// Who holds a claim, as its etcd value says (outside input when read: checked field by field).
struct ClaimHolder {
    std::string node, workflow_id;
    TimePoint since{};
    // Random, one per claim made: the value-checked delete of an old claim never takes a newer
    // one of the same workflow made within the same second.
    std::string token = new_token();
    static std::string new_token();
    nlohmann::json to_json() const;
    static ClaimHolder from_json(const nlohmann::json& j); // throws std::invalid_argument
};

// The files of a request that are claimed across the cluster: all of them with file_scope
// "cluster", else those under one of the shared paths. Pure.
std::vector<std::string> cluster_scoped(const std::vector<std::string>& files, bool file_scope_cluster,
                                        const std::vector<std::string>& shared_paths);

// The claims under kClaimsPrefix that are not `self`'s, by file; a record that does not parse
// is named in `rejected` and skipped.
std::map<std::string, ClaimHolder> claims_of_others(const std::vector<KeyValue>& claims, const std::string& self,
                                                    std::vector<std::string>& rejected);

class ClusterClaims {
public:
    // The lease this node's claims go under (0: none held now; ClusterMember::held_lease) and why
    // there is none (ClusterMember::problem).
    struct Lease {
        std::function<std::int64_t()> held;
        std::function<std::string()> problem;
    };
    ClusterClaims(const ClusterConfig& config, Lease lease, std::unique_ptr<Transport> transport);

    // Claims every file for `workflow_id` (all or none): ApiError CONFLICT naming the node that
    // holds one, CLUSTER_UNAVAILABLE when this node holds no lease or etcd does not answer.
    void claim(const std::vector<std::string>& files, const std::string& workflow_id, TimePoint now);
    // The claim on `file` belongs to no allocation for now: its holder is ending, and the next
    // claim of the file by this node takes it over instead of meeting a CONFLICT with itself.
    void unbind(const std::string& file);
    // The claims just made belong to this allocation (or, with an empty id, are dropped).
    void bind(const std::vector<std::string>& files, const std::string& allocation_id);
    // Start: an allocation restored from the state holds these files; claimed again under this
    // run's lease at the next tick (its own claim of before the restart is taken over).
    void adopt(const std::vector<std::string>& files, const std::string& allocation_id, const std::string& workflow_id, TimePoint now);
    // The holder id of a claimed file, or nullopt.
    std::optional<std::string> holder(const std::string& file) const;
    std::vector<std::string> files_of(const std::string& allocation_id) const;
    bool files_held_empty() const { return claims_.empty(); }
    // Drops the claim on `file` (value-checked: only this node's own claim goes).
    void release(const std::string& file);

    // `wait`: an allocation queued because another node (or another allocation here) holds one
    // of its files claims them when it may start (claim_waiting, all or none); until then it
    // holds no claim. The member thread's read of the claims (once a second) is the watch on
    // their keys: waiting_may_claim() says when one of the files it waits for is free.
    void wait_for(const std::vector<std::string>& files, const std::string& allocation_id, const std::string& workflow_id);
    bool waits(const std::string& allocation_id) const { return waiting_.count(allocation_id) > 0; }
    // True when `allocation_id` does not wait, or now holds every file it waited for. Not tried
    // (false) while `claims_by_others`, the last read, shows one of them held.
    bool claim_waiting(const std::string& allocation_id, TimePoint now, const std::map<std::string, ClaimHolder>& claims_by_others);
    bool waiting_may_claim(const std::map<std::string, ClaimHolder>& claims_by_others) const;
    // Stops waiting for those that are no longer queued (released, or started).
    void forget_waiting(const std::function<bool(const std::string& allocation_id)>& still_queued);

    // Each tick: retries drops etcd did not take; claims again, under the current lease, what a
    // new lease or a restart left unclaimed. A claim another node took meanwhile stays unclaimed
    // here (its holder fenced, see unconfirmed()) until that node lets go and this one gets it.
    void tick();
    nlohmann::json status() const;

    // Fencing: the allocations holding a claim that this node cannot vouch for now (its lease is
    // not held by its own clock, or the claim is not yet made again under the current one). They
    // are frozen until it can, so two nodes never both run a holder of one file.
    std::set<std::string> unconfirmed() const;
    std::set<std::string>& fenced() { return fenced_; } // frozen by fencing now
    // Files other nodes claim that this node's guard holds now: file -> node.
    std::map<std::string, std::string>& remote_holds() { return remote_holds_; }

private:
    struct Claim {
        std::string allocation_id, value;
        std::int64_t lease = 0; // 0: to be claimed again at the next tick
        std::string problem;    // why the last try to claim it again failed (logged when it changes)
    };
    std::string key(const std::string& file) const { return kClaimsPrefix + file; }
    [[noreturn]] void unavailable(const std::string& why) const;

    const ClusterConfig& config_;
    Lease lease_;
    EtcdClient etcd_;
    std::map<std::string, Claim> claims_;     // file -> claim
    std::map<std::string, std::string> drops_; // file -> value still to delete
    std::set<std::string> fenced_;
    std::map<std::string, std::string> remote_holds_;
    struct Waiting {
        std::vector<std::string> files;
        std::string workflow_id;
    };
    std::map<std::string, Waiting> waiting_; // allocation id ->
};

} // namespace resmgr::cluster
