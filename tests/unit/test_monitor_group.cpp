// Per-cgroup parsers and read_group, against kernel-format fixtures
// (tests/unit/fixtures/monitor/group), this host's v2 root cpu.stat, and truncated and garbage
// variants: each file degrades on its own, nothing throws out of read_group.
#include "build_paths.hpp"
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "monitor/group_stats.hpp"
#include "monitor/memory_headroom.hpp"
#include "tests_support.hpp"

using namespace resmgr::monitor;
using namespace std::string_literals;

namespace {

const std::string kFixtures = std::string(build_paths::source_dir) + "/tests/unit/fixtures/monitor";

std::string fixture(const std::string& relative) { return read_text_file(kFixtures + "/" + relative); }

// The error `f` throws as ParseError; fails the test when it throws none.
std::string parse_error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ParseError& e) {
        return e.what();
    }
    ADD_FAILURE() << "no ParseError";
    return {};
}

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

// A copy of the full fixture group that a test may damage.
void copy_group_fixture(const std::filesystem::path& to) {
    for (const auto& entry : std::filesystem::directory_iterator(kFixtures + "/group"))
        std::filesystem::copy_file(entry.path(), to / entry.path().filename());
}

void write_file(const std::filesystem::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// Each parser must either parse or throw ParseError on every prefix of a fixture and on randomly
// damaged copies; ASan/UBSan builds turn any out-of-bounds read into a failure.
void expect_parse_or_parse_error(const std::string& text, const std::function<void(std::string_view)>& parse) {
    auto attempt = [&](std::string_view input) {
        try {
            parse(input);
        } catch (const ParseError&) {
        }
    };
    for (std::size_t n = 0; n <= text.size(); ++n) attempt(std::string_view(text).substr(0, n));
    std::mt19937 random(7);
    for (int round = 0; round < 500; ++round) {
        std::string damaged = text;
        for (int i = 0; i < 4 && !damaged.empty(); ++i)
            damaged[random() % damaged.size()] = static_cast<char>(random() % 256);
        attempt(damaged);
    }
}

} // namespace

TEST(MonitorGroupCpuStat, ParsesControllerEnabledFormat) {
    auto cpu = parse_cpu_stat(fixture("group/cpu.stat"));
    EXPECT_EQ(cpu.usage_usec, 52184327u);
    EXPECT_EQ(cpu.user_usec, 40311012u);
    EXPECT_EQ(cpu.system_usec, 11873315u);
    EXPECT_EQ(cpu.nr_periods, 4120u);
    EXPECT_EQ(cpu.nr_throttled, 311u);
    EXPECT_EQ(cpu.throttled_usec, 9023417u);
}

TEST(MonitorGroupCpuStat, HostRootWithoutCpuControllerHasNoThrottlingKeys) {
    auto cpu = parse_cpu_stat(fixture("unified_root/cpu.stat"));
    EXPECT_EQ(cpu.usage_usec, 9844104000u);
    EXPECT_EQ(cpu.user_usec, 8486196000u);
    EXPECT_EQ(cpu.system_usec, 1357908000u);
    EXPECT_FALSE(cpu.nr_periods);
    EXPECT_FALSE(cpu.nr_throttled);
    EXPECT_FALSE(cpu.throttled_usec);
}

TEST(MonitorGroupCpuStat, RejectsTruncatedAndGarbage) {
    EXPECT_TRUE(starts_with(parse_error_of([] { parse_cpu_stat("usage_usec 52184327\nuser_usec\n"); }), "cpu.stat:2:"));
    EXPECT_TRUE(starts_with(parse_error_of([] { parse_cpu_stat("usage_usec 12ab\n"); }), "cpu.stat:1:"));
    EXPECT_TRUE(starts_with(parse_error_of([] { parse_cpu_stat(""); }), "cpu.stat:1: empty"));
    auto garbage = parse_error_of([] { parse_cpu_stat("\x7f" "ELF\x02\x01\x01\x00\x00"s); });
    // Quoted printable; the message ends at the first NUL (what() is a C string).
    EXPECT_EQ(garbage, "cpu.stat:1: expected 'key value', got '\\x7fELF\\x02\\x01\\x01");
    parse_error_of([] { parse_cpu_stat("usage_usec 99999999999999999999\n"); });
    parse_error_of([] { parse_cpu_stat("usage_usec -5\n"); });
}

