// The pressure responder: the planner's inputs from the sampler, its steps through the lifecycle
// (see pressure_responder.hpp).
#include "lifecycle/pressure_responder.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "core/holdings.hpp"
#include "lifecycle/lifecycle.hpp"
#include "monitor/memory_headroom.hpp"
#include "monitor/proc.hpp"
#include "resmgr/json.hpp"
#include "state/state_store.hpp"

namespace resmgr::lifecycle {

using core::PressureAction;
using core::PressureStep;
using nlohmann::json;

namespace {

// The backend file a step writes, as Enforcement names it ("cpu.weight=25: controller ...").
const char* limit_file(PressureAction action) {
    switch (action) {
    case PressureAction::memory_high: return "memory.high=";
    case PressureAction::cpu_weight: return "cpu.weight=";
    case PressureAction::cpu_max: return "cpu.max=";
    default: return nullptr;
    }
}

json rounded(const std::optional<double>& v) { return v ? json(std::round(*v * 1000) / 1000) : json(nullptr); }

std::string number(const std::optional<double>& v) {
    if (!v) return "unknown";
    std::ostringstream out;
    out << std::round(*v * 100) / 100;
    return out.str();
}

// Why allocations asking for storage are refused, as their error says.
std::string refusal(const PressureStep& step) {
    return step.signal + " at " + number(step.seen) + " % (raised at " + number(step.threshold) + " %)";
}

} // namespace

PressureResponder::PressureResponder(Lifecycle& life) : life_(life) {}

std::filesystem::path PressureResponder::state_path() const { return life_.store_.dir() / "current_state" / "pressure.json"; }

void PressureResponder::load() {
    std::error_code ec;
    if (!std::filesystem::exists(state_path(), ec)) return;
    try {
        std::ifstream in(state_path());
        std::stringstream text;
        text << in.rdbuf();
        if (!in) throw std::invalid_argument("cannot be read");
        state_ = core::PressureState::from_json(json::parse(text.str()));
    } catch (const std::exception& e) {
        load_error_ = state_path().string() + ": " + e.what() + "; started with nothing held (every group back at its size)";
        spdlog::error("pressure responder: {}", load_error_);
        state_ = {};
        return;
    }
    // What was held comes back on the groups as reconcile re-creates them.
    int kept = 0;
    for (const PressureStep& s : state_.held)
        if (s.action == PressureAction::refuse_storage && s.enforced) life_.storage_refused_ = refusal(s), ++kept;
    for (const PressureStep& s : state_.held) {
        if (s.allocation_id.empty() || !s.enforced || !life_.ledger_.find(s.allocation_id)) continue;
        LiveAdjustment& adj = life_.adjustments_[s.allocation_id];
        switch (s.action) {
        case PressureAction::memory_high: adj.pressure_memory_high = static_cast<std::uint64_t>(s.value.value_or(0)); break;
        case PressureAction::cpu_weight: adj.pressure_cpu_weight = static_cast<std::uint64_t>(s.value.value_or(1)); break;
        case PressureAction::cpu_max: adj.pressure_cpu_max_cores = s.value; break;
        case PressureAction::freeze: adj.pressure_frozen = true; break;
        default: break;
        }
        ++kept;
    }
    if (kept) spdlog::info("pressure responder: {} step(s) held before the restart are kept until their signals clear", kept);
}

void PressureResponder::save(const core::PressureState& state) {
    state::write_file_atomic(state_path(), dump_text(state.to_json(), 2) + "\n");
}

void PressureResponder::set_adjustment(PressureStep& step) {
    LiveAdjustment& adj = life_.adjustments_[step.allocation_id];
    auto bytes = [](const std::optional<double>& v) { return v ? std::optional<std::uint64_t>(static_cast<std::uint64_t>(*v)) : std::nullopt; };
    // An undo drops the ceiling: the group is back at what its size, loan and tune knob give.
    switch (step.action) {
    case PressureAction::memory_high: adj.pressure_memory_high = step.undo ? std::nullopt : bytes(step.value); break;
    case PressureAction::cpu_weight: adj.pressure_cpu_weight = step.undo ? std::nullopt : bytes(step.value); break;
    case PressureAction::cpu_max: adj.pressure_cpu_max_cores = step.undo ? std::nullopt : step.value; break;
    default: return;
    }
    if (!life_.adjust(step.allocation_id)) {
        step.unenforced = "the backend refused the group's limits (see the log)";
        return;
    }
    const char* file = limit_file(step.action);
    if (const cgroup::Enforcement* e = life_.enforcement(step.allocation_id))
        for (const auto& why : e->unenforced)
            if (why.rfind(file, 0) == 0 && step.unenforced.empty()) step.unenforced = why;
    if (step.action != PressureAction::memory_high || step.undo || step.reclaim_bytes == 0) return;
    // Frees memory now rather than at the group's next allocation; the kernel may reclaim less
    // than asked (EAGAIN), which is no failure of the step.
    const std::string reclaim = life_.backend_.group_path(step.allocation_id) + "/memory.reclaim";
    std::ofstream out(reclaim);
    out << step.reclaim_bytes;
    out.flush();
    if (!out) spdlog::info("pressure responder: {} reclaimed less than {} bytes", reclaim, step.reclaim_bytes);
}

void PressureResponder::take(PressureStep& step) {
    const std::string& id = step.allocation_id;
    try {
        switch (step.action) {
        case PressureAction::memory_high:
        case PressureAction::cpu_weight:
        case PressureAction::cpu_max: set_adjustment(step); return;
        case PressureAction::freeze: {
            const Allocation* a = life_.ledger_.find(id);
            if (!a) return;
            LiveAdjustment& adj = life_.adjustments_[id];
            adj.pressure_frozen = !step.undo;
            // A group preemption paused stays frozen when the responder lets go of it.
            if (step.undo && a->status == AllocationStatus::paused) return;
            life_.backend_.freeze(id, !step.undo);
            return;
        }
        case PressureAction::kill:
            life_.finish(id, AllocationStatus::released,
                         "killed by the pressure responder: " + step.signal + " at " + number(step.seen) + " %, the hard floor is " +
                             number(step.threshold) + " %");
            return;
        case PressureAction::queue_agents:
            // Held, it is the gate itself: AgentStarts asks agent_starts_held() at each start.
            return;
        case PressureAction::refuse_storage:
            // Allocations asking for storage_gb are refused while it is held; the temporary
            // directories of ended allocations go now, not at the next pass.
            life_.storage_refused_ = step.undo ? "" : refusal(step);
            if (!step.undo) life_.on_storage_pass();
            return;
        }
    } catch (const std::exception& e) {
        if (step.action == PressureAction::freeze && !step.undo) life_.adjustments_[id].pressure_frozen = false;
        step.unenforced = e.what();
    }
}

void PressureResponder::report(const PressureStep& step, const std::string& workflow) const {
    std::string what = core::to_string(step.action) + (step.undo ? " given back" : "");
    if (!step.allocation_id.empty()) what += " on " + step.allocation_id + " (priority " + std::to_string(step.priority) + ")";
    std::string message = "pressure responder: " + what + ": " + step.signal + " at " + number(step.seen) + " % against " +
                          (step.undo ? "its clear level " : "") + number(step.threshold) + " %";
    if (!step.enforced) message += "; advisory, not taken";
    else if (!step.unenforced.empty()) message += "; not enforced here: " + step.unenforced;
    if (step.action == PressureAction::freeze && step.resource == "memory" && !step.undo)
        message += "; frozen processes keep their memory (memory.high and reclaim free it)";
    auto e = events::Event::make(step.undo ? events::EventType::pressure_relieved : events::EventType::pressure, message,
                                 workflow, step.allocation_id);
    e.time = life_.clock_();
    e.metric = step.signal;
    e.value = step.seen;
    e.threshold = step.threshold;
    e.details = step.to_json();
    if (step.action == PressureAction::queue_agents && !step.undo) {
        e.details["idle_agents"] = idle_agents();
        if (!e.details["idle_agents"].empty())
            e.message += "; " + std::to_string(e.details["idle_agents"].size()) + " idle agent(s) hold slots (status pressure lists them)";
    }
    life_.events_.publish(e);
    spdlog::log(step.unenforced.empty() ? spdlog::level::info : spdlog::level::warn, "{}", message);
}

void PressureResponder::respond(const core::PressureSample& sample, std::vector<core::PressureGroup> measured,
                                std::optional<TimePoint> measured_at) {
    const auto& policy = life_.ledger_.policy().pressure_response;
    const TimePoint now = life_.clock_();
    last_pass_ = now;
    if (policy.mode == "off" && state_.held.empty()) {
        state_ = {};
        notes_ = {"mode off: nothing is watched or taken"};
        return;
    }
    // Every allocation holding capacity takes part (a held step of one missing here would be
    // dropped as gone); what the caller measured is merged in. Both come sorted by id (the
    // ledger's map, and groups_of walks the sampler's), so one walk of each joins them: a scan
    // per allocation was 10^8 string compares a pass at 10,000 allocations, and an index of
    // them ~1 MB more at every pass.
    const auto by_id = [](const core::PressureGroup& x, const core::PressureGroup& y) { return x.allocation_id < y.allocation_id; };
    if (!std::is_sorted(measured.begin(), measured.end(), by_id)) std::sort(measured.begin(), measured.end(), by_id); // a caller's own list
    auto measured_it = measured.begin();
    std::vector<core::PressureGroup> groups;
    groups.reserve(life_.ledger_.allocations().size());
    for (const auto& [id, a] : life_.ledger_.allocations()) {
        if (!core::holds_capacity(a)) continue;
        core::PressureGroup g;
        while (measured_it != measured.end() && measured_it->allocation_id < id) ++measured_it;
        if (measured_it != measured.end() && measured_it->allocation_id == id) g = std::move(*measured_it);
        g.allocation_id = id;
        g.priority = a.priority.value;
        g.status = a.status;
        const cgroup::Limits limits = adjusted_limits(a, life_.ledger_.policy(), life_.adjustments_);
        g.memory_high = limits.memory_high;
        g.memory_max = limits.memory_max;
        g.cpu_weight = static_cast<double>(limits.cpu_weight);
        if (limits.cpu_quota_us) g.cpu_max_cores = static_cast<double>(*limits.cpu_quota_us) / static_cast<double>(limits.cpu_period_us);
        if (g.memory_current) {
            const TimePoint at = measured_at.value_or(now);
            auto seen = memory_seen_.find(id);
            if (seen == memory_seen_.end()) {
                memory_seen_[id] = {at, *g.memory_current, 0};
            } else if (at > seen->second.at) {
                const double dt = std::chrono::duration<double>(at - seen->second.at).count();
                const double growth = (static_cast<double>(*g.memory_current) - static_cast<double>(seen->second.bytes)) / dt;
                seen->second = {at, *g.memory_current, growth};
            }
            g.memory_growth_bytes_per_s = memory_seen_[id].growth; // the same reading: the rate it gave
        }
        groups.push_back(std::move(g));
    }
    std::erase_if(memory_seen_, [&](const auto& e) { return !life_.ledger_.find(e.first); });
    stalls_.retain([&](const std::string& key) {
        const std::string owner = key.substr(0, key.find('/')); // "node", or an allocation id ("<id>/cpu/some")
        return owner == "node" || life_.ledger_.find(owner);
    });

    memory_bound_ = sample.memory_bound;
    core::PressurePlan plan = core::plan_pressure(sample, groups, policy, state_, now);
    notes_ = plan.notes;
    if (plan.steps.empty()) {
        state_ = std::move(plan.state);
        return;
    }
    // Recorded before taken: after a crash from here on, load() finds every step of this pass.
    try {
        save(plan.state);
    } catch (const state::StateError& e) {
        notes_.push_back(std::string("steps not taken, the state could not be written: ") + e.what());
        spdlog::error("pressure responder: {} step(s) not taken, the state could not be written: {}", plan.steps.size(), e.what());
        return;
    }
    bool unenforced = false;
    for (PressureStep& step : plan.steps) {
        const Allocation* a = step.allocation_id.empty() ? nullptr : life_.ledger_.find(step.allocation_id);
        const std::string workflow = a ? a->workflow_id : "global"; // a kill ends the allocation
        if (step.enforced) take(step);
        if (!step.unenforced.empty() && !step.undo) {
            unenforced = true;
            for (PressureStep& held : plan.state.held)
                if (held.action == step.action && held.allocation_id == step.allocation_id && held.resource == step.resource)
                    held.unenforced = step.unenforced;
        }
        report(step, workflow);
    }
    state_ = std::move(plan.state);
    if (!unenforced) return;
    try { // only the reasons changed: the steps themselves are on disk already
        save(state_);
    } catch (const state::StateError& e) {
        spdlog::warn("pressure responder: {}", e.what());
    }
}

void PressureResponder::recent_stall(const std::string& key, const monitor::Pressure& psi, std::optional<double>& some,
                                     std::optional<double>& full, std::optional<TimePoint> born) {
    const TimePoint now = life_.clock_();
    const Millis max_gap = 3 * life_.ledger_.policy().resource_check_interval();
    some = stalls_.share(key + "/some", psi.some.total_usec, now, max_gap, born).value_or(psi.some.avg10);
    if (psi.full) full = stalls_.share(key + "/full", psi.full->total_usec, now, max_gap, born).value_or(psi.full->avg10);
}

core::PressureSample PressureResponder::sample_of(const monitor::Monitoring& monitoring) {
    core::PressureSample s;
    const auto& latest = monitoring.latest();
    if (!latest) return s;
    const monitor::NodeSample& node = latest->node;
    if (node.memory_pressure) recent_stall("node", *node.memory_pressure, s.memory_some, s.memory_full);
    if (node.memory) {
        s.memory_total_bytes = node.memory->total_bytes;
        s.memory_available_bytes = node.memory->available_bytes;
        s.swap_total_bytes = node.memory->swap_total_bytes;
        s.swap_free_bytes = node.memory->swap_free_bytes;
    }
    // A memory.max above the allocations (a capped slice) binds before the node's MemAvailable.
    if (!latest->groups.empty()) {
        const std::string parent = std::filesystem::path(life_.backend_.group_path(latest->groups.begin()->first)).parent_path();
        auto headroom = monitor::enclosing_memory_headroom(parent);
        if (headroom && (!s.memory_available_bytes || headroom->free_bytes() < *s.memory_available_bytes)) {
            s.memory_total_bytes = headroom->limit_bytes;
            s.memory_available_bytes = headroom->free_bytes();
            s.memory_bound = headroom->group;
        }
    }
    s.memory_lookahead = life_.ledger_.policy().resource_check_interval() * life_.ledger_.policy().pressure_response.memory_lookahead_passes;
    if (const int max_agents = life_.ledger_.policy().max_agents; max_agents > 0)
        s.agent_pool_percent = 100.0 * monitoring.agents().live() / max_agents;
    for (const auto& disk : node.disks)
        s.storage_free_percent = std::min(s.storage_free_percent.value_or(100), 100 - disk.utilization_percent);
    // The kernel (5.19+, with the memory controller) gives every group memory.reclaim or none.
    std::error_code ec;
    if (!latest->groups.empty())
        s.memory_reclaim = std::filesystem::exists(life_.backend_.group_path(latest->groups.begin()->first) + "/memory.reclaim", ec);
    return s;
}

std::optional<monitor::Pressure> PressureResponder::group_pressure(const std::string& id, const char* file) const {
    try {
        return monitor::read_pressure(life_.backend_.group_path(id) + "/" + file);
    } catch (const monitor::ParseError&) {
        return std::nullopt; // no PSI in this group (accounting backend, PSI off): its signal stays unknown
    }
}

std::vector<core::PressureGroup> PressureResponder::groups_of(const monitor::Monitoring& monitoring, bool node_memory_stalls) {
    std::vector<core::PressureGroup> groups;
    const auto& latest = monitoring.latest();
    if (!latest) return groups;
    groups.reserve(latest->groups.size());
    const auto& policy = life_.ledger_.policy().pressure_response;
    for (const auto& [id, usage] : latest->groups) {
        const Allocation* a = life_.ledger_.find(id);
        if (!a) continue; // an agent's own group ("<id>/<agent>")
        core::PressureGroup g;
        g.allocation_id = id;
        g.memory_current = usage.sample.memory_current_bytes;
        g.cpu_cores_used = usage.cpu_cores;
        if (a->status == AllocationStatus::active) {
            // cpu_protected is the stall of the groups it may not touch: only theirs are read.
            if (!core::may_touch(a->priority, policy)) {
                // The stall over the last interval raises the signal at once (avg10 takes ~10 s to
                // show one, longer than many a build step it should protect); avg10 keeps it up
                // while it decays. A freeze ends the very stall it answers: judged by the last
                // interval alone, the signal would clear and thaw the spinners, which stall the
                // protected work again, a freeze and thaw every clear_hold.
                std::optional<double> recent, full_unused;
                // Its group was made at admission (a reservation's when its window opened).
                const TimePoint born = a->start_at.value_or(a->timestamp);
                if (auto psi = group_pressure(id, "cpu.pressure")) {
                    recent_stall(id + "/cpu", *psi, recent, full_unused, born);
                    g.cpu_pressure_some = std::max(recent.value_or(0), psi->some.avg10);
                }
            }
            // Whether the node's memory stall is the self-limited groups' own (signal_values):
            // read only while the node stalls at all, so a calm node costs no read per group.
            if (node_memory_stalls) {
                if (auto psi = group_pressure(id, "memory.pressure")) recent_stall(id, *psi, g.memory_pressure_some, g.memory_pressure_full);
            }
        }
        groups.push_back(std::move(g));
    }
    return groups;
}

void PressureResponder::on_sample(const monitor::Monitoring& monitoring) {
    core::PressureSample s = sample_of(monitoring);
    // The groups' memory stall matters only while the node's could raise a signal: reading every
    // group's memory.pressure on any stall at all cost 10,000 opens a pass at 10,000 allocations.
    const auto& rules = life_.ledger_.policy().pressure_response.signals;
    auto past = [&](const char* name, const std::optional<double>& v) {
        auto rule = rules.find(name);
        return v && rule != rules.end() && rule->second.enabled && *v >= rule->second.threshold;
    };
    const bool node_memory_stalls = past("memory_some", s.memory_some) || past("memory_full", s.memory_full);
    respond_with_groups(monitoring, s, node_memory_stalls);
}

void PressureResponder::on_trigger(const monitor::Monitoring& monitoring) {
    core::PressureSample s = sample_of(monitoring);
    const auto& trigger = monitoring.memory_trigger();
    if (!trigger) return;
    // The stall since the last reading, as a sampling pass judges it (avg10 would keep a stall
    // that is over, and the squeezed groups' own stall fires the trigger too: signal_values takes
    // theirs out); the trigger's share if the file cannot be read.
    s.memory_some = trigger->spec().percent();
    try {
        recent_stall("node", trigger->read(), s.memory_some, s.memory_full);
    } catch (const monitor::ParseError& e) {
        spdlog::warn("pressure responder: {}", e.what());
    }
    respond_with_groups(monitoring, s, true);
}

void PressureResponder::respond_with_groups(const monitor::Monitoring& monitoring, const core::PressureSample& sample, bool node_memory_stalls) {
    respond(sample, groups_of(monitoring, node_memory_stalls), monitoring.latest() ? std::optional(monitoring.latest()->time) : std::nullopt);
}

std::string PressureResponder::agent_starts_held() const {
    for (const PressureStep& s : state_.held)
        if (s.action == PressureAction::queue_agents && s.enforced) return refusal(s);
    return {};
}

json PressureResponder::idle_agents() const {
    json list = json::array();
    if (!life_.monitoring_) return list;
    for (const auto& [_, agent] : life_.monitoring_->agents().agents())
        if (agent.state == monitor::Agent::State::idle)
            list.push_back({{"allocation_id", agent.allocation_id}, {"workflow_id", agent.workflow_id}, {"agent", agent.name},
                            {"pid", agent.pid}, {"idle_since", format_timestamp(agent.last_active)}});
    return list;
}

json PressureResponder::to_json(const monitor::Monitoring* monitoring) const {
    const auto& policy = life_.ledger_.policy().pressure_response;
    json signals = json::object();
    for (const auto& [name, rule] : policy.signals) {
        json j{{"resource", rule.resource},
               {"enabled", rule.enabled},
               {"direction", rule.falling ? "raised at or below the threshold" : "raised at or above the threshold"},
               {"threshold", rule.threshold},
               {"clear", rule.clear},
               {"hold", format_duration(rule.hold)},
               {"clear_hold", format_duration(rule.clear_hold)},
               {"value", nullptr},
               {"raised", false}};
        if (auto it = state_.signals.find(name); it != state_.signals.end()) {
            j.update(it->second.to_json());
            j["value"] = rounded(it->second.last);
        }
        if (name == "memory_available") j["measured_against"] = memory_bound_ == "node" ? "the node's MemAvailable" : memory_bound_ + "/memory.max";
        signals[name] = j;
    }
    json held = json::array();
    for (const auto& s : state_.held) {
        json j = s.to_json();
        j["since"] = j["at"];
        j.erase("at");
        if (const Allocation* a = s.allocation_id.empty() ? nullptr : life_.ledger_.find(s.allocation_id)) j["workflow_id"] = a->workflow_id;
        held.push_back(std::move(j));
    }
    json out{{"mode", policy.mode},
             {"signal_source", monitoring ? monitoring->pressure_signals() : "none: monitoring is not running, so no signal is read"},
             {"signals", signals},
             {"held", held},
             {"notes", notes_},
             {"last_pass", last_pass_ ? json(format_timestamp(*last_pass_)) : json(nullptr)},
             {"bands", json::array()},
             {"state_file", state_path().string()}};
    for (auto band : policy.bands) out["bands"].push_back(band_name(band));
    if (auto it = state_.signals.find("agent_pool"); it != state_.signals.end() && it->second.raised) out["idle_agents"] = idle_agents();
    if (!load_error_.empty()) out["load_error"] = load_error_;
    return out;
}

} // namespace resmgr::lifecycle
