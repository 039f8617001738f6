// The eBPF side of monitoring: which cgroups the probes watch (every group and leaf of the live
// allocations), exec events counted into tool classes, processes running by class, and each
// allocation's kernel figures (execs, forks, exits, run-queue latency). Works without probes
// (status() says why) and then reports nothing rather than zeros.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf/probes.hpp"
#include "bpf/tool_classes.hpp"
#include "monitor/sampler.hpp"

namespace resmgr::monitor {

class ProcessProbes {
public:
    void set_probes(bpf::Probes* probes, std::string status, bpf::ToolClasses classes);
    bool loaded() const { return probes_ != nullptr; }
    const std::string& status() const { return status_; }
    // Drains the ring buffer (the loop calls it when ring_fd() is readable).
    void consume();
    // Watches every group of `groups` and its leaves, and stops watching the rest. Listing the
    // leaves is the costly part (a directory read and a handle per leaf), so a group's are listed
    // when it first appears, and again for the group keyed `relist` (a process just attached to
    // it: maybe in a new leaf); the watches are rebuilt only when some group came, went or was
    // listed again. When the probes' map is full, the groups past its room are left out (said once
    // in the log, and in tool_instances()) until allocations end.
    void sync(const std::vector<GroupProbe>& groups, const std::string& relist = {});
    // Running now and started since each allocation began, by class; null without probes.
    nlohmann::json tool_instances() const;
    // One allocation's execs/forks/exits, tools started and running now (by class), run-queue latency.
    nlohmann::json figures(const std::string& allocation_id) const;
    // The run-queue latency histogram of an allocation's groups since they were watched
    // (cumulative); nullopt without probes.
    std::optional<bpf::RunqLatency> runq_latency(const std::string& allocation_id) const;

private:
    bpf::Probes* probes_ = nullptr;
    std::string status_ = "not loaded";
    bpf::ToolTally tally_;
    std::map<std::uint64_t, std::string> watched_; // cgroup id -> allocation id
    // The same, by allocation id: a run's figures are read at each release, and finding them by
    // a walk of watched_ was 10,000 string compares a release at 10,000 live allocations.
    std::map<std::string, std::vector<std::uint64_t>> ids_by_key_;
    const std::vector<std::uint64_t>& ids_of(const std::string& key) const;
    struct Listed {
        std::vector<std::uint64_t> cgroup_ids; // of the group and of each of its leaves
        std::uint64_t sync = 0;                // the last sync that listed the group
    };
    // By group key, not dir: an allocation id fits std::string's inline buffer, a path does not.
    std::map<std::string, Listed> listed_;
    std::uint64_t syncs_ = 0;
    std::size_t left_out_ = 0; // allocation cgroups not watched after the last sync that changed the watches
    struct RunningTool {
        std::uint64_t cgroup_id = 0;
        std::string category; // empty: unclassified
    };
    std::map<std::uint32_t, RunningTool> running_tools_; // by tgid, from exec until exit
};

} // namespace resmgr::monitor
