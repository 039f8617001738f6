// What a person sees in `resmgr top` and the tables and pictures it is made of: text from outside
// made safe, widths in columns, tables cut to 40 and 200 columns, sparklines and bars in UTF-8
// and ASCII, and the frame from the daemon's answers, sorted, filtered and cut to the screen; and the
// help of one operation from the catalog.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cli/sparkline.hpp"
#include "cli/operation_help.hpp"
#include "cli/progress.hpp"
#include "cli/table.hpp"
#include "cli/text.hpp"
#include "cli/top_view.hpp"

using nlohmann::json;
using namespace resmgr::cli;

namespace {

const std::string kReplacement = "\xEF\xBF\xBD";
const std::string kEllipsis = "\xE2\x80\xA6";
const std::string kDash = "\xE2\x80\x93";

// The text with its SGR escapes taken out: what the terminal shows.
std::string visible(const std::string& line) {
    std::string out;
    for (size_t i = 0; i < line.size(); ++i) {
        if (line[i] == '\x1b' && i + 1 < line.size() && line[i + 1] == '[') {
            i += 2;
            while (i < line.size() && line[i] != 'm') ++i;
            continue;
        }
        out += line[i];
    }
    return out;
}

bool all_ascii(const std::string& s) {
    for (unsigned char c : s)
        if (c >= 0x80) return false;
    return true;
}

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (auto& l : lines) out += l + "\n";
    return out;
}

} // namespace

TEST(TerminalText, InvalidUtf8AndControlCharactersBecomeReplacementCharacters) {
    EXPECT_EQ(sanitize("ok", Charset::utf8), "ok");
    EXPECT_EQ(sanitize("caf\xC3\xA9", Charset::utf8), "caf\xC3\xA9");
    EXPECT_EQ(sanitize("a\xFF" "b", Charset::utf8), "a" + kReplacement + "b");       // not a lead byte
    EXPECT_EQ(sanitize("\xC0\xAF", Charset::utf8), kReplacement + kReplacement);     // overlong '/'
    EXPECT_EQ(sanitize("\xED\xA0\x80", Charset::utf8), kReplacement + kReplacement + kReplacement); // a surrogate
    EXPECT_EQ(sanitize("x\xE2\x82", Charset::utf8), "x" + kReplacement + kReplacement);           // cut short
    EXPECT_EQ(sanitize("\xF4\x90\x80\x80", Charset::utf8).find("\xF4"), std::string::npos);       // above U+10FFFF
    // Escape sequences, newlines, tabs, DEL and C1 controls cannot move the cursor or recolour.
    const std::string hostile = sanitize("\x1b[2J\x1b]0;title\x07\n\t\x7f\xC2\x9B" "31m", Charset::utf8);
    EXPECT_EQ(hostile.find('\x1b'), std::string::npos);
    EXPECT_EQ(hostile.find('\n'), std::string::npos);
    EXPECT_EQ(hostile.find("\xC2\x9B"), std::string::npos);
    EXPECT_EQ(display_width(hostile), std::string("\x1b[2J\x1b]0;title\x07\n\t\x7f").size() + 1 + 3);
}

TEST(TerminalText, AsciiLocaleGetsOnlyAscii) {
    EXPECT_EQ(sanitize("caf\xC3\xA9 \xE6\x97\xA5", Charset::ascii), "caf? ?");
    EXPECT_EQ(sanitize("\xFF\x1b", Charset::ascii), "??");
    EXPECT_EQ(charset_for_codeset("UTF-8"), Charset::utf8);
    EXPECT_EQ(charset_for_codeset("utf8"), Charset::utf8);
    EXPECT_EQ(charset_for_codeset("ANSI_X3.4-1968"), Charset::ascii);
    EXPECT_EQ(charset_for_codeset("ISO-8859-1"), Charset::ascii);
}

