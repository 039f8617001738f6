// Node parsers (/proc/stat, /proc/meminfo, /proc/pressure/*), statvfs and the node sample,
// against this host's files (tests/unit/fixtures/monitor/proc) and their truncated and garbage
// variants.
#include "build_paths.hpp"
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <random>

#include "monitor/proc.hpp"
#include "tests_support.hpp"

using namespace resmgr::monitor;
using namespace std::string_literals;

namespace {

const std::string kFixtures = std::string(build_paths::source_dir) + "/tests/unit/fixtures/monitor";

std::string fixture(const std::string& relative) { return read_text_file(kFixtures + "/" + relative); }

void write_file(const std::filesystem::path& path, const std::string& text) {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
}

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

// Each parser must either parse or throw ParseError on every prefix of a real file and on
// randomly damaged copies; ASan/UBSan builds turn any out-of-bounds read into a failure.
void expect_parse_or_parse_error(const std::string& text, const std::function<void(std::string_view)>& parse) {
    auto attempt = [&](std::string_view input) {
        try {
            parse(input);
        } catch (const ParseError&) {
        }
    };
    for (std::size_t n = 0; n <= text.size(); ++n) attempt(std::string_view(text).substr(0, n));
    std::mt19937 random(42);
    for (int round = 0; round < 500; ++round) {
        std::string damaged = text;
        for (int i = 0; i < 4 && !damaged.empty(); ++i)
            damaged[random() % damaged.size()] = static_cast<char>(random() % 256);
        attempt(damaged);
    }
}

} // namespace

TEST(MonitorProcStat, ParsesThisHostsAggregateLine) {
    // cpu  848616 0 133824 1061092 3433 0 1966 0 0 0
    auto cpu = parse_proc_stat_cpu(fixture("proc/stat"));
    EXPECT_EQ(cpu.user, 848616u);
    EXPECT_EQ(cpu.nice, 0u);
    EXPECT_EQ(cpu.system, 133824u);
    EXPECT_EQ(cpu.idle, 1061092u);
    EXPECT_EQ(cpu.iowait, 3433u);
    EXPECT_EQ(cpu.irq, 0u);
    EXPECT_EQ(cpu.softirq, 1966u);
    EXPECT_EQ(cpu.steal, 0u);
    EXPECT_EQ(cpu.busy(), 848616u + 133824u + 1966u);
    EXPECT_EQ(cpu.idle_total(), 1061092u + 3433u);
}

TEST(MonitorProcStat, AcceptsLinesWithoutGuestColumns) {
    auto cpu = parse_proc_stat_cpu("cpu  1 2 3 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n");
    EXPECT_EQ(cpu.user, 1u);
    EXPECT_EQ(cpu.steal, 8u);
}

TEST(MonitorProcStat, RejectsTruncatedAndGarbage) {
    EXPECT_NE(parse_error_of([] { parse_proc_stat_cpu("cpu  848616 0 133824 1061092\n"); }).find("/proc/stat:1:"),
              std::string::npos);
    EXPECT_NE(parse_error_of([] { parse_proc_stat_cpu("intr 5\ncpu  1 2 x 4 5 6 7 8\n"); }).find("/proc/stat:2:"),
              std::string::npos);
    parse_error_of([] { parse_proc_stat_cpu(""); });
    parse_error_of([] { parse_proc_stat_cpu("cpu0 1 2 3 4 5 6 7 8\n"); }); // no aggregate line
    parse_error_of([] { parse_proc_stat_cpu("cpu  1 2 3 4 5 6 7 -8\n"); });
    parse_error_of([] { parse_proc_stat_cpu("cpu  1 2 3 4 5 6 7 99999999999999999999\n"); });
    auto garbage = parse_error_of([] { parse_proc_stat_cpu("cpu  1 2 3\xff\x00 4 5 6 7 8\n"s); });
    EXPECT_NE(garbage.find("\\xff\\x00"), std::string::npos) << garbage; // quoted printable
}

TEST(MonitorCpuUtilization, BusyShareOfElapsedTicks) {
    CpuTimes before{100, 0, 50, 800, 50, 0, 0, 0};
    CpuTimes after{160, 0, 90, 900, 50, 0, 0, 0}; // +100 busy, +100 idle
    EXPECT_DOUBLE_EQ(cpu_utilization_percent(before, after), 50.0);
    EXPECT_DOUBLE_EQ(cpu_utilization_percent(before, before), 0.0); // no time passed
    CpuTimes all_busy = before;
    all_busy.system += 10;
    all_busy.steal += 10;
    EXPECT_DOUBLE_EQ(cpu_utilization_percent(before, all_busy), 100.0);
    // iowait may step backwards (proc(5)); that is no time, never a negative share.
    CpuTimes iowait_back = before;
    iowait_back.iowait -= 20;
    EXPECT_DOUBLE_EQ(cpu_utilization_percent(before, iowait_back), 0.0);
    EXPECT_DOUBLE_EQ(cpu_utilization_percent(after, before), 0.0); // swapped samples
}

