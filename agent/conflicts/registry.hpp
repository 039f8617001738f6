// The record of conflicts (current_state/conflicts.json): each has a `conf_…` id, the file, the
// holder and the claimant, how often it happened and how it ended. Pure: the Service feeds it
// guard reports and resolutions, and saves to_json() with the state store.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "resmgr/model.hpp"

namespace resmgr::conflicts {

struct ConflictRecord {
    std::string conflict_id;
    std::string conflict_type = "file";
    std::string status = "active"; // active | resolved
    std::string file;
    std::string event; // the guard's word: denied, queued, replaced, removed, modified, advisory, timed_out
    nlohmann::json holder;   // {allocation_id, workflow_id, priority}
    nlohmann::json claimant; // {pid, comm, cgroup, allocation_id?, workflow_id?}
    std::string reason;
    TimePoint detected_at{};
    TimePoint last_seen{};
    long occurrences = 1;
    std::optional<std::string> resolution;
    std::optional<TimePoint> resolved_at;

    nlohmann::json to_json() const;
    static ConflictRecord from_json(const nlohmann::json& j); // throws nlohmann::json::exception
};

class ConflictRegistry {
public:
    // Keeps the newest `keep_resolved` resolved conflicts and at most `max_active` active ones.
    explicit ConflictRegistry(size_t keep_resolved = 500, size_t max_active = 1000) : keep_resolved_(keep_resolved), max_active_(max_active) {}
    void set_max_active(size_t max_active) { max_active_ = max_active; }

    // Records a conflict. The same claimant (comm + cgroup) meeting the same holder on the same
    // file the same way while the record is active is one conflict seen again: occurrences grows.
    // With max_active records active, a new one is folded into the oldest active record over the
    // same file (else the oldest of all): counted there, so openers varying their names cannot
    // grow the record without bound. Returns the record and whether it is new.
    std::pair<const ConflictRecord*, bool> record(ConflictRecord incoming, const std::string& id_if_new);

    const ConflictRecord* find(const std::string& conflict_id) const;
    std::vector<const ConflictRecord*> active() const;
    // Marks one resolved; false when unknown or already resolved.
    bool resolve(const std::string& conflict_id, const std::string& resolution, TimePoint now);
    // Every active conflict over files the allocation held (it let go): resolved with `resolution`.
    std::vector<std::string> resolve_for_holder(const std::string& allocation_id, const std::optional<std::string>& file,
                                                const std::string& resolution, TimePoint now);

    nlohmann::json to_json() const; // {"conflicts": [...]}
    // Throws std::runtime_error naming what is wrong; the registry is unchanged then.
    void load(const nlohmann::json& j);
    size_t size() const { return records_.size(); }

private:
    void trim();

    size_t keep_resolved_;
    size_t max_active_;
    std::vector<ConflictRecord> records_; // oldest first
};

} // namespace resmgr::conflicts
