// Sampling passes, thresholds, the agent pool's inputs and each allocation's start-to-end usage.
#include "monitor/monitoring.hpp"

#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>

#include "analytics/backtest.hpp"
#include "history/series.hpp"
#include "monitor/proc.hpp"
#include "resmgr/json.hpp"
#include "resmgr/protocol.hpp"

namespace resmgr::monitor {
namespace {

using nlohmann::json;

double round3(double v) { return std::round(v * 1000) / 1000; }
json or_null(const std::optional<double>& v) { return v ? json(round3(*v)) : json(nullptr); }

int syslog_priority(const std::string& severity) {
    if (severity == "critical") return LOG_CRIT;
    if (severity == "warning") return LOG_WARNING;
    return LOG_NOTICE;
}

} // namespace

Monitoring::Monitoring(const core::Ledger& ledger, cgroup::CgroupBackend& backend, Options options, events::EventSink& reports)
    : ledger_(ledger), backend_(backend), options_(std::move(options)), reports_(reports), sampler_(options_.sources),
      thresholds_(threshold_rules(ledger.policy())) {
    const auto& p = ledger.policy();
    if (!options_.history_path.empty()) history_.emplace(options_.history_path, p.history_max_bytes, p.history_max_age);
    const auto& response = p.pressure_response;
    auto rule = response.signals.find("memory_some");
    if (response.mode != "off" && rule != response.signals.end() && rule->second.enabled && rule->second.threshold > 0)
        memory_trigger_.emplace(options_.sources.proc_root + "/pressure/memory",
                                psi_trigger_for("some", rule->second.threshold, response.trigger_window));
}

std::string Monitoring::pressure_signals() const {
    if (!memory_trigger_) return "none: the pressure responder is off or its memory_some signal is disabled";
    if (memory_trigger_->mode() == PsiTrigger::Mode::trigger) return memory_trigger_->describe();
    return memory_trigger_->describe() + "; avg10 read every " + format_duration(interval());
}

std::vector<GroupProbe> Monitoring::allocation_groups() const {
    std::vector<GroupProbe> groups;
    for (const auto& [id, a] : ledger_.allocations()) {
        if (!core::holds_capacity(a)) continue;
        if (auto dir = backend_.group_path(id); !dir.empty()) groups.push_back({id, dir});
    }
    return groups;
}

void Monitoring::sample(TimePoint now) {
    auto probes = allocation_groups();
    probes_.sync(probes);
    agents_.add_groups(probes);
    if (!latest_) latest_.emplace();
    sampler_.sample(probes, now, *latest_);
    const Snapshot& snap = *latest_;
    if (peaks_.samples == 0) peaks_.since = now;

    agents_.update(snap, now, ledger_.policy().agent_idle_after);
    report_oom_kills(snap, now);
    const auto& node = snap.node;
    std::optional<double> memory_percent;
    if (node.memory) memory_percent = node.memory->used_percent();
    int max_agents = ledger_.policy().max_agents;
    const int live = agents_.live();
    std::optional<double> agent_percent;
    if (max_agents > 0) agent_percent = 100.0 * live / max_agents;
    observe_threshold("cpu", node.cpu_utilization_percent, now);
    observe_threshold("memory", memory_percent, now);
    observe_threshold("agent_pool", agent_percent, now);

    if (node.cpu_utilization_percent) {
        peaks_.cpu_peak = std::max(peaks_.cpu_peak, *node.cpu_utilization_percent);
        peaks_.cpu_sum += *node.cpu_utilization_percent;
        ++peaks_.samples;
    }
    if (memory_percent) peaks_.memory_peak = std::max(peaks_.memory_peak, *memory_percent);
    peaks_.agents_peak = std::max(peaks_.agents_peak, live);
    if (peaks_.samples == 0) peaks_.samples = 1; // the first pass has no CPU rate yet, but it started the clock
    append_history(snap);
    record_history(snap);
}

void Monitoring::record_history(const Snapshot& snap) {
    for (const auto& [key, usage] : snap.groups)
        if (auto it = started_.find(key); it != started_.end() && usage.sample.memory_current_bytes)
            it->second.memory_peak_sampled = std::max(it->second.memory_peak_sampled.value_or(0), *usage.sample.memory_current_bytes);
    if (!history_db_) return;
    const auto ts = std::chrono::duration_cast<std::chrono::seconds>(snap.time.time_since_epoch()).count();
    history_db_->record_samples(ts, [&](const history::HistoryStore::AddPoint& point) {
        auto add = [&](std::string_view series, auto value) {
            if (value) point(series, static_cast<double>(*value));
        };
        const auto& node = snap.node;
        add("node/cpu_percent", node.cpu_utilization_percent);
        if (node.memory) {
            add("node/memory_percent", std::optional<double>(node.memory->used_percent()));
            add("node/memory_available_bytes", std::optional<double>(static_cast<double>(node.memory->available_bytes)));
        }
        add("node/cpu_pressure_some_avg10", node.cpu_pressure ? std::optional(node.cpu_pressure->some.avg10) : std::nullopt);
        add("node/memory_pressure_some_avg10", node.memory_pressure ? std::optional(node.memory_pressure->some.avg10) : std::nullopt);
        add("node/io_pressure_some_avg10", node.io_pressure ? std::optional(node.io_pressure->some.avg10) : std::nullopt);
        add("node/live_agents", std::optional<double>(agents_.live()));
        add("node/allocations", std::optional<double>(static_cast<double>(ledger_.allocations().size())));
        std::string name; // "alloc/<id>/<figure>", one buffer for every group's names
        for (const auto& [key, usage] : snap.groups) {
            if (key.find('/') != std::string::npos) continue; // an agent's leaf: its allocation's group counts it
            const auto& s = usage.sample;
            auto figure = [&](const char* what, auto value) {
                name.assign("alloc/").append(key).append("/").append(what);
                add(name, value);
            };
            figure("cpu_cores", usage.cpu_cores);
            figure("memory_bytes", s.memory_current_bytes);
            figure("pids", s.pids_current);
            if (s.cpu_stat) figure("throttled_usec", s.cpu_stat->throttled_usec);
        }
    });
    history_db_->maintain(ts);
    predict_thresholds(ts);
}

std::optional<events::Event> predicted_threshold_event(const analytics::RegularSeries& s, const ThresholdRule& rule, std::int64_t now,
                                                      std::int64_t horizon_seconds) {
    // Only a series that is current: an old import says nothing about the next hours.
    if (s.values.empty() || s.step <= 0 || s.ts(s.values.size() - 1) < now - kPredictionFreshSeconds) return std::nullopt;
    const auto h = static_cast<std::size_t>(std::max<std::int64_t>(1, horizon_seconds / s.step));
    const auto r = analytics::backtest(s.values, s.filled, s.step, {h, h, 0.95});
    const auto c = analytics::predicted_crossing(s.values, s.filled, r, rule.threshold);
    if (!c.at) return std::nullopt;
    const std::int64_t at = s.ts(s.values.size() - 1) + static_cast<std::int64_t>(*c.at + 1) * s.step;
    const Seconds impact(std::max<std::int64_t>(0, at - now));
    char text[200];
    std::snprintf(text, sizeof text, "%s utilization forecast to reach %.1f%% in %s", rule.metric.c_str(), rule.threshold,
                  format_duration(impact).c_str());
    auto e = events::Event::make(events::EventType::threshold_raised, text);
    e.time = TimePoint(std::chrono::seconds(now));
    e.priority = syslog_priority(rule.severity);
    e.metric = rule.metric;
    e.value = round3(r.ahead.forecast[*c.at]);
    e.threshold = rule.threshold;
    e.details = {{"predicted", true},
                 {"type", "predicted_resource_shortage"},
                 {"severity", rule.severity},
                 {"time_to_impact", format_duration(impact)},
                 {"at", format_timestamp(TimePoint(std::chrono::seconds(at)))},
                 {"prediction_confidence", c.precision ? nlohmann::json(round3(*c.precision)) : nlohmann::json(nullptr)},
                 {"folds_called", c.folds_called},
                 {"confidence_method", analytics::kCrossingMethod},
                 {"model", r.chosen}};
    return e;
}

void Monitoring::predict_thresholds(std::int64_t now) {
    constexpr std::int64_t kEvery = 3600, kSpan = 14 * 86400;
    if (now < next_prediction_ || !history_db_ || !history_db_->available()) return;
    next_prediction_ = now + kEvery;
    const std::pair<const char*, const char*> watched[] = {{"cpu", "node/cpu_percent"}, {"memory", "node/memory_percent"}};
    for (const auto& rule : threshold_rules(ledger_.policy())) {
        const auto it = std::find_if(std::begin(watched), std::end(watched), [&](const auto& w) { return rule.metric == w.first; });
        if (it == std::end(watched) || thresholds_.raised(rule.metric)) continue;
        try {
            const auto s = history::read_regular(*history_db_->store(), it->second, history::Resolution::five_minutes, kSpan, history::Take::mean);
            if (auto e = predicted_threshold_event(s, rule, now, kPredictionHorizonSeconds)) reports_.publish(*e);
        } catch (const std::exception& e) { // too little history, or a read that failed: no prediction this hour
            spdlog::debug("predictive threshold for {}: {}", rule.metric, e.what());
        }
    }
}

void Monitoring::observe_threshold(const std::string& metric, std::optional<double> value, TimePoint now) {
    if (!value) return;
    auto change = thresholds_.observe(metric, *value, now);
    if (!change) return;
    using Kind = ThresholdChange::Kind;
    bool cleared = change->kind == Kind::cleared;
    char text[160];
    std::snprintf(text, sizeof text, cleared ? "%s utilization %.1f%% is back below %.1f%%" : "%s utilization %.1f%% is at or above %.1f%%",
                  metric.c_str(), *value, cleared ? change->rule.threshold - change->rule.clear_margin : change->rule.threshold);
    auto e = events::Event::make(cleared ? events::EventType::threshold_cleared : events::EventType::threshold_raised, text);
    e.time = now;
    e.priority = cleared ? LOG_INFO : syslog_priority(change->rule.severity);
    e.metric = metric;
    e.value = round3(*value);
    e.threshold = change->rule.threshold;
    e.details = {{"severity", change->rule.severity}, {"repeat", change->kind == Kind::repeated}};
    reports_.publish(e);
}

void Monitoring::report_oom_kills(const Snapshot& snap, TimePoint now) {
    for (const auto& [id, a] : ledger_.allocations()) {
        auto it = snap.groups.find(id);
        if (it == snap.groups.end() || !it->second.sample.memory_events) continue;
        std::uint64_t kills = it->second.sample.memory_events->oom_kill;
        std::uint64_t& reported = oom_reported_[id];
        if (kills <= reported) continue;
        auto e = events::Event::make(events::EventType::oom_kill,
                                     "the OOM killer killed " + std::to_string(kills - reported) + " process(es) in " + id,
                                     a.workflow_id, id);
        e.time = now;
        e.details = {{"memory_events", it->second.sample.memory_events->to_json()}};
        reported = kills;
        reports_.publish(e);
    }
}

std::uint64_t Monitoring::oom_kills_reported(const std::string& allocation_id) const {
    auto it = oom_reported_.find(allocation_id);
    return it == oom_reported_.end() ? 0 : it->second;
}

void Monitoring::append_history(const Snapshot& snap) {
    if (!history_) return;
    const auto& node = snap.node;
    json record{{"time", format_timestamp(snap.time)},
                {"cpu_percent", or_null(node.cpu_utilization_percent)},
                {"memory_percent", node.memory ? json(round3(node.memory->used_percent())) : json(nullptr)},
                {"cpu_pressure_avg10", node.cpu_pressure ? json(node.cpu_pressure->some.avg10) : json(nullptr)},
                {"memory_pressure_avg10", node.memory_pressure ? json(node.memory_pressure->some.avg10) : json(nullptr)},
                {"io_pressure_avg10", node.io_pressure ? json(node.io_pressure->some.avg10) : json(nullptr)},
                {"live_agents", agents_.live()},
                {"groups", json::object()}};
    // The groups are written into the line as text, one at a time: as a json tree they were
    // ~5 MB more at every pass at 10,000 groups (the same bytes as dumping the tree). Into one
    // string reserved for them: a second one grown by doubling, spliced in and copied again for
    // the newline made this function's temporaries reach 5.7 MB at 10,000 groups (heaptrack).
    static const std::string kEmpty = "\"groups\":{}";
    const std::string rest = dump_text(record);
    const std::size_t inside = rest.find(kEmpty) + kEmpty.size() - 1; // at the groups' closing brace
    std::string line;
    line.reserve(rest.size() + 96 * snap.groups.size() + 1); // + the newline append_line adds
    line.append(rest, 0, inside);
    const auto number = [](const auto& v) { return v ? json(*v).dump() : std::string("null"); };
    bool first = true;
    for (const auto& [key, usage] : snap.groups) {
        const auto& s = usage.sample;
        if (!first) line += ',';
        first = false;
        line += dump_text(json(key));
        line += ":{\"cpu_cores_used\":";
        line += or_null(usage.cpu_cores).dump();
        line += ",\"memory_bytes\":";
        line += number(s.memory_current_bytes);
        line += ",\"pids\":";
        line += number(s.pids_current);
        line += '}';
    }
    line.append(rest, inside, std::string::npos);
    try {
        history_->append_line(std::move(line));
    } catch (const std::exception& e) {
        spdlog::warn("usage history not recorded: {}", e.what());
    }
}

void Monitoring::agent_started(const Allocation& a, const std::string& name, pid_t pid, TimePoint now) {
    std::string dir;
    if (!options_.cgroup_mount.empty() && !backend_.group_path(a.allocation_id).empty()) {
        try {
            dir = options_.cgroup_mount + parse_proc_cgroup_v2(read_text_file("/proc/" + std::to_string(pid) + "/cgroup"));
        } catch (const std::exception& e) {
            spdlog::warn("agent {} of {}: its group cannot be watched: {}", name, a.allocation_id, e.what());
        }
    }
    agents_.started(a, name, pid, std::move(dir), now);
}

void Monitoring::allocation_started(const std::string& allocation_id, TimePoint now, bool made_now) {
    if (started_.count(allocation_id)) return;
    GroupStart start{now, std::nullopt, "", std::nullopt};
    const std::string dir = backend_.group_path(allocation_id);
    if (dir.empty()) {
        start.unavailable = "no cgroup on this backend";
    } else if (made_now) {
        start.cpu_usage_usec = 0;
    } else {
        // Only the CPU counter is a baseline (the rest start at zero or are read at the end):
        // one file, not the pass's five, on every allocate.
        try {
            if (const auto usage = parse_cpu_stat(read_text_file(dir + "/cpu.stat")).usage_usec) start.cpu_usage_usec = *usage;
            else start.unavailable = "cpu.stat unreadable at the start: no usage_usec";
        } catch (const ParseError& e) {
            start.unavailable = std::string("cpu.stat unreadable at the start: ") + e.what();
        }
    }
    started_[allocation_id] = std::move(start);
}

json Monitoring::final_usage(const std::string& allocation_id, TimePoint now, int group_fd, const std::string& no_group) const {
    json out = json::object(); // key by key: see resmgr::to_json(Allocation)
    out["cpu_usage_usec"] = nullptr;
    out["cpu_cores_mean"] = nullptr;
    out["wall_seconds"] = nullptr;
    out["memory_peak_bytes"] = nullptr;
    json unavailable = json::array();
    if (backend_.group_path(allocation_id).empty()) {
        out["unavailable"] = json::array({"no cgroup on this backend"});
        return out;
    }
    // A file of the group, parsed, or nullopt with its reason among `unavailable`, after the name
    // of the figure it leaves null ("memory_peak_bytes: cannot read memory.peak: ...").
    auto read = [&](const char* figure, const char* name, auto parse) -> std::optional<decltype(parse(std::string_view{}, std::string{}))> {
        std::string why = no_group;
        const auto text = group_fd >= 0 ? read_text_at(group_fd, name, why) : std::nullopt;
        try {
            if (text) return parse(*text, name);
        } catch (const ParseError& e) {
            why = e.what();
        }
        unavailable.push_back(std::string(figure) + ": " + why);
        return std::nullopt;
    };
    const auto cpu = read("cpu_usage_usec", "cpu.stat", parse_cpu_stat);
    const auto start = started_.find(allocation_id);
    std::optional<std::uint64_t> used_now;
    if (cpu && cpu->usage_usec) used_now = *cpu->usage_usec;
    if (used_now) out["cpu_usage_usec"] = *used_now;
    if (cpu && cpu->throttled_usec) out["throttled_usec"] = *cpu->throttled_usec;
    if (start == started_.end()) {
        unavailable.push_back("cpu_cores_mean: the group's start was not observed");
    } else if (!start->second.cpu_usage_usec || !used_now) {
        unavailable.push_back("cpu_cores_mean: " + (start->second.unavailable.empty() ? std::string("cpu.stat unreadable at the end")
                                                                                      : start->second.unavailable));
    } else {
        const double wall = std::chrono::duration<double>(now - start->second.time).count();
        out["wall_seconds"] = round3(wall);
        // A counter that went back (a group re-made under the same name) gives no figure.
        if (*used_now >= *start->second.cpu_usage_usec) {
            const double seconds = static_cast<double>(*used_now - *start->second.cpu_usage_usec) / 1e6;
            out["cpu_seconds"] = seconds;
            if (wall > 0) out["cpu_cores_mean"] = round3(seconds / wall);
        }
    }
    if (start != started_.end() && start->second.memory_peak_sampled) out["memory_peak_sampled_bytes"] = *start->second.memory_peak_sampled;
    // memory.peak (Linux 5.19+, with the memory controller): the high-water mark over the group's life.
    if (const auto peak = read("memory_peak_bytes", "memory.peak", parse_single_value)) out["memory_peak_bytes"] = *peak;
    out["unavailable"] = std::move(unavailable);
    return out;
}

void Monitoring::forget_allocation(const std::string& allocation_id) {
    started_.erase(allocation_id);
    oom_reported_.erase(allocation_id);
    sampler_.forget(allocation_id);
    agents_.forget_allocation(allocation_id);
}

} // namespace resmgr::monitor