TEST(MonitorProcessIdentity, ParentAndUidsFromStatus) {
    EXPECT_EQ(parse_proc_status_identity(fixture("proc/status")), (ProcessIdentity{25304, 0, 0}));
    // Real uid first, then effective (a set-uid program: real 1000, effective 0).
    EXPECT_EQ(parse_proc_status_identity("Name:\tpasswd\nPPid:\t42\nUid:\t1000\t0\t0\t0\n"), (ProcessIdentity{42, 1000, 0}));
}

TEST(MonitorProcessIdentity, RejectsTruncatedAndGarbage) {
    auto text = fixture("proc/status");
    EXPECT_NE(parse_error_of([&] { parse_proc_status_identity(text.substr(0, text.find("PPid:"))); }).find("no PPid line"),
              std::string::npos);
    EXPECT_NE(parse_error_of([&] { parse_proc_status_identity(text.substr(0, text.find("Uid:"))); }).find("no Uid line"),
              std::string::npos);
    EXPECT_NE(parse_error_of([] { parse_proc_status_identity("PPid:\tx\nUid:\t1 1 1 1\n"); }).find("/proc/PID/status:1: bad PPid"),
              std::string::npos);
    parse_error_of([] { parse_proc_status_identity("PPid:\t99999999999\nUid:\t1 1 1 1\n"); }); // beyond any pid
    parse_error_of([] { parse_proc_status_identity("PPid:\t1\nUid:\t1 1\n"); });                // truncated uid line
    parse_error_of([] { parse_proc_status_identity("PPid:\t1\nUid:\t1 -1 1 1\n"); });
    parse_error_of([] { parse_proc_status_identity(""); });
    EXPECT_FALSE(read_process_identity(1, "/nonexistent"));
    EXPECT_EQ(read_process_identity(::getpid())->ppid, ::getppid()) << "this very process, through /proc";
}

TEST(MonitorMeminfo, ParsesThisHostsFile) {
    auto m = parse_meminfo(fixture("proc/meminfo"));
    EXPECT_EQ(m.total_bytes, 24683620ull * 1024);
    EXPECT_EQ(m.available_bytes, 24376324ull * 1024);
    EXPECT_EQ(m.buffers_bytes, 704ull * 1024);
    EXPECT_EQ(m.cached_bytes, 24744ull * 1024);
    EXPECT_EQ(m.swap_total_bytes, 0u);
    EXPECT_EQ(m.swap_free_bytes, 0u);
    EXPECT_NEAR(m.used_percent(), (24683620.0 - 24376324.0) / 24683620.0 * 100, 1e-9);
}

TEST(MonitorMeminfo, RejectsTruncatedAndGarbage) {
    auto text = fixture("proc/meminfo");
    auto cut_inside_available = text.substr(0, text.find("MemAvailable:") + std::string("MemAvailable:   24376324").size());
    EXPECT_NE(parse_error_of([&] { parse_meminfo(cut_inside_available); }).find("/proc/meminfo:3: MemAvailable without kB"),
              std::string::npos);
    auto cut_before_available = text.substr(0, text.find("MemAvailable:"));
    EXPECT_NE(parse_error_of([&] { parse_meminfo(cut_before_available); }).find("no MemAvailable line"),
              std::string::npos);
    EXPECT_NE(parse_error_of([&] { parse_meminfo("MemTotal: 1 kB\n\x01\x02garbage\n" + text); }).find("/proc/meminfo:2:"),
              std::string::npos);
    parse_error_of([] { parse_meminfo(""); });
    parse_error_of([&] { parse_meminfo("MemTotal:  lots kB\n" + text); });
    parse_error_of([&] { parse_meminfo("MemTotal:  18446744073709551615 kB\n"); }); // bytes overflow
    EXPECT_NE(parse_error_of([&] { parse_meminfo(text + "MemTotal: 1 kB\n"); }).find("duplicate MemTotal"),
              std::string::npos);
}

