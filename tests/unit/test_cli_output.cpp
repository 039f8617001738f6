// What `resmgr` shows a person at a terminal.
#include <gtest/gtest.h>

#include <sstream>

#include "cli/output.hpp"

using nlohmann::json;

namespace {

size_t count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

json allocation(const std::string& id, json unenforced) {
    return {{"allocation_id", id}, {"workflow_id", "wf"}, {"status", "active"},
            {"resources", {{"cpu_cores", 2}, {"memory_gb", 1}, {"memory_bytes", 1u << 30}}},
            {"enforcement", {{"enforced", unenforced.empty()}, {"unenforced", unenforced}}}};
}

const std::string kWhy = ": controller 'cpu' is not available in /sys/fs/cgroup/unified/resmgr/cgroup.controllers (held by cgroup v1, or not delegated)";

} // namespace

TEST(CliOutput, StatusSaysOnceWhatThisHostCannotEnforce) {
    json unenforced{"cpu.max=200000 100000" + kWhy, "cpu.weight=80" + kWhy, "memory.max=1073741824" + kWhy, "memory.high=966367641" + kWhy};
    json allocations{allocation("alloc_1", unenforced), allocation("alloc_2", unenforced),
                     allocation("alloc_3", {"exclusive_files: held at admission only: no guard"})};
    json result{{"backend", {{"name", "cgroupfs"}, {"enforces_limits", true}}}, {"allocations", allocations}};
    json envelope{{"status", "success"}, {"result", result}};
    std::ostringstream out;
    resmgr::cli::print_human(out, "status", envelope, resmgr::cli::Display{120, {}});
    EXPECT_EQ(count(out.str(), "NOT ENFORCED"), 1u) << out.str();
    EXPECT_NE(out.str().find("\nNOT ENFORCED on this host: cpu.max, cpu.weight, memory.max, memory.high, exclusive_files (see resmgr doctor)\n"),
              std::string::npos)
        << out.str();
    EXPECT_EQ(count(out.str(), "alloc_"), 3u) << out.str();
    std::istringstream lines(out.str());
    for (std::string line; std::getline(lines, line);) EXPECT_LE(line.size(), 120u) << line;
}

TEST(CliOutput, AnEnforcedAllocationHasNoNotEnforcedLine) {
    std::ostringstream out;
    resmgr::cli::print_human(out, "allocate", {{"status", "success"}, {"result", {{"allocation", allocation("alloc_1", json::array())}}}});
    EXPECT_NE(out.str().find("Allocated alloc_1"), std::string::npos) << out.str();
    EXPECT_EQ(out.str().find("NOT ENFORCED"), std::string::npos) << out.str();
}

TEST(CliOutput, StatusPressureNamesSignalsAndWhatIsHeldBack) {
    json result = json::parse(R"({"mode": "enforce", "signal_source": "polling avg10 of /proc/pressure/memory",
        "signals": {"cpu_protected": {"enabled": true, "value": 43.5, "threshold": 10, "clear": 5, "raised": true,
                                      "raised_at": "2026-12-04T10:00:01Z"},
                    "swap_free": {"enabled": false}},
        "held": [{"action": "freeze", "allocation_id": "alloc_1", "workflow_id": "wf-low", "priority": 10,
                  "since": "2026-12-04T10:00:05Z", "signal": "cpu_protected", "enforced": true},
                 {"action": "cpu_max", "allocation_id": "alloc_1", "workflow_id": "wf-low", "priority": 10,
                  "since": "2026-12-04T10:00:03Z", "signal": "cpu_protected", "enforced": true}]})");
    result["held"][1]["unenforced"] = "cpu.max=50000 100000" + kWhy;
    std::ostringstream out;
    resmgr::cli::print_human(out, "status", {{"status", "success"}, {"result", result}});
    const std::string text = out.str();
    EXPECT_NE(text.find("pressure responder: mode enforce; signals: polling avg10"), std::string::npos) << text;
    EXPECT_NE(text.find("cpu_protected 43.5 % (threshold 10, clear 5) RAISED since 2026-12-04T10:00:01Z"), std::string::npos) << text;
    EXPECT_EQ(text.find("swap_free"), std::string::npos) << text; // disabled signals are left out
    EXPECT_NE(text.find("held: freeze on alloc_1 (wf-low, priority 10) since 2026-12-04T10:00:05Z, for cpu_protected\n"), std::string::npos) << text;
    EXPECT_NE(text.find("held: cpu_max on alloc_1 (wf-low, priority 10) since 2026-12-04T10:00:03Z, for cpu_protected; NOT enforced: cpu.max="),
              std::string::npos)
        << text;
}