TEST(MonitorGroupSingleValue, MemoryCurrentAndPidsCurrent) {
    EXPECT_EQ(parse_single_value(fixture("group/memory.current"), "memory.current"), 734003200u);
    EXPECT_EQ(parse_single_value(fixture("group/pids.current"), "pids.current"), 17u);
    EXPECT_EQ(parse_single_value("0", "pids.current"), 0u); // no trailing newline is fine
    for (std::string bad : {""s, "\n"s, "17 \n"s, "-1\n"s, "max\n"s, "1\n2\n"s, "1\n\n"s, "99999999999999999999\n"s, "12\x00\n"s}) {
        EXPECT_TRUE(starts_with(parse_error_of([&] { parse_single_value(bad, "pids.current"); }), "pids.current:1:"))
            << testing::PrintToString(bad);
    }
}

TEST(MonitorGroupMemoryStat, ParsesKernelFormat) {
    auto stat = parse_memory_stat(fixture("group/memory.stat"));
    EXPECT_EQ(stat.anon_bytes, 524288000u);
    EXPECT_EQ(stat.file_bytes, 188743680u);
    EXPECT_EQ(stat.shmem_bytes, 1048576u);
    EXPECT_EQ(stat.slab_bytes, 6815744u);
    EXPECT_EQ(stat.sock_bytes, 0u);
    EXPECT_EQ(stat.pgmajfault, 87u);
}

TEST(MonitorGroupMemoryStat, RejectsTruncatedAndGarbage) {
    EXPECT_EQ(parse_error_of([] { parse_memory_stat("anon 524288000\n"); }), "memory.stat: no 'file' key");
    EXPECT_TRUE(starts_with(parse_error_of([] { parse_memory_stat("anon 524288000\nfil"); }), "memory.stat:2:"));
    EXPECT_TRUE(starts_with(parse_error_of([] { parse_memory_stat("anon 5242\xff\xfe\nfile 1\n"); }), "memory.stat:1:"));
    parse_error_of([] { parse_memory_stat(""); });
}

TEST(MonitorGroupMemoryEvents, ParsesKernelFormat) {
    auto events = parse_memory_events(fixture("group/memory.events"));
    EXPECT_EQ(events.low, 0u);
    EXPECT_EQ(events.high, 1742u);
    EXPECT_EQ(events.max, 23u);
    EXPECT_EQ(events.oom, 2u);
    EXPECT_EQ(events.oom_kill, 1u);
}

TEST(MonitorGroupMemoryEvents, RejectsTruncatedAndGarbage) {
    EXPECT_EQ(parse_error_of([] { parse_memory_events("low 0\nhigh 1742\nmax 23\noom 2\n"); }),
              "memory.events: no 'oom_kill' key");
    EXPECT_TRUE(starts_with(parse_error_of([] { parse_memory_events("low 0\nhigh twelve\n"); }), "memory.events:2:"));
    parse_error_of([] { parse_memory_events(""); });
}

TEST(MonitorGroupIoStat, SumsDevices) {
    // 8:0 rbytes=1458176 wbytes=311296 rios=192 wios=37 dbytes=0 dios=0
    // 253:0 rbytes=4096 wbytes=1228800 rios=1 wios=150 dbytes=8192 dios=2
    auto io = parse_io_stat(fixture("group/io.stat"));
    EXPECT_EQ(io.rbytes, 1458176u + 4096u);
    EXPECT_EQ(io.wbytes, 311296u + 1228800u);
    EXPECT_EQ(io.rios, 193u);
    EXPECT_EQ(io.wios, 187u);
    EXPECT_EQ(io.dbytes, 8192u);
    EXPECT_EQ(io.dios, 2u);
    EXPECT_EQ(io.devices, 2u);
}

TEST(MonitorGroupIoStat, EmptyMeansNoIoYet) {
    auto io = parse_io_stat("");
    EXPECT_EQ(io.devices, 0u);
    EXPECT_EQ(io.rbytes, 0u);
}

