// Terminal rendering of envelopes.
#include "cli/output.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "cli/figures.hpp"
#include "cli/json_read.hpp"
#include "cli/planning_charts.hpp"
#include "cli/result_tables.hpp"
#include "cli/sparkline.hpp"

namespace resmgr::cli {
namespace {

using nlohmann::json;

constexpr std::size_t kAllocationTrend = 12; // marks per allocation's trend (5 minutes each over the hour)

std::string str(const json& j, const char* key, const std::string& fallback = "-") {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

void print_lines(std::ostream& out, const std::vector<std::string>& lines) {
    for (const auto& line : lines) out << line << "\n";
}

void print_table(std::ostream& out, const std::vector<Column>& columns, const std::vector<std::vector<Cell>>& rows, const Display& d) {
    print_lines(out, render_table(columns, rows, d.width, d.style));
}

// A line of text from outside, made safe and fitted to the width.
void print_text(std::ostream& out, const std::string& text, const Display& d) {
    print_lines(out, wrap(sanitize(text, d.style.charset), d.width));
}

void print_allocation(std::ostream& out, const json& a) {
    const json& r = a.value("resources", json::object());
    out << a.value("allocation_id", "?") << "  workflow " << str(a, "workflow_id") << "  priority " << str(a, "priority")
        << " (" << str(a, "priority_value") << ")  " << str(a, "status") << "\n";
    out << "  cpu " << (r.value("cpu_cores", 0.0) > 0 ? num(r.value("cpu_cores", 0.0)) + " cores" : "uncapped")
        << "  memory " << (r.value("memory_bytes", 0ULL) > 0 ? num(r.value("memory_gb", 0.0)) + " GiB" : "uncapped")
        << "  agents " << r.value("agents", 0);
    if (r.contains("pids")) out << "  pids " << str(r, "pids");
    out << "\n  expires " << str(a, "expires_at") << "  owner uid " << a.value("owner", json::object()).value("uid", 0) << "\n";
    if (a.contains("cgroup_path") && !a["cgroup_path"].get<std::string>().empty()) out << "  cgroup " << str(a, "cgroup_path") << "\n";
    if (a.contains("pids") && a["pids"].is_number()) out << "  processes " << a["pids"].get<long>() << "\n";
}

// What this host cannot enforce is a property of the host, so it is said once, by name
// ("cpu.max" of "cpu.max=200000 100000: controller 'cpu' is not available ..."); the reasons
// are in the envelope and in `resmgr doctor`.
void print_unenforced(std::ostream& out, const json& allocations, const Display& d) {
    std::vector<std::string> names;
    for (auto& a : allocations)
        for (auto& u : at(at(a, "enforcement"), "unenforced")) {
            if (!u.is_string()) continue;
            const std::string text = u.get<std::string>();
            std::string name = text.substr(0, text.find_first_of("=:"));
            if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(std::move(name));
        }
    if (names.empty()) return;
    std::string line = "NOT ENFORCED on this host:";
    for (size_t i = 0; i < names.size(); ++i) line += (i ? ", " : " ") + names[i];
    line += " (see resmgr doctor)";
    for (const auto& part : wrap(sanitize(line, d.style.charset), d.width)) out << paint(part, Colour::red, d.style.colour) << "\n";
}

void print_capacity(std::ostream& out, const json& c, const Display& d) {
    const Charset cs = d.style.charset;
    const json& cpu = at(c, "cpu_cores");
    const json& mem = at(c, "memory");
    const json& pool = at(c, "agent_pool");
    print_text(out,
               "capacity: cpu " + value_text(at(cpu, "available"), cs) + " of " + value_text(at(cpu, "total"), cs) + " cores free (" +
                   value_text(at(cpu, "reserved"), cs) + " reserved)  memory " + value_text(at(mem, "available_gb"), cs) + " of " +
                   value_text(at(mem, "total_gb"), cs) + " GiB free (" + value_text(at(mem, "buffer_gb"), cs) + " reserved)  agents " +
                   value_text(at(pool, "available_agents"), cs) + " of " + value_text(at(pool, "max_agents"), cs) + " free",
               d);
}

// --- sparklines of the last hour -----------------------------------------------------------

std::vector<double> values_of(const json& series) {
    std::vector<double> out;
    for (const auto& v : at(series, "values")) out.push_back(number(v).value_or(NAN));
    return out;
}

// `values` in `n` marks, each the mean of the finite values it covers (NaN: none).
std::vector<double> downsample(const std::vector<double>& values, std::size_t n) {
    if (values.size() <= n) return values;
    std::vector<double> out(n, NAN);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t from = i * values.size() / n, to = (i + 1) * values.size() / n;
        double sum = 0;
        std::size_t count = 0;
        for (std::size_t k = from; k < to; ++k)
            if (std::isfinite(values[k])) sum += values[k], ++count;
        if (count) out[i] = sum / static_cast<double>(count);
    }
    return out;
}

long long samples_of(const json& recent, const std::string& name) { return count(at(at(at(recent, "series"), name.c_str()), "samples")).value_or(0); }

// An allocation's trend cell: its sparkline, "none yet", or "" when history was not asked.
Cell trend_cell(const json& recent, const std::string& name, const Display& d) {
    if (!recent.is_object() || recent.contains("unavailable")) return {""};
    if (samples_of(recent, name) == 0) return {"none yet", Colour::dim};
    const auto values = downsample(values_of(at(at(recent, "series"), name.c_str())), kAllocationTrend);
    return {sparkline(values, kAllocationTrend, d.style.charset)};
}

// The node's last hour: a row per series with its trend and figures, or why there is none.
void print_node_trends(std::ostream& out, const json& recent, const Display& d) {
    if (!recent.is_object()) return;
    if (recent.contains("unavailable")) {
        print_text(out, "last hour: no history (" + text(at(recent, "unavailable"), "?") + ")", d);
        return;
    }
    struct Row {
        const char* series;
        const char* label;
    };
    const Row rows[] = {{"node/cpu_percent", "cpu %"}, {"node/memory_percent", "memory %"}};
    const std::size_t marks = sparkline_points(d);
    std::size_t slots = 0; // as many per series, as resmgrd was asked for
    std::vector<std::vector<Cell>> cells;
    for (const auto& r : rows) {
        const auto all = values_of(at(at(recent, "series"), r.series));
        slots = std::max(slots, all.size());
        const auto values = downsample(all, marks);
        std::vector<double> seen;
        for (double v : values)
            if (std::isfinite(v)) seen.push_back(v);
        if (seen.empty()) {
            cells.push_back({{r.label}, {"no samples in the last hour yet", Colour::dim}});
            continue;
        }
        const auto [lo, hi] = std::minmax_element(seen.begin(), seen.end());
        cells.push_back({{r.label},
                         {sparkline(values, marks, d.style.charset, 0.0, 100.0)},
                         {format("%.1f", seen.back())},
                         {format("%.1f", *lo)},
                         {format("%.1f", *hi)},
                         {std::to_string(samples_of(recent, r.series))}});
    }
    const double mark_seconds = number(at(recent, "slot_seconds")).value_or(0) * static_cast<double>(slots) /
                                static_cast<double>(std::max<std::size_t>(1, std::min(slots, marks)));
    out << "\n";
    print_text(out, "the last hour, a mark per " + format("%.0f", mark_seconds) + " s (the mean of its samples), 0 to 100 %", d);
    print_table(out,
                {{"", false, false, 4, 100},
                 {"LAST HOUR", false, false, 4, 90},
                 {"LATEST", true, false, 4, 50},
                 {"MIN", true, false, 4, 20},
                 {"MAX", true, false, 4, 30},
                 {"SAMPLES", true, false, 4, 10}},
                cells, d);
}

// --- the operations with a rendering of their own -----------------------------------------

// The allocations' table; its last two columns (the trends) only when there is history to show.
void print_allocation_table(std::ostream& out, std::vector<Column> columns, std::vector<std::vector<Cell>> rows, const Display& d,
                            const json& recent) {
    if (rows.empty()) return;
    if (!recent.is_object() || recent.contains("unavailable")) {
        columns.resize(columns.size() - 2);
        for (auto& r : rows) r.resize(columns.size());
    }
    print_table(out, columns, rows, d);
}

std::string used_of(const std::optional<double>& used, double allocated, std::string (*unit)(double), Charset cs) {
    return (used ? unit(*used) : unknown(cs)) + " / " + (allocated > 0 ? unit(allocated) : "max");
}

void print_status(std::ostream& out, const json& result, const Display& d, const json& recent) {
    const json& list = at(result, "allocations");
    const json& backend = at(result, "backend");
    const Charset cs = d.style.charset;
    print_text(out,
               "backend " + text(at(backend, "name"), "?") + (at(backend, "enforces_limits") == json(false) ? " (limits NOT enforced)" : "") +
                   ", " + std::to_string(list.size()) + " allocation(s)",
               d);
    std::vector<std::vector<Cell>> rows;
    for (const auto& a : list) {
        const json& r = at(a, "resources");
        const std::string id = text(at(a, "allocation_id"), "?");
        const auto cpu = number(at(r, "cpu_cores")), memory = number(at(r, "memory_bytes"));
        rows.push_back({{id},
                        {text(at(a, "workflow_id"), unknown(cs))},
                        {text(at(a, "priority"), "?") + " " + value_text(at(a, "priority_value"), cs)},
                        {text(at(a, "status"), "?"), text(at(a, "status")) == "queued" ? Colour::yellow : Colour::none},
                        {cpu && *cpu > 0 ? cores(*cpu) : "max"},
                        {memory && *memory > 0 ? bytes(*memory) : "max"},
                        {value_text(at(r, "agents"), cs)},
                        {value_text(at(a, "pids"), cs)},
                        {text(at(a, "expires_at"), unknown(cs))},
                        trend_cell(recent, "alloc/" + id + "/cpu_cores", d),
                        trend_cell(recent, "alloc/" + id + "/memory_bytes", d)});
    }
    print_allocation_table(out,
                           {{"ALLOCATION", false, true, 10, 95},
                            {"WORKFLOW", false, true, 8, 100},
                            {"PRIORITY", false, false, 4, 60},
                            {"STATUS", false, false, 4, 90},
                            {"CPU", true, false, 4, 80},
                            {"MEMORY", true, false, 4, 70},
                            {"AGENTS", true, false, 4, 20},
                            {"PIDS", true, false, 4, 30},
                            {"EXPIRES", false, false, 4, 10},
                            {"CPU 1H", false, false, 4, 40},
                            {"MEM 1H", false, false, 4, 35}},
                           rows, d, recent);
    print_unenforced(out, list, d);
    if (result.contains("capacity")) print_capacity(out, result["capacity"], d);
    if (result.contains("next_after")) print_text(out, "more: the next page starts after " + text(at(result, "next_after"), "?"), d);
    print_node_trends(out, recent, d);
}

void print_usage(std::ostream& out, const json& result, const Display& d, const json& recent) {
    const Charset cs = d.style.charset;
    const json& totals = at(result, "totals");
    const json& eff = at(result, "efficiency");
    print_text(out,
               "workflow " + text(at(result, "workflow_id"), "?") + ": cpu " +
                   used_of(number(at(totals, "cpu_cores_used")), number(at(totals, "cpu_cores_allocated")).value_or(0), cores, cs) +
                   " cores (" + percent(at(eff, "cpu_percent"), cs) + "), memory " +
                   used_of(number(at(totals, "memory_bytes_used")), number(at(totals, "memory_bytes_allocated")).value_or(0), bytes, cs) +
                   " (" + percent(at(eff, "memory_percent"), cs) + ")   sampled " + text(at(result, "sampled_at"), unknown(cs)),
               d);
    std::vector<std::vector<Cell>> rows;
    for (const auto& a : at(result, "allocations")) {
        const std::string id = text(at(a, "allocation_id"), "?");
        const json& given = at(a, "allocated");
        const json& used = at(a, "used");
        const json& oom = at(a, "memory_events");
        rows.push_back({{id},
                        {text(at(a, "status"), "?")},
                        {used_of(number(at(used, "cpu_cores")), number(at(given, "cpu_cores")).value_or(0), cores, cs)},
                        {percent(at(at(a, "efficiency"), "cpu_percent"), cs)},
                        {used_of(number(at(used, "memory_bytes")), number(at(given, "memory_bytes")).value_or(0), bytes, cs)},
                        {percent(at(at(a, "efficiency"), "memory_percent"), cs)},
                        {value_text(at(used, "pids"), cs)},
                        {value_text(at(at(a, "throttling"), "nr_throttled"), cs)},
                        {value_text(at(oom, "oom_kill"), cs), number(at(oom, "oom_kill")).value_or(0) > 0 ? Colour::red : Colour::none},
                        trend_cell(recent, "alloc/" + id + "/cpu_cores", d),
                        trend_cell(recent, "alloc/" + id + "/memory_bytes", d)});
    }
    if (rows.empty()) out << "no live allocations\n";
    print_allocation_table(out,
                           {{"ALLOCATION", false, true, 10, 100},
                            {"STATUS", false, false, 4, 60},
                            {"CPU USED/ALLOC", true, false, 4, 90},
                            {"CPU EFF", true, false, 4, 50},
                            {"MEM USED/ALLOC", true, false, 4, 80},
                            {"MEM EFF", true, false, 4, 45},
                            {"PIDS", true, false, 4, 20},
                            {"THROTTLED", true, false, 4, 15},
                            {"OOM", true, false, 4, 25},
                            {"CPU 1H", false, false, 4, 40},
                            {"MEM 1H", false, false, 4, 35}},
                           rows, d, recent);
    for (const char* part : {"ended_allocations", "runs"})
        if (const json& list = at(result, part); list.is_array() && !list.empty()) {
            out << "\n";
            print_lines(out, render_fields(json{{part, list}}, d));
        }
    print_node_trends(out, recent, d); // what is not measured here is in the envelope's recommendations

}

void print_capacity_report(std::ostream& out, const json& result, const Display& d, const json& recent) {
    const Charset cs = d.style.charset;
    std::vector<std::vector<Cell>> rows;
    for (const char* part : {"current_capacity", "allocatable", "allocated", "available"}) {
        const json& p = at(result, part);
        rows.push_back({{field_text(part)},
                        {value_text(at(p, "cpu_cores"), cs)},
                        {value_text(at(p, "memory_gb"), cs)},
                        {value_text(p.contains("max_agents") ? at(p, "max_agents") : at(p, "agents"), cs)},
                        {p.contains("storage_gb") ? value_text(at(p, "storage_gb"), cs) : ""}});
    }
    print_table(out,
                {{"", false, false, 4, 100},
                 {"CPU CORES", true, false, 4, 90},
                 {"MEMORY GiB", true, false, 4, 80},
                 {"AGENTS", true, false, 4, 70},
                 {"STORAGE GiB", true, false, 4, 10}},
                rows, d);
    const json& peaks = at(result, "utilization_analysis");
    if (peaks.is_object() && !peaks.empty())
        print_text(out,
                   "since " + text(at(peaks, "since"), unknown(cs)) + " (" + value_text(at(peaks, "samples"), cs) + " samples): cpu peak " +
                       percent(at(peaks, "peak_cpu_usage"), cs) + ", mean " + percent(at(peaks, "average_cpu_usage"), cs) + "; memory peak " +
                       percent(at(peaks, "peak_memory_usage"), cs) + "; agents peak " + value_text(at(peaks, "peak_agent_usage"), cs),
                   d);
    print_node_trends(out, recent, d);
}

void print_monitor(std::ostream& out, const json& result, const Display& d) {
    const Charset cs = d.style.charset;
    const json& compute = at(at(result, "system_resources"), "compute");
    const json& work = at(at(result, "system_resources"), "workflow_resources");
    print_text(out, "sampled " + text(at(result, "sampled_at"), unknown(cs)) + " every " + text(at(result, "sample_interval"), unknown(cs)) +
                        "; eBPF " + text(at(result, "ebpf"), unknown(cs)),
               d);
    const json& cpu = at(compute, "cpu_cores");
    const json& mem = at(compute, "memory");
    const json& disk = at(compute, "storage");
    print_table(out,
                {{"RESOURCE", false, false, 4, 100},
                 {"TOTAL", true, false, 4, 90},
                 {"ALLOCATED", true, false, 4, 70},
                 {"FREE", true, false, 4, 80},
                 {"RESERVED", true, false, 4, 30},
                 {"USED %", true, false, 4, 85},
                 {"WHERE", false, true, 4, 10}},
                {{{"cpu cores"}, {value_text(at(cpu, "total"), cs)}, {value_text(at(cpu, "allocated"), cs)},
                  {value_text(at(cpu, "available"), cs)}, {value_text(at(cpu, "reserved"), cs)}, {value_text(at(cpu, "utilization_percent"), cs)}},
                 {{"memory GiB"}, {value_text(at(mem, "total_gb"), cs)}, {value_text(at(mem, "allocated_gb"), cs)},
                  {value_text(at(mem, "available_gb"), cs)}, {value_text(at(mem, "buffer_gb"), cs)}, {value_text(at(mem, "utilization_percent"), cs)}},
                 {{"storage GiB"}, {value_text(at(disk, "total_gb"), cs)}, {""}, {value_text(at(disk, "available_gb"), cs)}, {""},
                  {value_text(at(disk, "utilization_percent"), cs)}, {text(at(disk, "path"))}}},
                d);
    if (const json& psi = at(result, "pressure"); psi.is_object()) {
        std::vector<std::vector<Cell>> rows;
        for (const char* r : {"cpu", "memory", "io"}) {
            const json& some = at(at(psi, r), "some");
            const json& full = at(at(psi, r), "full");
            rows.push_back({{r}, {value_text(at(some, "avg10"), cs)}, {value_text(at(some, "avg60"), cs)}, {value_text(at(some, "avg300"), cs)},
                            {value_text(at(full, "avg10"), cs)}, {value_text(at(full, "avg60"), cs)}, {value_text(at(full, "avg300"), cs)}});
        }
        out << "\n";
        print_table(out,
                    {{"PRESSURE %", false, false, 4, 100},
                     {"SOME 10s", true, false, 4, 90},
                     {"60s", true, false, 4, 60},
                     {"300s", true, false, 4, 50},
                     {"FULL 10s", true, false, 4, 80},
                     {"60s", true, false, 4, 40},
                     {"300s", true, false, 4, 30}},
                    rows, d);
    }
    if (const json& thresholds = at(result, "thresholds"); thresholds.is_object() && !thresholds.empty()) {
        std::vector<std::vector<Cell>> rows;
        for (const auto& [metric, t] : thresholds.items()) {
            const bool raised = at(t, "raised") == json(true);
            rows.push_back({{metric},
                            {value_text(at(t, "last_value"), cs)},
                            {value_text(at(t, "threshold"), cs)},
                            {value_text(at(t, "clear_below"), cs)},
                            {text(at(t, "severity"), "?")},
                            {raised ? "RAISED" : "ok", raised ? (text(at(t, "severity")) == "critical" ? Colour::red : Colour::yellow) : Colour::green}});
        }
        out << "\n";
        print_table(out,
                    {{"THRESHOLD", false, true, 8, 100},
                     {"NOW %", true, false, 4, 80},
                     {"AT %", true, false, 4, 70},
                     {"CLEARS <", true, false, 4, 10},
                     {"SEVERITY", false, false, 4, 20},
                     {"STATE", false, false, 4, 90}},
                    rows, d);
    }
    const json& pool = at(work, "agent_pool");
    const json& flows = at(work, "concurrent_workflows");
    const json& tools = at(work, "tool_instances");
    out << "\n";
    print_text(out, "agents: " + value_text(at(pool, "active_agents"), cs) + " active, " + value_text(at(pool, "idle_agents"), cs) + " idle, " +
                        value_text(at(pool, "reserved_agents"), cs) + " reserved, " + value_text(at(pool, "failed_agents"), cs) + " failed of " +
                        value_text(at(pool, "max_agents"), cs),
               d);
    print_text(out, "workflows: " + value_text(at(flows, "active_workflows"), cs) + " active, " + value_text(at(flows, "queued_workflows"), cs) +
                        " queued, " + value_text(at(flows, "paused_workflows"), cs) + " paused",
               d);
    print_text(out, "tools running: " + value_text(at(tools, "bash_shells"), cs) + " shells, " + value_text(at(tools, "file_operations"), cs) +
                        " file, " + value_text(at(tools, "search_operations"), cs) + " search, " + value_text(at(tools, "web_requests"), cs) +
                        " web (" + text(at(tools, "source"), "source unknown") + ")",
               d);
    if (const json& missing = at(result, "unavailable"); missing.is_array() && !missing.empty())
        print_text(out, "not measured: " + value_text(missing, cs), d);
}

void print_doctor(std::ostream& out, const json& envelope, const Display& d) {
    const json& result = at(envelope, "result");
    print_text(out, text(at(result, "verdict"), "?"), d);
    std::vector<std::vector<Cell>> rows;
    for (const auto& e : at(result, "enforced")) rows.push_back({{"enforced", Colour::green}, {value_text(e, d.style.charset)}});
    for (const auto& e : at(result, "not_enforced")) {
        const auto lines = wrap(sanitize(value_text(e, d.style.charset), d.style.charset), d.width > 16 ? d.width - 16 : 8);
        for (std::size_t i = 0; i < lines.size(); ++i) rows.push_back({{i ? "" : "NOT enforced", Colour::red}, {lines[i]}});
    }
    if (!rows.empty()) print_table(out, {{"STATE", false, false, 4, 10}, {"WHAT", false, true, 8, 20}}, rows, d);
    for (const auto& r : at(envelope, "recommendations")) print_text(out, "fix: " + value_text(r, d.style.charset), d);
    const json& recovery = at(at(result, "daemon"), "recovery");
    if (const json& last = at(at(recovery, "leak_detection"), "last_pass"); last.is_object())
        print_text(out, "leak detection: last pass " + text(at(last, "at"), "?") + ", " + std::to_string(at(last, "findings").size()) +
                            " finding(s), " + std::to_string(at(last, "cleaned").size()) + " cleaned, " +
                            std::to_string(at(last, "failed").size()) + " failed",
                   d);
    for (const auto& v : at(at(recovery, "performance_degradation"), "degraded"))
        print_text(out, "degraded: workflow type " + sanitize(text(at(v, "workflow_type"), "?"), d.style.charset) + " takes " +
                            value_text(at(v, "recent_seconds"), d.style.charset) + " s against its baseline " +
                            value_text(at(v, "baseline_seconds"), d.style.charset) + " s",
                   d);
    print_text(out, "(the host and daemon details: resmgr --json doctor)", d);
}

void print_events(std::ostream& out, const json& result, const Display& d) {
    std::vector<std::vector<Cell>> rows;
    for (const auto& e : at(result, "events"))
        rows.push_back({{text(at(e, "timestamp"), "?")},
                        {text(at(e, "event"), "?")},
                        {text(at(e, "workflow_id"), "global")},
                        {text(at(e, "allocation_id"))},
                        {text(at(e, "message"))}});
    if (rows.empty()) {
        out << "no events\n";
        return;
    }
    print_table(out,
                {{"TIME", false, false, 4, 30},
                 {"EVENT", false, false, 4, 100},
                 {"WORKFLOW", false, true, 8, 50},
                 {"ALLOCATION", false, true, 10, 10},
                 {"MESSAGE", false, true, 10, 90}},
                rows, d);
}

// `status pressure`: the mode and signal source, each signal, then what is held back from whom.
void print_pressure(std::ostream& out, const json& result) {
    out << "pressure responder: mode " << str(result, "mode") << "; signals: " << str(result, "signal_source") << "\n";
    const json signals = result.value("signals", json::object());
    for (auto& [name, s] : signals.items()) {
        if (!s.value("enabled", true)) continue;
        out << "  " << name << " " << str(s, "value", "unknown") << " % (threshold " << str(s, "threshold") << ", clear " << str(s, "clear")
            << ")" << (s.value("raised", false) ? " RAISED since " + str(s, "raised_at") : "") << "\n";
    }
    const json held = result.value("held", json::array());
    if (held.empty()) out << "nothing held back\n";
    for (auto& h : held) {
        out << "held: " << str(h, "action") << " on " << str(h, "allocation_id", "the node") << " (" << str(h, "workflow_id", "-") << ", priority "
            << str(h, "priority") << ") since " << str(h, "since") << ", for " << str(h, "signal");
        if (!h.value("enforced", true)) out << "; advisory, not taken";
        else if (h.contains("unenforced")) out << "; NOT enforced: " << str(h, "unenforced");
        out << "\n";
    }
    if (auto e = str(result, "load_error", ""); !e.empty()) out << "state file: " << e << "\n";
}

// `cluster status`: etcd and this node's lease on one line, then one row per node.
void print_cluster(std::ostream& out, const json& result, const Display& d) {
    const json etcd = result.value("etcd", json::object()), lease = result.value("lease", json::object());
    std::string head = "node " + str(result, "node_name") + "; etcd " +
                       (etcd.value("reachable", false) ? "reachable at " + str(etcd, "endpoint") : "NOT reachable (" + str(etcd, "problem") + ")") +
                       "; lease " + (lease.value("held", false) ? "held (TTL " + str(lease, "ttl") + ")" : "NOT held");
    print_text(out, head, d);
    // "free/capacity" of one resource, e.g. "1.5/4" cores or "12.3/31.2G".
    auto free_of = [](const json& node, const char* key, const char* unit) {
        auto figure = [&](const char* part) {
            const double v = node.value(part, json::object()).value(key, 0.0);
            return num(std::round(v * 10) / 10);
        };
        return figure("free") + "/" + figure("capacity") + unit;
    };
    std::vector<std::vector<Cell>> rows;
    for (const auto& n : result.value("nodes", json::array())) {
        const bool live = str(n, "state") == "live";
        const json pressure = n.value("pressure", json::object());
        std::string raised;
        for (const auto& r : pressure.value("raised", json::array())) raised += (raised.empty() ? "" : ",") + value_text(r, d.style.charset);
        rows.push_back({{str(n, "node_name") + (n.value("self", false) ? " *" : "")},
                        {live ? "live" : "gone: " + str(n, "gone_reason"), live ? Colour::none : Colour::yellow},
                        {free_of(n, "cpu_cores", "")},
                        {free_of(n, "memory_gb", "G")},
                        {free_of(n, "agents", "")},
                        {str(n, "allocations")},
                        {raised.empty() ? "-" : raised, raised.empty() ? Colour::none : Colour::red},
                        {str(n, "last_seen")}});
    }
    print_table(out,
                {{"NODE", false, false, 4, 100},
                 {"STATE", false, true, 4, 90},
                 {"CPU FREE", true, false, 8, 80},
                 {"MEM FREE", true, false, 8, 70},
                 {"AGENTS FREE", true, false, 5, 60},
                 {"ALLOCS", true, false, 6, 50},
                 {"PRESSURE", false, true, 8, 40},
                 {"LAST SEEN", false, true, 10, 30}},
                rows, d);
    for (const auto& r : result.value("rejected_records", json::array()))
        print_text(out, "rejected record: " + value_text(r, d.style.charset), d);
}

// `cluster place`: the node chosen and its booking, then every node as placement weighed it.
void print_placement(std::ostream& out, const json& result, const Display& d) {
    print_text(out, result.value("dry_run", false) ? "dry run: node " + str(result, "node") + " has room (nothing booked)"
                                                   : "booked node " + str(result, "node") + " until " + str(result, "expires_at") + ": booking " +
                                                         str(result, "booking_id"),
               d);
    std::vector<std::vector<Cell>> rows;
    for (const auto& c : result.value("candidates", json::array())) {
        const json room = c.value("room", json::object());
        const bool fits = c.value("fits", false);
        rows.push_back({{str(c, "node")},
                        {fits ? "yes" : "no", fits ? Colour::none : Colour::yellow},
                        {num(std::round(room.value("cpu_cores", 0.0) * 100) / 100)},
                        {num(std::round(room.value("memory_gb", 0.0) * 10) / 10) + "G"},
                        {str(room, "agents")},
                        {fits ? str(c, "left_over") : "-"},
                        {str(c, "reason").empty() ? "-" : str(c, "reason")}});
    }
    print_table(out,
                {{"NODE", false, false, 4, 100},
                 {"FITS", false, false, 3, 90},
                 {"CPU ROOM", true, false, 8, 80},
                 {"MEM ROOM", true, false, 8, 70},
                 {"AGENTS ROOM", true, false, 5, 60},
                 {"LEFT OVER", true, false, 6, 50},
                 {"WHY", false, true, 10, 40}},
                rows, d);
    print_text(out, "room: what each node published as free, less its bookings and the reservations it holds over the next " +
                        str(result, "window_checked"), d);
}

} // namespace

Display stdout_display() {
    Display d;
    struct winsize ws{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) d.width = ws.ws_col;
    else if (const char* columns = std::getenv("COLUMNS"); columns && std::atoi(columns) > 0) d.width = static_cast<std::size_t>(std::atoi(columns));
    else d.width = 80;
    d.style.charset = locale_charset();
    d.style.colour = colour_wanted(::isatty(STDOUT_FILENO) != 0, std::getenv("NO_COLOR"), std::getenv("TERM"));
    return d;
}

std::vector<std::string> sparkline_series(const std::string& operation, const json& envelope) {
    if (operation != "status" && operation != "usage" && operation != "capacity") return {};
    const json& result = at(envelope, "result");
    if (operation == "status" && !result.contains("allocations")) return {}; // status conflicts, status agents, ...
    std::vector<std::string> series{"node/cpu_percent", "node/memory_percent"};
    std::size_t shown = 0;
    for (const auto& a : at(result, "allocations")) {
        const std::string id = text(at(a, "allocation_id"));
        if (id.empty() || ++shown > kSparklineAllocations) continue;
        series.push_back("alloc/" + id + "/cpu_cores");
        series.push_back("alloc/" + id + "/memory_bytes");
    }
    return series;
}

std::size_t sparkline_points(const Display& display) {
    // The node's table: label, trend, four figures; the trend gets what is left, 12 to 60 marks.
    return std::clamp<std::size_t>(display.width > 50 ? display.width - 50 : 0, 12, 60);
}

void print_human(std::ostream& out, const std::string& operation, const json& envelope, const Display& display, const json& recent) {
    const json& result = at(envelope, "result");
    if (operation == "allocate" || operation == "reallocate") {
        const json& allocation = at(result, "allocation");
        out << (operation == "allocate" ? "Allocated " : "Reallocated ");
        print_allocation(out, allocation);
        print_unenforced(out, json::array({allocation}), display);
        if (result.contains("capacity")) print_capacity(out, result["capacity"], display);
    } else if (operation == "release") {
        out << "Released " << str(result, "allocation_id") << "\n";
        if (auto f = result.find("final"); f != result.end() && f->value("oom_kills", 0) > 0)
            out << "  the OOM killer killed " << (*f)["oom_kills"] << " process(es) in it\n";
    } else if (operation == "events") {
        print_events(out, result, display);
    } else if (operation == "status" && result.contains("allocations")) {
        print_status(out, result, display, recent);
    } else if (operation == "usage" && result.contains("allocations")) {
        print_usage(out, result, display, recent);
    } else if (operation == "capacity" && result.contains("current_capacity")) {
        print_capacity_report(out, result, display, recent);
    } else if (operation == "monitor" && result.contains("system_resources")) {
        print_monitor(out, result, display);
    } else if (operation == "status" && result.contains("signal_source")) {
        print_pressure(out, result);
    } else if (operation == "cluster" && result.contains("nodes")) {
        print_cluster(out, result, display);
    } else if (operation == "cluster" && result.contains("candidates")) {
        print_placement(out, result, display);
    } else if (operation == "doctor" && result.contains("verdict")) {
        print_doctor(out, envelope, display);
        return;
    } else if (operation == "why") {
        out << str(result, "explanation") << "\n";
        if (result.value("held", false)) out << "  reads from outside: " << str(result.value("outside_processes", json::object()), "reads") << "\n";
        for (auto& w : result.value("waiting_openers", json::array()))
            out << "  waiting: " << str(w, "comm", "?") << "[" << str(w, "pid", "?") << "] since " << str(w, "waiting_since", "?")
                << ", refused in " << str(w, "refused_in_seconds", "?") << " s unless the holder lets go\n";
        for (auto& c : result.value("conflicts", json::array()))
            out << "  conflict " << str(c, "conflict_id") << ": " << str(c, "event") << ", " << str(c, "occurrences") << " time(s), last "
                << str(c, "last_seen") << "\n";
        for (auto& b : result.value("reservations", json::array()))
            out << "  booked by reservation " << str(b, "reservation_id") << " from " << str(b, "start_time") << "\n";
    } else if (const auto charts = planning_charts(operation, result); !charts.empty()) {
        print_lines(out, render_fields(without_recent_history(operation, result), display));
        for (const auto& chart : charts) {
            out << "\n";
            print_text(out, chart.title, display);
            print_lines(out, render_chart(chart, display.width, display.style));
        }
    } else {
        print_lines(out, render_fields(result, display));
    }
    for (auto& r : at(envelope, "recommendations")) print_text(out, "note: " + value_text(r, display.style.charset), display);
}

void print_event_line(std::ostream& out, const json& e) {
    out << str(e, "timestamp", "?") << " " << str(e, "event", "?") << " " << str(e, "workflow_id", "global");
    if (e.contains("allocation_id")) out << " " << str(e, "allocation_id");
    out << ": " << str(e, "message", "") << "\n";
}

std::string parse_error_text(const json::parse_error& e) {
    const std::string what = e.what();
    const auto colon = what.find(": ");
    return (colon == std::string::npos ? what : what.substr(colon + 2)) + ", at byte " + std::to_string(e.byte);
}

void print_error(std::ostream& err, const std::string& program, const json& envelope) {
    const json& e = envelope.value("error", json::object());
    err << program << ": " << str(envelope, "operation", "request") << " failed: " << str(e, "code", "ERROR") << ": "
        << str(e, "message", "unknown error") << "\n";
    if (auto d = str(e, "details", ""); !d.empty()) err << "  " << d << "\n";
    for (auto& s : envelope.value("recovery_suggestions", json::array())) err << "  try: " << s.get<std::string>() << "\n";
    for (auto& s : envelope.value("alternative_options", json::array())) err << "  or:  " << s.get<std::string>() << "\n";
}

} // namespace resmgr::cli
