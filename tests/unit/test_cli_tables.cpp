// Every operation's readable output on a terminal: tables fitted to narrow (40) and wide (160)
// terminals, never JSON, names from outside (non-UTF-8, very long) made safe, colour only when
// asked, sparklines of the last hour or why there are none; and the parameters' defaults in
// `resmgr help`, equal to what the handlers use.
#include <gtest/gtest.h>

#include <sstream>

#include "cli/operation_help.hpp"
#include "cli/output.hpp"
#include "cli/result_tables.hpp"
#include "cli/text.hpp"
#include "history/history.hpp"
#include "resmgr/operations.hpp"

using nlohmann::json;
using namespace resmgr::cli;

namespace {

const std::string kBadName = std::string("wf-\xff\xfe-") + "\x1b[31mred\x1b[0m"; // invalid UTF-8 and an escape
const std::string kLongName = "workflow-" + std::string(300, 'x');

json allocation(const std::string& id, const std::string& workflow) {
    return {{"allocation_id", id},
            {"workflow_id", workflow},
            {"priority", "high"},
            {"priority_value", 80},
            {"status", "active"},
            {"pids", 3},
            {"expires_at", "2027-01-01T00:00:00Z"},
            {"resources", {{"cpu_cores", 0.5}, {"memory_bytes", 268435456}, {"memory_gb", 0.25}, {"agents", 1}}},
            {"enforcement", {{"enforced", true}, {"unenforced", json::array()}}}};
}

json status_envelope() {
    return {{"status", "success"},
            {"operation", "status"},
            {"result",
             {{"backend", {{"name", "cgroupfs"}, {"enforces_limits", true}}},
              {"allocations", {allocation("alloc_a", kBadName), allocation("alloc_b", kLongName)}},
              {"capacity",
               {{"cpu_cores", {{"total", 2}, {"available", 1.25}, {"reserved", 0}}},
                {"memory", {{"total_gb", 8}, {"available_gb", 7.6}, {"buffer_gb", 0}}},
                {"agent_pool", {{"available_agents", 19}, {"max_agents", 20}}}}}}},
            {"recommendations", json::array()}};
}

// `history recent` as resmgrd answers it: `points` slots, the first half empty.
json recent(std::size_t points, bool with_samples) {
    json series = json::object();
    for (const char* name : {"node/cpu_percent", "node/memory_percent", "alloc/alloc_a/cpu_cores", "alloc/alloc_a/memory_bytes"}) {
        json values = json::array();
        for (std::size_t i = 0; i < points; ++i) values.push_back(with_samples && i >= points / 2 ? json(10.0 + static_cast<double>(i)) : json(nullptr));
        series[name] = {{"samples", with_samples ? points / 2 : 0}, {"values", values}};
    }
    return {{"since", "2026-12-04T08:00:00Z"}, {"slot_seconds", 3600.0 / static_cast<double>(points)}, {"series", series}};
}

bool has_sparkline(const std::string& text) {
    for (const char* mark : {"\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588"})
        if (text.find(mark) != std::string::npos) return true;
    return false;
}

Display display(std::size_t width, bool colour = false, Charset charset = Charset::utf8) { return Display{width, TableStyle{charset, colour}}; }

std::string render(const std::string& operation, const json& envelope, const Display& d, const json& history = nullptr) {
    std::ostringstream out;
    print_human(out, operation, envelope, d, history);
    return out.str();
}

// Each line at most `width` columns (escapes not counted), no JSON, no raw escape or bad byte
// from the input.
void expect_readable(const std::string& text, std::size_t width) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        std::string plain;
        for (std::size_t i = 0; i < line.size(); ++i) {
            if (line[i] == '\x1b') {
                while (i < line.size() && line[i] != 'm') ++i;
                continue;
            }
            plain += line[i];
        }
        EXPECT_LE(display_width(plain), width) << "[" << line << "]";
        EXPECT_EQ(plain, sanitize(plain, Charset::utf8)) << "unsafe bytes in: " << line;
    }
    EXPECT_EQ(text.find('{'), std::string::npos) << text;
    EXPECT_EQ(text.find("\x1b[31mred"), std::string::npos) << "an escape from the input reached the terminal";
}