TEST(MonitorGroupIoStat, IgnoresOtherControllersKeys) {
    // io.latency and io.cost append their own keys, some not integers.
    auto io = parse_io_stat("8:16 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0 cost.vrate=100.00 cost.usage=12 "
                            "depth=max avg_lat=1234 win=100\n");
    EXPECT_EQ(io.rbytes, 10u);
    EXPECT_EQ(io.wios, 2u);
    EXPECT_EQ(io.devices, 1u);
}

TEST(MonitorGroupIoStat, RejectsTruncatedAndGarbage) {
    auto text = fixture("group/io.stat");
    auto truncated = text.substr(0, text.find("dios=2"));
    EXPECT_TRUE(starts_with(parse_error_of([&] { parse_io_stat(truncated); }), "io.stat:2: expected rbytes wbytes"));
    EXPECT_TRUE(starts_with(parse_error_of([] { parse_io_stat("8:0 rbytes=x wbytes=1 rios=1 wios=1 dbytes=0 dios=0\n"); }),
                            "io.stat:1: bad value for rbytes="));
    EXPECT_TRUE(starts_with(parse_error_of([] { parse_io_stat("sda rbytes=1 wbytes=1 rios=1 wios=1 dbytes=0 dios=0\n"); }),
                            "io.stat:1: expected 'MAJ:MIN'"));
    EXPECT_TRUE(starts_with(parse_error_of([] { parse_io_stat("8: rbytes=1 wbytes=1 rios=1 wios=1 dbytes=0 dios=0\n"); }),
                            "io.stat:1: expected 'MAJ:MIN'"));
    EXPECT_TRUE(starts_with(parse_error_of([] { parse_io_stat("8:0 rbytes=1 rbytes=1 rios=1 wios=1 dbytes=0 dios=0\n"); }),
                            "io.stat:1: duplicate rbytes="));
    EXPECT_TRUE(starts_with(parse_error_of([] { parse_io_stat("8:0 rbytes=1 wbytes=1 rios=1 wios=1 dbytes=0 dios=0 junk\n"); }),
                            "io.stat:1: expected key=value"));
    auto huge = "8:0 rbytes=18446744073709551615 wbytes=1 rios=1 wios=1 dbytes=0 dios=0\n"s;
    EXPECT_TRUE(starts_with(parse_error_of([&] { parse_io_stat(huge + huge); }), "io.stat:2: total out of range"));
    parse_error_of([] { parse_io_stat("\x1f\x8b\x08\x00\x00\x00"s); });
}

TEST(MonitorGroupCgroupEvents, ParsesFlags) {
    auto events = parse_cgroup_events(fixture("group/cgroup.events"));
    EXPECT_TRUE(events.populated);
    EXPECT_FALSE(events.frozen);
    auto frozen_empty = parse_cgroup_events("populated 0\nfrozen 1\n");
    EXPECT_FALSE(frozen_empty.populated);
    EXPECT_TRUE(frozen_empty.frozen);
}

TEST(MonitorGroupCgroupEvents, RejectsTruncatedAndGarbage) {
    EXPECT_EQ(parse_error_of([] { parse_cgroup_events("populated 1\n"); }), "cgroup.events: no 'frozen' key");
    EXPECT_EQ(parse_error_of([] { parse_cgroup_events("populated 2\nfrozen 0\n"); }),
              "cgroup.events: 'populated' is 2, expected 0 or 1");
    EXPECT_TRUE(starts_with(parse_error_of([] { parse_cgroup_events("populated 1\nfroz"); }), "cgroup.events:2:"));
}