TEST(TerminalText, WidthCountsColumnsNotBytes) {
    EXPECT_EQ(display_width("abc"), 3u);
    EXPECT_EQ(display_width("caf\xC3\xA9"), 4u);            // é: 2 bytes, 1 column
    EXPECT_EQ(display_width("e\xCC\x81"), 1u);              // e + combining acute
    EXPECT_EQ(display_width("\xE6\x97\xA5\xE6\x9C\xAC"), 4u); // 日本: wide
    EXPECT_EQ(display_width("\xF0\x9F\x99\x82"), 2u);       // an emoji
    EXPECT_EQ(display_width("\xE2\x80\x8B"), 0u);           // zero-width space
}

TEST(TerminalText, FitCutsWithAnEllipsisToTheColumn) {
    EXPECT_EQ(fit("workflow", 8, Charset::utf8), "workflow");
    EXPECT_EQ(fit("workflow-42", 8, Charset::utf8), "workflo" + kEllipsis);
    EXPECT_EQ(display_width(fit("workflow-42", 8, Charset::utf8)), 8u);
    EXPECT_EQ(fit("workflow-42", 8, Charset::ascii), "workf...");
    EXPECT_EQ(fit("workflow-42", 2, Charset::ascii), "..");
    EXPECT_EQ(fit("workflow-42", 0, Charset::utf8), "");
    // A wide character that would straddle the edge is left out, not split.
    const std::string wide = "\xE6\x97\xA5\xE6\x97\xA5\xE6\x97\xA5"; // 6 columns
    EXPECT_EQ(fit(wide, 4, Charset::utf8), "\xE6\x97\xA5" + kEllipsis);
    EXPECT_EQ(pad_right(wide, 4, Charset::utf8), "\xE6\x97\xA5" + kEllipsis + " ");
    EXPECT_EQ(pad_left("7", 3, Charset::utf8), "  7");
    // A combining mark stays with the character it belongs to.
    EXPECT_EQ(fit("ae\xCC\x81" "bcdef", 3, Charset::utf8), "ae\xCC\x81" + kEllipsis);
}

TEST(TerminalText, ColourOnlyOnATerminalWithoutNoColor) {
    EXPECT_TRUE(colour_wanted(true, nullptr, "xterm-256color"));
    EXPECT_TRUE(colour_wanted(true, "", "xterm")); // NO_COLOR set but empty does not count
    EXPECT_FALSE(colour_wanted(true, "1", "xterm"));
    EXPECT_FALSE(colour_wanted(false, nullptr, "xterm"));
    EXPECT_FALSE(colour_wanted(true, nullptr, "dumb"));
    EXPECT_FALSE(colour_wanted(true, nullptr, nullptr));
    EXPECT_EQ(paint("x", Colour::red, true), "\x1b[31mx\x1b[0m");
    EXPECT_EQ(paint("x", Colour::red, false), "x");
    EXPECT_EQ(paint("", Colour::bold, true), "");
}

namespace {

std::vector<Column> columns() {
    return {{"NAME", false, true, 6, 100}, {"ID", false, false, 4, 1}, {"STATE", false, false, 4, 50}, {"CPU", true, false, 4, 60}};
}

std::vector<std::vector<Cell>> rows(const std::string& long_name) {
    return {{{"build"}, {"alloc_0123456789"}, {"running"}, {"1.5/2"}},
            {{long_name, Colour::red}, {"alloc_abcdef0123"}, {"paused", Colour::yellow}, {"0/1"}}};
}

} // namespace

TEST(Table, WideTerminalShowsEverythingAligned) {
    auto lines = render_table(columns(), rows("test-suite"), 200, {Charset::utf8, false});
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0], "NAME        ID                STATE      CPU");
    EXPECT_EQ(lines[1], "build       alloc_0123456789  running  1.5/2");
    EXPECT_EQ(lines[2], "test-suite  alloc_abcdef0123  paused     0/1");
}

