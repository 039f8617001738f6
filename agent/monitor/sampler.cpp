// One sampling pass and the rates derived from the previous one.
#include "monitor/sampler.hpp"

namespace resmgr::monitor {

Snapshot Sampler::sample(const std::vector<GroupProbe>& groups, TimePoint now) {
    Snapshot snap;
    snap.time = now;
    snap.node = read_node_sample(sources_, previous_cpu_);
    if (snap.node.cpu_times) previous_cpu_ = snap.node.cpu_times;

    std::map<std::string, Previous> seen;
    std::map<std::string, std::unique_ptr<GroupReader>> readers;
    for (const auto& probe : groups) {
        auto& reader = readers[probe.key];
        if (auto kept = readers_.find(probe.key); kept != readers_.end() && kept->second->dir() == probe.dir) reader = std::move(kept->second);
        else reader = std::make_unique<GroupReader>(probe.dir, &budget_);
        GroupUsage usage;
        usage.sample = reader->read(GroupFiles::periodic);
        const auto& cpu = usage.sample.cpu_stat;
        if (cpu && cpu->usage_usec) {
            if (auto prev = previous_usage_.find(probe.key); prev != previous_usage_.end()) {
                auto wall_us = std::chrono::duration_cast<std::chrono::microseconds>(now - prev->second.time).count();
                // A recreated group starts its counter again from zero: no rate for that pass.
                if (wall_us > 0 && *cpu->usage_usec >= prev->second.usage_usec)
                    usage.cpu_cores = static_cast<double>(*cpu->usage_usec - prev->second.usage_usec) / static_cast<double>(wall_us);
            }
            seen[probe.key] = {*cpu->usage_usec, now};
        }
        snap.groups.emplace(probe.key, std::move(usage));
    }
    // Groups that are gone are forgotten with their counters and files.
    previous_usage_ = std::move(seen);
    readers_ = std::move(readers);
    return snap;
}

void Sampler::forget(const std::string& allocation_id) {
    for (auto it = readers_.begin(); it != readers_.end();) {
        const std::string& key = it->first;
        bool ours = key == allocation_id || (key.size() > allocation_id.size() && key.compare(0, allocation_id.size(), allocation_id) == 0 &&
                                             key[allocation_id.size()] == '/');
        it = ours ? readers_.erase(it) : std::next(it);
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