TEST(MonitorGroupRead, ReadsEveryFileOfAFullGroup) {
    auto group = read_group(kFixtures + "/group");
    EXPECT_TRUE(group.reasons().empty()) << testing::PrintToString(group.reasons());
    ASSERT_TRUE(group.cpu_stat && group.memory_stat && group.memory_events && group.io_stat && group.cgroup_events);
    EXPECT_EQ(group.cpu_stat->nr_throttled, 311u);
    EXPECT_EQ(group.memory_current_bytes, 734003200u);
    EXPECT_EQ(group.memory_stat->anon_bytes, 524288000u);
    EXPECT_EQ(group.memory_events->oom_kill, 1u);
    EXPECT_EQ(group.pids_current, 17u);
    EXPECT_EQ(group.io_stat->wbytes, 1540096u);
    EXPECT_TRUE(group.cgroup_events->populated);

    auto json = group.to_json();
    EXPECT_EQ(json["dir"], kFixtures + "/group");
    EXPECT_EQ(json["cpu_stat"]["throttled_usec"], 9023417u);
    EXPECT_EQ(json["memory_current_bytes"], 734003200u);
    EXPECT_EQ(json["memory_stat"]["file_bytes"], 188743680u);
    EXPECT_EQ(json["memory_events"]["high"], 1742u);
    EXPECT_EQ(json["pids_current"], 17u);
    EXPECT_EQ(json["io_stat"]["rios"], 193u);
    EXPECT_EQ(json["cgroup_events"]["frozen"], false);
    EXPECT_EQ(json["unavailable"], nlohmann::json::array());
}

TEST(MonitorGroupRead, ThePeriodicPassLeavesMemoryStatAndIoStatToUsage) {
    auto periodic = read_group(kFixtures + "/group", GroupFiles::periodic);
    EXPECT_TRUE(periodic.reasons().empty());
    EXPECT_TRUE(periodic.cpu_stat && periodic.memory_current_bytes && periodic.memory_events && periodic.pids_current &&
                periodic.cgroup_events);
    EXPECT_FALSE(periodic.memory_stat || periodic.io_stat);
    auto detail = read_group(kFixtures + "/group", GroupFiles::detail);
    EXPECT_TRUE(detail.memory_stat && detail.io_stat);
    EXPECT_FALSE(detail.cpu_stat || detail.memory_events || detail.cgroup_events);
    EXPECT_EQ(detail.memory_stat->anon_bytes, 524288000u);
}

TEST(MonitorGroupRead, HybridRootHasOnlyCpuStat) {
    // This host's v2 root: cpu.stat and nothing else we read (no memory, pids or io controller).
    auto group = read_group(kFixtures + "/unified_root");
    ASSERT_TRUE(group.cpu_stat);
    EXPECT_EQ(group.cpu_stat->usage_usec, 9844104000u);
    EXPECT_FALSE(group.cpu_stat->throttled_usec);
    EXPECT_FALSE(group.memory_current_bytes || group.memory_stat || group.memory_events || group.pids_current ||
                 group.io_stat || group.cgroup_events);
    const std::vector<std::string> missing{"memory.current", "memory.stat",  "memory.events",
                                           "pids.current",   "io.stat",      "cgroup.events"};
    ASSERT_EQ(group.reasons().size(), missing.size()) << testing::PrintToString(group.reasons());
    for (std::size_t i = 0; i < missing.size(); ++i) {
        EXPECT_TRUE(starts_with(group.reasons()[i], missing[i] + ": cannot read ")) << group.reasons()[i];
        EXPECT_NE(group.reasons()[i].find("No such file or directory"), std::string::npos) << group.reasons()[i];
    }
    auto json = group.to_json();
    EXPECT_TRUE(json["cpu_stat"]["nr_throttled"].is_null());
    EXPECT_TRUE(json["memory_stat"].is_null());
    EXPECT_TRUE(json["pids_current"].is_null());
}

TEST(MonitorGroupRead, MalformedFilesLeaveOnlyTheirFieldsEmpty) {
    resmgr::TempDir dir;
    copy_group_fixture(dir.path());
    write_file(dir.path() / "memory.stat", "\xc3\x28\xff garbage\n");               // invalid UTF-8
    write_file(dir.path() / "io.stat", "8:0 rbytes=1458176 wbytes=311296 rios=1"); // truncated
    write_file(dir.path() / "pids.current", "");                                    // empty
    auto group = read_group(dir.path().string());

    EXPECT_FALSE(group.memory_stat);
    EXPECT_FALSE(group.io_stat);
    EXPECT_FALSE(group.pids_current);
    EXPECT_EQ(group.cpu_stat->usage_usec, 52184327u);
    EXPECT_EQ(group.memory_current_bytes, 734003200u);
    EXPECT_EQ(group.memory_events->oom, 2u);
    EXPECT_TRUE(group.cgroup_events->populated);
    ASSERT_EQ(group.reasons().size(), 3u) << testing::PrintToString(group.reasons());
    EXPECT_EQ(group.reasons()[0], "memory.stat:1: expected 'key value', got '\\xc3(\\xff garbage'");
    EXPECT_EQ(group.reasons()[1], "pids.current:1: expected one integer: ''");
    EXPECT_TRUE(starts_with(group.reasons()[2], "io.stat:1: expected rbytes wbytes rios wios dbytes dios"))
        << group.reasons()[2];
    EXPECT_NO_THROW(group.to_json().dump()); // garbage bytes were escaped: valid UTF-8
}