TEST(Table, NarrowTerminalCutsNamesThenDropsTheLeastImportantColumns) {
    const std::string long_name(300, 'w');
    for (size_t width : {40u, 30u, 20u, 12u}) {
        auto lines = render_table(columns(), rows(long_name), width, {Charset::utf8, false});
        for (auto& l : lines) EXPECT_LE(display_width(l), width) << "width " << width << ": " << l;
        EXPECT_NE(lines[0].find("NAME"), std::string::npos) << width;
        EXPECT_NE(lines[2].find(kEllipsis), std::string::npos) << "the long name is cut with an ellipsis: " << lines[2];
    }
    // At 40 columns cutting the name is enough; at 30 the ID (keep 1) goes first.
    auto at40 = render_table(columns(), rows(long_name), 40, {Charset::utf8, false});
    EXPECT_EQ(at40[0], "NAME    ID                STATE      CPU");
    EXPECT_EQ(at40[2].substr(0, 8), "wwwww" + kEllipsis);
    auto at30 = render_table(columns(), rows(long_name), 30, {Charset::utf8, false});
    EXPECT_EQ(at30[0].find("ID"), std::string::npos) << at30[0];
    EXPECT_NE(at30[0].find("STATE"), std::string::npos) << at30[0];
    EXPECT_EQ(at30[1].substr(0, 5), "build");
    EXPECT_EQ(display_width(at30[2]), 30u) << "the name takes the room the ID left: " << at30[2];
    // Narrower still: STATE (50) goes before CPU (60), and NAME (100) is the last one left.
    auto at15 = render_table(columns(), rows(long_name), 15, {Charset::utf8, false});
    EXPECT_EQ(at15[0].find("STATE"), std::string::npos) << at15[0];
    EXPECT_NE(at15[0].find("CPU"), std::string::npos) << at15[0];
    auto at5 = render_table(columns(), rows(long_name), 5, {Charset::utf8, false});
    EXPECT_EQ(at5[0], "NAME");
    EXPECT_EQ(at5[2], "wwww" + kEllipsis);
}

TEST(Table, TheWidestTextGivesWayBeforeADateBesideIt) {
    // plan-capacity's recommendations: a date, then a long description, both texts.
    const std::vector<Column> cols{{"DATE", false, true, 8, 3}, {"DETAILS", false, true, 8, 2}, {"PRIORITY", false, false, 8, 1}};
    const std::vector<std::vector<Cell>> cells{{{"2014-07-15T00:00:00Z"}, {"cpu daily peak 100 trending 0/day reaches the limit " + std::string(60, 'x')}, {"critical"}}};
    const auto lines = render_table(cols, cells, 80, {Charset::utf8, false});
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[1].substr(0, 20), "2014-07-15T00:00:00Z") << lines[1];
    EXPECT_NE(lines[1].find(kEllipsis), std::string::npos) << "the details are cut: " << lines[1];
    EXPECT_EQ(display_width(lines[1]), 80u) << lines[1];
}

TEST(Table, HostileCellsAreSanitizedAndColourDoesNotCountAsWidth) {
    auto lines = render_table(columns(), rows("evil\x1b[2J\xFF\nname"), 40, {Charset::utf8, true});
    for (auto& l : lines) EXPECT_LE(display_width(visible(l)), 40u) << l;
    EXPECT_EQ(visible(lines[2]).find('\x1b'), std::string::npos);
    EXPECT_NE(lines[2].find("\x1b[31m"), std::string::npos) << "the red cell is painted";
    EXPECT_NE(lines[2].find(kReplacement), std::string::npos);
    auto ascii = render_table(columns(), rows("caf\xC3\xA9-\xFF"), 40, {Charset::ascii, false});
    for (auto& l : ascii) EXPECT_TRUE(all_ascii(l)) << l;
    EXPECT_EQ(ascii[2].substr(0, 6), "caf?-?");
}

TEST(Sparkline, EightLevelsInUtf8AndAscii) {
    const std::vector<double> ramp{0, 1, 2, 3, 4, 5, 6, 7};
    EXPECT_EQ(sparkline(ramp, 8, Charset::utf8), "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588");
    EXPECT_EQ(sparkline(ramp, 8, Charset::ascii), "_.-:=+*#");
    EXPECT_EQ(sparkline(ramp, 3, Charset::ascii), "_=#") << "the last 3 values, scaled among themselves";
    EXPECT_EQ(sparkline(ramp, 3, Charset::ascii, 0.0, 7.0), "+*#");
    EXPECT_EQ(sparkline(std::vector<double>{50, NAN, 100}, 10, Charset::ascii, 0.0, 100.0), "= #") << "no sample: a gap";
    EXPECT_EQ(sparkline(std::vector<double>{3, 3, 3}, 10, Charset::ascii), "___");
    EXPECT_EQ(sparkline(std::vector<double>{-5, 500}, 10, Charset::ascii, 0.0, 100.0), "_#") << "clamped to the range";
    EXPECT_EQ(sparkline(std::vector<double>{}, 10, Charset::utf8), "");
}

