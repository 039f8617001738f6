// The frame of `resmgr top`.
#include "cli/top_view.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "cli/figures.hpp"
#include "cli/json_read.hpp"
#include "cli/sparkline.hpp"
#include "cli/table.hpp"

namespace resmgr::cli {
namespace {

using nlohmann::json;

std::string lower(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

std::string state_of(const json& a) {
    const std::string status = text(at(a, "status"), "?");
    if (status == "active") {
        if (at(a, "idle_since").is_string()) return "idle";
        if (at(a, "degraded_from_cpu_cores").is_number()) return "degraded";
        return "running";
    }
    if (status == "queued") {
        if (auto p = count(at(a, "queue_position"))) return "queued #" + std::to_string(*p);
        return "queued";
    }
    return status;
}

// The usage entry of `allocation_id` in the `usage` answer of its workflow, or null.
const json& usage_of(const TopSnapshot& s, const std::string& workflow, const std::string& allocation_id) {
    static const json null_value;
    auto it = s.usage.find(workflow);
    if (it == s.usage.end()) return null_value;
    const json& list = at(it->second, "allocations");
    if (!list.is_array()) return null_value;
    for (const auto& u : list)
        if (text(at(u, "allocation_id")) == allocation_id) return u;
    return null_value;
}

TopRow row_of(const TopSnapshot& s, const json& a) {
    TopRow r;
    r.allocation_id = text(at(a, "allocation_id"), "?");
    r.workflow_id = text(at(a, "workflow_id"), "?");
    r.priority = text(at(a, "priority"), "?");
    r.priority_value = static_cast<int>(count(at(a, "priority_value")).value_or(0));
    r.state = state_of(a);
    const json& resources = at(a, "resources");
    r.cpu_allocated = number(at(resources, "cpu_cores")).value_or(0);
    r.memory_allocated = number(at(resources, "memory_bytes")).value_or(0);
    r.agents_allocated = static_cast<int>(count(at(resources, "agents")).value_or(0));
    // Processes in the group (cgroup.procs), from status; nothing to count without a group (accounting).
    if (const json& group = at(a, "cgroup_path"); group.is_string() && !group.get<std::string>().empty()) r.pids = count(at(a, "pids"));
    const json& u = usage_of(s, r.workflow_id, r.allocation_id);
    const json& used = at(u, "used");
    r.cpu_used = number(at(used, "cpu_cores"));
    r.memory_used = number(at(used, "memory_bytes"));
    if (auto p = count(at(used, "pids"))) r.pids = p; // pids.current, counting threads' processes too
    if (const json& agents = at(u, "agents"); agents.is_array()) {
        long long live = 0;
        for (const auto& agent : agents) live += text(at(agent, "state")) == "active" || text(at(agent, "state")) == "idle";
        r.agents_live = live;
    }
    const json& probes = at(u, "kernel_probes");
    // Tools are counted per group: an allocation never sampled (no group) has no count, not 0.
    if (const json& running = at(probes, "tool_instances_running"); running.is_object() && used.is_object()) {
        long long n = 0;
        for (const auto& [_, v] : running.items()) n += count(v).value_or(0);
        r.tools_running = n;
    }
    r.runq_p99_us = number(at(at(probes, "runq_latency"), "p99_us"));
    const json& throttling = at(u, "throttling");
    auto periods = number(at(throttling, "nr_periods")), throttled = number(at(throttling, "nr_throttled"));
    if (periods && throttled && *periods > 0) r.throttled_percent = *throttled / *periods * 100;
    else if (throttled) r.throttled_percent = 0;
    return r;
}

bool passes(const TopRow& r, const std::string& filter) {
    return filter.empty() || lower(r.workflow_id).find(lower(filter)) != std::string::npos;
}

double sort_value(const TopRow& r, SortKey key) {
    switch (key) {
    case SortKey::cpu: return r.cpu_used.value_or(-1);
    case SortKey::memory: return r.memory_used.value_or(-1);
    case SortKey::priority: return r.priority_value;
    }
    return 0;
}

// "used/allocated" with "max" for no cap.
std::string pair_text(const std::optional<double>& used, double allocated, std::string (*unit)(double), Charset charset) {
    return (used ? unit(*used) : unknown(charset)) + "/" + (allocated > 0 ? unit(allocated) : "max");
}

Colour load_colour(const std::optional<double>& used, double allocated) {
    if (!used || allocated <= 0) return Colour::none;
    if (*used > allocated) return Colour::red;
    return *used >= 0.9 * allocated ? Colour::yellow : Colour::none;
}

Colour state_colour(const std::string& state) {
    if (state == "paused" || state == "degraded") return Colour::yellow;
    if (state.rfind("queued", 0) == 0 || state == "idle" || state == "reserved") return Colour::dim;
    return Colour::none;
}

std::vector<Column> top_columns() {
    return {{"WORKFLOW", false, true, 8, 100},  {"ALLOCATION", false, true, 10, 1}, {"PRI", false, false, 4, 4},
            {"STATE", false, false, 4, 90},     {"CPU", true, false, 4, 80},        {"MEM", true, false, 4, 70},
            {"MEM USE", false, false, 4, 5},    {"PIDS", true, false, 4, 40},       {"AGENTS", true, false, 4, 30},
            {"TOOLS", true, false, 4, 20},      {"THR%", true, false, 4, 10},       {"RUNQ p99", true, false, 4, 15}};
}

constexpr std::size_t kBarWidth = 10;

std::vector<Cell> cells_of(const TopRow& r, Charset charset) {
    auto opt = [&](const std::optional<long long>& v) { return v ? std::to_string(*v) : unknown(charset); };
    std::string agents = r.agents_live ? std::to_string(*r.agents_live) : unknown(charset);
    if (r.agents_allocated > 0) agents += "/" + std::to_string(r.agents_allocated);
    std::string memory_bar = r.memory_used ? bar(*r.memory_used, r.memory_allocated, kBarWidth, charset) : "";
    if (memory_bar.empty()) memory_bar = r.memory_allocated > 0 ? unknown(charset) : "uncapped";
    return {{r.workflow_id},
            {r.allocation_id},
            {std::to_string(r.priority_value)},
            {r.state, state_colour(r.state)},
            {pair_text(r.cpu_used, r.cpu_allocated, cores, charset), load_colour(r.cpu_used, r.cpu_allocated)},
            {pair_text(r.memory_used, r.memory_allocated, bytes, charset), load_colour(r.memory_used, r.memory_allocated)},
            {memory_bar, load_colour(r.memory_used, r.memory_allocated)},
            {opt(r.pids)},
            {agents},
            {opt(r.tools_running)},
            {r.throttled_percent ? format("%.1f", *r.throttled_percent) : unknown(charset)},
            {r.runq_p99_us ? microseconds(*r.runq_p99_us) : unknown(charset)}};
}


// "CPU  ███░░░░░░░  37.5% used   1.5 of 2 allocated (0.5 reserved)"
std::string resource_line(const char* label, const json& part, const char* total_key, const char* allocated_key, const char* reserved_key,
                          const char* unit, Charset charset) {
    auto used = number(at(part, "utilization_percent"));
    std::string line = std::string(label) + " " + (used ? bar(*used, 100, kBarWidth, charset) : std::string(kBarWidth, ' ')) + " " +
                       pad_left(percent(at(part, "utilization_percent"), charset), 6, charset) + " used";
    auto total = number(at(part, total_key)), allocated = number(at(part, allocated_key)), reserved = number(at(part, reserved_key));
    if (total && allocated)
        line += "   " + cores(*allocated) + " of " + cores(*total) + unit + " allocated" +
                (reserved ? " (" + cores(*reserved) + unit + " reserved)" : "");
    return line;
}

std::string pressure_line(const json& monitor, const json& pool, Charset charset) {
    const json& pressure = at(monitor, "pressure");
    std::string line = "PSI some avg10";
    for (const char* resource : {"cpu", "memory", "io"})
        line += std::string("  ") + resource + " " + percent(at(at(at(pressure, resource), "some"), "avg10"), charset);
    if (pool.is_object()) {
        auto n = [&](const char* key) { return count(at(pool, key)) ? std::to_string(*count(at(pool, key))) : unknown(charset); };
        line += "   agents " + n("active_agents") + " active, " + n("idle_agents") + " idle, " + n("failed_agents") + " failed of " +
                n("max_agents");
    }
    return line;
}

// The thresholds raised now ("cpu 100.0 >= 80 (warning)"), or "none".
std::pair<std::string, bool> alerts_of(const json& monitor) {
    std::string out;
    const json& thresholds = at(monitor, "thresholds");
    if (!thresholds.is_object()) return {"", false};
    for (const auto& [name, t] : thresholds.items()) {
        if (at(t, "raised") != true) continue;
        out += (out.empty() ? "" : ", ") + name;
        if (auto v = number(at(t, "last_value"))) out += " " + format("%.1f", *v);
        if (auto th = number(at(t, "threshold"))) out += " >= " + format("%g", *th);
        if (auto sev = text(at(t, "severity")); !sev.empty()) out += " (" + sev + ")";
    }
    return {out.empty() ? "none" : out, !out.empty()};
}

// The names of what resmgrd could not measure ("memory.current" of "memory.current: cannot read ..."),
// from every usage answer, and the probes' status when they are not loaded.
std::string not_measured(const TopSnapshot& s) {
    std::set<std::string> names;
    for (const auto& [_, u] : s.usage) {
        if (const json& list = at(u, "not_measured"); list.is_array())
            for (const auto& why : list)
                if (why.is_string()) names.insert(why.get<std::string>().substr(0, why.get<std::string>().find(':')));
        if (const json& list = at(u, "allocations"); list.is_array())
            for (const auto& a : list)
                if (at(a, "used").is_object() && at(a, "throttling").is_null()) names.insert("throttling (no nr_throttled in cpu.stat)");
    }
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    if (const json& ebpf = at(s.monitor, "ebpf"); ebpf.is_string() && ebpf != "loaded")
        out += (out.empty() ? "" : "; ") + std::string("eBPF probes (tools, run-queue latency): ") + ebpf.get<std::string>();
    return out;
}

std::string workflows_line(const json& monitor, const TopOptions& o, Charset charset) {
    const json& w = at(at(at(monitor, "system_resources"), "workflow_resources"), "concurrent_workflows");
    auto n = [&](const char* key) { return count(at(w, key)) ? std::to_string(*count(at(w, key))) : unknown(charset); };
    std::string line = "workflows " + n("active_workflows") + " running, " + n("paused_workflows") + " paused, " + n("queued_workflows") +
                       " queued   sort: " + to_string(o.sort);
    if (!o.filter.empty()) line += "   filter: " + o.filter;
    if (o.paused) line += "   [PAUSED]";
    return line;
}

} // namespace

const char* to_string(SortKey key) {
    switch (key) {
    case SortKey::cpu: return "cpu";
    case SortKey::memory: return "memory";
    case SortKey::priority: return "priority";
    }
    return "?";
}

std::vector<TopRow> top_rows(const TopSnapshot& snapshot, const TopOptions& options) {
    std::vector<TopRow> rows;
    if (const json& list = at(snapshot.status, "allocations"); list.is_array())
        for (const auto& a : list)
            if (a.is_object())
                if (TopRow r = row_of(snapshot, a); passes(r, options.filter)) rows.push_back(std::move(r));
    std::stable_sort(rows.begin(), rows.end(), [&](const TopRow& x, const TopRow& y) {
        const double a = sort_value(x, options.sort), b = sort_value(y, options.sort);
        if (a != b) return a > b;
        if (x.workflow_id != y.workflow_id) return x.workflow_id < y.workflow_id;
        return x.allocation_id < y.allocation_id;
    });
    return rows;
}

std::vector<std::string> render_top(const TopSnapshot& s, const TopOptions& o) {
    const Charset cs = o.charset;
    const json& compute = at(at(s.monitor, "system_resources"), "compute");
    const json& backend = at(s.status, "backend");
    std::vector<std::string> head;
    std::string title = "resmgr top   " + text(at(s.monitor, "sampled_at"), "not sampled yet") + "   every " +
                        text(at(s.monitor, "sample_interval"), unknown(cs)) + "   backend " + text(at(backend, "name"), unknown(cs));
    if (at(backend, "enforces_limits") == false) title += " (limits NOT enforced)";
    head.push_back(paint(fit(sanitize(title, cs), o.width, cs), Colour::bold, o.colour));
    head.push_back(resource_line("CPU", at(compute, "cpu_cores"), "total", "allocated", "reserved", " cores", cs));
    head.push_back(resource_line("MEM", at(compute, "memory"), "total_gb", "allocated_gb", "buffer_gb", " GiB", cs));
    head.push_back(pressure_line(s.monitor, at(at(at(s.monitor, "system_resources"), "workflow_resources"), "agent_pool"), cs));
    auto [alerts, raised] = alerts_of(s.monitor);
    if (!alerts.empty()) head.push_back(paint(fit("alerts: " + alerts, o.width, cs), raised ? Colour::red : Colour::green, o.colour));
    head.push_back(workflows_line(s.monitor, o, cs));
    if (!s.problem.empty()) head.push_back(paint(fit(sanitize("resmgrd: " + s.problem, cs), o.width, cs), Colour::red, o.colour));
    for (auto& line : head)
        if (line.find('\x1b') == std::string::npos) line = fit(sanitize(line, cs), o.width, cs);

    const std::vector<TopRow> rows = top_rows(s, o);
    std::vector<std::vector<Cell>> cells;
    for (const auto& r : rows) cells.push_back(cells_of(r, cs));
    std::vector<std::string> table = render_table(top_columns(), cells, o.width, {cs, o.colour});
    if (rows.empty()) table.push_back(o.filter.empty() ? "(no allocations)" : "(no allocation of a workflow matching the filter)");

    std::vector<std::string> tail;
    if (std::string missing = not_measured(s); !missing.empty())
        tail.push_back(fit(sanitize(unknown(cs) + " not measured on this host: " + missing, cs), o.width, cs));
    if (o.prompt) tail.push_back(fit(sanitize("filter by workflow: " + *o.prompt, cs) + "_", o.width, cs));
    else if (o.keys) tail.push_back(fit("c cpu  m memory  p priority  / filter  space pause  q quit", o.width, cs));

    std::vector<std::string> frame = head;
    frame.push_back("");
    if (o.height > 0) {
        // The node lines and the key line stay; the table gets what is left, saying what it leaves out.
        const std::size_t fixed = frame.size() + tail.size();
        const std::size_t room = o.height > fixed ? o.height - fixed : 0;
        if (table.size() > room) {
            const std::size_t hidden = table.size() - (room > 0 ? room - 1 : 0);
            table.resize(room > 0 ? room - 1 : 0);
            if (room > 0) table.push_back(fit(sanitize("\u2026 " + std::to_string(hidden) + " more (narrow with / or f)", cs), o.width, cs));
        }
    }
    frame.insert(frame.end(), table.begin(), table.end());
    frame.insert(frame.end(), tail.begin(), tail.end());
    if (o.height > 0 && frame.size() > o.height) frame.resize(o.height);
    return frame;
}

} // namespace resmgr::cli
