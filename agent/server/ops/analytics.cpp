// The analytics operations: optimize (right-size running allocations from the runs of their
// workflow type), scale (grow or shrink one allocation or workflow live), balance (lend idle CPU to busy
// allocations), tune (feedback loops on a measured metric) and analyze-utilization (efficiency and bottlenecks of a period). Thin: read the
// history, ask the pure models of agent/analytics, shape the reply; resizing goes through the
// lifecycle's reallocate like any request. May call: history, analytics, lifecycle, model.
#include <algorithm>
#include <cmath>
#include <map>

#include "analytics/scaling.hpp"
#include "analytics/sizing.hpp"
#include "core/holdings.hpp"
#include "history/history.hpp"
#include "resmgr/json.hpp"
#include "server/ops/sizing.hpp"
#include "server/router.hpp"

namespace resmgr::server {
namespace {

using nlohmann::json;

constexpr double kApplyAbove = 0.05; // a change smaller than 5 % of the current size is not worth a resize

std::int64_t epoch_seconds(TimePoint t) { return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count(); }

double round3(double v) { return std::round(v * 1000) / 1000; }

template <class T> json or_null(const std::optional<T>& v) { return v ? json(*v) : json(nullptr); }

json share_or_null(const std::optional<double>& v) { return v ? json(round3(*v)) : json(nullptr); }

analytics::SizingOptions sizing_for(const std::string& target) {
    analytics::SizingOptions o;
    if (target == "performance") { // room first: CPU at P98 and a wider margin
        o.cpu_percentile = 0.98;
        o.margin = 0.25;
    } else if (target != "efficiency") {
        throw ApiError(ErrorCode::INVALID_REQUEST, "'target' must be efficiency or performance", "got '" + target + "'", {"target"});
    }
    return o;
}

bool worth_changing(double current, double recommended) {
    return current > 0 && std::abs(recommended - current) > kApplyAbove * current;
}

SuccessBody optimize(const Call& call) {
    Context& ctx = call.ctx;
    const auto& store = ctx.require_history();
    const std::string target = call.param("target").get<std::string>();
    const analytics::SizingOptions options = sizing_for(target);
    const bool dry_run = call.param("dry_run").get<bool>();
    const bool apply = !dry_run && call.param("apply_immediately").get<bool>();
    const std::string only = param_string(call.params(), "allocation_id");
    if (!only.empty()) ctx.ledger().authorize(only, call.peer);
    const TimePoint now = ctx.clock();

    std::vector<Allocation> targets;
    for (const auto& [id, a] : ctx.ledger().allocations())
        if (core::holds_capacity(a) && (call.peer.uid == 0 || a.owner.uid == call.peer.uid) && (only.empty() || id == only))
            targets.push_back(a);

    json entries = json::array();
    int changed = 0, with_figures = 0;
    SuccessBody body;
    for (const Allocation& a : targets) {
        const SizedFromHistory sized = size_from_history(store, a.owner.uid, a.workflow_type, a.workflow_id, now, options);
        const analytics::Sizing& s = sized.sizing;
        const auto& runs = sized.runs;
        const std::string& basis = sized.basis;
        const double cpu_now = a.resources.cpu_cores;
        const std::uint64_t memory_now = a.resources.memory_bytes;
        json entry{{"allocation_id", a.allocation_id}, {"workflow_id", a.workflow_id}, {"sized_from", basis},
                   {"current", {{"cpu_cores", cpu_now}, {"memory_bytes", memory_now}}},
                   {"recommended", {{"cpu_cores", or_null(s.cpu_cores)}, {"memory_bytes", or_null(s.memory_bytes)}}},
                   {"confidence", sizing_json(s)}};
        // Slack over the recorded runs: what the current size and the recommended one would have left unused.
        json slack = json::object();
        if (cpu_now > 0 && s.cpu_cores)
            slack["cpu"] = {{"before", share_or_null(analytics::cpu_slack(runs, cpu_now))}, {"after", share_or_null(analytics::cpu_slack(runs, *s.cpu_cores))}};
        if (memory_now > 0 && s.memory_bytes)
            slack["memory"] = {{"before", share_or_null(analytics::memory_slack(runs, memory_now))},
                               {"after", share_or_null(analytics::memory_slack(runs, *s.memory_bytes))}};
        entry["expected_slack"] = slack;
        entry["risk"] = {{"oom_probability", share_or_null(s.oom_risk)}, {"method", "share of replayed runs whose memory peak exceeded the size recommended before them"}};
        if (!s.reason.empty()) entry["reason"] = s.reason;
        if (s.cpu_cores || s.memory_bytes) ++with_figures;

        // What would change: only limits the allocation has (an uncapped one is not capped here).
        Resources wanted = a.resources;
        json changes = json::array();
        if (s.cpu_cores && worth_changing(cpu_now, *s.cpu_cores)) {
            wanted.cpu_cores = *s.cpu_cores;
            changes.push_back("cpu_cores " + std::to_string(cpu_now) + " -> " + std::to_string(*s.cpu_cores));
        }
        if (s.memory_bytes && worth_changing(static_cast<double>(memory_now), static_cast<double>(*s.memory_bytes))) {
            wanted.memory_bytes = *s.memory_bytes;
            changes.push_back("memory " + format_size(memory_now) + " -> " + format_size(*s.memory_bytes));
        }
        if (memory_now == 0 && s.memory_bytes) entry["note"] = "memory is uncapped; optimize does not add a cap";
        entry["changes"] = changes;
        entry["applied"] = false;
        if (apply && !changes.empty()) {
            try {
                const Allocation before = ctx.lifecycle.reallocate(a.allocation_id, wanted, call.peer);
                entry["applied"] = true;
                ++changed;
                ctx.events.emit(events::EventType::resized,
                                a.allocation_id + " of workflow " + a.workflow_id + " resized from its runs: " + changes.dump(), a.workflow_id,
                                a.allocation_id, {{"before", resmgr::to_json(before.resources)}, {"after", resmgr::to_json(wanted)}, {"sizing", sizing_json(s)}});
            } catch (const ApiError& e) {
                entry["not_applied"] = {{"code", to_string(e.code)}, {"message", e.what()}};
            }
        }
        entries.push_back(std::move(entry));
    }
    if (!targets.empty() && with_figures == 0)
        throw ApiError(ErrorCode::INSUFFICIENT_HISTORY, "No running allocation has enough recorded runs to be sized",
                       entries.empty() ? "" : entries[0].value("reason", ""), {},
                       {"Run the work under resmgr-run --type NAME a few times; each run is recorded"});
    body.result = {{"dry_run", !apply}, {"target", target},
                   {"allocations", entries}, {"resized", changed}};
    body.resources_affected = changed;
    if (targets.empty()) body.recommendations.push_back("No running allocation of yours to optimize");
    if (!apply && !entries.empty())
        body.recommendations.push_back("Apply with {\"dry_run\": false, \"apply_immediately\": true}: limits change in place, nothing restarts");
    return body;
}

// What the group uses now, from the latest sampling pass (nothing when monitoring is off or the
// group has not been sampled yet: then only the floors bound a shrink).
void live_usage(const Context& ctx, const std::string& id, analytics::ScaleInput& in) {
    if (!ctx.monitoring || !ctx.monitoring->latest()) return;
    const auto& groups = ctx.monitoring->latest()->groups;
    if (auto it = groups.find(id); it != groups.end()) {
        in.cpu_used = it->second.cpu_cores;
        in.memory_used = it->second.sample.memory_current_bytes;
    }
}

SuccessBody scale(const Call& call) {
    Context& ctx = call.ctx;
    const auto direction = analytics::scale_direction_from_string(param_string(call.params(), "direction"));
    if (!direction) throw ApiError(ErrorCode::INVALID_REQUEST, "'direction' must be up, down or auto", "", {"direction"});
    const auto resource = analytics::scale_resource_from_string(call.param("resource").get<std::string>());
    if (!resource) throw ApiError(ErrorCode::INVALID_REQUEST, "'resource' must be cpu, memory or all", "", {"resource"});
    analytics::ScaleOptions options;
    options.factor = call.param("factor").get<double>();
    if (!(options.factor > 1.0 && options.factor <= 16.0))
        throw ApiError(ErrorCode::INVALID_REQUEST, "'factor' must be above 1 and at most 16", "got " + call.param("factor").dump(), {"factor"});
    const bool dry_run = call.param("dry_run").get<bool>();
    const std::string id = param_string(call.params(), "allocation_id");
    const std::string workflow = param_string(call.params(), "workflow_id");
    if (id.empty() == workflow.empty())
        throw ApiError(ErrorCode::INVALID_REQUEST, "Name exactly one of 'allocation_id' and 'workflow_id'", "", {"allocation_id", "workflow_id"});

    std::vector<std::string> ids;
    if (!id.empty()) {
        ctx.ledger().authorize(id, call.peer);
        ids.push_back(id);
    } else {
        for (const auto& [aid, a] : ctx.ledger().allocations())
            if (a.workflow_id == workflow && core::holds_capacity(a) && (call.peer.uid == 0 || a.owner.uid == call.peer.uid)) ids.push_back(aid);
        if (ids.empty()) throw ApiError(ErrorCode::NOT_FOUND, "No running allocation of yours in workflow '" + workflow + "'");
    }

    json entries = json::array();
    int changed = 0;
    for (const std::string& aid : ids) {
        const Allocation a = *ctx.ledger().find(aid);
        if (!core::holds_capacity(a))
            throw ApiError(ErrorCode::INVALID_REQUEST, "Allocation '" + aid + "' is " + to_string(a.status) + "; only a running one can be scaled");
        const auto avail = ctx.ledger().admission().availability();
        analytics::ScaleInput in{a.resources.cpu_cores, a.resources.memory_bytes, {}, {}, avail.cpu_available, avail.memory_available, {}, {}};
        live_usage(ctx, aid, in);
        json entry{{"allocation_id", aid}, {"workflow_id", a.workflow_id}};
        if (*direction == analytics::ScaleDirection::automatic) {
            const SizedFromHistory sized = size_from_history(ctx.require_history(), a.owner.uid, a.workflow_type, a.workflow_id, ctx.clock());
            in.recommended_cpu = sized.sizing.cpu_cores;
            in.recommended_memory = sized.sizing.memory_bytes;
            if (!sized.sizing.cpu_cores && !sized.sizing.memory_bytes)
                throw ApiError(ErrorCode::INSUFFICIENT_HISTORY, "Allocation '" + aid + "' cannot be sized from its runs yet", sized.sizing.reason, {},
                               {"Scale it up or down by a factor instead, or run the work under resmgr-run --type NAME a few times"});
            entry["sized_from"] = sized.basis;
            entry["confidence"] = sizing_json(sized.sizing);
        }
        const analytics::ScalePlan plan = analytics::plan_scale(in, *direction, *resource, options);
        entry["current"] = {{"cpu_cores", a.resources.cpu_cores}, {"memory_bytes", a.resources.memory_bytes}};
        entry["used_now"] = {{"cpu_cores", or_null(in.cpu_used)}, {"memory_bytes", or_null(in.memory_used)}};
        entry["planned"] = {{"cpu_cores", plan.cpu_cores}, {"memory_bytes", plan.memory_bytes}};
        entry["changes"] = plan.changes;
        entry["kept"] = plan.kept;
        entry["applied"] = false;
        if (!dry_run && plan.changed()) {
            Resources wanted = a.resources;
            wanted.cpu_cores = plan.cpu_cores;
            wanted.memory_bytes = plan.memory_bytes;
            const Allocation before = ctx.lifecycle.reallocate(aid, wanted, call.peer);
            entry["applied"] = true;
            ++changed;
            ctx.events.emit(events::EventType::resized, aid + " of workflow " + a.workflow_id + " scaled: " + json(plan.changes).dump(), a.workflow_id, aid,
                            {{"before", resmgr::to_json(before.resources)}, {"after", resmgr::to_json(wanted)}});
        }
        entries.push_back(std::move(entry));
    }
    SuccessBody body;
    body.result = {{"direction", param_string(call.params(), "direction")}, {"dry_run", dry_run}, {"factor", options.factor},
                   {"allocations", entries}, {"resized", changed},
                   {"method", "up: x factor, capped at the node's free capacity; down: / factor, never below the group's use now +15 % nor "
                              "0.01 cores / 16 MiB; auto: the recommender's size (optimize's method) with the same floor"}};
    body.resources_affected = changed;
    return body;
}

SuccessBody balance(const Call& call) {
    Context& ctx = call.ctx;
    const monitor::Monitoring& monitoring = ctx.require_monitoring();
    const std::string scope = param_string(call.params(), "scope");
    if (!scope.empty() && scope != "active_workflows")
        throw ApiError(ErrorCode::UNSUPPORTED, "Scope '" + scope + "' is not one balance can act on", "balance lends CPU between running allocations",
                       {"scope"}, {"Use \"scope\": \"active_workflows\""});
    const std::string strategy_name = call.param("strategy").get<std::string>();
    const auto strategy = analytics::balance_strategy_from_string(strategy_name);
    if (!strategy)
        throw ApiError(ErrorCode::UNSUPPORTED, "Strategy '" + strategy_name + "' cannot be carried out by resmgrd", "it can: priority_weighted, even",
                       {"strategy"});
    const bool stop = !call.param("enabled").get<bool>();
    const bool dry_run = !stop && call.param("dry_run").get<bool>();
    // Lending raises other users' cpu.max and lets them use capacity others were promised.
    if (!dry_run && call.peer.uid != 0)
        throw ApiError(ErrorCode::PERMISSION_DENIED, "Only root may turn balancing on or off", "it changes every user's CPU limits", {},
                       {"A dry run ({\"dry_run\": true}) shows the plan to anyone"});

    SuccessBody body;
    auto& lending = ctx.lending;
    if (stop) {
        const int written = lending.disable();
        body.result = {{"balancing", false}, {"loans_returned", written}};
        body.resources_affected = written;
        return body;
    }
    const monitor::Snapshot* latest = monitoring.latest() ? &*monitoring.latest() : nullptr;
    const analytics::BalancePlan plan = lending.plan(latest, *strategy);
    body.result = lending.plan_json(plan);
    body.result["strategy"] = strategy_name;
    body.result["dry_run"] = dry_run;
    body.result["sampled_at"] = latest ? json(format_timestamp(latest->time)) : json(nullptr);
    if (!latest) body.recommendations.push_back("No sampling pass yet: nobody's use is known, so nothing is lent");
    if (!dry_run) {
        lending.enable({*strategy, strategy_name, ctx.clock(), call.peer.uid});
        body.resources_affected = lending.apply(plan);
        body.result["balancing"] = true;
        body.recommendations.push_back("Loans are re-planned every sampling pass and taken back when their lenders need them; stop with {\"enabled\": false}");
    } else {
        const auto& on = lending.settings();
        body.result["balancing"] = on ? json{{"since", format_timestamp(on->since)}, {"strategy", on->strategy_name}, {"by_uid", on->by_uid}} : json(false);
    }
    return body;
}

// What the target means for a metric: run-queue waits in microseconds (a number, or a duration
// such as "5ms"); pressure in percent.
double tune_target(const json& value, const lifecycle::TunableMetric& what) {
    if (value.is_number() && value.get<double>() >= 0) return value.get<double>();
    if (value.is_string() && std::string(what.metric) == "runq_latency_p99_us")
        if (auto d = parse_duration(value.get<std::string>()))
            return static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(*d).count());
    throw ApiError(ErrorCode::INVALID_REQUEST, "'target_value' must be a non-negative number" + std::string(std::string(what.metric) == "runq_latency_p99_us" ? " of microseconds or a duration (\"5ms\")" : " (percent)"),
                   "got " + value.dump(), {"target_value"});
}

json tunable_list() {
    json list = json::array();
    for (const auto& m : lifecycle::Tuner::metrics())
        list.push_back({{"component", m.component}, {"metric", m.metric}, {"measured_by", m.measured_by}, {"knob", m.knob}});
    return list;
}

SuccessBody tune(const Call& call) {
    Context& ctx = call.ctx;
    const std::string component = param_string(call.params(), "component");
    const std::string metric = param_string(call.params(), "metric");
    SuccessBody body;
    if (component.empty()) { // the loops running now
        body.result = {{"loops", ctx.tuner.to_json()}, {"tunable", tunable_list()}};
        return body;
    }
    const lifecycle::TunableMetric* what = lifecycle::Tuner::find_metric(component, metric);
    if (!what) {
        std::string can;
        for (const auto& m : lifecycle::Tuner::metrics()) can += (can.empty() ? "" : ", ") + std::string(m.component) + "/" + m.metric;
        throw ApiError(ErrorCode::UNSUPPORTED, "resmgrd cannot measure '" + component + (metric.empty() ? "" : "/" + metric) + "' to tune it",
                       "it can tune: " + can + (component == "agent_pool" ? "; the slot wait is measured (status agents: agent_starts.slot_wait, p95 over the newest starts), "
                                                                  "but no knob of one allocation moves it: slots are its size (reallocate agents)" : ""),
                       {"component", "metric"});
    }
    const std::string id = param_string(call.params(), "allocation_id");
    if (id.empty()) throw ApiError(ErrorCode::INVALID_REQUEST, "'allocation_id' is required: tune acts on one allocation's own knob", "", {"allocation_id"});
    const Allocation& a = ctx.ledger().authorize(id, call.peer);
    if (!call.param("auto_adjust").get<bool>()) {
        const int stopped = ctx.tuner.stop(component, id);
        body.result = {{"stopped", stopped}, {"component", component}, {"allocation_id", id}};
        body.resources_affected = stopped;
        return body;
    }
    if (!core::holds_capacity(a)) throw ApiError(ErrorCode::INVALID_REQUEST, "Allocation '" + id + "' is " + to_string(a.status) + "; only a running one can be tuned");
    if (std::string(what->component) == "memory" && a.resources.memory_bytes == 0)
        throw ApiError(ErrorCode::INVALID_REQUEST, "Allocation '" + id + "' has no memory limit, so there is no memory.high to move", "", {"allocation_id"});
    if (!call.params().contains("target_value")) throw ApiError(ErrorCode::INVALID_REQUEST, "'target_value' is required", "", {"target_value"});
    const double target = tune_target(call.params()["target_value"], *what);
    const auto& loop = ctx.tuner.start(*what, id, target, ctx.clock(), call.peer.uid);
    body.result = lifecycle::Tuner::loop_json(loop);
    body.recommendations.push_back("The loop steps once per sampling pass; its progress is in `resmgr tune` and `resmgr status`; stop it with \"auto_adjust\": false");
    return body;
}

// A node series over [since, now): its 5-minute buckets, then the raw samples after the last
// complete bucket. Raw samples alone would be exact but are one row per pass for every series,
// read across all of them (the table is ordered by time so that writing a pass is an append).
json series_summary(const history::HistoryStore& store, const std::string& name, std::int64_t since, std::int64_t now) {
    auto buckets = store.series(name, history::Resolution::five_minutes, since, now + 1);
    const std::int64_t raw_from = buckets.empty() ? since : std::max(since, buckets.back().ts + 300);
    for (const auto& b : store.series(name, history::Resolution::raw, raw_from, now + 1)) buckets.push_back(b);
    if (buckets.empty()) return {{"samples", 0}, {"mean", nullptr}, {"p95", nullptr}, {"max", nullptr}};
    std::int64_t n = 0;
    double sum = 0, max = buckets.front().max;
    std::vector<double> p95s;
    for (const auto& b : buckets) {
        n += b.count;
        sum += b.mean * static_cast<double>(b.count);
        max = std::max(max, b.max);
        p95s.push_back(b.p95);
    }
    std::sort(p95s.begin(), p95s.end());
    const double p95 = p95s[std::min(p95s.size() - 1, static_cast<std::size_t>(std::ceil(0.95 * static_cast<double>(p95s.size()))) - 1)];
    return {{"samples", n}, {"mean", round3(sum / static_cast<double>(n))}, {"p95", round3(p95)}, {"max", round3(max)},
            {"resolution", "5-minute buckets, then the raw samples since the last one (p95: of the buckets' p95 and the samples)"}};
}

SuccessBody analyze_utilization(const Call& call) {
    Context& ctx = call.ctx;
    const auto& store = ctx.require_history();
    const Millis period = call.duration_param("time_period");
    const std::int64_t now = epoch_seconds(ctx.clock());
    const std::int64_t since = now - std::chrono::duration_cast<std::chrono::seconds>(period).count();

    json node = json::object();
    for (const char* series : {"cpu_percent", "memory_percent", "cpu_pressure_some_avg10", "memory_pressure_some_avg10", "io_pressure_some_avg10"})
        node[series] = series_summary(store, std::string("node/") + series, since, now);

    history::RunQuery q;
    if (call.peer.uid != 0) q.owner_uid = call.peer.uid;
    q.since = since;
    q.limit = 100000;
    std::map<std::string, std::vector<analytics::RunRecord>> by_type;
    for (auto& r : store.runs(q)) by_type[r.workflow_type.empty() ? "workflow:" + r.workflow_id : r.workflow_type].push_back(std::move(r));

    json workflows = json::object(), opportunities = json::array();
    std::size_t oom_runs = 0;
    double throttled = 0, wall = 0;
    const bool suggest = call.param("include_optimization_suggestions").get<bool>();
    for (const auto& [type, runs] : by_type) {
        double cpu_used = 0, cpu_given = 0, mem_peak = 0, mem_given = 0;
        std::size_t ooms = 0, failed = 0;
        for (const auto& r : runs) {
            if (r.cpu_seconds && r.requested_cpu_cores > 0) {
                cpu_used += *r.cpu_seconds;
                cpu_given += r.requested_cpu_cores * r.duration_seconds();
            }
            if (r.memory_peak_bytes && r.requested_memory_bytes > 0) {
                mem_peak += static_cast<double>(*r.memory_peak_bytes);
                mem_given += static_cast<double>(r.requested_memory_bytes);
            }
            ooms += r.outcome == analytics::RunOutcome::oom_killed;
            failed += r.outcome == analytics::RunOutcome::failed;
            throttled += r.throttled_seconds.value_or(0);
            wall += r.duration_seconds();
        }
        oom_runs += ooms;
        workflows[type] = {{"runs", runs.size()}, {"oom_killed", ooms}, {"failed", failed},
                           {"cpu_efficiency", cpu_given > 0 ? json(round3(cpu_used / cpu_given)) : json(nullptr)},
                           {"memory_efficiency", mem_given > 0 ? json(round3(mem_peak / mem_given)) : json(nullptr)}};
        if (!suggest) continue;
        const auto s = analytics::recommend_size(runs, now);
        if (!s.memory_bytes && !s.cpu_cores) continue;
        json o{{"workflow_type", type}, {"recommended", {{"cpu_cores", or_null(s.cpu_cores)}, {"memory_bytes", or_null(s.memory_bytes)}}},
               {"confidence", sizing_json(s)}};
        if (ooms > 0) o["message"] = std::to_string(ooms) + " run(s) OOM-killed: raise memory to the recommendation";
        else if (mem_given > 0 && s.memory_bytes && mem_peak / mem_given < 0.6) o["message"] = "memory asked for is mostly unused: size to the recommendation";
        else o["message"] = "size new runs with \"resources\": \"auto\" or resmgr optimize";
        opportunities.push_back(std::move(o));
    }

    // The period's bottleneck, by the first rule that holds (most harmful first).
    auto p95 = [&](const char* s) { return node[s]["p95"].is_number() ? node[s]["p95"].get<double>() : 0.0; };
    json signals = json::array();
    if (oom_runs > 0) signals.push_back({{"bottleneck", "oom_kills"}, {"value", oom_runs}, {"rule", "any run OOM-killed"}});
    if (p95("memory_pressure_some_avg10") >= 10) signals.push_back({{"bottleneck", "memory_pressure"}, {"value", p95("memory_pressure_some_avg10")}, {"rule", "memory PSI some avg10 p95 >= 10 %"}});
    if (p95("cpu_percent") >= 90) signals.push_back({{"bottleneck", "cpu_saturation"}, {"value", p95("cpu_percent")}, {"rule", "node CPU p95 >= 90 %"}});
    if (p95("cpu_pressure_some_avg10") >= 20) signals.push_back({{"bottleneck", "cpu_pressure"}, {"value", p95("cpu_pressure_some_avg10")}, {"rule", "CPU PSI some avg10 p95 >= 20 %"}});
    if (p95("io_pressure_some_avg10") >= 10) signals.push_back({{"bottleneck", "io_pressure"}, {"value", p95("io_pressure_some_avg10")}, {"rule", "IO PSI some avg10 p95 >= 10 %"}});
    if (wall > 0 && throttled / wall >= 0.1) signals.push_back({{"bottleneck", "throttling"}, {"value", round3(throttled / wall)}, {"rule", "throttled time >= 10 % of run time"}});

    SuccessBody body;
    body.result = {{"time_period", format_duration(period)},
                   {"since", format_timestamp(TimePoint(std::chrono::seconds(since)))},
                   {"node", node},
                   {"workflows", workflows},
                   {"efficiency_method", "used / allocated: cpu seconds / (cpu cores asked x wall time); memory peak / memory asked; over the runs that measured both"},
                   {"bottleneck", signals.empty() ? json("none") : signals[0]["bottleneck"]},
                   {"signals", signals},
                   {"opportunities", opportunities}};
    if (node["cpu_percent"]["samples"] == 0) body.recommendations.push_back("No node samples in the period: the history starts when resmgrd first sampled");
    if (by_type.empty()) body.recommendations.push_back("No run ended in the period: run work under resmgr-run --type NAME to record runs");
    return body;
}

} // namespace