TEST(Bar, UsedAgainstAllocated) {
    EXPECT_EQ(bar(5, 10, 10, Charset::ascii), "#####.....");
    EXPECT_EQ(bar(0, 10, 4, Charset::ascii), "....");
    EXPECT_EQ(bar(10, 10, 4, Charset::ascii), "####");
    EXPECT_EQ(bar(30, 10, 4, Charset::ascii), "###!") << "over the allocation";
    EXPECT_EQ(bar(1, 0, 4, Charset::ascii), "") << "uncapped: nothing to compare with";
    EXPECT_EQ(bar(NAN, 10, 4, Charset::ascii), "");
    EXPECT_EQ(bar(5, 10, 2, Charset::utf8), "\u2588\u2591");
    EXPECT_EQ(bar(1, 4, 2, Charset::utf8), "\u258C\u2591") << "half a cell in eighths";
    EXPECT_EQ(display_width(bar(3.3, 10, 10, Charset::utf8)), 10u);
}

namespace {

json allocation(const std::string& id, const std::string& workflow, const std::string& priority, int value, const std::string& status,
                double cpu, double memory_bytes) {
    return {{"allocation_id", id}, {"workflow_id", workflow}, {"priority", priority}, {"priority_value", value}, {"status", status},
            {"resources", {{"cpu_cores", cpu}, {"memory_bytes", memory_bytes}, {"agents", 2}}}, {"pids", 1},
            {"cgroup_path", "/sys/fs/cgroup/resmgr/" + id}};
}

json usage_entry(const std::string& id, json cpu, json memory, json pids) {
    return {{"allocation_id", id},
            {"used", {{"cpu_cores", cpu}, {"memory_bytes", memory}, {"pids", pids}}},
            {"throttling", {{"nr_periods", 200}, {"nr_throttled", 50}}},
            {"agents", json::array({{{"name", "a1"}, {"state", "active"}}, {{"name", "a2"}, {"state", "exited"}}})},
            {"kernel_probes", {{"runq_latency", {{"p99_us", 15438.9}}}, {"tool_instances_running", {{"bash_shells", 2}, {"web_requests", 1}}}}}};
}

constexpr double GiB = 1024.0 * 1024 * 1024;

// Three workflows: a busy build, a paused test suite (memory not measured), a queued indexer.
TopSnapshot snapshot() {
    TopSnapshot s;
    json paused = allocation("alloc_t", "wf-test", "low", 20, "paused", 1, 1 * GiB);
    json queued = allocation("alloc_q", "wf-index", "medium", 50, "queued", 0.5, 0);
    queued["queue_position"] = 1;
    s.status = {{"allocations", {allocation("alloc_b", "wf-build", "high", 80, "active", 2, 4 * GiB), paused, queued}},
                {"backend", {{"name", "cgroupfs"}, {"enforces_limits", true}}}};
    s.monitor = {{"sampled_at", "2026-12-04T05:47:27Z"},
                 {"sample_interval", "1s"},
                 {"ebpf", "loaded"},
                 {"pressure", {{"cpu", {{"some", {{"avg10", 12.5}}}}}, {"memory", {{"some", {{"avg10", 0.0}}}}}, {"io", nullptr}}},
                 {"thresholds", {{"cpu", {{"raised", true}, {"last_value", 91.0}, {"threshold", 80}, {"severity", "warning"}}},
                                 {"memory", {{"raised", false}}}}},
                 {"system_resources",
                  {{"compute", {{"cpu_cores", {{"total", 8.0}, {"allocated", 3.5}, {"reserved", 0.5}, {"utilization_percent", 91.0}}},
                                {"memory", {{"total_gb", 32.0}, {"allocated_gb", 5.0}, {"buffer_gb", 1.0}, {"utilization_percent", 40.0}}}}},
                   {"workflow_resources",
                    {{"agent_pool", {{"active_agents", 1}, {"idle_agents", 0}, {"failed_agents", 0}, {"max_agents", 20}}},
                     {"concurrent_workflows", {{"active_workflows", 1}, {"paused_workflows", 1}, {"queued_workflows", 1}}}}}}}};
    s.usage["wf-build"] = {{"allocations", {usage_entry("alloc_b", 1.75, 1.5 * GiB, 12)}}, {"not_measured", json::array()}};
    s.usage["wf-test"] = {{"allocations", {usage_entry("alloc_t", 0.0, nullptr, nullptr)}},
                          {"not_measured", {"memory.current: cannot read /sys/fs/cgroup/x/memory.current: No such file or directory"}}};
    return s;
}

std::vector<std::string> ids(const std::vector<TopRow>& rows) {
    std::vector<std::string> out;
    for (auto& r : rows) out.push_back(r.allocation_id);
    return out;
}

} // namespace

