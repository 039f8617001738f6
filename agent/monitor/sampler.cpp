// One sampling pass and the rates derived from the previous one.
#include "monitor/sampler.hpp"

namespace resmgr::monitor {

void Sampler::sample(const std::vector<GroupProbe>& groups, TimePoint now, Snapshot& into) {
    into.time = now;
    into.node = read_node_sample(sources_, previous_cpu_);
    if (into.node.cpu_times) previous_cpu_ = into.node.cpu_times;

    ++passes_;
    // The probes come sorted by key (the ledger's order; agents' leaves after their allocation),
    // so each lookup starts where the previous one ended.
    auto kept = into.groups.begin();
    ReasonsPool reasons;
    for (const auto& probe : groups) {
        Watched& group = watched_[probe.key];
        if (!group.reader || group.reader->dir() != probe.dir) group.reader.emplace(probe.dir, &budget_);
        group.pass = passes_;
        kept = std::next(into.groups.try_emplace(kept, probe.key));
        GroupUsage& usage = std::prev(kept)->second;
        GroupSample fresh = group.reader->read(GroupFiles::periodic);
        reasons.share(fresh, usage.sample.unavailable); // shared with the pass's other groups
        usage.sample = std::move(fresh);
        usage.cpu_cores.reset();
        const auto& cpu = usage.sample.cpu_stat;
        const std::optional<std::uint64_t> used = cpu ? cpu->usage_usec : std::nullopt;
        if (used && group.usage_usec) {
            auto wall_us = std::chrono::duration_cast<std::chrono::microseconds>(now - group.time).count();
            // A recreated group starts its counter again from zero: no rate for that pass.
            if (wall_us > 0 && *used >= *group.usage_usec)
                usage.cpu_cores = static_cast<double>(*used - *group.usage_usec) / static_cast<double>(wall_us);
        }
        // A pass that cannot read the counter leaves the next one without a rate.
        group.usage_usec = used;
        group.time = now;
    }
    // Groups that are gone are forgotten with their counters and files: one walk of both maps,
    // both sorted by key.
    auto watched = watched_.begin();
    for (auto it = into.groups.begin(); it != into.groups.end();) {
        while (watched != watched_.end() && watched->first < it->first) ++watched;
        const bool listed = watched != watched_.end() && watched->first == it->first && watched->second.pass == passes_;
        it = listed ? std::next(it) : into.groups.erase(it);
    }
    std::erase_if(watched_, [&](const auto& entry) { return entry.second.pass != passes_; });
}

void Sampler::forget(const std::string& allocation_id) {
    // The allocation's own key and its agents' ("<id>/<agent>") sort together from the id on,
    // among other keys that share the id's text as a prefix.
    for (auto it = watched_.lower_bound(allocation_id); it != watched_.end() && it->first.starts_with(allocation_id); ++it) {
        const std::string& key = it->first;
        if (key.size() == allocation_id.size() || key[allocation_id.size()] == '/') it->second.reader.reset();
    }
}

nlohmann::json GroupUsage::to_json() const {
    auto j = sample.to_json();
    j["cpu_cores_used"] = detail::json_or_null(cpu_cores);
    return j;
}

nlohmann::json Snapshot::to_json() const {
    nlohmann::json g = nlohmann::json::object();
    for (const auto& [key, usage] : groups) g[key] = usage.to_json();
    return {{"time", format_timestamp(time)}, {"node", node.to_json()}, {"groups", g}};
}

} // namespace resmgr::monitor
