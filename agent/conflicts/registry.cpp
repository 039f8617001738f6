#include "conflicts/registry.hpp"

#include <stdexcept>
#include <string_view>

namespace resmgr::conflicts {
namespace {

TimePoint timestamp_field(const nlohmann::json& j, const char* key) {
    auto t = parse_timestamp(j.at(key).get<std::string>());
    if (!t) throw std::runtime_error(std::string("'") + key + "' is not an RFC 3339 timestamp");
    return *t;
}

// A party's text field; null (resmgrd writes an unknown cgroup as null) and absent read as "".
std::string text_of(const nlohmann::json& party, const char* key) {
    const auto it = party.find(key);
    return it != party.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool same_claimant(const nlohmann::json& a, const nlohmann::json& b) {
    return text_of(a, "comm") == text_of(b, "comm") && text_of(a, "cgroup") == text_of(b, "cgroup");
}

// The holder and claimant objects are read with value(): a field of the wrong type would throw
// there, long after loading, so the load checks them.
nlohmann::json party_field(const nlohmann::json& j, const char* key) {
    const nlohmann::json& party = j.at(key);
    if (!party.is_object()) throw std::runtime_error(std::string("'") + key + "' is not an object");
    // null is what resmgrd writes for what it could not learn: an opener's cgroup, a holder's priority.
    auto may_be_null = [](const char* field) { return std::string_view(field) == "cgroup" || std::string_view(field) == "priority"; };
    for (const char* text : {"allocation_id", "workflow_id", "comm", "cgroup", "open_mode"})
        if (party.contains(text) && !party[text].is_string() && !(party[text].is_null() && may_be_null(text)))
            throw std::runtime_error(std::string("'") + key + "." + text + "' is not a string");
    for (const char* number : {"pid", "priority"})
        if (party.contains(number) && !party[number].is_number_integer() && !(party[number].is_null() && may_be_null(number)))
            throw std::runtime_error(std::string("'") + key + "." + number + "' is not a whole number");
    return party;
}

} // namespace

nlohmann::json ConflictRecord::to_json() const {
    nlohmann::json j{{"conflict_id", conflict_id},
                     {"conflict_type", conflict_type},
                     {"status", status},
                     {"file", file},
                     {"event", event},
                     {"holder", holder},
                     {"claimant", claimant},
                     {"reason", reason},
                     {"detected_at", format_timestamp(detected_at)},
                     {"last_seen", format_timestamp(last_seen)},
                     {"occurrences", occurrences},
                     {"resolution", resolution ? nlohmann::json(*resolution) : nlohmann::json(nullptr)},
                     {"resolved_at", resolved_at ? nlohmann::json(format_timestamp(*resolved_at)) : nlohmann::json(nullptr)}};
    return j;
}

ConflictRecord ConflictRecord::from_json(const nlohmann::json& j) {
    ConflictRecord r;
    r.conflict_id = j.at("conflict_id").get<std::string>();
    r.conflict_type = j.at("conflict_type").get<std::string>();
    r.status = j.at("status").get<std::string>();
    if (r.status != "active" && r.status != "resolved") throw std::runtime_error("status '" + r.status + "' is neither active nor resolved");
    r.file = j.at("file").get<std::string>();
    r.event = j.at("event").get<std::string>();
    r.holder = party_field(j, "holder");
    r.claimant = party_field(j, "claimant");
    r.reason = j.value("reason", "");
    r.detected_at = timestamp_field(j, "detected_at");
    r.last_seen = timestamp_field(j, "last_seen");
    r.occurrences = j.at("occurrences").get<long>();
    if (j.contains("resolution") && !j["resolution"].is_null()) r.resolution = j["resolution"].get<std::string>();
    if (j.contains("resolved_at") && !j["resolved_at"].is_null()) r.resolved_at = timestamp_field(j, "resolved_at");
    return r;
}

std::pair<const ConflictRecord*, bool> ConflictRegistry::record(ConflictRecord incoming, const std::string& id_if_new) {
    for (auto& r : records_) {
        if (r.status == "active" && r.file == incoming.file && r.event == incoming.event &&
            r.holder.value("allocation_id", "") == incoming.holder.value("allocation_id", "") && same_claimant(r.claimant, incoming.claimant)) {
            r.occurrences += incoming.occurrences;
            r.last_seen = incoming.last_seen;
            r.claimant = std::move(incoming.claimant); // the newest pid
            return {&r, false};
        }
    }
    if (active().size() >= max_active_) {
        ConflictRecord* fold = nullptr;
        for (auto& r : records_)
            if (r.status == "active" && (!fold || (r.file == incoming.file && fold->file != incoming.file))) fold = &r;
        if (fold) {
            fold->occurrences += incoming.occurrences;
            fold->last_seen = incoming.last_seen;
            return {fold, false};
        }
    }
    incoming.conflict_id = id_if_new;
    incoming.status = "active";
    records_.push_back(std::move(incoming));
    trim();
    return {&records_.back(), true};
}

const ConflictRecord* ConflictRegistry::find(const std::string& conflict_id) const {
    for (const auto& r : records_)
        if (r.conflict_id == conflict_id) return &r;
    return nullptr;
}

std::vector<const ConflictRecord*> ConflictRegistry::active() const {
    std::vector<const ConflictRecord*> out;
    for (const auto& r : records_)
        if (r.status == "active") out.push_back(&r);
    return out;
}

bool ConflictRegistry::resolve(const std::string& conflict_id, const std::string& resolution, TimePoint now) {
    for (auto& r : records_) {
        if (r.conflict_id != conflict_id) continue;
        if (r.status != "active") return false;
        r.status = "resolved";
        r.resolution = resolution;
        r.resolved_at = now;
        trim();
        return true;
    }
    return false;
}

std::vector<std::string> ConflictRegistry::resolve_for_holder(const std::string& allocation_id, const std::optional<std::string>& file,
                                                              const std::string& resolution, TimePoint now) {
    std::vector<std::string> ids;
    for (auto& r : records_) {
        if (r.status != "active" || r.holder.value("allocation_id", "") != allocation_id || (file && *file != r.file)) continue;
        r.status = "resolved";
        r.resolution = resolution;
        r.resolved_at = now;
        ids.push_back(r.conflict_id);
    }
    trim();
    return ids;
}

nlohmann::json ConflictRegistry::to_json() const {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& r : records_) list.push_back(r.to_json());
    return {{"conflicts", list}};
}

void ConflictRegistry::load(const nlohmann::json& j) {
    if (!j.is_object() || !j.contains("conflicts") || !j["conflicts"].is_array())
        throw std::runtime_error("expected {\"conflicts\": [...]}");
    std::vector<ConflictRecord> loaded;
    size_t index = 0;
    for (const auto& item : j["conflicts"]) {
        try {
            loaded.push_back(ConflictRecord::from_json(item));
        } catch (const std::exception& e) {
            throw std::runtime_error("conflicts[" + std::to_string(index) + "]: " + e.what());
        }
        ++index;
    }
    records_ = std::move(loaded);
    trim();
}

void ConflictRegistry::trim() {
    size_t resolved = 0;
    for (const auto& r : records_) resolved += r.status == "resolved";
    for (auto it = records_.begin(); resolved > keep_resolved_ && it != records_.end();) {
        if (it->status == "resolved") {
            it = records_.erase(it);
            --resolved;
        } else {
            ++it;
        }
    }
}

} // namespace resmgr::conflicts