TEST(TopView, RowsCarryWhatTheDaemonReportsAndNothingElse) {
    auto rows = top_rows(snapshot(), {});
    ASSERT_EQ(rows.size(), 3u);
    const TopRow& build = rows[0];
    EXPECT_EQ(build.allocation_id, "alloc_b");
    EXPECT_EQ(build.state, "running");
    EXPECT_EQ(build.cpu_used, 1.75);
    EXPECT_EQ(build.memory_used, 1.5 * GiB);
    EXPECT_EQ(build.pids, 12) << "pids.current over status' cgroup.procs count";
    EXPECT_EQ(build.agents_live, 1) << "exited agents do not count";
    EXPECT_EQ(build.tools_running, 3);
    EXPECT_EQ(build.throttled_percent, 25.0);
    EXPECT_EQ(build.runq_p99_us, 15438.9);
    const TopRow& test = rows[1];
    EXPECT_EQ(test.state, "paused");
    EXPECT_FALSE(test.memory_used.has_value());
    EXPECT_EQ(test.pids, 1) << "status' count when pids.current is not readable";
    const TopRow& index = rows[2];
    EXPECT_EQ(index.state, "queued #1");
    EXPECT_FALSE(index.cpu_used.has_value()) << "no usage answer for it";
    EXPECT_FALSE(index.agents_live.has_value());
}

TEST(TopView, SortsByCpuMemoryAndPriority) {
    TopSnapshot s = snapshot();
    TopOptions o;
    o.sort = SortKey::cpu;
    EXPECT_EQ(ids(top_rows(s, o)), (std::vector<std::string>{"alloc_b", "alloc_t", "alloc_q"})) << "unknown last";
    s.usage["wf-test"]["allocations"][0]["used"]["cpu_cores"] = 3.0;
    EXPECT_EQ(ids(top_rows(s, o)), (std::vector<std::string>{"alloc_t", "alloc_b", "alloc_q"}));
    o.sort = SortKey::memory;
    EXPECT_EQ(ids(top_rows(s, o)), (std::vector<std::string>{"alloc_b", "alloc_q", "alloc_t"})) << "unknown: by workflow id";
    o.sort = SortKey::priority;
    EXPECT_EQ(ids(top_rows(s, o)), (std::vector<std::string>{"alloc_b", "alloc_q", "alloc_t"}));
    EXPECT_NE(joined(render_top(s, o)).find("sort: priority"), std::string::npos);
}

TEST(TopView, FiltersByWorkflowIgnoringCase) {
    TopOptions o;
    o.filter = "TEST";
    EXPECT_EQ(ids(top_rows(snapshot(), o)), (std::vector<std::string>{"alloc_t"}));
    const std::string frame = joined(render_top(snapshot(), o));
    EXPECT_NE(frame.find("filter: TEST"), std::string::npos) << frame;
    EXPECT_EQ(frame.find("wf-build"), std::string::npos) << frame;
    o.filter = "nothing-like-it";
    EXPECT_NE(joined(render_top(snapshot(), o)).find("(no allocation of a workflow matching the filter)"), std::string::npos);
}