json monitor_result() {
    json pressure_part = {{"some", {{"avg10", 97.17}, {"avg60", 50.0}, {"avg300", 10.0}}}, {"full", {{"avg10", 0.0}, {"avg60", 0.0}, {"avg300", 0.0}}}};
    return {{"ebpf", "loaded"},
            {"pressure", {{"cpu", pressure_part}, {"memory", pressure_part}, {"io", pressure_part}}},
            {"sample_interval", "1s"},
            {"sampled_at", "2026-12-04T09:22:52Z"},
            {"system_resources",
             {{"compute",
               {{"cpu_cores", {{"allocated", 0.75}, {"available", 0.75}, {"reserved", 0.5}, {"total", 2.0}, {"utilization_percent", 100.0}}},
                {"memory", {{"allocated_gb", 0.35}, {"available_gb", 22.19}, {"buffer_gb", 1.0}, {"total_gb", 23.54}, {"utilization_percent", 16.527}}},
                {"storage", {{"available_gb", 61.5}, {"path", "/var/lib/" + kLongName}, {"total_gb", 251.97}, {"utilization_percent", 35.7}}}}},
              {"workflow_resources",
               {{"agent_pool", {{"active_agents", 1}, {"idle_agents", 0}, {"reserved_agents", 0}, {"failed_agents", 0}, {"max_agents", 20}}},
                {"concurrent_workflows", {{"active_workflows", 2}, {"queued_workflows", 0}, {"paused_workflows", 0}}},
                {"tool_instances", {{"bash_shells", 1}, {"file_operations", 0}, {"search_operations", 0}, {"web_requests", 0}, {"source", "ebpf"}}}}}}},
            {"thresholds",
             {{"cpu", {{"clear_below", 75.0}, {"last_value", 100.0}, {"raised", true}, {"severity", "warning"}, {"threshold", 80.0}}},
              {"memory", {{"clear_below", 80.0}, {"last_value", 16.5}, {"raised", false}, {"severity", "warning"}, {"threshold", 85.0}}}}},
            {"unavailable", json::array()}};
}

json usage_result() {
    json a = {{"allocation_id", "alloc_a"},
              {"status", "active"},
              {"allocated", {{"cpu_cores", 0.5}, {"memory_bytes", 268435456}, {"agents", 0}}},
              {"used", {{"cpu_cores", 0.25}, {"memory_bytes", 134217728}, {"pids", 4}}},
              {"throttling", {{"nr_throttled", 7}}},
              {"memory_events", {{"oom_kill", 1}}},
              {"efficiency", {{"cpu_percent", 50.0}, {"memory_percent", 50.0}}}};
    return {{"workflow_id", kBadName},
            {"allocations", {a}},
            {"ended_allocations", {{{"allocation_id", "alloc_old"}, {"ended_at", "2026-12-04T08:00:00Z"}, {"reason", "released"}}}},
            {"runs", json::array()},
            {"totals", {{"cpu_cores_allocated", 0.5}, {"cpu_cores_used", 0.25}, {"memory_bytes_allocated", 268435456.0}, {"memory_bytes_used", 134217728}}},
            {"efficiency", {{"cpu_percent", 50.0}, {"memory_percent", 50.0}}},
            {"not_measured", {"io.stat: cannot read " + kLongName}},
            {"sampled_at", "2026-12-04T09:22:53Z"}};
}

json capacity_result() {
    return {{"allocatable", {{"cpu_cores", 1.5}, {"memory_gb", 22.54}}},
            {"allocated", {{"agents", 0}, {"cpu_cores", 0.75}, {"memory_gb", 0.35}}},
            {"available", {{"agents", 20}, {"cpu_cores", 0.75}, {"memory_gb", 22.19}}},
            {"current_capacity", {{"cpu_cores", 2.0}, {"max_agents", 20}, {"memory_gb", 23.54}, {"storage_gb", 251.972}}},
            {"utilization_analysis",
             {{"average_cpu_usage", 83.333}, {"peak_agent_usage", 0}, {"peak_cpu_usage", 100.0}, {"peak_memory_usage", 18.2}, {"samples", 6},
              {"since", "2026-12-04T09:22:47Z"}}}};
}