TEST(MonitorPressure, ParsesThisHostsFiles) {
    auto cpu = parse_pressure(fixture("proc/pressure/cpu"), "/proc/pressure/cpu");
    EXPECT_DOUBLE_EQ(cpu.some.avg10, 0.12);
    EXPECT_DOUBLE_EQ(cpu.some.avg60, 0.04);
    EXPECT_DOUBLE_EQ(cpu.some.avg300, 0.0);
    EXPECT_EQ(cpu.some.total_usec, 1668066422u);
    ASSERT_TRUE(cpu.full);
    EXPECT_EQ(cpu.full->total_usec, 0u);

    auto io = parse_pressure(fixture("proc/pressure/io"), "/proc/pressure/io");
    EXPECT_EQ(io.some.total_usec, 29818911u);
    ASSERT_TRUE(io.full);
    EXPECT_EQ(io.full->total_usec, 22113482u);

    auto memory = parse_pressure(fixture("proc/pressure/memory"), "/proc/pressure/memory");
    EXPECT_EQ(memory.some.total_usec, 0u);
    EXPECT_TRUE(memory.full);
}

TEST(MonitorPressure, CpuWithoutFullLineBeforeLinux513) {
    auto p = parse_pressure("some avg10=1.50 avg60=0.75 avg300=0.25 total=123456\n", "cpu.pressure");
    EXPECT_DOUBLE_EQ(p.some.avg10, 1.5);
    EXPECT_DOUBLE_EQ(p.some.avg300, 0.25);
    EXPECT_EQ(p.some.total_usec, 123456u);
    EXPECT_FALSE(p.full);
}

TEST(MonitorPressure, RejectsTruncatedAndGarbage) {
    const std::string name = "/proc/pressure/cpu";
    auto truncated = "some avg10=0.12 avg60=0.04 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 avg3";
    EXPECT_NE(parse_error_of([&] { parse_pressure(truncated, name); }).find("/proc/pressure/cpu:2:"), std::string::npos);
    for (std::string bad : {"some avg10=abc avg60=0.04 avg300=0.00 total=1", "some avg10=nan avg60=0.04 avg300=0.00 total=1",
                            "some avg10=inf avg60=0.04 avg300=0.00 total=1", "some avg10=-1.00 avg60=0.04 avg300=0.00 total=1",
                            "some avg10=0.00 avg60=0.04 avg300=0.00 total=-1", "some avg10= avg60=0.04 avg300=0.00 total=1",
                            "some avg60=0.04 avg10=0.00 avg300=0.00 total=1", "sometimes avg10=0.00 avg60=0.04 avg300=0.00 total=1",
                            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0", // no "some" line
                            "", "\x89PNG\r\n\x1a\n"}) {
        parse_error_of([&] { parse_pressure(bad, name); });
    }
    auto twice = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nsome avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
    EXPECT_NE(parse_error_of([&] { parse_pressure(twice, name); }).find("duplicate"), std::string::npos);
}

TEST(MonitorDiskSpace, StatvfsOfTheSourceTree) {
    auto disk = read_disk_space(build_paths::source_dir);
    EXPECT_EQ(disk.path, build_paths::source_dir);
    EXPECT_GT(disk.total_bytes, 0u);
    EXPECT_LE(disk.available_bytes, disk.total_bytes);
    EXPECT_LE(disk.used_bytes, disk.total_bytes);
    EXPECT_GE(disk.utilization_percent, 0.0);
    EXPECT_LE(disk.utilization_percent, 100.0);
    EXPECT_NE(parse_error_of([] { read_disk_space("/nonexistent/resmgr"); }).find("/nonexistent/resmgr: statvfs: No such file"),
              std::string::npos);
}

