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