json envelope(const std::string& operation, json result) {
    return {{"status", "success"}, {"operation", operation}, {"result", std::move(result)}, {"recommendations", {"a note " + kLongName}}};
}

} // namespace

TEST(CliTables, StatusIsATableWithSparklinesAtNarrowAndWideWidths) {
    for (std::size_t width : {40u, 160u}) {
        const std::string text = render("status", status_envelope(), display(width), recent(60, true));
        expect_readable(text, width);
        EXPECT_NE(text.find("ALLOCATION"), std::string::npos) << text;
        EXPECT_NE(text.find("alloc_a"), std::string::npos) << text;
        EXPECT_NE(text.find("LAST HOUR"), std::string::npos) << text;
        EXPECT_TRUE(has_sparkline(text)) << "a sparkline is drawn\n" << text;
    }
    const std::string wide = render("status", status_envelope(), display(160), recent(60, true));
    EXPECT_NE(wide.find("CPU 1H"), std::string::npos) << wide;
    EXPECT_NE(wide.find("wf-\uFFFD\uFFFD-\uFFFD[31mred"), std::string::npos) << "bad bytes and the escape replaced\n" << wide;
    EXPECT_NE(wide.find("workflow-xxx"), std::string::npos) << wide;
    EXPECT_EQ(wide.find(kLongName), std::string::npos) << "a very long name is cut to the terminal";
    EXPECT_NE(wide.find("none yet"), std::string::npos) << "alloc_b has no samples yet\n" << wide;
}

TEST(CliTables, WithoutSamplesItSaysSoInsteadOfAFlatLine) {
    const std::string text = render("status", status_envelope(), display(100), recent(60, false));
    EXPECT_NE(text.find("no samples in the last hour yet"), std::string::npos) << text;
    EXPECT_FALSE(has_sparkline(text)) << "no flat line\n" << text;
    const std::string off = render("capacity", envelope("capacity", capacity_result()), display(100), json{{"unavailable", "history is off"}});
    EXPECT_NE(off.find("last hour: no history (history is off)"), std::string::npos) << off;
    // Not asked (unit use, or an older resmgrd): no trend section at all.
    EXPECT_EQ(render("status", status_envelope(), display(100)).find("LAST HOUR"), std::string::npos);
    EXPECT_EQ(render("status", status_envelope(), display(160)).find("CPU 1H"), std::string::npos) << "no empty trend columns";
}

TEST(CliTables, AsciiTerminalsGetAsciiSparklines) {
    const std::string text = render("status", status_envelope(), display(120, false, Charset::ascii), recent(60, true));
    for (unsigned char c : text) EXPECT_LT(c, 0x80) << text;
    EXPECT_NE(text.find("LAST HOUR"), std::string::npos);
}

TEST(CliTables, ColourOnlyWhenWanted) {
    EXPECT_EQ(render("monitor", envelope("monitor", monitor_result()), display(120, false)).find('\x1b'), std::string::npos);
    EXPECT_NE(render("monitor", envelope("monitor", monitor_result()), display(120, true)).find("\x1b[33mRAISED"), std::string::npos);
    // NO_COLOR set (to anything but empty) turns colour off, on a terminal with a TERM.
    EXPECT_FALSE(colour_wanted(true, "1", "xterm-256color"));
    EXPECT_TRUE(colour_wanted(true, nullptr, "xterm-256color"));
}

