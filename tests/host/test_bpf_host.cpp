// The eBPF probes on this host's kernel: the skeleton loads and attaches, execs/forks/exits of
// a script run in a watched child of the cgroup2 hierarchy are counted and reported with comm,
// parent and exit code, classified into tool categories, and two CPU-bound processes sharing
// one CPU in the group fill its run-queue latency histogram.
#include <gtest/gtest.h>

#include <sched.h>
#include <sys/utsname.h>

#include <algorithm>
#include <map>

#include "bpf/probes.hpp"
#include "bpf/tool_classes.hpp"
#include "host_support.hpp"
#include "monitor/process_probes.hpp"

using namespace resmgr;
using namespace resmgr::host;
using resmgr::bpf::EventKind;
using resmgr::bpf::ProcessEvent;

namespace {

// Why the probes cannot be tried here at all; a load failure on a capable host is a failure.
std::optional<std::string> bpf_unavailable(const std::string& load_error) {
    if (::geteuid() != 0) return "needs root";
    if (::access("/sys/kernel/btf/vmlinux", R_OK) != 0) return "no kernel BTF";
    if (load_error.starts_with("built without BPF")) return load_error;
    return std::nullopt;
}

class BpfHost : public ::testing::Test {
protected:
    std::string mount = cgroup2_mount();
    std::string group;
    std::uint64_t group_id = 0;
    std::unique_ptr<bpf::Probes> probes;
    std::vector<pid_t> children;

    void SetUp() override {
        if (auto why = cgroup2_unavailable(mount)) GTEST_SKIP() << "BPF host test skipped: " << *why;
        auto loaded = bpf::Probes::load();
        if (!loaded.probes) {
            if (auto why = bpf_unavailable(loaded.error)) GTEST_SKIP() << "BPF host test skipped: " << *why;
            FAIL() << "the probes did not load: " << loaded.error;
        }
        probes = std::move(loaded.probes);
        group = mount + "/resmgr-bpftest-" + std::to_string(::getpid());
        ASSERT_EQ(::mkdir(group.c_str(), 0755), 0) << group << ": " << std::strerror(errno);
        auto id = bpf::cgroup_id_of(group);
        ASSERT_TRUE(id);
        group_id = *id;
        ASSERT_EQ(probes->watch(group_id), bpf::Probes::Watch::watched);
    }
    void TearDown() override {
        for (pid_t pid : children) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
        if (!group.empty()) {
            // The kernel releases a group a moment after its last process is reaped.
            wait_until([&] { return ::rmdir(group.c_str()) == 0 || errno == ENOENT; }, std::chrono::seconds(5));
        }
    }

    // In a forked child: join the test group, then run `argv` (or `body` when argv is empty).
    pid_t start_in_group(const std::vector<std::string>& argv, const std::function<void()>& body = {}) {
        pid_t pid = ::fork();
        if (pid == 0) {
            std::string me = std::to_string(::getpid());
            int fd = ::open((group + "/cgroup.procs").c_str(), O_WRONLY);
            if (fd < 0 || ::write(fd, me.data(), me.size()) != static_cast<ssize_t>(me.size())) ::_exit(120);
            ::close(fd);
            if (body) {
                body();
                ::_exit(0);
            }
            std::vector<char*> args;
            for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
        children.push_back(pid);
        return pid;
    }
    // The child's exit status, or -1 when it is still running after `limit` (it is then killed).
    int wait_for(pid_t pid, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
        int status = 0;
        if (!wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, limit)) {
            ADD_FAILURE() << "child " << pid << " still running after " << limit.count() << " ms";
            return -1; // TearDown kills it
        }
        std::erase(children, pid);
        return decode_status(status);
    }
    std::vector<ProcessEvent> drain() {
        std::vector<ProcessEvent> events;
        while (probes->consume([&](const ProcessEvent& e) { events.push_back(e); }) > 0) {}
        return events;
    }
};

std::string write_script(const std::string& text) {
    char path[] = "/tmp/resmgr-bpftest-XXXXXX";
    int fd = ::mkstemp(path);
    EXPECT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    ::close(fd);
    return path;
}

} // namespace

