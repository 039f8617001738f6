// Leak detection passes and degradation checks (see leak_detector.hpp).
#include "lifecycle/leak_detector.hpp"

#include <signal.h>
#include <syslog.h>

#include <set>

#include <spdlog/spdlog.h>

#include "lifecycle/lifecycle.hpp"

namespace resmgr::lifecycle {

using nlohmann::json;

void LeakDetector::on_tick() {
    const TimePoint now = life_.clock_();
    if (last_pass_ && now - *last_pass_ < life_.ledger_.policy().resource_leak_detection.monitoring_interval) return;
    pass();
}

std::vector<core::LeakFinding> LeakDetector::find(std::optional<std::vector<std::string>>& groups) {
    core::LeakInputs in;
    in.now = life_.clock_();
    in.allocations = &life_.ledger_.allocations();
    // An accounting backend keeps no groups: its empty list must not make every allocation "vanished".
    if (life_.backend_.name() != "accounting") {
        groups = life_.backend_.list_groups();
        in.groups = groups;
    }
    for (const auto& e : life_.ended_.records()) in.ended.insert(e.allocation_id);
    if (groups)
        for (const auto& g : core::unclaimed_groups(*groups, life_.ledger_.allocations())) {
            try {
                if (!life_.backend_.pids(g).empty()) in.with_processes.insert(g);
            } catch (const cgroup::BackendError&) {
                in.with_processes.insert(g); // unreadable: something may still run there
            }
        }
    if (life_.temp_dirs_) in.temp_entries = life_.temp_dirs_->list();
    return core::find_leaks(in);
}

std::string LeakDetector::act(const core::LeakFinding& f) {
    if (!core::still_leaked(f, life_.ledger_.allocations())) return "left alone: an allocation holding capacity claims it now";
    switch (f.kind) {
    case core::LeakKind::unclaimed_group:
        // Killing and removing in one step would block the loop while the killed tasks leave
        // (the backend retries rmdir for up to 2 s): the kill now, the removal at the next pass,
        // which finds the group again, empty.
        if (f.has_processes) {
            life_.backend_.signal(f.subject, SIGKILL);
            return "processes killed (the group is removed at the next pass)";
        }
        life_.backend_.destroy(f.subject);
        return "group removed";
    case core::LeakKind::ended_with_processes:
        life_.backend_.signal(f.subject, f.escalated ? SIGKILL : SIGTERM);
        return f.escalated ? "SIGKILL sent (escalated)" : "SIGTERM sent";
    case core::LeakKind::vanished_group:
        life_.finish(f.subject, AllocationStatus::released, "leak detection: its group vanished");
        return "allocation ended";
    case core::LeakKind::orphan_temp_dir:
        life_.temp_dirs_->release(f.subject);
        return life_.temp_dirs_->pending().count(f.subject) ? "could not be moved out for removal (tried again at the next pass)"
                                                             : "directory moved out and being removed";
    }
    return "";
}

void LeakDetector::pass() {
    const TimePoint now = life_.clock_();
    last_pass_ = now;
    const auto& policy = life_.ledger_.policy().resource_leak_detection;
    std::optional<std::vector<std::string>> groups;
    std::vector<core::LeakFinding> findings;
    try {
        findings = tracker_.observe(find(groups), now, policy.escalation_timeout);
    } catch (const std::exception& e) {
        last_report_ = {{"at", format_timestamp(now)}, {"error", e.what()}};
        spdlog::error("leak detection pass failed: {}", e.what());
        return;
    }
    std::vector<core::LeakFinding> confirmed;
    json cleaned = json::array(), failed = json::array();
    for (const auto& f : findings) {
        if (!f.confirmed) continue;
        confirmed.push_back(f);
        if (!policy.auto_cleanup) continue;
        try {
            cleaned.push_back({{"kind", core::to_string(f.kind)}, {"subject", f.subject}, {"action", act(f)}});
        } catch (const std::exception& e) {
            failed.push_back({{"kind", core::to_string(f.kind)}, {"subject", f.subject}, {"error", e.what()}});
        }
    }
    const core::LeakPassSummary summary = core::summarize_leaks(findings, groups, policy);
    json listed = json::array();
    for (const auto& f : findings) listed.push_back(f.to_json());
    last_report_ = {{"at", format_timestamp(now)},     {"findings", listed},        {"cleaned", cleaned},
                    {"failed", failed},                {"groups", summary.groups},  {"leaked_groups", summary.leaked_groups},
                    {"leak_rate", summary.leak_rate},  {"auto_cleanup", policy.auto_cleanup}};
    if (!confirmed.empty()) report(confirmed, summary, cleaned, failed);
    check_degradation();
}

void LeakDetector::report(const std::vector<core::LeakFinding>& confirmed, const core::LeakPassSummary& summary, const json& cleaned,
                          const json& failed) {
    const auto& policy = life_.ledger_.policy().resource_leak_detection;
    std::string what;
    json listed = json::array();
    for (const auto& f : confirmed) {
        what += (what.empty() ? "" : ", ") + core::to_string(f.kind) + " " + f.subject;
        listed.push_back(f.to_json());
    }
    std::string message = "leak detection: " + std::to_string(confirmed.size()) + " leak(s): " + what;
    if (policy.auto_cleanup) message += "; cleaned " + std::to_string(cleaned.size()) + (failed.empty() ? "" : ", failed " + std::to_string(failed.size()));
    else message += "; reported only (auto_cleanup off)";
    if (summary.over_threshold) message += "; leak rate " + std::to_string(static_cast<int>(summary.leak_rate)) + " % of groups";
    auto e = events::Event::make(events::EventType::leak, message);
    e.time = life_.clock_();
    if (summary.error()) e.priority = LOG_ERR;
    e.metric = "leak_rate";
    e.value = summary.leak_rate;
    e.threshold = policy.leak_threshold;
    e.details = {{"findings", listed},         {"cleaned", cleaned},           {"failed", failed},
                 {"groups", summary.groups}, {"leaked_groups", summary.leaked_groups}, {"escalated", summary.escalated}};
    life_.events_.publish(e);
    spdlog::log(summary.error() ? spdlog::level::err : spdlog::level::warn, "{}", message);
}

void LeakDetector::check_degradation() {
    if (!life_.history_ || !life_.history_->available()) return;
    const auto& policy = life_.ledger_.policy().performance_degradation;
    std::map<std::string, std::vector<analytics::RunRecord>> by_type;
    try {
        for (auto& run : life_.history_->store()->runs({}))
            if (!run.workflow_type.empty()) by_type[run.workflow_type].push_back(std::move(run));
    } catch (const std::exception& e) {
        spdlog::warn("performance degradation check: cannot read the run records: {}", e.what());
        return;
    }
    for (const auto& [type, runs] : by_type) {
        std::string& checked = newest_checked_[type];
        if (runs.front().allocation_id == checked) continue; // once per new run of a type (runs come newest first)
        checked = runs.front().allocation_id;
        analytics::DegradationVerdict verdict = analytics::judge_degradation(type, runs, policy.degradation_threshold);
        verdicts_[type] = verdict;
        if (!verdict.degraded) continue;
        const std::string message = "workflow type " + type + " degraded: its newest runs take " + std::to_string(*verdict.recent_seconds) +
                                    " s (median), its baseline " + std::to_string(*verdict.baseline_seconds) + " s, " +
                                    std::to_string(static_cast<int>(verdict.slowdown_percent.value_or(0))) + " % slower (threshold " +
                                    std::to_string(static_cast<int>(policy.degradation_threshold)) + " %)";
        auto e = events::Event::make(events::EventType::performance_degraded, message);
        e.time = life_.clock_();
        e.metric = "duration_seconds";
        e.value = *verdict.recent_seconds;
        e.threshold = *verdict.baseline_seconds * (1 + policy.degradation_threshold / 100);
        e.details = verdict.to_json();
        e.details["auto_optimization"] = policy.auto_optimization;
        e.details["manual_intervention"] = policy.manual_intervention;
        life_.events_.publish(e);
        spdlog::warn("{}", message);
    }
}

json LeakDetector::to_json() const {
    json degraded = json::array(), judged = json::array();
    for (const auto& [type, v] : verdicts_) (v.degraded ? degraded : judged).push_back(v.to_json());
    return {{"leak_detection", {{"policy", life_.ledger_.policy().resource_leak_detection.to_json()}, {"last_pass", last_report_}}},
            {"performance_degradation",
             {{"policy", life_.ledger_.policy().performance_degradation.to_json()}, {"degraded", degraded}, {"checked", judged}}}};
}

} // namespace resmgr::lifecycle