TEST(CliTables, MonitorUsageCapacityDoctorEventsAreCompactTables) {
    json doctor = {{"verdict", "This host enforces process groups; 1 missing"},
                   {"enforced", {"process groups"}},
                   {"not_enforced", {"cpu.max: controller 'cpu' is not available " + kLongName}},
                   {"daemon", {{"recovery", {{"leak_detection", {{"last_pass", {{"at", "2026-12-04T09:00:00Z"}, {"findings", {1, 2}},
                                                                               {"cleaned", {1}}, {"failed", json::array()}}}}},
                                             {"performance_degradation",
                                              {{"degraded", {{{"workflow_type", "build"}, {"recent_seconds", 13.0}, {"baseline_seconds", 10.0}}}}}}}}}}};
    json events = {{"events", {{{"timestamp", "2026-12-04T09:00:00Z"}, {"event", "allocated"}, {"workflow_id", kBadName}, {"message", kLongName}}}}};
    for (std::size_t width : {40u, 160u}) {
        const std::string monitor = render("monitor", envelope("monitor", monitor_result()), display(width));
        expect_readable(monitor, width);
        EXPECT_NE(monitor.find("PRESSURE"), std::string::npos) << monitor;
        EXPECT_NE(monitor.find("THRESHOLD"), std::string::npos) << monitor;
        std::size_t lines = 0;
        for (char c : monitor) lines += c == '\n';
        EXPECT_LE(lines, 30u) << "monitor system in a screen, not 110 lines\n" << monitor;

        const std::string usage = render("usage", envelope("usage", usage_result()), display(width), recent(60, true));
        expect_readable(usage, width);
        EXPECT_NE(usage.find("alloc_a"), std::string::npos) << usage;
        EXPECT_NE(usage.find("ended allocations (1)"), std::string::npos) << usage;

        const std::string capacity = render("capacity", envelope("capacity", capacity_result()), display(width), recent(60, true));
        expect_readable(capacity, width);
        EXPECT_NE(capacity.find("CPU CORES"), std::string::npos) << capacity;
        EXPECT_TRUE(has_sparkline(capacity)) << capacity;

        const std::string doc = render("doctor", envelope("doctor", doctor), display(width));
        expect_readable(doc, width);
        EXPECT_NE(doc.find("NOT enforced"), std::string::npos) << doc;
        if (width == 160u) { // wide enough for each line whole
            EXPECT_NE(doc.find("2 finding(s), 1 cleaned, 0 failed"), std::string::npos) << doc;
            EXPECT_NE(doc.find("workflow type build takes 13 s"), std::string::npos) << doc;
        }

        const std::string ev = render("events", envelope("events", events), display(width));
        expect_readable(ev, width);
        EXPECT_NE(ev.find("allocated"), std::string::npos) << ev;
    }
    const std::string usage = render("usage", envelope("usage", usage_result()), display(160), recent(60, true));
    EXPECT_NE(usage.find("0.25 / 0.5"), std::string::npos) << usage;
    EXPECT_NE(usage.find("128M / 256M"), std::string::npos) << usage;
}

TEST(CliTables, AnyOtherAnswerIsATableOfItsFieldsNeverJson) {
    // Shapes the other operations answer with: scalars, nested objects, lists of objects with
    // nested parts, rows with a "columns" sibling, an object of objects (a matrix), deep nesting.
    json deep = {{"a", {{"b", {{"c", {{"d", {{"e", {{"f", {{"g", {{"h", 1}, {"i", {1, 2}}}}}}}}}}}}}}}}};
    json result = {{"dry_run", true},
                   {"target", kBadName},
                   {"note", "a long sentence " + kLongName + " that wraps"},
                   {"allocations",
                    {{{"allocation_id", "alloc_a"}, {"current", {{"cpu_cores", 2}, {"memory_gb", 1}}}, {"backtest", {{"runs", {1, 2, 3}}, {"x", {{"y", 1}}}}}},
                     {{"allocation_id", "alloc_b"}, {"reason", nullptr}}}},
                   {"columns", {"series", "timestamp", "value"}},
                   {"samples", {{"node/cpu_percent", 1764838800, 12.5}, {"node/cpu_percent", 1764838801, 13.25}}},
                   {"node", {{"cpu_percent", {{"mean", 1.5}, {"p95", 2}, {"max", 3}}}, {"memory_percent", {{"mean", 4}, {"p95", 5}, {"max", 6}}}}},
                   {"deep", deep}};
    for (std::size_t width : {40u, 160u}) {
        const std::string text = render("optimize", envelope("optimize", result), display(width));
        expect_readable(text, width);
        EXPECT_NE(text.find("dry run"), std::string::npos) << text;
        EXPECT_NE(text.find("yes"), std::string::npos) << text;
        EXPECT_NE(text.find("ALLOCATION ID"), std::string::npos) << text;
        EXPECT_NE(text.find("SERIES"), std::string::npos) << "rows headed by their columns\n" << text;
        EXPECT_NE(text.find("13.25"), std::string::npos) << text;
        EXPECT_NE(text.find("MEAN"), std::string::npos) << "an object of like objects is a matrix\n" << text;
        EXPECT_NE(text.find("nested deeper"), std::string::npos) << text;
        EXPECT_NE(text.find("note:"), std::string::npos) << "recommendations are kept\n" << text;
    }
    // The long text is wrapped, not cut: all of it is there across the lines.
    const std::string wide = render("optimize", envelope("optimize", result), display(160));
    std::size_t xs = 0;
    const auto start = wide.find("a long sentence");
    for (std::size_t i = start; i < wide.size() && wide.compare(i, 5, "wraps") != 0; ++i) xs += wide[i] == 'x';
    EXPECT_EQ(xs, 300u) << wide;
}