TEST_F(BpfHost, CountsAndReportsExecsForksExitsOfAWatchedGroup) {
    // dash runs each command in a forked child; the last line is a builtin, so no exec-in-place.
    std::string script = write_script(
        "bash -c true\nbash -c true\nbash -c true\nbash -c true\nbash -c true\n"
        "grep -q root /etc/passwd\ngrep -q root /etc/passwd\ngrep -q no-such-user-resmgr /etc/passwd\n"
        "exit 7\n");
    pid_t sh = start_in_group({"/bin/sh", script});
    EXPECT_EQ(wait_for(sh), 7);
    ::unlink(script.c_str());

    auto counters = probes->counters(group_id);
    ASSERT_TRUE(counters);
    EXPECT_EQ(counters->execs, 9u); // sh, 5 bash, 3 grep
    EXPECT_EQ(counters->forks, 8u); // the test's own fork happened outside the group
    EXPECT_EQ(counters->exits, 9u);
    EXPECT_EQ(counters->oom_kills, 0u);

    auto events = drain();
    bpf::ToolTally tally;
    std::map<std::string, int> execs_by_comm;
    std::vector<std::pair<std::string, int>> exits;
    for (auto& e : events) {
        EXPECT_EQ(e.cgroup_id, group_id);
        if (e.kind == EventKind::exec) {
            ++execs_by_comm[e.comm];
            tally.record_exec(e.cgroup_id, e.comm);
            EXPECT_EQ(e.ppid, e.comm == "sh" ? static_cast<std::uint32_t>(::getpid()) : static_cast<std::uint32_t>(sh))
                << e.comm;
        } else if (e.kind == EventKind::exit) {
            exits.emplace_back(e.comm, e.exit_code);
            EXPECT_EQ(e.exit_signal, 0) << e.comm;
        } else {
            ADD_FAILURE() << "unexpected " << bpf::to_string(e.kind) << " event for " << e.comm;
        }
    }
    EXPECT_EQ(execs_by_comm, (std::map<std::string, int>{{"sh", 1}, {"bash", 5}, {"grep", 3}}));

    auto tools = tally.counts(group_id);
    EXPECT_EQ(tools.by_category["bash_shells"], 6u);
    EXPECT_EQ(tools.by_category["search_operations"], 3u);
    EXPECT_EQ(tools.unclassified, 0u);

    std::sort(exits.begin(), exits.end());
    EXPECT_EQ(exits, (std::vector<std::pair<std::string, int>>{
                         {"bash", 0}, {"bash", 0}, {"bash", 0}, {"bash", 0}, {"bash", 0},
                         {"grep", 0}, {"grep", 0}, {"grep", 1}, {"sh", 7}}));
    EXPECT_EQ(probes->dropped(), 0u);
}

TEST_F(BpfHost, ReportsTheSignalThatEndedAProcessAndForkEventsOnRequest) {
    probes.reset(); // one set of probes at a time keeps the counts exact
    auto loaded = bpf::Probes::load({.fork_events = true});
    ASSERT_TRUE(loaded.probes) << loaded.error;
    probes = std::move(loaded.probes);
    ASSERT_EQ(probes->watch(group_id), bpf::Probes::Watch::watched);

    pid_t sh = start_in_group({"/bin/sh", "-c", "sleep 30 & wait"});
    ASSERT_TRUE(wait_until([&] { return probes->counters(group_id)->execs >= 2; }, std::chrono::seconds(5)));
    pid_t sleeper = -1;
    for (auto& e : drain())
        if (e.kind == EventKind::fork) {
            EXPECT_EQ(e.ppid, static_cast<std::uint32_t>(sh));
            sleeper = static_cast<pid_t>(e.tgid);
        }
    ASSERT_GT(sleeper, 0) << "no fork event for the background sleep";
    ::kill(sleeper, SIGTERM);
    wait_for(sh);

    std::vector<ProcessEvent> exits;
    for (auto& e : drain())
        if (e.kind == EventKind::exit) exits.push_back(e);
    ASSERT_EQ(exits.size(), 2u);
    EXPECT_EQ(exits[0].tgid, static_cast<std::uint32_t>(sleeper));
    EXPECT_EQ(exits[0].comm, "sleep");
    EXPECT_EQ(exits[0].exit_signal, SIGTERM);
    EXPECT_EQ(exits[1].tgid, static_cast<std::uint32_t>(sh));
}

