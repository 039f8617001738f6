// The sampler: one pass over the node (/proc, PSI, statvfs) and every watched group (cgroup
// files), turning cumulative counters into rates against the previous pass (node CPU %, cores
// used per group). It keeps only the previous counters; what to do with a sample (thresholds,
// history, events) is the caller's.
#pragma once

#include <map>
#include <memory>
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
    // Groups not listed since the previous pass are forgotten (their files closed).
    Snapshot sample(const std::vector<GroupProbe>& groups, TimePoint now);
    // Closes an allocation's group files now (its group and leaves are about to go).
    void forget(const std::string& allocation_id);

private:
    struct Previous {
        std::uint64_t usage_usec = 0;
        TimePoint time{};
    };
    NodeSources sources_;
    std::optional<CpuTimes> previous_cpu_;
    std::map<std::string, Previous> previous_usage_;
    FdBudget budget_{kKeptGroupFiles}; // outlives readers_, which give back to it
    std::map<std::string, std::unique_ptr<GroupReader>> readers_; // by probe key
};

} // namespace resmgr::monitor