TEST(TopView, WideFrameShowsTheNodeAndEveryColumn) {
    TopOptions o;
    o.width = 200;
    auto frame = render_top(snapshot(), o);
    const std::string text = joined(frame);
    for (auto& l : frame) EXPECT_LE(display_width(l), 200u) << l;
    EXPECT_NE(frame[0].find("resmgr top   2026-12-04T05:47:27Z   every 1s   backend cgroupfs"), std::string::npos) << frame[0];
    EXPECT_NE(text.find("91.0% used   3.5 of 8 cores allocated (0.5 cores reserved)"), std::string::npos) << text;
    EXPECT_NE(text.find("PSI some avg10  cpu 12.5%  memory 0.0%  io " + kDash), std::string::npos) << text;
    EXPECT_NE(text.find("alerts: cpu 91.0 >= 80 (warning)"), std::string::npos) << text;
    EXPECT_NE(text.find("workflows 1 running, 1 paused, 1 queued   sort: cpu"), std::string::npos) << text;
    for (const char* header : {"WORKFLOW", "ALLOCATION", "PRI", "STATE", "CPU", "MEM", "MEM USE", "PIDS", "AGENTS", "TOOLS", "THR%", "RUNQ p99"})
        EXPECT_NE(text.find(header), std::string::npos) << header;
    EXPECT_NE(text.find("1.75/2"), std::string::npos) << text;
    EXPECT_NE(text.find("1.5G/4.0G"), std::string::npos) << text;
    EXPECT_NE(text.find("15.4ms"), std::string::npos) << text;
    EXPECT_NE(text.find(kDash + "/1.0G"), std::string::npos) << "memory not measured is a dash: " << text;
    EXPECT_NE(text.find(kDash + " not measured on this host: memory.current"), std::string::npos) << text;
    EXPECT_EQ(text.find('\x1b'), std::string::npos) << "no colour asked";
    EXPECT_EQ(text.find("q quit"), std::string::npos) << "no key line unless asked (--once)";
}

TEST(TopView, NarrowFrameKeepsTheEssentialColumns) {
    TopOptions o;
    o.width = 40;
    o.keys = true;
    auto frame = render_top(snapshot(), o);
    for (auto& l : frame) EXPECT_LE(display_width(l), 40u) << l;
    const std::string text = joined(frame);
    for (const char* kept : {"WORKFLOW", "STATE", "CPU", "wf-build", "wf-test", "wf-index", "queued #1"}) EXPECT_NE(text.find(kept), std::string::npos) << kept << "\n" << text;
    EXPECT_EQ(text.find("ALLOCATION"), std::string::npos) << text;
    EXPECT_NE(frame.back().find("c cpu  m memory"), std::string::npos) << frame.back();
}

TEST(TopView, HostileAndVeryLongNamesStayInTheirColumn) {
    TopSnapshot s = snapshot();
    const std::string evil = "\x1b[2J\x1b]0;owned\x07" + std::string(500, 'x') + "\xFF\xFE";
    s.status["allocations"][0]["workflow_id"] = evil;
    s.usage[evil] = s.usage["wf-build"];
    for (size_t width : {40u, 200u})
        for (Charset cs : {Charset::utf8, Charset::ascii}) {
            TopOptions o;
            o.width = width;
            o.charset = cs;
            o.colour = true;
            auto frame = render_top(s, o);
            for (auto& l : frame) {
                const std::string shown = visible(l);
                EXPECT_LE(display_width(shown), width) << l;
                EXPECT_EQ(shown.find('\x1b'), std::string::npos) << "only our own colour escapes: " << l;
                EXPECT_EQ(shown.find('\x07'), std::string::npos);
                if (cs == Charset::ascii) {
                    EXPECT_TRUE(all_ascii(l)) << l;
                }
            }
            EXPECT_NE(joined(frame).find(cs == Charset::utf8 ? kEllipsis : "..."), std::string::npos);
        }
}

