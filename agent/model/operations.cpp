#include "resmgr/operations.hpp"

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string_view>

#include "resmgr/protocol.hpp"

namespace resmgr {

using nlohmann::json;

namespace {

using T = ParamType;

// allocate's fields, also taken by reserve (the model's parse_allocation_request reads them).
std::vector<ParamSpec> allocation_fields(bool workflow_required, bool auto_resources = false) {
    return {{"workflow_id", T::string, workflow_required, {}, {}, "the workflow the allocation belongs to"},
            {"workflow_type", T::string, false, {}, {}, "the kind of work (build, test, ...): its runs size each other"},
            {"requester", T::string, false, {}, {}, "who asks, for the record"},
            {"priority", T::any, false, {}, {}, "critical|high|medium|low or 0-100"},
            {"resources", auto_resources ? T::any : T::object, true, {}, {},
             auto_resources ? "cpu_cores, memory_gb or memory, agents, pids, tool_instances, storage_gb; or \"auto\": sized from the runs of its workflow_type"
                            : "cpu_cores, memory_gb or memory, agents, pids, tool_instances, storage_gb"},
            {"duration", T::any, false, {}, {}, "how long, e.g. \"2h\"; default the policy's max_duration"},
            {"exclusive_files", T::array, false, {}, {}, "files no other workflow may open for writing meanwhile"},
            {"file_scope", T::string, false, {}, {}, "local (default) or cluster: the exclusive files are claimed across every node (resmgrd --cluster)"},
            {"constraints", T::object, false, {}, {}, "max_duration, exclusive_access, conflict_avoidance"},
            {"performance_requirements", T::object, false, {}, {}, "min_response_time, max_memory_per_agent, storage_iops"},
            {"auto_release", T::object, false, {}, {}, "on_completion, on_timeout, on_failure, grace_period"},
            {"wait", T::boolean, false, {}, {}, "queue when the node is full, or a cluster-scoped file is held by another node, instead of refusing"},
            {"supervised", T::boolean, false, {}, {}, "made by resmgr-run for its own command"},
            {"attach", T::object, false, {}, {}, "{\"pid\": N, \"leaf\"|\"agent\": ...}: put that process in the group as it is made; "
                                                  "{\"spawn\": true}: make the leaf \"main\" and answer its directory as spawn_into, "
                                                  "for the caller to start its process in (clone3 CLONE_INTO_CGROUP)"}};
}

std::vector<ParamSpec> without(std::vector<ParamSpec> base, std::initializer_list<std::string_view> names) {
    std::erase_if(base, [&](const ParamSpec& p) { return std::find(names.begin(), names.end(), p.name) != names.end(); });
    return base;
}

std::vector<ParamSpec> with(std::vector<ParamSpec> base, std::initializer_list<ParamSpec> more) {
    base.insert(base.end(), more.begin(), more.end());
    return base;
}

std::vector<OperationSpec> make_catalog() {
    std::vector<OperationSpec> ops;
    auto add = [&](OperationSpec op) { ops.push_back(std::move(op)); };
    add({"allocate", "", true, true, false, Caller::anyone,
         with(allocation_fields(true, true), {{"booking", T::string, false, {}, {}, "a booking resmgr cluster place answered for this node: "
                                                                                     "admits into the room it holds"}}),
         false,
         "'{\"workflow_id\":\"wf\",\"priority\":\"high\",\"resources\":{\"cpu_cores\":2,\"memory_gb\":4}}'",
         "Admit an allocation and create its cgroup. resources: cpu_cores (fractional), memory_gb (GiB, or a\n"
         "size such as \"512M\"), agents, pids, tool_instances; also duration, exclusive_files, constraints,\n"
         "auto_release. \"wait\": true queues it when the node is full (started in priority, then arrival order).\n"
         "\"resources\": \"auto\" sizes it from the recorded runs of its workflow_type (resmgr optimize's method)."});
    add({"reserve", "", true, true, false, Caller::anyone,
         with(allocation_fields(false), {{"reservation_id", T::string, false, {}, {}, "letters, digits and _ (at most 64)"},
                                         {"start_time", T::string, true, {}, {}, "RFC 3339, e.g. 2027-01-15T15:00:00Z"}}),
         false, "'{\"reservation_id\":\"res_1\",\"start_time\":\"2027-01-15T15:00:00Z\",\"duration\":\"2h\",\"resources\":{...}}'",
         "Book capacity for a future window; at start_time it becomes an active allocation."});
    add({"release", "", true, true, false, Caller::anyone,
         {{"allocation_id", T::string, true},
          {"force", T::boolean, false, {}, {}, "release even when the cgroup cannot be removed", false},
          {"cleanup", T::any, false, {}, {}, "accepted for the seed's shape"},
          {"exit_status", T::integer, false, {}, {}, "the wrapped command's exit status (resmgr-run reports it)"}},
         false, "'{\"allocation_id\":\"alloc_...\",\"force\":false}'", "Kill what runs in it, remove its cgroup."});
    add({"reallocate", "", true, true, false, Caller::anyone,
         {{"allocation_id", T::string, true}, {"resources", T::object, true, {}, {}, "the fields to change; the rest keep their value"}},
         false, "'{\"allocation_id\":\"alloc_...\",\"resources\":{\"cpu_cores\":4}}'", "Change limits live."});
    add({"status", "", true, true, false, Caller::anyone,
         {{"allocation_id", T::string},
          {"workflow_id", T::string},
          {"limit", T::integer, false, 1, 100000, "at most this many allocations (a page), in id order"},
          {"after", T::string, false, {}, {}, "the page after this allocation id (the previous page's next_after)"}},
         false, "['{\"allocation_id\":\"...\"}' | '{\"workflow_id\":\"...\"}' | '{\"limit\":100,\"after\":\"alloc_...\"}']",
         "Allocations, limits, capacity. With limit, one page in id order; next_after names where the next starts."});
    add({"status", "conflicts", false, true, false, Caller::anyone, {{"all", T::boolean, false, {}, {}, "resolved ones too"}}, false,
         "['{\"all\":true}']",
         "Conflicts recorded (conf_... ids): opens the file guard refused or held, held files renamed\n"
         "over or unlinked, allocations refused a held file; and the openers waiting now."});
    add({"status", "pressure", false, true, false, Caller::anyone, {}, false, "",
         "The pressure responder (policy pressure_response): its mode, which signal source runs (PSI\n"
         "trigger or avg10 polling), each signal's value and raised state, and the steps held: what is\n"
         "held back (memory.high, cpu.weight, cpu.max, a freeze) from which allocation, since when, and\n"
         "whether this host enforces it."});
    add({"status", "*", false, true, false, Caller::anyone,
         {{"include_performance", T::any}, {"time_range", T::any}, {"group_by", T::any}}, false, "agents|workflows|cpu|memory|storage",
         "The agent pool, workflows, or one resource, measured."});
    add({"check-conflicts", "", true, true, false, Caller::anyone,
         {{"proposed_allocation", T::object, true, {}, {}, "an allocate request; \"files\" names the exclusive files"},
          {"check_future", T::boolean, false, {}, {}, "also reservations within time_horizon"},
          {"time_horizon", T::duration, false, {}, {}, "how far ahead check_future looks", "4h"}},
         false, "'{\"proposed_allocation\":{\"workflow_id\":\"w\",\"resources\":{...},\"files\":[...]},\"check_future\":true}'",
         "Resource, time, workflow and file conflicts a request would meet (pred_... ids, not recorded)."});
    add({"resolve-conflicts", "", true, true, false, Caller::anyone,
         {{"conflict_id", T::string, true},
          {"strategy", T::string, true, {}, {}, "priority_based|queue_and_serialize|release"},
          {"notify_affected", T::boolean, false, {}, {}, "publish the outcome to each affected workflow", true}},
         false, "'{\"conflict_id\":\"conf_...\",\"strategy\":\"priority_based|queue_and_serialize|release\"}'",
         "priority_based: a higher-priority claimant allocation takes the file; queue_and_serialize:\n"
         "outside writers wait for the holder; release: the holder lets go of the file."});
    add({"prevent-conflicts", "", true, true, false, Caller::anyone,
         {{"file_conflicts", T::object, false, {}, {}, "strategy, timeout, enforcement, exceptions (root)"},
          {"pending_requests", T::array, false, {}, {}, "allocation requests to check before they are made"},
          {"prediction_horizon", T::duration, false, {}, {}, "how far ahead pending requests are checked", "1h"},
          {"policy_type", T::string}, {"scope", T::string}, {"enforcement", T::string}, {"exceptions", T::any},
          {"risk_threshold", T::string, false, {}, {}, "low|medium|high"},
          {"auto_mitigation", T::boolean}, {"notification_enabled", T::boolean}},
         false, "['{\"file_conflicts\":{\"enforcement\":\"strict|exclusive_writes|advisory\"},\"pending_requests\":[{...}]}']",
         "Set how held files are enforced (root), and check pending requests for conflicts before they\n"
         "are made. The seed's form works too: {\"policy_type\":\"file_locking\",\"scope\":\"global\",...}."});
    add({"monitor", "", true, true, false, Caller::anyone, {{"include_trends", T::any}, {"detail_level", T::any}, {"export_format", T::any}},
         false, "system", "The node as measured: CPU/memory/storage use, PSI pressure, agent pool, workflows, tool\n"
                          "instances, threshold states."});
    add({"usage", "", true, true, false, Caller::anyone,
         {{"workflow_id", T::string}, {"breakdown_by_phase", T::any}, {"include_efficiency", T::any}, {"compare_baseline", T::any}}, false,
         "<workflow_id>", "Per allocation: allocated vs used CPU and memory, throttling, OOM events, IO, per-agent\n"
                          "breakdown, efficiency = used / allocated; and the workflow's recently ended allocations."});
    add({"capacity", "", true, true, false, Caller::anyone, {}, false, "",
         "Node capacity, what is allocatable, allocated and free, and peaks since resmgrd started."});
    add({"why", "", false, true, false, Caller::anyone, {{"path", T::string, true, {}, {}, "absolute; resmgr resolves it for you"}}, false,
         "PATH", "Who holds PATH exclusively and since when, what a process outside the holder meets when it\n"
                 "opens it, who waits for it now, and its conflict records."});
    add({"doctor", "", false, true, false, Caller::anyone, {}, false, "",
         "What this host enforces, what it does not and how to get it."});
    add({"cluster", "status", false, true, false, Caller::anyone, {}, false, "",
         "Every node registered in this node's etcd (resmgrd --cluster): live ones (their lease held) and\n"
         "gone ones (lease expired or shut down, with when they were last seen), each with its capacity,\n"
         "allocated and free CPU, memory and agents, and pressure; whether etcd answers, and this node's lease."});
    add({"cluster", "place", false, true, false, Caller::anyone,
         with(without(allocation_fields(true), {"wait", "supervised", "attach"}), {{"timeout", T::duration, false, {}, {}, "how long the booking holds the room (2s-10m)", "30s"},
                                        {"dry_run", T::boolean, false, {}, {}, "answer the node without booking it"}}),
         false, "'{\"workflow_id\":\"wf\",\"priority\":\"high\",\"resources\":{\"cpu_cores\":2,\"memory_gb\":4}}'",
         "Which node of the cluster has room for an allocation: best fit over every live node's published free\n"
         "room, less the bookings it holds and, over the request's duration, its reservations; nodes under\n"
         "pressure take only high or critical priority. The room is booked in etcd (a transaction: two placers\n"
         "never book it twice) until the allocation is made there with \"booking\", or the timeout passes."});
    add({"events", "", false, true, false, Caller::anyone,
         {{"types", T::array, false, {}, {}, "event names"}, {"limit", T::integer, false, 1, {}, "the newest N"}}, false,
         "[--follow] [--type T ...]", "Recent events (allocated, released, expired, denied, queued, preempted, resumed, conflict,\nthreshold, threshold_cleared, oom_kill, resized, pressure, pressure_relieved, leak, performance_degraded);\n--follow streams them live until interrupted."});
    add({"subscribe", "", false, true, true, Caller::anyone, {{"types", T::array, false, {}, {}, "event names"}}, false, "",
         "Turn this connection into an event stream (what `resmgr events --follow` uses)."});
    add({"attach", "", false, true, false, Caller::anyone,
         {{"allocation_id", T::string, true}, {"pid", T::integer, true, 1}, {"leaf", T::string}, {"agent", T::string},
          {"wait_slot", T::duration, false, {}, {}, "an agent without a free slot: wait up to this long (ask again while \"queued\"); "
                                                    "default: refuse at once"},
          {"wait_held", T::duration, false, {}, {}, "without wait_slot: wait up to this long while the pressure responder holds "
                                                    "agent starts (resmgr-run sends 5m); default: refuse at once"}},
         false, "'{\"allocation_id\":\"...\",\"pid\":N}'",
         "Put a process (the caller or its own child) into a running allocation; an agent takes a slot, or waits for one\n"
         "with wait_slot (answered \"queued\" with its position: ask again until it starts)."});
    add({"detach", "", false, true, false, Caller::anyone,
         {{"allocation_id", T::string, true}, {"agent", T::string, true}, {"exit_status", T::integer, false, 0, 255}}, false,
         "'{\"allocation_id\":\"...\",\"agent\":\"NAME\",\"exit_status\":0}'", "Report that an agent of an allocation exited."});
    add({"history", "export", false, true, false, Caller::anyone,
         {{"since", T::string, false, {}, {}, "RFC 3339 time or a duration back from now (\"24h\")", "48h"},
          {"format", T::string, false, {}, {}, "json or csv", "json"}},
         false, "[--since T] [--csv]",
         "The raw samples of the node and its allocations kept in monitoring/history.db (48 h), oldest\n"
         "first: series,timestamp,value with --csv."});
    add({"history", "recent", false, true, false, Caller::anyone,
         {{"series", T::array, true, {}, {}, "series names as history export names them, e.g. node/cpu_percent, alloc/ID/memory_bytes"},
          {"since", T::duration, false, {}, {}, "how far back from now", "1h"},
          {"points", T::integer, false, 1, 1000, "values per series: the period cut into this many equal slots", 60}},
         false, "'{\"series\":[\"node/cpu_percent\"],\"since\":\"1h\",\"points\":60}'",
         "Recent samples of a few series, each slot the mean of the raw samples in it (null: none), and how\n"
         "many samples there are: what `resmgr status`, `usage` and `capacity` draw sparklines from."});
    add({"history", "import", false, true, false, Caller::root,
         {{"csv_file", T::string, true, {}, {}, "absolute path of a timestamp,value CSV, read by resmgrd"},
          {"metric", T::string, true, {}, {}, "the series it becomes, e.g. node/cpu_percent"}},
         false, "--csv FILE --metric NAME",
         "Seed this node's history from another monitor's export (root). timestamp,value first on each\n"
         "row (more columns ignored); timestamps in ISO 8601 or seconds since the epoch; one bad row\n"
         "refuses the file, naming its line, and imports nothing."});
    add({"optimize", "", true, true, false, Caller::anyone,
         {{"target", T::string, false, {}, {}, "efficiency or performance", "efficiency"},
          {"constraints", T::any, false, {}, {}, "accepted for the seed's shape"},
          {"dry_run", T::boolean, false, {}, {}, "only say what would change", true},
          {"apply_immediately", T::boolean, false, {}, {}, "with dry_run false: reallocate live", false},
          {"optimization_horizon", T::duration, false, {}, {}, "accepted for the seed's shape"},
          {"use_predictive_algorithms", T::any, false, {}, {}, "accepted for the seed's shape"},
          {"allocation_id", T::string, false, {}, {}, "only this allocation"}},
         false, "'{\"target\":\"efficiency\",\"dry_run\":true}'",
         "Per running allocation (yours; root: all): its size against what the recorded runs of its\n"
         "workflow type (else its workflow) used, the recommended size, slack before and after and the\n"
         "OOM risk, each measured by a back-test over the runs. dry_run false + apply_immediately true\n"
         "resizes the allocations live (cgroup limits change in place)."});
    add({"tune", "", true, true, false, Caller::anyone,
         {{"component", T::string, false, {}, {}, "cpu or memory (none: list the loops running now)"},
          {"metric", T::string, false, {}, {}, "runq_latency_p99_us (cpu) or memory_pressure (memory)"},
          {"allocation_id", T::string, false, {}, {}, "the allocation whose knob the loop moves (yours; root: any)"},
          {"target_value", T::any, false, {}, {}, "keep the metric at or below this: microseconds (or \"5ms\") or percent"},
          {"auto_adjust", T::boolean, false, {}, {}, "false: stop the loop and put the knob back", true},
          {"use_adaptive_algorithms", T::any, false, {}, {}, "accepted for the seed's shape"},
          {"feedback_learning", T::any, false, {}, {}, "accepted for the seed's shape"}},
         false, "'{\"component\":\"memory\",\"metric\":\"memory_pressure\",\"allocation_id\":\"...\",\"target_value\":5}'",
         "A feedback loop on a metric resmgrd measures: each sampling pass it moves one knob of the allocation\n"
         "(cpu.weight for its run-queue wait p99, memory.high for its memory pressure) one step until the metric\n"
         "holds at or below the target or the knob's bound is reached. Without arguments: the loops running now."});
    add({"balance", "", true, true, false, Caller::anyone,
         {{"scope", T::string, false, {}, {}, "active_workflows (the only one)"},
          {"strategy", T::string, false, {}, {}, "priority_weighted or even", "priority_weighted"},
          {"dry_run", T::boolean, false, {}, {}, "only show the plan", true},
          {"enabled", T::boolean, false, {}, {}, "false: stop balancing and give every loan back", true},
          {"consider_specialization", T::any, false, {}, {}, "accepted for the seed's shape"},
          {"use_pooling_optimization", T::any, false, {}, {}, "accepted for the seed's shape"},
          {"conflict_prevention", T::any, false, {}, {}, "accepted for the seed's shape"}},
         false, "'{\"scope\":\"active_workflows\",\"dry_run\":false}'",
         "Lend the CPU that running allocations leave idle to those held back by their cpu.max, by priority\n"
         "(root; a dry run shows anyone the plan). Re-planned every sampling pass: a lender that needs its CPU\n"
         "gets it back within one pass; {\"enabled\": false} gives every loan back. Sizes in the ledger never change."});
    add({"scale", "", true, true, false, Caller::anyone,
         {{"allocation_id", T::string, false, {}, {}, "the allocation (or workflow_id: all of yours in it)"},
          {"workflow_id", T::string, false, {}, {}, "every running allocation of yours in this workflow"},
          {"direction", T::string, true, {}, {}, "up, down or auto"},
          {"resource", T::string, false, {}, {}, "cpu, memory or all", "all"},
          {"factor", T::number, false, {}, {}, "up multiplies, down divides by it; above 1 up to 16", 1.5},
          {"dry_run", T::boolean, false, {}, {}, "only say what would change", false}},
         false, "'{\"allocation_id\":\"...\",\"direction\":\"up\"}'",
         "Grow or shrink a running allocation (or all of yours in a workflow) in place: up by a factor up to\n"
         "what the node has free, down never below what the group uses now, auto to the size its recorded\n"
         "runs call for. The cgroup limits change live; nothing restarts."});
    add({"analyze-utilization", "", true, true, false, Caller::anyone,
         {{"time_period", T::duration, false, {}, {}, "the period analysed, back from now", "24h"},
          {"analysis_type", T::string, false, {}, {}, "accepted for the seed's shape (comprehensive)"},
          {"include_optimization_suggestions", T::boolean, false, {}, {}, "list right-sizing opportunities", true},
          {"generate_efficiency_report", T::any, false, {}, {}, "accepted for the seed's shape"}},
         false, "'{\"time_period\":\"24h\"}'",
         "Over the period, from the history: the node's CPU, memory and pressure (mean, p95, max), each\n"
         "workflow type's efficiency (used / allocated) from its runs, the period's bottleneck, and\n"
         "right-sizing opportunities."});
    add({"predict", "", true, true, false, Caller::anyone,
         {{"workflow_type", T::string, true, {}, {}, "the kind of work whose next run is predicted (your runs; root: everyone's)"},
          {"time_horizon", T::duration, false, {}, {}, "default 1h: how many runs of the type are expected within it"},
          {"confidence_level", T::number, false, {}, {}, "level of the intervals, 0.5-0.99 (default 0.95)"},
          {"include_risk_analysis", T::boolean, false, {}, {}, "OOM history, failures, growing usage, queueing (default true)"}},
         false, "'{\"workflow_type\":\"build\",\"time_horizon\":\"1h\",\"confidence_level\":0.9}'",
         "The next run of a workflow type from its recorded runs: CPU cores, memory peak and duration with\n"
         "distribution-free intervals (the level stated is the one the number of runs can give), a back-test on\n"
         "its own earlier runs against \"same as the last run\", and risk factors."});
    add({"forecast", "", true, true, false, Caller::anyone,
         {{"metric", T::string, false, {}, {}, "cpu_usage (default), memory_usage, agents, allocations, or a series the history holds"},
          {"period", T::string, false, {}, {}, "next_hour, next_day (default), next_week or a duration up to 7d"},
          {"confidence_interval", T::number, false, {}, {}, "level of the intervals, 0.5-0.99 (default 0.95)"},
          {"include_peaks", T::boolean, false, {}, {}, "the highest forecast points with their times (default true)"},
          {"threshold", T::number, false, {}, {}, "when the forecast first reaches it, and how often such a call held in the back-test"},
          {"history_points", T::integer, false, 0, 4032, "also return the last N 5-minute means the forecast starts from, in history.recent (for charts)"}},
         false, "'{\"metric\":\"cpu_usage\",\"period\":\"next_week\",\"confidence_interval\":0.95}'",
         "The metric's next hours or week from its 5-minute history: points with lower/upper bounds, the peaks, the\n"
         "model chosen by a rolling-origin back-test on this node's own history, and that back-test's accuracy\n"
         "(MASE, interval coverage, folds). With too little history it says how much there is and how much is needed."});
    add({"analyze-trends", "", true, true, false, Caller::anyone,
         {{"timeframe", T::string, false, {}, {}, "N_hours, N_days (default 30_days), N_weeks, N_months or a duration"},
          {"metrics", T::array, false, {}, {}, "cpu, memory, agents (default all three), or series names"},
          {"detect_anomalies", T::boolean, false, {}, {}, "default true"},
          {"history_points", T::integer, false, 0, 17520, "also return each metric's last N hourly means, in history.recent (for charts)"},
          {"export_charts", T::any, false, {}, {}, "accepted for the seed's shape"}},
         false, "'{\"timeframe\":\"30_days\",\"metrics\":[\"cpu\",\"memory\"],\"detect_anomalies\":true}'",
         "Per metric over the timeframe: the Theil-Sen trend (per day and week, its interval, growth %), the\n"
         "strength of the daily and weekly seasons, the busiest hour and weekday, the highest hours, and the\n"
         "anomalies found causally with their times and scores."});
    add({"plan-capacity", "", true, true, false, Caller::anyone,
         {{"time_horizon", T::string, false, {}, {}, "N_days, N_weeks, N_months (default 3_months) or a duration"},
          {"growth_assumptions", T::object, false, {}, {}, "{\"workflow_increase\": percent more work over the horizon}"},
          {"include_recommendations", T::boolean, false, {}, {}, "default true"},
          {"history_points", T::integer, false, 0, 730, "also return each resource's last N daily peaks, in daily_peaks.recent (for charts)"},
          {"cost_analysis", T::any, false, {}, {}, "accepted for the seed's shape"}},
         false, "'{\"time_horizon\":\"3_months\",\"growth_assumptions\":{\"workflow_increase\":25}}'",
         "The seed's capacity_plan from the trend of the daily peaks of CPU, memory and live agents: peaks and\n"
         "averages, projected needs next month and quarter, days to the alert threshold and to exhaustion with\n"
         "their interval, and dated recommendations for what crosses its threshold within the horizon."});
    return ops;
}

std::string describe_type(const ParamSpec& p) {
    switch (p.type) {
    case T::string: return "a non-empty string";
    case T::boolean: return "true or false";
    case T::integer:
        if (p.min && p.max) return "a whole number " + std::to_string(*p.min) + ".." + std::to_string(*p.max);
        if (p.min) return "a whole number >= " + std::to_string(*p.min);
        return "a whole number";
    case T::number: return "a number";
    case T::object: return "an object";
    case T::array: return "a list";
    case T::duration: return "a duration such as \"4h\"";
    case T::any: return "any value";
    }
    return "?";
}

bool fits(const ParamSpec& p, const json& v) {
    switch (p.type) {
    case T::string: return v.is_string() && !v.get_ref<const std::string&>().empty();
    case T::boolean: return v.is_boolean();
    case T::integer: {
        if (!v.is_number_integer()) return false;
        // Unsigned values above LLONG_MAX are out of every range we declare.
        if (v.is_number_unsigned() && v.get<unsigned long long>() > static_cast<unsigned long long>(LLONG_MAX)) return false;
        const long long n = v.get<long long>();
        return (!p.min || n >= *p.min) && (!p.max || n <= *p.max);
    }
    case T::number: return v.is_number();
    case T::object: return v.is_object();
    case T::array: return v.is_array();
    case T::duration: return v.is_string() && parse_duration(v.get<std::string>()).has_value();
    case T::any: return true;
    }
    return false;
}

} // namespace

const std::vector<OperationSpec>& operation_catalog() {
    static const std::vector<OperationSpec> catalog = make_catalog();
    return catalog;
}

const OperationSpec* find_operation(const std::string& name, const std::string& resource_type) {
    const OperationSpec *exact = nullptr, *any = nullptr, *plain = nullptr;
    for (const auto& op : operation_catalog()) {
        if (op.name != name) continue;
        if (op.resource_type == resource_type) exact = &op;
        else if (op.resource_type == "*") any = &op;
        else if (op.resource_type.empty()) plain = &op;
    }
    // An operation without typed rows (monitor system, usage WF) takes its resource type as an argument.
    return exact ? exact : any ? any : plain;
}

std::vector<std::string> operation_names() {
    std::vector<std::string> names;
    for (const auto& op : operation_catalog())
        if (std::find(names.begin(), names.end(), op.name) == names.end()) names.push_back(op.name);
    return names;
}

std::vector<std::string> seed_operations() {
    std::vector<std::string> names;
    for (const auto& op : operation_catalog())
        if (op.seed && std::find(names.begin(), names.end(), op.name) == names.end()) names.push_back(op.name);
    return names;
}

std::vector<std::string> built_operation_names() {
    std::vector<std::string> names;
    for (const auto& op : operation_catalog())
        if (op.built && !op.by_socket && std::find(names.begin(), names.end(), op.name) == names.end()) names.push_back(op.name);
    return names;
}

void check_params(const json& params, std::span<const ParamSpec> spec) {
    if (!params.is_object()) throw ApiError(ErrorCode::INVALID_REQUEST, "'params' must be an object", "got " + params.dump(), {"params"});
    for (const auto& [key, value] : params.items()) {
        auto p = std::find_if(spec.begin(), spec.end(), [&](const ParamSpec& s) { return key == s.name; });
        if (p == spec.end()) {
            std::string known;
            for (const auto& s : spec) known += (known.empty() ? "" : ", ") + std::string(s.name);
            throw ApiError(ErrorCode::INVALID_REQUEST, "unknown parameter '" + key + "'",
                           known.empty() ? "this operation takes no parameters" : "known parameters: " + known, {key});
        }
        if (!value.is_null() && !fits(*p, value))
            throw ApiError(ErrorCode::INVALID_REQUEST, "'" + key + "' must be " + describe_type(*p), "got " + value.dump(), {key});
    }
    for (const auto& p : spec) {
        auto it = params.find(p.name);
        if (p.required && (it == params.end() || it->is_null()))
            throw ApiError(ErrorCode::INVALID_REQUEST, std::string("missing required field '") + p.name + "'", {}, {p.name});
    }
}

std::string param_string(const json& params, const char* key) {
    auto it = params.find(key);
    return it != params.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool param_flag(const json& params, const char* key, bool absent) {
    auto it = params.find(key);
    return it != params.end() && it->is_boolean() ? it->get<bool>() : absent;
}

std::optional<long long> param_integer(const json& params, const char* key) {
    auto it = params.find(key);
    if (it == params.end() || !it->is_number_integer()) return std::nullopt;
    return it->get<long long>();
}

std::optional<Millis> param_duration(const json& params, const char* key) {
    auto it = params.find(key);
    if (it == params.end() || !it->is_string()) return std::nullopt;
    return parse_duration(it->get<std::string>());
}

const json& param_default(std::span<const ParamSpec> spec, const char* key) {
    auto p = std::find_if(spec.begin(), spec.end(), [&](const ParamSpec& s) { return std::string_view(key) == s.name; });
    if (p == spec.end() || p->fallback.is_null()) throw std::logic_error(std::string("no declared default for parameter '") + key + "'");
    return p->fallback;
}

const json& param_or_default(const json& params, std::span<const ParamSpec> spec, const char* key) {
    auto it = params.find(key);
    return it != params.end() && !it->is_null() ? *it : param_default(spec, key);
}

const char* to_string(ParamType type) {
    switch (type) {
    case T::string: return "string";
    case T::boolean: return "boolean";
    case T::integer: return "integer";
    case T::number: return "number";
    case T::object: return "object";
    case T::array: return "list";
    case T::duration: return "duration";
    case T::any: return "any";
    }
    return "?";
}

} // namespace resmgr