TEST(MonitorGroupRead, MissingDirectoryNeverThrows) {
    auto group = read_group("/nonexistent/resmgr/alloc_1");
    EXPECT_EQ(group.reasons().size(), 7u);
    EXPECT_FALSE(group.cpu_stat);
    EXPECT_EQ(group.reasons()[0], "cpu.stat: cannot read (No such file or directory)");
    EXPECT_EQ(*group.dir, "/nonexistent/resmgr/alloc_1"); // the path is the sample's, once
}

TEST(MonitorGroupRead, AKeptReaderSeesNewContentAndRetriesAMissingFileLater) {
    resmgr::TempDir dir;
    write_file(dir.path() / "cpu.stat", "usage_usec 100\nuser_usec 60\nsystem_usec 40\n");
    GroupReader reader(dir.path().string());
    EXPECT_EQ(reader.read(GroupFiles::periodic).cpu_stat->usage_usec, 100u);
    // Rewritten in place (as the kernel regenerates a cgroup file): the kept fd reads the new text.
    write_file(dir.path() / "cpu.stat", "usage_usec 250\nuser_usec 150\nsystem_usec 100\n");
    auto second = reader.read(GroupFiles::periodic);
    EXPECT_EQ(second.cpu_stat->usage_usec, 250u);
    EXPECT_FALSE(second.pids_current);
    // A file that appears later (a controller enabled) is picked up within kRetryMissing reads.
    write_file(dir.path() / "pids.current", "7\n");
    unsigned reads = 0;
    while (!reader.read(GroupFiles::periodic).pids_current && reads <= GroupReader::kRetryMissing) ++reads;
    EXPECT_GE(reads, 1u) << "missing files are not tried at every read";
    EXPECT_LE(reads, GroupReader::kRetryMissing);
    EXPECT_EQ(reader.read(GroupFiles::periodic).pids_current, 7u);
}

// The fds kept open are the budget's, however many readers share it; past it a reader opens
// and closes each file per read, and reads the same.
TEST(MonitorGroupRead, ReadersSharingABudgetKeepNoMoreFilesOpenThanIt) {
    resmgr::TempDir dir;
    write_file(dir.path() / "cpu.stat", "usage_usec 100\nuser_usec 60\nsystem_usec 40\n");
    write_file(dir.path() / "cgroup.events", "populated 1\nfrozen 0\n");
    auto open_fds = [] { return std::distance(std::filesystem::directory_iterator("/proc/self/fd"), {}); };
    const auto fds_before = open_fds();
    FdBudget budget(3);
    {
        std::vector<std::unique_ptr<GroupReader>> readers;
        for (int i = 0; i < 5; ++i) readers.push_back(std::make_unique<GroupReader>(dir.path().string(), &budget));
        for (int pass = 0; pass < 2; ++pass)
            for (auto& reader : readers) {
                auto sample = reader->read(GroupFiles::periodic);
                ASSERT_TRUE(sample.cpu_stat && sample.cgroup_events) << testing::PrintToString(sample.reasons());
                EXPECT_EQ(sample.cpu_stat->usage_usec, 100u);
            }
        EXPECT_EQ(budget.left(), 0u);
        EXPECT_EQ(open_fds() - fds_before, 3);
    }
    EXPECT_EQ(budget.left(), 3u) << "readers give their fds back";
    EXPECT_EQ(open_fds(), fds_before);
}