TEST(CliOutput, ForecastOnATerminalIsItsTablesAndAChartWithoutTheRawHistory) {
    json result = {{"metric", "cpu_usage"}, {"period", "next_hour"}, {"confidence_interval", 0.95}, {"model", {{"name", "ets"}}}};
    json values = json::array();
    for (int i = 0; i < 36; ++i) values.push_back(40 + i % 12);
    result["history"] = {{"points", 36}, {"recent", {{"from", "2025-01-15T09:00:00Z"}, {"step_seconds", 300}, {"values", values}}}};
    result["forecast"] = json::array();
    for (int i = 0; i < 12; ++i)
        result["forecast"].push_back({{"timestamp", "2025-01-15T12:" + std::string(i < 2 ? "0" : "") + std::to_string(i * 5) + ":00Z"},
                                      {"value", 45}, {"lower", 38}, {"upper", 52}});
    std::ostringstream out;
    resmgr::cli::print_human(out, "forecast", {{"status", "success"}, {"result", result}}, resmgr::cli::Display{90, {}});
    const std::string text = out.str();
    EXPECT_NE(text.find("cpu_usage: forecast next_hour (ets)"), std::string::npos) << text; // the chart's title
    EXPECT_NE(text.find("95 % interval"), std::string::npos) << text;                      // its legend
    EXPECT_NE(text.find("\u2591"), std::string::npos) << text;                              // the band
    EXPECT_EQ(text.find("recent"), std::string::npos) << "the chart's history is drawn, not listed: " << text;
    EXPECT_EQ(text.find('{'), std::string::npos) << "never JSON: " << text;
}

TEST(CliOutput, ClusterPlaceShowsTheBookingAndHowEachNodeWasWeighed) {
    json candidates{{{"node", "b"}, {"fits", true}, {"under_pressure", false}, {"room", {{"cpu_cores", 1.5}, {"memory_gb", 22.54}, {"agents", 20}}},
                     {"left_over", 1.289}, {"reason", ""}},
                    {{"node", "a"}, {"fits", false}, {"under_pressure", false}, {"room", {{"cpu_cores", 0.5}, {"memory_gb", 21.5}, {"agents", 20}}},
                     {"left_over", 0}, {"reason", "cpu_cores: 1.00 wanted, 0.50 free"}}};
    json result{{"node", "b"}, {"dry_run", false}, {"booking_id", "bk_d259c7988cf603ac"}, {"expires_at", "2026-12-06T02:35:31Z"},
                {"candidates", candidates}, {"window_checked", "6h"}};
    json envelope{{"status", "success"}, {"result", result}, {"recommendations", {"Allocate on node b within 30s"}}};
    std::ostringstream out;
    resmgr::cli::print_human(out, "cluster", envelope, resmgr::cli::Display{120, {}});
    const std::string text = out.str();
    EXPECT_NE(text.find("booked node b until 2026-12-06T02:35:31Z: booking bk_d259c7988cf603ac"), std::string::npos) << text;
    EXPECT_NE(text.find("cpu_cores: 1.00 wanted, 0.50 free"), std::string::npos) << text;
    EXPECT_LT(text.find("\nb "), text.find("\na ")) << text; // in the order placement ranked them
    EXPECT_NE(text.find("22.5G"), std::string::npos) << text;
    EXPECT_NE(text.find("note: Allocate on node b within 30s"), std::string::npos) << text;
}
