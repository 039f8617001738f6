// Monitoring owns what resmgrd measures and says about the node: each sampling pass (the node
// and every allocation's and agent's group, agent/monitor), the threshold monitor and its
// events, the agent pool (agents observed in their own child groups, not declared),
// monitoring/usage_history.jsonl, and the answers of monitor / status <type> / usage / capacity.
// It reads the ledger, never changes it.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "bpf/probes.hpp"
#include "bpf/tool_classes.hpp"
#include "cgroup/backend.hpp"
#include "core/ledger.hpp"
#include "events/event.hpp"
#include "events/jsonl_log.hpp"
#include "monitor/sampler.hpp"
#include "monitor/threshold.hpp"

namespace resmgr::server {

// One process started with `resmgr-run --agent NAME`, living in its own child group.
struct Agent {
    enum class State { active, idle, exited, failed };
    std::string allocation_id, workflow_id, name;
    pid_t pid = 0;
    std::string cgroup_dir; // empty when the backend has no groups (accounting)
    TimePoint started{}, last_active{};
    State state = State::active;
    std::optional<int> exit_status; // as the shell reports it: 128+N for signal N
    std::string reason;             // why failed
    double cpu_cores = 0;           // at the last sample
    bool live() const { return state == State::active || state == State::idle; }
    nlohmann::json to_json() const;
};
std::string to_string(Agent::State state);

class Monitoring {
public:
    using EmitFn = std::function<void(events::Event)>;
    struct Options {
        monitor::NodeSources sources;
        std::string history_path; // empty: no usage history
        std::string cgroup_mount; // where /proc/PID/cgroup paths are rooted (e.g. /sys/fs/cgroup)
    };
    Monitoring(const core::Ledger& ledger, cgroup::CgroupBackend& backend, Options options, EmitFn emit);

    // The eBPF probes, when they loaded (`status` says why not otherwise): each allocation's
    // groups are watched, exec events counted into tool classes, run-queue latency reported.
    void set_probes(bpf::Probes* probes, std::string status, bpf::ToolClasses classes);
    // Drains the probes' ring buffer (the loop calls it when ring_fd() is readable).
    void consume_process_events();
    const std::string& probes_status() const { return probes_status_; }
    // A process just entered an allocation's group: watch its leaf before the process execs.
    void refresh_probe_watches() { sync_probe_watches(allocation_groups(), true); }

    // One pass: sample, thresholds, agent states, one usage_history line.
    void sample(TimePoint now);
    Millis interval() const { return ledger_.policy().resource_check_interval(); }
    const std::optional<monitor::Snapshot>& latest() const { return latest_; }

    // The agent pool. agent_started throws ApiError when the allocation has no free agent slot.
    void check_agent_slot(const Allocation& allocation, const std::string& name) const;
    void agent_started(const Allocation& allocation, const std::string& name, pid_t pid, TimePoint now);
    // Returns false when no such live agent is known.
    bool agent_exited(const std::string& allocation_id, const std::string& name, std::optional<int> exit_status, TimePoint now);
    int live_agents(const std::string& allocation_id) const;
    // The allocation ended: its live agents become exited (ended agents are kept, the newest
    // kMaxEndedAgents of them, so failures stay visible after their allocation is gone).
    void forget_allocation(const std::string& allocation_id);
    // The allocation's group was made (or adopted at restart): its CPU counter is read now, so
    // that final_usage measures the whole life of a job shorter than the sampling interval.
    void allocation_started(const std::string& allocation_id, TimePoint now);
    // Read just before the group goes: CPU used since allocation_started (mean cores over the
    // wall time), the kernel's memory peak; each figure null with its reason when unreadable.
    nlohmann::json final_usage(const std::string& allocation_id, TimePoint now) const;
    // OOM kills in the allocation's group already reported by sampling (so the final count at
    // release reports only the rest).
    std::uint64_t oom_kills_reported(const std::string& allocation_id) const;
    static constexpr size_t kMaxEndedAgents = 64;

    // Operations, in the seed's shapes, with measured values only (null + a reason otherwise).
    nlohmann::json system_resources() const;              // monitor system
    nlohmann::json status_of(const std::string& type) const; // agents|workflows|cpu|memory|storage
    // `ended`: the workflow's recently ended allocations (their final counters, e.g. an OOM kill
    // that ended the command), shown alongside the live ones.
    nlohmann::json usage(const std::string& workflow_id, const nlohmann::json& ended = nlohmann::json::array()) const;
    nlohmann::json capacity() const;

private:
    nlohmann::json agent_pool() const;
    nlohmann::json compute() const;
    nlohmann::json storage() const;
    nlohmann::json allocation_usage(const Allocation& a) const;
    void observe_threshold(const std::string& metric, std::optional<double> value, TimePoint now);
    void update_agents(const monitor::Snapshot& snap, TimePoint now);
    void report_oom_kills(const monitor::Snapshot& snap, TimePoint now);
    void append_history(const monitor::Snapshot& snap);
    // Watches every group and leaf of the live allocations, and stops watching the rest.
    std::vector<monitor::GroupProbe> allocation_groups() const;
    // Listing every group's leaves is the costly part, so a pass does it only when the set of
    // groups changed; attach forces it (a new leaf).
    void sync_probe_watches(const std::vector<monitor::GroupProbe>& allocation_groups, bool force = false);
    nlohmann::json tool_instances() const;
    nlohmann::json probe_figures(const std::string& allocation_id) const;

    const core::Ledger& ledger_;
    cgroup::CgroupBackend& backend_;
    Options options_;
    EmitFn emit_;
    monitor::Sampler sampler_;
    monitor::ThresholdMonitor thresholds_;
    std::optional<events::JsonlLog> history_;
    std::optional<monitor::Snapshot> latest_;
    std::map<std::string, Agent> agents_; // "<allocation id>/<name>"
    std::map<std::string, std::uint64_t> oom_reported_;
    struct GroupStart {
        TimePoint time{};
        std::optional<std::uint64_t> cpu_usage_usec; // nullopt: cpu.stat unreadable then
        std::string unavailable;                     // why, if so
    };
    std::map<std::string, GroupStart> started_; // by allocation id, while it lives
    bpf::Probes* probes_ = nullptr;
    std::string probes_status_ = "not loaded";
    bpf::ToolTally tally_;
    std::map<std::uint64_t, std::string> watched_;         // cgroup id -> allocation id
    std::vector<std::string> watched_groups_;               // the group dirs of the last sync
    struct RunningTool {
        std::uint64_t cgroup_id = 0;
        std::string category; // empty: unclassified
    };
    std::map<std::uint32_t, RunningTool> running_tools_;    // by tgid, from exec until exit
    // Since start: for capacity's utilization analysis.
    struct Peaks {
        TimePoint since{};
        double cpu_peak = 0, memory_peak = 0, cpu_sum = 0;
        int agents_peak = 0;
        std::uint64_t samples = 0;
    } peaks_;
};

} // namespace resmgr::server
