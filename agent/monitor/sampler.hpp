// The sampler: one pass over the node (/proc, PSI, statvfs) and every watched group (cgroup
// files), turning cumulative counters into rates against the previous pass (node CPU %, cores
// used per group). It keeps only the previous counters; what to do with a sample (thresholds,
// history, events) is the caller's.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "monitor/group_stats.hpp"
#include "monitor/proc.hpp"

namespace resmgr::monitor {

struct GroupProbe {
    std::string key; // allocation id, or "<allocation id>/<agent name>"
    std::string dir; // absolute cgroup directory
};

struct GroupUsage {
    GroupSample sample;
    // Average CPU cores used since the previous sample of this group (cpu.stat usage_usec).
    std::optional<double> cpu_cores;
    nlohmann::json to_json() const;
};

struct Snapshot {
    TimePoint time{};
    NodeSample node;
    std::map<std::string, GroupUsage> groups;
    nlohmann::json to_json() const;
};

class Sampler {
public:
    // Group files kept open between passes, all groups together (see FdBudget): the periodic
    // files of ~50 groups on a full cgroup v2 host, of ~128 on this project's hybrid one.
    static constexpr size_t kKeptGroupFiles = 256;

    explicit Sampler(NodeSources sources) : sources_(std::move(sources)) {}
    // Brings `into` to this pass: the listed groups' usage updated in place, groups not listed
    // dropped from it and forgotten here (their files closed). In place because the snapshot
    // lives from pass to pass: one rebuilt at each pass allocated and freed 10,000 groups' nodes
    // and strings at every pass (bench_sampler at 10,000 groups: 199/176 -> 163/165 ms a pass).
    void sample(const std::vector<GroupProbe>& groups, TimePoint now, Snapshot& into);
    // Closes an allocation's group files now (its group and leaves are about to go).
    void forget(const std::string& allocation_id);

private:
    // What is kept of one listed group from pass to pass, in one node: a pass looks each group up
    // once and rebuilds no map.
    struct Watched {
        std::optional<GroupReader> reader;       // none after forget(): made again when listed
        std::optional<std::uint64_t> usage_usec; // cpu.stat's at the last pass that could read it
        TimePoint time{};                        // of that pass
        std::uint64_t pass = 0;                  // the last pass that listed the group
    };
    NodeSources sources_;
    std::optional<CpuTimes> previous_cpu_;
    FdBudget budget_{kKeptGroupFiles}; // outlives watched_, whose readers give back to it
    std::map<std::string, Watched> watched_; // by probe key
    std::uint64_t passes_ = 0;
};

} // namespace resmgr::monitor