TEST_F(BpfHost, UnwatchedGroupsAreNeitherCountedNorReported) {
    ASSERT_TRUE(probes->unwatch(group_id));
    EXPECT_FALSE(probes->counters(group_id));
    pid_t sh = start_in_group({"/bin/sh", "-c", "true; true"});
    wait_for(sh);
    EXPECT_TRUE(drain().empty());

    ASSERT_EQ(probes->watch(group_id), bpf::Probes::Watch::watched);
    EXPECT_EQ(probes->counters(group_id)->execs, 0u);
}

TEST_F(BpfHost, GroupsPastTheMapsRoomAreLeftOutOnceAndWatchedWhenRoomComes) {
    auto small = bpf::Probes::load({.max_watched = 3});
    ASSERT_TRUE(small.probes) << small.error;
    std::vector<monitor::GroupProbe> groups;
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < 5; ++i) {
        const std::string dir = group + "/a" + std::to_string(i);
        ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << dir;
        groups.push_back({"alloc_" + std::to_string(i), dir});
        ids.push_back(*bpf::cgroup_id_of(dir));
    }
    monitor::ProcessProbes probes_of_groups;
    probes_of_groups.set_probes(small.probes.get(), "loaded", bpf::ToolClasses::defaults());
    probes_of_groups.sync(groups);
    auto watched = [&] {
        int n = 0;
        for (auto id : ids) n += small.probes->counters(id).has_value();
        return n;
    };
    EXPECT_EQ(watched(), 3);
    EXPECT_EQ(probes_of_groups.tool_instances()["cgroups_not_watched"], 2) << probes_of_groups.tool_instances().dump();

    groups.erase(groups.begin(), groups.begin() + 2); // two allocations end: room for the two left out
    probes_of_groups.sync(groups);
    EXPECT_EQ(watched(), 3);
    for (int i = 2; i < 5; ++i) EXPECT_TRUE(small.probes->counters(ids[i])) << groups[i - 2].key;
    EXPECT_FALSE(probes_of_groups.tool_instances().contains("cgroups_not_watched"));
    for (int i = 0; i < 5; ++i) ::rmdir((group + "/a" + std::to_string(i)).c_str());
}

TEST_F(BpfHost, TwoBusyProcessesOnOneCpuFillTheRunQueueHistogram) {
    auto burn_on_cpu0 = [] {
        cpu_set_t cpus;
        CPU_ZERO(&cpus);
        CPU_SET(0, &cpus);
        ::sched_setaffinity(0, sizeof cpus, &cpus);
        volatile unsigned long x = 0;
        for (;;) x = x + 1;
    };
    pid_t a = start_in_group({}, burn_on_cpu0), b = start_in_group({}, burn_on_cpu0);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    ::kill(a, SIGKILL);
    ::kill(b, SIGKILL);
    wait_for(a);
    wait_for(b);

    auto latency = probes->runq_latency(group_id);
    ASSERT_TRUE(latency);
    std::string histogram;
    for (std::size_t i = 0; i < latency->buckets.size(); ++i)
        if (latency->buckets[i]) histogram += " [" + std::to_string(1u << i) + "us]=" + std::to_string(latency->buckets[i]);
    std::printf("run-queue latency: %lu waits, p50 %.0f us, p99 %.0f us,%s\n", static_cast<unsigned long>(latency->count),
                latency->p50_us(), latency->p99_us(), histogram.c_str());
    // Each burner waits a time slice (milliseconds) for the other whenever it is preempted.
    EXPECT_GE(latency->count, 10u);
    EXPECT_GE(latency->p99_us(), 100.0);
    EXPECT_GE(latency->p99_us(), latency->p50_us());
}

