// /proc and flat-keyed cgroup file parsers, including truncated and garbage input.
#include <gtest/gtest.h>

#include "monitor/node.hpp"

using namespace resmgr::monitor;

TEST(ProcStat, CountsCpuLines) {
    EXPECT_EQ(parse_proc_stat_cpu_count("cpu  1 2 3\ncpu0 1 2 3\ncpu1 4 5 6\nintr 5\n"), 2);
    EXPECT_THROW(parse_proc_stat_cpu_count("cpu  1 2 3\nintr 5\n"), ParseError);
    EXPECT_THROW(parse_proc_stat_cpu_count(""), ParseError);
}

TEST(Meminfo, MemTotal) {
    EXPECT_EQ(parse_meminfo_total("MemTotal:       16384 kB\nMemFree: 1 kB\n"), 16384u * 1024);
    EXPECT_THROW(parse_meminfo_total("MemFree: 1 kB\n"), ParseError);
    EXPECT_THROW(parse_meminfo_total("MemTotal:  lots kB\n"), ParseError);
    EXPECT_THROW(parse_meminfo_total("MemTotal:  16384"), ParseError); // truncated
}

TEST(FlatKeyed, MemoryEvents) {
    auto m = parse_flat_keyed("low 0\nhigh 12\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n", "memory.events");
    EXPECT_EQ(m.at("oom_kill"), 1u);
    EXPECT_EQ(m.at("high"), 12u);
    EXPECT_EQ(m.size(), 6u);
}

TEST(FlatKeyed, GarbageNamesFileAndLine) {
    try {
        parse_flat_keyed("low 0\nhigh twelve\n", "memory.events");
        FAIL();
    } catch (const ParseError& e) {
        EXPECT_NE(std::string(e.what()).find("memory.events:2"), std::string::npos) << e.what();
    }
    EXPECT_THROW(parse_flat_keyed("oom_kill", "x"), ParseError);
    EXPECT_THROW(parse_flat_keyed(" 5", "x"), ParseError);
    EXPECT_THROW(read_flat_keyed("/nonexistent/memory.events"), ParseError);
}

TEST(NodeCapacity, ReadsThisHost) {
    auto c = read_node_capacity();
    EXPECT_GE(c.cpu_cores, 1);
    EXPECT_GT(c.memory_bytes, 64ULL << 20);
}
