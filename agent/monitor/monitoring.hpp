// Monitoring owns what resmgrd measures about the node: each sampling pass (the node and every
// allocation's and agent's group), the threshold monitor and its events, the agent pool, the
// eBPF process probes, OOM kills seen in groups, predictive threshold alerts from the history, each allocation's CPU from its start to its
// end, and monitoring/usage_history.jsonl. It reads the ledger, never changes it, and reports
// through an events::EventSink it is given. The operations' reply shapes are the server's
// (server/ops/monitoring.cpp); this class gives them facts.
#pragma once

#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "analytics/series_csv.hpp"
#include "cgroup/backend.hpp"
#include "core/ledger.hpp"
#include "events/event.hpp"
#include "events/jsonl_log.hpp"
#include "history/history.hpp"
#include "monitor/agent_pool.hpp"
#include "monitor/process_probes.hpp"
#include "monitor/psi_trigger.hpp"
#include "monitor/sampler.hpp"
#include "monitor/threshold.hpp"

namespace resmgr::monitor {

// The predictive alert of one threshold rule from its metric's 5-minute history: a
// RESOURCE_THRESHOLD event (predicted: true, time to impact, the back-test's confidence in such a
// call) when the forecast from the series' end reaches the threshold within `horizon_seconds`;
// nullopt when it does not, or when the series is not current (its newest value more than
// kPredictionFreshSeconds before `now`). analytics::NotEnoughData with too little history. Pure.
inline constexpr std::int64_t kPredictionHorizonSeconds = 4 * 3600, kPredictionFreshSeconds = 900;
std::optional<events::Event> predicted_threshold_event(const analytics::RegularSeries& s, const ThresholdRule& rule, std::int64_t now,
                                                      std::int64_t horizon_seconds);

class Monitoring {
public:
    struct Options {
        NodeSources sources;
        std::string history_path; // empty: no usage history
        std::string cgroup_mount; // where /proc/PID/cgroup paths are rooted (e.g. /sys/fs/cgroup)
    };
    // Since start: for capacity's utilization analysis.
    struct Peaks {
        TimePoint since{};
        double cpu_peak = 0, memory_peak = 0, cpu_sum = 0;
        int agents_peak = 0;
        std::uint64_t samples = 0;
    };
    Monitoring(const core::Ledger& ledger, cgroup::CgroupBackend& backend, Options options, events::EventSink& reports);
    // Each pass's node and group figures go to the history database too (null: not kept).
    void set_history(history::History* history) { history_db_ = history; }

    // One pass: sample, thresholds, agent states, OOM kills, one usage_history line.
    void sample(TimePoint now);
    Millis interval() const { return ledger_.policy().resource_check_interval(); }
    const std::optional<Snapshot>& latest() const { return latest_; }
    const Peaks& peaks() const { return peaks_; }
    const ThresholdMonitor& thresholds() const { return thresholds_; }

    AgentPool& agents() { return agents_; }
    const AgentPool& agents() const { return agents_; }
    // An agent's process entered its own leaf: its group is found from /proc/PID/cgroup.
    void agent_started(const Allocation& allocation, const std::string& name, pid_t pid, TimePoint now);
    // The node's memory pressure signal for the pressure responder (policy pressure_response,
    // signal memory_some): a PSI trigger on /proc/pressure/memory when the kernel takes one (watch
    // its fd for EPOLLPRI), else avg10 read each pass. None while the responder is off.
    const std::optional<PsiTrigger>& memory_trigger() const { return memory_trigger_; }
    // Which of the two runs, for doctor ("trigger ...", "polling ...", or why there is none).
    std::string pressure_signals() const;
    ProcessProbes& probes() { return probes_; }
    const ProcessProbes& probes() const { return probes_; }
    // A process just entered an allocation's group: watch its leaf before the process execs.
    void refresh_probe_watches(const std::string& allocation_id) { probes_.sync(allocation_groups(), allocation_id); }

    // The allocation's group was made (or adopted at restart): final_usage measures from now, so
    // that a job shorter than the sampling interval has figures. A group adopted at restart has
    // its CPU counter read now; one `made_now` counts from 0, as the kernel starts it (no read:
    // 3.6 % of the event loop a change; a process placed in it by the same request counts whole).
    void allocation_started(const std::string& allocation_id, TimePoint now, bool made_now);
    // Read just before the group goes: CPU used since allocation_started (seconds, and mean cores
    // over the wall time), the kernel's memory peak (and the highest sampled memory.current, for
    // kernels without memory.peak); each figure null with its reason when unreadable. `group_fd`:
    // the group's directory, opened (O_PATH) by the caller, which reads its other files from it
    // too; -1 when it could not be opened (`no_group` says why).
    nlohmann::json final_usage(const std::string& allocation_id, TimePoint now, int group_fd, const std::string& no_group) const;
    // OOM kills in the allocation's group already reported by sampling (so the final count at
    // release reports only the rest).
    std::uint64_t oom_kills_reported(const std::string& allocation_id) const;
    // The allocation ended: its counters and files go, its live agents become exited.
    void forget_allocation(const std::string& allocation_id);

    const core::Ledger& ledger() const { return ledger_; }
    // For reading (group_path, describe); the lifecycle changes groups.
    cgroup::CgroupBackend& backend() const { return backend_; }

private:
    void observe_threshold(const std::string& metric, std::optional<double> value, TimePoint now);
    void report_oom_kills(const Snapshot& snap, TimePoint now);
    void append_history(const Snapshot& snap);
    void record_history(const Snapshot& snap);
    // Once an hour: forecast CPU and memory kPredictionHorizonSeconds ahead from the history and raise a
    // RESOURCE_THRESHOLD with predicted: true when the forecast reaches a threshold not raised now.
    void predict_thresholds(std::int64_t now);
    std::vector<GroupProbe> allocation_groups() const;

    const core::Ledger& ledger_;
    cgroup::CgroupBackend& backend_;
    Options options_;
    events::EventSink& reports_;
    Sampler sampler_;
    ThresholdMonitor thresholds_;
    std::optional<events::JsonlLog> history_;
    history::History* history_db_ = nullptr;
    std::int64_t next_prediction_ = 0; // seconds since the epoch
    std::optional<Snapshot> latest_;
    AgentPool agents_;
    ProcessProbes probes_;
    std::map<std::string, std::uint64_t> oom_reported_;
    struct GroupStart {
        TimePoint time{};
        std::optional<std::uint64_t> cpu_usage_usec; // nullopt: cpu.stat unreadable then
        std::string unavailable;                     // why, if so
        std::optional<std::uint64_t> memory_peak_sampled; // the highest memory.current a pass saw
    };
    std::map<std::string, GroupStart> started_; // by allocation id, while it lives
    Peaks peaks_;
    std::optional<PsiTrigger> memory_trigger_;
};

} // namespace resmgr::monitor