TEST(MonitorNodeSample, ReadsFixtureProcRoot) {
    CpuTimes previous{848516, 0, 133824, 1060992, 3433, 0, 1966, 0}; // 100 busy + 100 idle ticks ago
    auto sample = read_node_sample({kFixtures + "/proc", {build_paths::source_dir}}, previous);
    EXPECT_TRUE(sample.unavailable.empty()) << testing::PrintToString(sample.unavailable);
    ASSERT_TRUE(sample.cpu_times && sample.memory && sample.cpu_pressure && sample.memory_pressure && sample.io_pressure);
    EXPECT_EQ(sample.cpu_times->user, 848616u);
    ASSERT_TRUE(sample.cpu_utilization_percent);
    EXPECT_DOUBLE_EQ(*sample.cpu_utilization_percent, 50.0);
    EXPECT_EQ(sample.memory->total_bytes, 24683620ull * 1024);
    EXPECT_DOUBLE_EQ(sample.cpu_pressure->some.avg10, 0.12);
    EXPECT_EQ(sample.io_pressure->full->total_usec, 22113482u);
    ASSERT_EQ(sample.disks.size(), 1u);

    auto json = sample.to_json();
    EXPECT_EQ(json["cpu"]["utilization_percent"], 50.0);
    EXPECT_EQ(json["cpu"]["times"]["softirq"], 1966);
    EXPECT_EQ(json["memory"]["available_bytes"], 24376324ull * 1024);
    EXPECT_EQ(json["pressure"]["cpu"]["some"]["total_usec"], 1668066422u);
    EXPECT_EQ(json["pressure"]["io"]["full"]["total_usec"], 22113482u);
    EXPECT_EQ(json["disks"][0]["path"], build_paths::source_dir);
    EXPECT_EQ(json["unavailable"], nlohmann::json::array());
}

TEST(MonitorNodeSample, WithoutPreviousSampleHasNoCpuPercent) {
    auto sample = read_node_sample({kFixtures + "/proc", {}});
    EXPECT_TRUE(sample.cpu_times);
    EXPECT_FALSE(sample.cpu_utilization_percent);
    EXPECT_TRUE(sample.to_json()["cpu"]["utilization_percent"].is_null());
}

TEST(MonitorNodeSample, DegradesEachSourceOnItsOwn) {
    resmgr::TempDir root;
    write_file(root.path() / "stat", fixture("proc/stat"));
    write_file(root.path() / "meminfo", "MemTotal: \xff\xfe kB\n");
    write_file(root.path() / "pressure" / "cpu", fixture("proc/pressure/cpu"));
    write_file(root.path() / "pressure" / "io", "some avg10=0.00 avg60=0.00 av"); // truncated
    // pressure/memory missing, as on a kernel without PSI
    auto sample = read_node_sample({root.path().string(), {"/nonexistent/state"}});

    EXPECT_TRUE(sample.cpu_times);
    EXPECT_TRUE(sample.cpu_pressure);
    EXPECT_FALSE(sample.memory);
    EXPECT_FALSE(sample.memory_pressure);
    EXPECT_FALSE(sample.io_pressure);
    EXPECT_TRUE(sample.disks.empty());
    ASSERT_EQ(sample.unavailable.size(), 4u) << testing::PrintToString(sample.unavailable);
    auto prefix = root.path().string();
    EXPECT_EQ(sample.unavailable[0].rfind(prefix + "/meminfo:1: expected 'Key: value [kB]'", 0), 0u) << sample.unavailable[0];
    EXPECT_NE(sample.unavailable[0].find("\\xff\\xfe"), std::string::npos) << sample.unavailable[0];
    EXPECT_EQ(sample.unavailable[1].rfind(prefix + "/pressure/memory: cannot read", 0), 0u) << sample.unavailable[1];
    EXPECT_EQ(sample.unavailable[2].rfind(prefix + "/pressure/io:1:", 0), 0u) << sample.unavailable[2];
    EXPECT_EQ(sample.unavailable[3], "/nonexistent/state: statvfs: No such file or directory");

    auto json = sample.to_json();
    EXPECT_TRUE(json["memory"].is_null());
    EXPECT_TRUE(json["pressure"]["memory"].is_null());
    EXPECT_NO_THROW(json.dump()); // garbage bytes were escaped: valid UTF-8
}

TEST(MonitorNodeSample, ReadsThisHost) {
    auto sample = read_node_sample({});
    ASSERT_TRUE(sample.cpu_times) << testing::PrintToString(sample.unavailable);
    ASSERT_TRUE(sample.memory) << testing::PrintToString(sample.unavailable);
    EXPECT_GT(sample.memory->total_bytes, 64ull << 20);
    EXPECT_LE(sample.memory->available_bytes, sample.memory->total_bytes);
}

TEST(MonitorProcParsers, EveryPrefixAndDamagedCopyParsesOrThrowsParseError) {
    expect_parse_or_parse_error(fixture("proc/stat"), [](std::string_view t) { parse_proc_stat_cpu(t); });
    expect_parse_or_parse_error(fixture("proc/meminfo"), [](std::string_view t) { parse_meminfo(t); });
    for (auto resource : {"cpu", "memory", "io"}) {
        expect_parse_or_parse_error(fixture(std::string("proc/pressure/") + resource),
                                    [](std::string_view t) { parse_pressure(t, "pressure"); });
    }
}