// Duplicated keys keep the first line's value, as the map the parsers used before kept it.
TEST(MonitorGroupParsers, ADuplicatedKeyKeepsItsFirstValue) {
    EXPECT_EQ(parse_cpu_stat("usage_usec 5\nusage_usec 9\n").usage_usec, 5u);
    EXPECT_EQ(parse_cgroup_events("populated 1\nfrozen 0\npopulated 7\n").populated, true);
    EXPECT_EQ(parse_memory_events("low 1\nhigh 2\nmax 3\noom 4\noom_kill 5\nlow 8\n").low, 1u);
}

// The read buffer is shared by every file read: a file larger than one read chunk is read
// whole, and a shorter file read after it shows none of the longer one's text.
TEST(MonitorGroupRead, ALargeFileThenASmallOneReadWhole) {
    resmgr::TempDir dir;
    copy_group_fixture(dir.path());
    std::string stat = "anon 4096\nfile 8192\n";
    for (int i = 0; stat.size() < 3 * 4096; ++i) stat += "key_" + std::to_string(i) + " " + std::to_string(i) + "\n";
    write_file(dir.path() / "memory.stat", stat + "pgmajfault 77\n");
    write_file(dir.path() / "io.stat", "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6\n");
    GroupReader reader(dir.path().string());
    const auto group = reader.read(GroupFiles::detail);
    ASSERT_TRUE(group.memory_stat && group.io_stat) << testing::PrintToString(group.reasons());
    EXPECT_EQ(group.memory_stat->anon_bytes, 4096u);
    EXPECT_EQ(group.memory_stat->pgmajfault, 77u) << "the last line, past the first 4 KiB";
    EXPECT_EQ(group.io_stat->dios, 6u);
    EXPECT_EQ(group.io_stat->devices, 1u) << "nothing of memory.stat's text after io.stat's";
}

// Equal lists become one; distinct ones past the pool's room stay each sample's own, so the pool
// never grows beyond kLists whatever the messages say.
TEST(ReasonsPool, SharesEqualListsAndHoldsAtMostItsRoom) {
    auto sample_with = [](std::string reason) {
        GroupSample s;
        s.unavailable = std::make_shared<const Reasons>(Reasons{std::move(reason)});
        return s;
    };
    ReasonsPool pool;
    std::vector<GroupSample> samples;
    for (std::size_t i = 0; i < ReasonsPool::kLists + 2; ++i) samples.push_back(sample_with("parse error " + std::to_string(i)));
    for (auto& s : samples) pool.share(s);
    GroupSample again = sample_with("parse error 0"), late = sample_with("parse error " + std::to_string(ReasonsPool::kLists + 1));
    pool.share(again);
    pool.share(late);
    EXPECT_EQ(again.unavailable, samples[0].unavailable) << "an equal list is the pooled one";
    EXPECT_NE(late.unavailable, samples.back().unavailable) << "past the room: not pooled, so not shared";
    EXPECT_EQ(late.reasons(), samples.back().reasons());
    GroupSample none;
    pool.share(none);
    EXPECT_FALSE(none.unavailable);
    EXPECT_TRUE(none.reasons().empty());
}

// A missing file is not opened again for kRetryMissing reads, and says why each time with the
// same words as the first.
TEST(MonitorGroupRead, AMissingFileGivesTheSameReasonWhileItIsNotRetried) {
    resmgr::TempDir dir;
    write_file(dir.path() / "cpu.stat", "usage_usec 100\n");
    GroupReader reader(dir.path().string());
    const auto first = reader.read(GroupFiles::periodic);
    const auto second = reader.read(GroupFiles::periodic);
    ASSERT_EQ(first.reasons().size(), 4u) << testing::PrintToString(first.reasons());
    EXPECT_EQ(first.reasons(), second.reasons());
    EXPECT_EQ(first.reasons()[0], "memory.current: cannot read (No such file or directory)");
}

TEST(MonitorGroupRead, ThisHostsCgroup2Root) {
    for (std::string root : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}) {
        if (!std::filesystem::exists(root + "/cgroup.controllers")) continue;
        auto group = read_group(root);
        ASSERT_TRUE(group.cpu_stat) << testing::PrintToString(group.reasons());
        EXPECT_TRUE(group.cpu_stat->usage_usec);
        return;
    }
    GTEST_SKIP() << "no cgroup v2 hierarchy mounted";
}

