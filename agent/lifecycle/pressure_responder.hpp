// The pressure responder (the seed's "Resource Exhaustion Management"): each sampling pass, and
// each time the memory PSI trigger fires, it turns what the sampler read into the planner's inputs
// (core/pressure: plan_pressure), and takes the plan's steps through the lifecycle's backend:
// memory.high (and memory.reclaim where the kernel has it), cpu.weight, cpu.max as live
// adjustments on top of each group's size (adjustments.hpp), cgroup.freeze, and cgroup.kill (the
// lifecycle's own end of an allocation). Undo steps drop the adjustment, so the group is back at
// what the rest gives (its size, a loan, tune's knob): the value it had before.
//
// Crash safety: the whole responder state (signals, steps held, when each resource last changed)
// is written to current_state/pressure.json (write, fsync, rename) BEFORE a pass's steps are
// taken. At start load() reads it back before the lifecycle re-adopts the groups, so every group
// is re-created with what the responder holds back and a group it froze stays frozen; from there
// the planner gives each step back once its signal has cleared, so a crash never leaves a group
// frozen forever. A state file that cannot be read is named in the log and status, and the start
// goes on with nothing held: reconcile then thaws every active group and writes its size.
//
// A step the backend cannot make real here (no cpu or memory controller in the host's cgroup v2)
// is kept and reported as unenforced with the backend's reason, never dropped. Mode "advisory"
// plans and reports, touching nothing; "off" gives everything back and then does nothing.
// May call: lifecycle (as its friend: adjustments, backend, finish), core, monitor, state, events.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/pressure.hpp"
#include "monitor/monitoring.hpp"
#include "monitor/stall_share.hpp"

namespace resmgr::lifecycle {

class Lifecycle;

class PressureResponder {
public:
    explicit PressureResponder(Lifecycle& life);

    // At start, before Completion::reconcile: the held steps of the previous run come back as
    // adjustments (and freezes). Never throws: an unreadable file is reported and ignored.
    void load();
    // One sampling pass, from the pass monitoring just took.
    void on_sample(const monitor::Monitoring& monitoring);
    // The memory PSI trigger fired: memory_some is at least the trigger's share of its window.
    void on_trigger(const monitor::Monitoring& monitoring);
    // One pass of the responder on these inputs (the two above build them). Each group names its
    // allocation and what was measured (memory_current, cpu_cores_used, cpu_pressure_some);
    // priority, status, the limits in force and the memory growth rate are filled in here.
    // `measured_at`: when the groups' figures were read (the sampler's snapshot; now when not
    // given). A trigger's pass reuses the last snapshot: the growth rates stay as they were.
    void respond(const core::PressureSample& sample, std::vector<core::PressureGroup> groups, std::optional<TimePoint> measured_at = {}); // groups in any order

    const core::PressureState& state() const { return state_; }
    // Why new agent starts wait (an enforced queue_agents step held, in words); empty when not.
    std::string agent_starts_held() const;
    std::filesystem::path state_path() const;
    // `status pressure`: mode, signal source, signals, steps held, the last pass's notes.
    nlohmann::json to_json(const monitor::Monitoring* monitoring) const;

private:
    core::PressureSample sample_of(const monitor::Monitoring& monitoring);
    // node_memory_stalls: the node's memory stalled in the last interval (or its trigger fired), so
    // each group's memory.pressure is read; a calm node costs no read per group.
    std::vector<core::PressureGroup> groups_of(const monitor::Monitoring& monitoring, bool node_memory_stalls);
    // respond() on this sample and the groups of monitoring's last snapshot, measured when it was taken.
    void respond_with_groups(const monitor::Monitoring& monitoring, const core::PressureSample& sample, bool node_memory_stalls);
    // A PSI file's stall over the last interval (monitor::StallShare; `born`: when the group was
    // made, a first base), avg10 where there is no base yet.
    void recent_stall(const std::string& key, const monitor::Pressure& psi, std::optional<double>& some, std::optional<double>& full,
                      std::optional<TimePoint> born = std::nullopt);
    std::optional<monitor::Pressure> group_pressure(const std::string& id, const char* file) const;
    void save(const core::PressureState& state);
    // Takes one step (or its undo) on the kernel; sets step.unenforced when it could not be made real.
    void take(core::PressureStep& step);
    void set_adjustment(core::PressureStep& step);
    void report(const core::PressureStep& step, const std::string& workflow) const;
    // The idle agents holding slots (allocation, name, idle since): listed while agent_pool is
    // raised so a person can stop them; never stopped here.
    nlohmann::json idle_agents() const;

    Lifecycle& life_;
    core::PressureState state_;
    struct Seen {
        TimePoint at{};
        std::uint64_t bytes = 0;
        double growth = 0; // bytes/s between the last two readings
    };
    std::map<std::string, Seen> memory_seen_; // for each group's growth rate
    monitor::StallShare stalls_;              // memory PSI of the node ("node") and groups; cpu PSI of protected groups ("<id>/cpu")
    std::vector<std::string> notes_;          // the last pass's
    std::optional<TimePoint> last_pass_;
    std::string memory_bound_ = "node"; // what memory_available was measured against last pass
    std::string load_error_;
};

} // namespace resmgr::lifecycle
