#include "lifecycle/tuner.hpp"

#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>

#include "core/holdings.hpp"
#include "lifecycle/lifecycle.hpp"
#include "monitor/proc.hpp"

namespace resmgr::lifecycle {

using nlohmann::json;

namespace {

constexpr double kMaxWeightFactor = 8;
constexpr double kMemoryHighStep = 1.03; // memory.high moves 3 % of memory.max per pass

bool is_runq(const TunableMetric& m) { return std::string(m.metric) == "runq_latency_p99_us"; }

// The waits of one pass: the cumulative histogram now minus the one of the previous pass.
bpf::RunqLatency since(const bpf::RunqLatency& now, const bpf::RunqLatency& before) {
    bpf::RunqLatency d;
    for (std::size_t i = 0; i < d.buckets.size(); ++i) d.buckets[i] = now.buckets[i] - std::min(now.buckets[i], before.buckets[i]);
    d.count = now.count - std::min(now.count, before.count);
    d.total_us = now.total_us - std::min(now.total_us, before.total_us);
    return d;
}

} // namespace

const std::vector<TunableMetric>& Tuner::metrics() {
    static const std::vector<TunableMetric> table{
        {"cpu", "runq_latency_p99_us", "eBPF run-queue wait histogram of the allocation's groups, p99 over each sampling pass",
         "the allocation's cpu.weight, 1x to 8x its band's"},
        {"memory", "memory_pressure", "memory.pressure of the allocation's group: PSI some avg10, percent",
         "the allocation's memory.high, from the policy's ratio of memory.max up to memory.max"},
    };
    return table;
}

const TunableMetric* Tuner::find_metric(const std::string& component, const std::string& metric) {
    for (const auto& m : metrics())
        if (component == m.component && (metric.empty() || metric == m.metric)) return &m;
    return nullptr;
}

const Tuner::Loop& Tuner::start(const TunableMetric& what, const std::string& allocation_id, double target, TimePoint now, std::uint32_t uid) {
    auto it = std::find_if(loops_.begin(), loops_.end(), [&](const Loop& l) { return l.what == &what && l.allocation_id == allocation_id; });
    if (it != loops_.end()) { // retarget: the knob stays where the loop brought it
        it->target = target;
        it->by_uid = uid;
        return *it;
    }
    Loop loop;
    loop.what = &what;
    loop.allocation_id = allocation_id;
    loop.target = target;
    loop.since = now;
    loop.by_uid = uid;
    if (is_runq(what)) {
        loop.knob = {1, 1, kMaxWeightFactor};
    } else {
        const double resting = life_.ledger_.policy().memory_high_ratio;
        loop.knob = {resting, resting, 1.0};
        loop.options.step = kMemoryHighStep;
    }
    loops_.push_back(loop);
    return loops_.back();
}

void Tuner::set_knob(const Loop& loop, std::optional<double> value) {
    LiveAdjustment& adj = life_.adjustments_[loop.allocation_id];
    if (is_runq(*loop.what)) adj.cpu_weight_factor = value.value_or(1);
    else adj.memory_high_ratio = value;
    life_.adjust(loop.allocation_id);
}

int Tuner::stop(const std::string& component, const std::string& allocation_id) {
    int stopped = 0;
    for (auto it = loops_.begin(); it != loops_.end();) {
        if (component == it->what->component && (allocation_id.empty() || allocation_id == it->allocation_id)) {
            if (life_.ledger_.find(it->allocation_id)) set_knob(*it, std::nullopt);
            it = loops_.erase(it);
            ++stopped;
        } else {
            ++it;
        }
    }
    return stopped;
}

std::optional<double> Tuner::measure(Loop& loop, const monitor::ProcessProbes* probes) const {
    if (is_runq(*loop.what)) {
        if (!probes) return std::nullopt;
        const auto now = probes->runq_latency(loop.allocation_id);
        if (!now) return std::nullopt;
        const std::optional<bpf::RunqLatency> before = loop.previous_runq;
        loop.previous_runq = now;
        if (!before) return std::nullopt; // the first pass only sets the origin
        const bpf::RunqLatency window = since(*now, *before);
        if (window.count == 0) return std::nullopt; // nothing ran: no wait to judge
        return window.p99_us();
    }
    try {
        const std::string dir = life_.backend_.group_path(loop.allocation_id);
        return monitor::read_pressure(dir + "/memory.pressure").some.avg10;
    } catch (const std::exception&) {
        return std::nullopt; // no memory.pressure on this host (hybrid, no memory controller)
    }
}

void Tuner::on_sample(const monitor::ProcessProbes* probes) {
    // Loops of allocations that ended go with them (their adjustments went with the group).
    std::erase_if(loops_, [&](const Loop& l) {
        const Allocation* a = life_.ledger_.find(l.allocation_id);
        return !a || !core::holds_capacity(*a);
    });
    for (Loop& loop : loops_) {
        loop.last_value = measure(loop, probes);
        const analytics::TuneStep step = analytics::tune_step(loop.last_value, loop.target, loop.knob, loop.options);
        loop.progress = step.progress;
        if (std::abs(step.value - loop.knob.value) > 1e-9) {
            loop.knob.value = step.value;
            ++loop.steps;
            set_knob(loop, step.value);
            spdlog::info("tune {} {} of {}: {:.3g} against {:.3g}, knob now {:.3f}", loop.what->component, loop.what->metric, loop.allocation_id,
                         loop.last_value.value_or(0), loop.target, step.value);
        }
    }
}

json Tuner::loop_json(const Loop& l) {
    return {{"component", l.what->component},
            {"metric", l.what->metric},
            {"allocation_id", l.allocation_id},
            {"target_value", l.target},
            {"last_value", l.last_value ? json(std::round(*l.last_value * 1000) / 1000) : json(nullptr)},
            {"progress", analytics::to_string(l.progress)},
            {"knob", {{"what", l.what->knob}, {"value", std::round(l.knob.value * 1000) / 1000}, {"floor", l.knob.floor}, {"ceiling", l.knob.ceiling}}},
            {"steps", l.steps},
            {"since", format_timestamp(l.since)},
            {"method", analytics::kTuneMethod},
            {"measured_by", l.what->measured_by}};
}

json Tuner::to_json() const {
    json out = json::array();
    for (const auto& l : loops_) out.push_back(loop_json(l));
    return out;
}

} // namespace resmgr::lifecycle