TEST(CliTables, ListsLongerThanAScreenSayHowManyMore) {
    json list = json::array();
    for (int i = 0; i < 100; ++i) list.push_back({{"conflict_id", "conf_" + std::to_string(i)}, {"occurrences", i}});
    const std::string text = render("status", envelope("status", {{"conflicts", list}}), display(80));
    EXPECT_NE(text.find("conflicts (100)"), std::string::npos) << text;
    EXPECT_NE(text.find("... 60 more (resmgr --json shows all)"), std::string::npos) << text;
}

TEST(CliTables, AListsColumnsStartWithWhatEachRowIsThenItsValue) {
    // The answer's keys arrive sorted: lower, timestamp, upper, value.
    json points = json::array();
    for (int i = 0; i < 3; ++i) points.push_back({{"lower", 1.5 + i}, {"timestamp", "2014-03-01T10:2" + std::to_string(i) + ":00Z"}, {"upper", 9.5}, {"value", 4.25}});
    json models = {{{"interval_coverage", 0.95}, {"mae", 2.5}, {"model", "seasonal_naive"}}};
    const std::string text = render("forecast", envelope("forecast", {{"forecast", points}, {"models", models}}), display(100));
    const auto header = text.find("TIMESTAMP");
    ASSERT_NE(header, std::string::npos) << text;
    const std::string line = text.substr(header, text.find('\n', header) - header);
    EXPECT_LT(line.find("TIMESTAMP"), line.find("VALUE")) << line;
    EXPECT_LT(line.find("VALUE"), line.find("LOWER")) << line;
    EXPECT_LT(line.find("LOWER"), line.find("UPPER")) << line;
    const auto model_header = text.find("MODEL");
    ASSERT_NE(model_header, std::string::npos) << text;
    EXPECT_LT(model_header, text.find("INTERVAL COVERAGE")) << "the model names its row\n" << text;
    // At a width that cannot hold every column, the last ones go first: what the row is stays.
    const std::string narrow = render("forecast", envelope("forecast", {{"forecast", points}}), display(24));
    EXPECT_NE(narrow.find("TIMESTAMP"), std::string::npos) << narrow;
    EXPECT_EQ(narrow.find("UPPER"), std::string::npos) << narrow;
}

TEST(CliTables, ValueText) {
    EXPECT_EQ(value_text(json(16.52683651548006), Charset::utf8), "16.527");
    EXPECT_EQ(value_text(json(2.0), Charset::utf8), "2");
    EXPECT_EQ(value_text(json(11306608023LL), Charset::utf8), "11306608023");
    EXPECT_EQ(value_text(json(nullptr), Charset::ascii), "-");
    EXPECT_EQ(value_text(json::array(), Charset::utf8), "none");
    EXPECT_EQ(value_text(json{"a", 1, true}, Charset::utf8), "a, 1, yes");
    EXPECT_EQ(wrap("aaa bbb ccc", 7), (std::vector<std::string>{"aaa bbb", "ccc"}));
    EXPECT_EQ(wrap(std::string(12, 'z'), 5), (std::vector<std::string>{"zzzzz", "zzzzz", "zz"}));
    EXPECT_EQ(wrap("ab \u00e9\u00e9\u00e9\u00e9", 3), (std::vector<std::string>{"ab", "\u00e9\u00e9\u00e9", "\u00e9"}));
}