SizedFromHistory size_from_history(const history::HistoryStore& store, std::uint32_t owner, const std::string& workflow_type,
                                   const std::string& workflow_id, TimePoint now, const analytics::SizingOptions& options) {
    // Owner-scoped, so no user can shape another's sizes by recording runs under the same type.
    history::RunQuery q;
    q.owner_uid = owner;
    q.limit = options.max_runs;
    SizedFromHistory out;
    if (!workflow_type.empty()) {
        q.workflow_type = workflow_type;
        out.basis = "workflow_type " + workflow_type;
    } else {
        q.workflow_id = workflow_id;
        out.basis = "workflow " + workflow_id;
    }
    out.runs = store.runs(q);
    out.sizing = analytics::recommend_size(out.runs, epoch_seconds(now), options);
    return out;
}

json sizing_json(const analytics::Sizing& s) {
    return {{"method", analytics::kSizingMethod},
            {"runs", {{"cpu", s.cpu_runs}, {"memory", s.memory_runs}, {"needed", s.runs_needed}}},
            {"backtest", {{"runs_replayed", s.backtested}, {"coverage", share_or_null(s.coverage)}, {"oom_risk", share_or_null(s.oom_risk)}}}};
}

void register_analytics_operations(Router& router) {
    router.add("optimize", "", optimize);
    router.add("analyze-utilization", "", analyze_utilization);
    router.add("scale", "", scale);
    router.add("balance", "", balance);
    router.add("tune", "", tune);
}

} // namespace resmgr::server