// This host's cgroup2 hierarchy has no memory controller, but processes can also share a v1
// memory group. Two do here, each in its own cgroup2 group: the big idle one (watched) is
// killed when the small one (not watched) hits the limit, so the event must carry the victim's
// group, not the allocating task's.
TEST_F(BpfHost, AnOomKillIsReportedInTheVictimsGroup) {
    struct utsname host{};
    ::uname(&host);
    int major = 0, minor = 0;
    std::sscanf(host.release, "%d.%d", &major, &minor);
    if (major < 6 || (major == 6 && minor < 9))
        GTEST_SKIP() << "kernel " << host.release << " passes mark_victim only the pid (6.9 added the task)";
    const std::string memcg = "/sys/fs/cgroup/memory/resmgr-bpftest-oom-" + std::to_string(::getpid());
    const std::string other = group + "-other";
    if (::mkdir(memcg.c_str(), 0755) != 0) GTEST_SKIP() << "no cgroup v1 memory controller to OOM in: " << memcg;
    ASSERT_EQ(::mkdir(other.c_str(), 0755), 0);
    struct RemoveGroups {
        std::vector<std::string> dirs;
        ~RemoveGroups() {
            for (auto& dir : dirs)
                wait_until([&] { return ::rmdir(dir.c_str()) == 0 || errno == ENOENT; }, std::chrono::seconds(5));
        }
    } remove_groups{{memcg, other}};
    std::ofstream(memcg + "/memory.limit_in_bytes") << (32 << 20);

    auto allocate = [&](std::size_t mib) {
        std::ofstream(memcg + "/cgroup.procs") << ::getpid();
        auto* memory = static_cast<volatile char*>(std::malloc(mib << 20));
        for (std::size_t i = 0; memory && i < (mib << 20); i += 4096) memory[i] = 1;
    };
    pid_t victim = start_in_group({}, [&] {
        allocate(24);
        ::pause();
    });
    // Its charge, not its RSS: that includes pages shared with this process since the fork.
    ASSERT_TRUE(wait_until([&] { return std::stoll("0" + slurp(memcg + "/memory.usage_in_bytes")) >= (24 << 20); },
                           std::chrono::seconds(5)));
    pid_t allocator = ::fork();
    if (allocator == 0) {
        std::ofstream(other + "/cgroup.procs") << ::getpid();
        allocate(16);
        ::_exit(0);
    }
    children.push_back(allocator);
    // The victim is killed first. On a loaded machine the kernel sometimes OOM-kills the
    // allocator too, a moment later, while the reaped victim's pages are still being uncharged
    // (dmesg shows both kills ~8 ms apart; lowering the allocator's oom_score_adj needs
    // CAP_SYS_RESOURCE, which this host's root lacks). That second kill lands in the other group,
    // which nobody watches: the report checked below is the victim group's alone either way.
    const int allocator_status = wait_for(allocator);
    EXPECT_TRUE(allocator_status == 0 || allocator_status == 128 + SIGKILL) << allocator_status;
    EXPECT_EQ(wait_for(victim), 128 + SIGKILL);

    EXPECT_EQ(probes->counters(group_id)->oom_kills, 1u);
    std::vector<ProcessEvent> ooms, exits;
    for (auto& e : drain()) {
        if (e.kind == EventKind::oom_kill) ooms.push_back(e);
        if (e.kind == EventKind::exit) exits.push_back(e);
    }
    ASSERT_EQ(ooms.size(), 1u);
    EXPECT_EQ(ooms[0].tgid, static_cast<std::uint32_t>(victim));
    EXPECT_EQ(ooms[0].cgroup_id, group_id);
    ASSERT_EQ(exits.size(), 1u);
    EXPECT_EQ(exits[0].tgid, static_cast<std::uint32_t>(victim));
    EXPECT_EQ(exits[0].exit_signal, SIGKILL);
}

// Where the cgroup2 hierarchy has the memory controller (the VM tier, not this host's hybrid
// layout), the group's own memory.max: the hog is both the allocating task and the victim, so
// this holds on kernels whose mark_victim passes only the pid too.
TEST_F(BpfHost, AnOomKillUnderTheGroupsMemoryMaxIsReported) {
    if (::access((group + "/memory.max").c_str(), W_OK) != 0)
        GTEST_SKIP() << "no memory controller in " << mount << " (memory.max missing)";
    std::ofstream(group + "/memory.max") << (32 << 20);
    pid_t hog = start_in_group({}, [] {
        constexpr std::size_t size = 256u << 20;
        auto* memory = static_cast<volatile char*>(std::malloc(size));
        for (std::size_t i = 0; memory && i < size; i += 4096) memory[i] = 1;
    });
    EXPECT_EQ(wait_for(hog), 128 + SIGKILL);

    EXPECT_EQ(probes->counters(group_id)->oom_kills, 1u);
    std::vector<ProcessEvent> ooms;
    for (auto& e : drain())
        if (e.kind == EventKind::oom_kill) ooms.push_back(e);
    ASSERT_EQ(ooms.size(), 1u);
    EXPECT_EQ(ooms[0].tgid, static_cast<std::uint32_t>(hog));
    EXPECT_EQ(ooms[0].cgroup_id, group_id);
}