TEST(MonitorGroupParsers, EveryPrefixAndDamagedCopyParsesOrThrowsParseError) {
    expect_parse_or_parse_error(fixture("group/cpu.stat"), [](std::string_view t) { parse_cpu_stat(t); });
    expect_parse_or_parse_error(fixture("group/memory.current"), [](std::string_view t) { parse_single_value(t, "x"); });
    expect_parse_or_parse_error(fixture("group/memory.stat"), [](std::string_view t) { parse_memory_stat(t); });
    expect_parse_or_parse_error(fixture("group/memory.events"), [](std::string_view t) { parse_memory_events(t); });
    expect_parse_or_parse_error(fixture("group/io.stat"), [](std::string_view t) { parse_io_stat(t); });
    expect_parse_or_parse_error(fixture("group/cgroup.events"), [](std::string_view t) { parse_cgroup_events(t); });
}

// ---- the tightest memory.max above the allocations (monitor/memory_headroom) ----

namespace {
// A cgroup directory as the kernel shows it: cgroup.procs, and memory files when given.
void fake_group(const std::filesystem::path& dir, const std::string& max, const std::string& current) {
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "cgroup.procs") << "";
    if (!max.empty()) std::ofstream(dir / "memory.max") << max;
    if (!current.empty()) std::ofstream(dir / "memory.current") << current;
}
} // namespace

TEST(MemoryHeadroom, TheAncestorWithTheLeastFreeMemoryBinds) {
    resmgr::TempDir tmp;
    const auto root = tmp.path() / "root";
    fake_group(root, "", "");                                         // the root group: no memory.max
    fake_group(root / "slice", "1073741824\n", "900000000\n");        // 1 GiB, ~173 MB free
    fake_group(root / "slice/scope", "max\n", "899000000\n");         // no limit of its own
    auto h = enclosing_memory_headroom((root / "slice/scope").string());
    ASSERT_TRUE(h);
    EXPECT_EQ(h->group, (root / "slice").string());
    EXPECT_EQ(h->limit_bytes, 1073741824u);
    EXPECT_EQ(h->free_bytes(), 1073741824u - 900000000u);
    // Inactive page cache is reclaimable: it counts as free, as MemAvailable counts it.
    std::ofstream(root / "slice/memory.stat") << "anon 700000000\nfile 200000000\ninactive_file 150000000\n";
    h = enclosing_memory_headroom((root / "slice/scope").string());
    ASSERT_TRUE(h);
    EXPECT_EQ(h->free_bytes(), 1073741824u - (900000000u - 150000000u));
    // A tighter limit below wins; usage over the limit is no free memory, never a wrap-around.
    fake_group(root / "slice/scope/inner", "104857600\n", "204857600\n");
    h = enclosing_memory_headroom((root / "slice/scope/inner").string());
    ASSERT_TRUE(h);
    EXPECT_EQ(h->group, (root / "slice/scope/inner").string());
    EXPECT_EQ(h->free_bytes(), 0u);
}

TEST(MemoryHeadroom, NoLimitOrNoControllerOrGarbageMeansNoHeadroom) {
    resmgr::TempDir tmp;
    const auto root = tmp.path() / "root";
    fake_group(root, "", "");
    fake_group(root / "a", "max\n", "5\n");
    EXPECT_FALSE(enclosing_memory_headroom((root / "a").string()));
    fake_group(root / "nomem", "", ""); // the memory controller is not enabled here
    EXPECT_FALSE(enclosing_memory_headroom((root / "nomem").string()));
    fake_group(root / "bad", "12 MiB\n", "5\n"); // garbage ends the walk: nothing made up
    EXPECT_FALSE(enclosing_memory_headroom((root / "bad").string()));
    EXPECT_FALSE(enclosing_memory_headroom((tmp.path() / "not-a-cgroup").string()));
    EXPECT_FALSE(parse_memory_max("max\n", "memory.max"));
    EXPECT_EQ(parse_memory_max("4096\n", "memory.max"), 4096u);
    EXPECT_THROW(parse_memory_max("-1\n", "memory.max"), ParseError);
}