TEST(TopView, AccountingOnlyOrOddAnswersShowDashesNeverCrash) {
    TopSnapshot bare;
    bare.status = {{"allocations", {{{"allocation_id", "alloc_1"}, {"workflow_id", "wf"}, {"status", "active"}}}},
                   {"backend", {{"name", "accounting"}, {"enforces_limits", false}}}};
    bare.monitor = {{"ebpf", "not loaded: no BTF"}};
    TopOptions o;
    o.width = 120;
    const std::string text = joined(render_top(bare, o));
    EXPECT_NE(text.find("backend accounting (limits NOT enforced)"), std::string::npos) << text;
    EXPECT_NE(text.find("eBPF probes (tools, run-queue latency): not loaded: no BTF"), std::string::npos) << text;
    EXPECT_NE(text.find("uncapped"), std::string::npos) << text;
    // Accounting: no group, so no process or tool count (not zeros).
    bare.status["allocations"][0]["pids"] = 0;
    bare.status["allocations"][0]["cgroup_path"] = "";
    bare.usage["wf"] = {{"allocations", {{{"allocation_id", "alloc_1"}, {"used", nullptr},
                                         {"kernel_probes", {{"tool_instances_running", {{"bash_shells", 0}}}}}}}}};
    const TopRow accounted = top_rows(bare, o).at(0);
    EXPECT_FALSE(accounted.pids.has_value());
    EXPECT_FALSE(accounted.tools_running.has_value());
    TopSnapshot unthrottled = snapshot();
    unthrottled.usage["wf-test"]["allocations"][0]["throttling"] = nullptr;
    const std::string legend = render_top(unthrottled, o).back();
    EXPECT_NE(legend.find("not measured on this host: memory.current, throttling (no nr_throttled in cpu.stat)"), std::string::npos) << legend;
    for (json odd : {json("x"), json(42), json::array({1, "a", nullptr}), json::object({{"allocations", "nope"}}),
                     json::object({{"allocations", {{{"resources", "big"}, {"pids", -3}, {"priority_value", 1e300}}}}})}) {
        TopSnapshot s;
        s.status = odd;
        s.monitor = odd;
        s.usage["wf"] = odd;
        s.problem = "connection refused";
        std::vector<std::string> frame;
        EXPECT_NO_THROW(frame = render_top(s, o)) << odd.dump();
        EXPECT_NE(joined(frame).find("resmgrd: connection refused"), std::string::npos);
    }
}

TEST(TopView, FrameFitsTheScreenHeightAndSaysWhatItLeavesOut) {
    TopSnapshot s = snapshot();
    for (int i = 0; i < 30; ++i) s.status["allocations"].push_back(allocation("alloc_x" + std::to_string(i), "wf-many", "low", 10, "active", 1, 0));
    TopOptions o;
    o.width = 100;
    o.height = 20;
    o.keys = true;
    auto frame = render_top(s, o);
    EXPECT_EQ(frame.size(), 20u);
    const std::string text = joined(frame);
    EXPECT_NE(text.find(" more (narrow with / or f)"), std::string::npos) << text;
    EXPECT_NE(frame.back().find("q quit"), std::string::npos) << "the key line stays";
    o.prompt = "wf-b";
    EXPECT_NE(render_top(s, o).back().find("filter by workflow: wf-b_"), std::string::npos);
    o.height = 0;
    EXPECT_EQ(render_top(s, o).size(), 6u + 1 + 1 + 33 + 2) << "--once: every row";
}

