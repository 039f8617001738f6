// `tune`: feedback loops that hold a measured metric of one allocation at or below a target by
// moving one of its own knobs, one step (analytics/tuning) per sampling pass, until the target
// holds or the knob's bound is reached; stopped (and the knob put back) on request or when the
// allocation ends. What it can measure, and what it moves:
//   - cpu / runq_latency_p99_us: the allocation's run-queue wait p99 over the last pass (eBPF
//     sched_wakeup->sched_switch histogram, differenced between passes); knob: its cpu.weight,
//     up to 8x its band's. Raising its own weight is the same ratio as lowering everyone else's,
//     without touching other users' groups;
//   - memory / memory_pressure: its group's memory PSI "some" avg10 (%), from memory.pressure;
//     knob: memory.high, from the policy's ratio of memory.max up to memory.max.
// Loops are not persisted: a restart puts every group back at its size (adjustments.hpp).
// May call: lifecycle (as its friend: adjustments), analytics, monitor, core.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analytics/tuning.hpp"
#include "bpf/probes.hpp"
#include "monitor/process_probes.hpp"

namespace resmgr::lifecycle {

class Lifecycle;

struct TunableMetric {
    const char* component;
    const char* metric;
    const char* measured_by;
    const char* knob;
};

class Tuner {
public:
    struct Loop {
        const TunableMetric* what = nullptr;
        std::string allocation_id;
        double target = 0;
        analytics::TuneKnob knob;
        analytics::TuneOptions options;
        analytics::TuneProgress progress = analytics::TuneProgress::no_data;
        std::optional<double> last_value;
        int steps = 0; // knob moves so far
        TimePoint since{};
        std::uint32_t by_uid = 0;
        std::optional<bpf::RunqLatency> previous_runq;
    };

    explicit Tuner(Lifecycle& life) : life_(life) {}
    static const std::vector<TunableMetric>& metrics();
    static const TunableMetric* find_metric(const std::string& component, const std::string& metric);

    // Starts (or retargets) the loop of `what` on an allocation; its knob starts where it rests.
    const Loop& start(const TunableMetric& what, const std::string& allocation_id, double target, TimePoint now, std::uint32_t uid);
    // Stops the loops of `component` (on one allocation, or all when empty) and puts their knobs
    // back; returns how many stopped.
    int stop(const std::string& component, const std::string& allocation_id);
    // Each sampling pass: measure, step, write the knob.
    void on_sample(const monitor::ProcessProbes* probes);
    nlohmann::json to_json() const;
    static nlohmann::json loop_json(const Loop& loop);

private:
    std::optional<double> measure(Loop& loop, const monitor::ProcessProbes* probes) const;
    void set_knob(const Loop& loop, std::optional<double> value);

    Lifecycle& life_;
    std::vector<Loop> loops_;
};

} // namespace resmgr::lifecycle
