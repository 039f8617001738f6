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

// scan_flat_keyed is parse_flat_keyed without the map: the same pairs in file order, blank
// lines counted in the line numbers, the same error.
TEST(FlatKeyed, ScanHandsEveryPairInOrderAndFailsAsTheMapParserDoes) {
    std::vector<std::pair<std::string, std::uint64_t>> seen;
    scan_flat_keyed("usage_usec 7\n\nuser_usec 5\nusage_usec 9", "cpu.stat",
                    [&](std::string_view key, std::uint64_t value) { seen.emplace_back(std::string(key), value); });
    const std::vector<std::pair<std::string, std::uint64_t>> expected{{"usage_usec", 7}, {"user_usec", 5}, {"usage_usec", 9}};
    EXPECT_EQ(seen, expected);
    for (std::string bad : {"a 1\n\nb x\n", "a 1\n 5\n", "a 1\nkeyonly"}) {
        std::string scanned, mapped;
        try {
            scan_flat_keyed(bad, "f", [](std::string_view, std::uint64_t) {});
        } catch (const ParseError& e) {
            scanned = e.what();
        }
        try {
            parse_flat_keyed(bad, "f");
        } catch (const ParseError& e) {
            mapped = e.what();
        }
        EXPECT_FALSE(scanned.empty()) << bad;
        EXPECT_EQ(scanned, mapped) << bad;
    }
    EXPECT_EQ(parse_flat_keyed("a 1\na 2\n", "f").at("a"), 1u) << "the first line with a key wins";
}

TEST(NodeCapacity, ReadsThisHost) {
    auto c = read_node_capacity();
    EXPECT_GE(c.cpu_cores, 1);
    EXPECT_GT(c.memory_bytes, 64ULL << 20);
}
