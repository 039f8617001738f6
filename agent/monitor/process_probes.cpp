#include "monitor/process_probes.hpp"

#include <cmath>
#include <filesystem>

#include <spdlog/spdlog.h>

namespace resmgr::monitor {

using nlohmann::json;

namespace {
double round3(double v) { return std::round(v * 1000) / 1000; }
} // namespace

void ProcessProbes::set_probes(bpf::Probes* probes, std::string status, bpf::ToolClasses classes) {
    probes_ = probes;
    status_ = std::move(status);
    tally_ = bpf::ToolTally(std::move(classes));
}

void ProcessProbes::consume() {
    if (!probes_) return;
    probes_->consume([this](const bpf::ProcessEvent& e) {
        if (e.kind == bpf::EventKind::exec) {
            tally_.record_exec(e.cgroup_id, e.comm);
            running_tools_[e.tgid] = {e.cgroup_id, tally_.classes().classify(e.comm).value_or("")};
        } else if (e.kind == bpf::EventKind::exit) {
            running_tools_.erase(e.tgid);
        }
    });
}

void ProcessProbes::sync(const std::vector<GroupProbe>& allocation_groups, const std::string& relist) {
    if (!probes_) return;
    ++syncs_;
    bool changed = false;
    for (const auto& group : allocation_groups) {
        auto [it, added] = listed_.try_emplace(group.key);
        it->second.sync = syncs_;
        if (!added && group.key != relist) continue;
        changed = true;
        // Processes live in the leaves (main, agent-*), and the probes key on a task's own group.
        auto& ids = it->second.cgroup_ids;
        ids.clear();
        if (auto id = bpf::cgroup_id_of(group.dir)) ids.push_back(*id);
        std::error_code ec;
        for (const auto& entry : std::filesystem::directory_iterator(group.dir, ec))
            if (entry.is_directory(ec))
                if (auto id = bpf::cgroup_id_of(entry.path().string())) ids.push_back(*id);
    }
    changed |= std::erase_if(listed_, [&](const auto& entry) { return entry.second.sync != syncs_; }) > 0;
    if (!changed) return;
    // A cgroup listed by two groups (an agent's leaf is its allocation's leaf too) is the later one's.
    std::map<std::uint64_t, std::string> wanted;
    for (const auto& group : allocation_groups)
        for (auto id : listed_.at(group.key).cgroup_ids) wanted[id] = group.key;
    for (auto it = watched_.begin(); it != watched_.end();) {
        if (wanted.count(it->first)) {
            ++it;
            continue;
        }
        probes_->unwatch(it->first);
        tally_.forget(it->first);
        std::erase_if(running_tools_, [&](const auto& entry) { return entry.second.cgroup_id == it->first; });
        if (auto by_key = ids_by_key_.find(it->second); by_key != ids_by_key_.end()) {
            std::erase(by_key->second, it->first);
            if (by_key->second.empty()) ids_by_key_.erase(by_key);
        }
        it = watched_.erase(it);
    }
    // Once the map is full (or the kernel short of memory for an entry), the rest wait for a
    // later sync after some group ended: trying each of them again at every sync that changed
    // the watches was thousands of refused syscalls and log lines at 10,000 allocations.
    const char* no_room = nullptr; // why the rest wait
    for (const auto& [id, key] : wanted) {
        if (no_room || watched_.count(id)) continue;
        switch (probes_->watch(id)) {
        case bpf::Probes::Watch::watched:
            watched_[id] = key;
            ids_by_key_[key].push_back(id);
            break;
        case bpf::Probes::Watch::map_full: no_room = "the probes' map is full"; break;
        case bpf::Probes::Watch::no_memory: no_room = "the kernel had no memory for more entries"; break;
        case bpf::Probes::Watch::refused: break; // logged by watch
        }
    }
    const std::size_t left_out = wanted.size() - watched_.size(); // watched_ holds only wanted ids now
    if (left_out > 0 && left_out_ == 0)
        spdlog::warn("bpf: {} of {} allocation cgroups are not watched ({}): no exec counts or run-queue latency for "
                     "them until some allocations end",
                     left_out, wanted.size(), no_room ? no_room : "the kernel refused them, see above");
    else if (left_out == 0 && left_out_ > 0)
        spdlog::info("bpf: every allocation cgroup is watched again ({})", watched_.size());
    left_out_ = left_out;
}

const std::vector<std::uint64_t>& ProcessProbes::ids_of(const std::string& key) const {
    static const std::vector<std::uint64_t> none;
    auto it = ids_by_key_.find(key);
    return it == ids_by_key_.end() ? none : it->second;
}

json ProcessProbes::tool_instances() const {
    if (!probes_) return nullptr;
    json running = json::object(), started = json::object();
    for (const auto& category : tally_.classes().categories()) running[category] = 0, started[category] = 0;
    for (const auto& [_, tool] : running_tools_)
        if (!tool.category.empty()) running[tool.category] = running[tool.category].get<int>() + 1;
    for (const auto& [id, _] : watched_)
        for (const auto& [category, n] : tally_.counts(id).by_category) started[category] = started[category].get<std::uint64_t>() + n;
    json out = running;
    out["started"] = started; // execs since each allocation began, by category
    out["source"] = "ebpf exec/exit events in allocation groups";
    if (left_out_ > 0) out["cgroups_not_watched"] = left_out_; // past the probes' map room: their tools are not counted
    return out;
}

std::optional<bpf::RunqLatency> ProcessProbes::runq_latency(const std::string& allocation_id) const {
    if (!probes_) return std::nullopt;
    bpf::RunqLatency runq;
    for (auto id : ids_of(allocation_id)) {
        if (auto h = probes_->runq_latency(id)) {
            for (size_t i = 0; i < h->buckets.size(); ++i) runq.buckets[i] += h->buckets[i];
            runq.count += h->count;
            runq.total_us += h->total_us;
        }
    }
    return runq;
}

json ProcessProbes::figures(const std::string& allocation_id) const {
    if (!probes_) return {{"unavailable", status_}};
    bpf::Counters total;
    const bpf::RunqLatency runq = *runq_latency(allocation_id);
    bpf::ToolCounts tools;
    for (auto id : ids_of(allocation_id)) {
        if (auto c = probes_->counters(id)) {
            total.execs += c->execs;
            total.forks += c->forks;
            total.exits += c->exits;
            total.oom_kills += c->oom_kills;
        }
        auto t = tally_.counts(id);
        for (const auto& [category, n] : t.by_category) tools.by_category[category] += n;
        tools.unclassified += t.unclassified;
    }
    json running = json::object(); // by class, from exec until exit
    for (const auto& category : tally_.classes().categories()) running[category] = 0;
    for (const auto& [_, tool] : running_tools_)
        if (auto w = watched_.find(tool.cgroup_id); !tool.category.empty() && w != watched_.end() && w->second == allocation_id)
            running[tool.category] = running[tool.category].get<int>() + 1;
    json latency = nullptr;
    if (runq.count > 0)
        latency = {{"samples", runq.count}, {"mean_us", round3(static_cast<double>(runq.total_us) / static_cast<double>(runq.count))},
                   {"p50_us", round3(runq.p50_us())}, {"p99_us", round3(runq.p99_us())}};
    json figures = json::object(); // key by key: see resmgr::to_json(Allocation)
    json& processes = figures["processes"];
    processes["execs"] = total.execs;
    processes["forks"] = total.forks;
    processes["exits"] = total.exits;
    figures["tool_instances_started"] = tools.to_json();
    figures["tool_instances_running"] = std::move(running);
    figures["runq_latency"] = std::move(latency);
    return figures;
}

} // namespace resmgr::monitor