TEST(OperationHelp, ParametersFromTheCatalogWithTypesAndRanges) {
    auto events = operation_help("events");
    ASSERT_TRUE(events.has_value());
    EXPECT_NE(events->find("resmgr events [--follow] [--type T ...]\n"), std::string::npos) << *events;
    EXPECT_NE(events->find("    limit  integer >= 1  optional  the newest N\n"), std::string::npos) << *events;
    auto release = operation_help("release");
    ASSERT_TRUE(release.has_value());
    EXPECT_NE(release->find("allocation_id  string"), std::string::npos) << *release;
    EXPECT_NE(release->find("required"), std::string::npos) << *release;
    EXPECT_NE(release->find("(an operation of the seed)"), std::string::npos);
    // Every row of an operation: status, status conflicts, status TYPE.
    auto status = operation_help("status");
    ASSERT_TRUE(status.has_value());
    EXPECT_NE(status->find("resmgr status conflicts"), std::string::npos) << *status;
    EXPECT_NE(status->find("resmgr status agents|workflows|cpu|memory|storage"), std::string::npos) << *status;
    EXPECT_NE(operation_help("capacity")->find("No parameters."), std::string::npos);
    EXPECT_NE(operation_help("history")->find("Root only."), std::string::npos);
    EXPECT_EQ(operation_help("predict")->find("not built yet"), std::string::npos);
    EXPECT_NE(operation_help("forecast")->find("confidence_interval"), std::string::npos);
    EXPECT_FALSE(operation_help("subscribe").has_value()) << "served by the socket, not asked for by name";
    EXPECT_FALSE(operation_help("no-such-thing").has_value());
}

TEST(OperationHelp, CompletionWordsNameEveryOperationAndItsResourceTypes) {
    const std::vector<std::string> words = completion_words();
    auto has = [&](const std::string& w) { return std::find(words.begin(), words.end(), w) != words.end(); };
    for (const char* w : {"allocate", "release", "status", "monitor", "usage", "top", "help", "status conflicts", "status agents",
                          "status storage", "monitor system", "history export", "history import"})
        EXPECT_TRUE(has(w)) << w;
    EXPECT_FALSE(has("subscribe")) << "served by the socket itself";
    EXPECT_FALSE(has("why PATH")) << "a usage in capitals is an argument, not a type";
    EXPECT_FALSE(has("usage <workflow_id>"));
}

TEST(QueueProgress, SaysWhatAQueuedRequestWaitsFor) {
    json queued{{"allocation_id", "alloc_q"}, {"workflow_id", "wf-q"}, {"status", "queued"}, {"queue_position", 2},
                {"resources", {{"cpu_cores", 1.5}, {"memory_gb", 2.0}}},
                {"constraints", {{"conflict_avoidance", {"wf-b"}}, {"exclusive_access", {"/src/flake.nix"}}}}};
    json holder{{"allocation_id", "alloc_h"}, {"workflow_id", "wf-c"}, {"status", "active"},
                {"constraints", {{"exclusive_access", {"/src/flake.nix"}}}}};
    json avoided{{"allocation_id", "alloc_b"}, {"workflow_id", "wf-b"}, {"status", "paused"}};
    json status{{"allocations", {queued, holder, avoided}},
                {"capacity", {{"cpu_cores", {{"available", 0.5}}}, {"memory", {{"available_gb", 8.0}}}}}};
    EXPECT_EQ(queue_progress(status, "alloc_q"),
              "position 2 in the queue; waiting for: 1.5 CPU cores (0.5 free), workflow wf-b to end (conflict_avoidance), "
              "/src/flake.nix (held by alloc_h of wf-c)");
    // Room now, nothing held: only the line ahead keeps it.
    status["capacity"]["cpu_cores"]["available"] = 4;
    status["allocations"] = {queued};
    EXPECT_EQ(queue_progress(status, "alloc_q"), "position 2 in the queue; waiting for the 1 request(s) ahead of it");
    EXPECT_EQ(queue_progress(status, "alloc_h"), "") << "not in the answer";
    EXPECT_EQ(queue_progress(json::object({{"allocations", {holder}}}), "alloc_h"), "") << "not queued";
    EXPECT_EQ(queue_progress(json("odd"), "alloc_q"), "");
    json odd = status;
    odd["allocations"] = {queued, {{"status", "active"}, {"allocation_id", 7}, {"constraints", {{"exclusive_access", {"/src/flake.nix"}}}}}};
    EXPECT_NE(queue_progress(odd, "alloc_q").find("/src/flake.nix (held by ? of ?)"), std::string::npos);
}