TEST(CliTables, SparklineSeriesAndPoints) {
    auto series = sparkline_series("status", status_envelope());
    EXPECT_EQ(series, (std::vector<std::string>{"node/cpu_percent", "node/memory_percent", "alloc/alloc_a/cpu_cores", "alloc/alloc_a/memory_bytes",
                                                "alloc/alloc_b/cpu_cores", "alloc/alloc_b/memory_bytes"}));
    EXPECT_TRUE(sparkline_series("status", envelope("status", {{"conflicts", json::array()}})).empty());
    EXPECT_TRUE(sparkline_series("monitor", envelope("monitor", monitor_result())).empty());
    EXPECT_EQ(sparkline_series("capacity", envelope("capacity", capacity_result())).size(), 2u);
    EXPECT_EQ(sparkline_points(display(40)), 12u);
    EXPECT_EQ(sparkline_points(display(100)), 50u);
    EXPECT_EQ(sparkline_points(display(300)), 60u);
}

TEST(HistorySlots, EachSlotIsTheMeanOfItsSamplesAndEmptySlotsAreNull) {
    using resmgr::history::Bucket;
    std::vector<Bucket> buckets;
    for (std::int64_t ts : {1000, 1001, 1010, 1059, 1060, 2000}) buckets.push_back({ts, 1, 0, static_cast<double>(ts - 1000), 0, 0});
    const auto slots = resmgr::history::slot_means(buckets, 1000, 60, 6); // 10 s slots over [1000, 1060)
    ASSERT_EQ(slots.size(), 6u);
    EXPECT_DOUBLE_EQ(*slots[0], 0.5); // 1000 and 1001
    EXPECT_DOUBLE_EQ(*slots[1], 10);
    EXPECT_FALSE(slots[2].has_value());
    EXPECT_DOUBLE_EQ(*slots[5], 59); // 1060 and 2000 are outside the window
    EXPECT_EQ(resmgr::history::slot_means(buckets, 1000, 0, 4), std::vector<std::optional<double>>(4));
}

TEST(OperationHelp, ShowsEachParametersDefault) {
    auto scale = operation_help("scale");
    ASSERT_TRUE(scale.has_value());
    EXPECT_NE(scale->find("factor         number   default 1.5    up multiplies"), std::string::npos) << *scale;
    EXPECT_NE(scale->find("resource       string   default all    cpu, memory or all"), std::string::npos) << *scale;
    EXPECT_NE(scale->find("direction      string   required       up, down or auto"), std::string::npos) << *scale;
    EXPECT_NE(operation_help("check-conflicts")->find("default 4h"), std::string::npos);
    EXPECT_NE(operation_help("optimize")->find("default true"), std::string::npos);
    EXPECT_NE(operation_help("history")->find("points  integer 1..1000  default 60"), std::string::npos) << *operation_help("history");
}

TEST(OperationHelp, EveryDeclaredDefaultPassesItsOwnSpec) {
    std::size_t defaults = 0;
    for (const auto& op : resmgr::operation_catalog())
        for (const auto& p : op.params) {
            if (p.fallback.is_null()) continue;
            ++defaults;
            EXPECT_FALSE(p.required) << op.name << " " << p.name << ": a required parameter has no use for a default";
            EXPECT_NO_THROW(resmgr::check_params(json{{p.name, p.fallback}}, std::span(&p, 1))) << op.name << " " << p.name << " = " << p.fallback;
            EXPECT_EQ(resmgr::param_or_default(json::object(), op.params, p.name), p.fallback);
        }
    EXPECT_GE(defaults, 15u);
    const auto* scale = resmgr::find_operation("scale", "");
    ASSERT_NE(scale, nullptr);
    EXPECT_EQ(resmgr::param_or_default(json{{"factor", 2}}, scale->params, "factor"), json(2));
    EXPECT_EQ(resmgr::param_or_default(json{{"factor", nullptr}}, scale->params, "factor"), json(1.5)) << "null counts as absent";
    EXPECT_THROW(resmgr::param_default(scale->params, "allocation_id"), std::logic_error) << "no default declared";
}
