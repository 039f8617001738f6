// The cgroupfs backend on this host's real cgroup2 hierarchy: groups, process moves, freeze,
// kill and removal, with a child process of the test as the only occupant.
#include <gtest/gtest.h>

#include "cgroup/cgroupfs_backend.hpp"
#include "cgroup/delegated_scope.hpp"
#include "cgroup/systemd_backend.hpp"
#include "host_support.hpp"

using namespace resmgr;
using namespace resmgr::host;

namespace {

class CgroupfsHost : public ::testing::Test {
protected:
    std::string mount = cgroup2_mount();
    std::string root;
    std::unique_ptr<cgroup::CgroupfsBackend> backend;
    pid_t child = -1;

    void SetUp() override {
        if (auto why = cgroup2_unavailable(mount)) GTEST_SKIP() << "cgroup2 host test skipped: " << *why;
        root = mount + "/resmgr-cgtest-" + std::to_string(::getpid());
        backend = std::make_unique<cgroup::CgroupfsBackend>(root);
    }
    void TearDown() override {
        if (child > 0) {
            ::kill(child, SIGKILL);
            ::waitpid(child, nullptr, 0);
        }
        if (backend) {
            for (auto& g : backend->list_groups()) backend->destroy(g);
            ::rmdir(root.c_str());
        }
    }
    pid_t spin() {
        pid_t pid = ::fork();
        if (pid == 0) {
            volatile unsigned long x = 0;
            for (;;) x = x + 1;
        }
        return pid;
    }
};

} // namespace

TEST_F(CgroupfsHost, AttachFreezeThawKillDestroy) {
    backend->create("alloc_host", cgroup::Limits{});
    child = spin();
    backend->attach("alloc_host", "main", child);
    EXPECT_NE(slurp("/proc/" + std::to_string(child) + "/cgroup").find(root.substr(mount.size()) + "/alloc_host/main"), std::string::npos);
    EXPECT_EQ(backend->pids("alloc_host"), std::vector<pid_t>{child});

    backend->freeze("alloc_host", true);
    EXPECT_NE(slurp(root + "/alloc_host/cgroup.events").find("frozen 1"), std::string::npos);
    long before = cpu_ticks(child);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_LE(cpu_ticks(child) - before, 1) << "a frozen process kept running";

    backend->freeze("alloc_host", false);
    EXPECT_NE(slurp(root + "/alloc_host/cgroup.events").find("frozen 0"), std::string::npos);
    before = cpu_ticks(child);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_GT(cpu_ticks(child) - before, 5) << "a thawed process did not run";

    backend->signal("alloc_host", SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    child = -1;

    backend->destroy("alloc_host");
    EXPECT_FALSE(std::filesystem::exists(root + "/alloc_host"));
}

TEST_F(CgroupfsHost, DestroyKillsWhatIsLeft) {
    backend->create("alloc_busy", cgroup::Limits{});
    child = spin();
    backend->attach("alloc_busy", "main", child);
    backend->destroy("alloc_busy"); // kills the occupant, waits for the group to empty, removes it
    EXPECT_FALSE(std::filesystem::exists(root + "/alloc_busy"));
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFSIGNALED(status));
    child = -1;
}

TEST_F(CgroupfsHost, LimitsReportedAgainstThisHostsControllers) {
    cgroup::Limits l;
    l.memory_max = 64ULL << 20;
    cgroup::Enforcement e = backend->create("alloc_lim", l);
    bool memory_here = backend->enabled_controllers().count("memory") > 0;
    if (memory_here) {
        EXPECT_EQ(slurp(root + "/alloc_lim/memory.max"), "67108864\n");
    } else {
        ASSERT_FALSE(e.unenforced.empty());
        EXPECT_NE(e.unenforced[0].find("memory.max=67108864: controller 'memory' not available"), std::string::npos) << e.unenforced[0];
    }
}

// A restart that changes layout (an upgrade from per-allocation units to the delegated scope):
// the processes in the units' scopes of an allocation move into its group in the scope, leaf by
// leaf; what is not a scope of that allocation stays, and then the slice is left as it is (stopping
// it would kill what is in it) and the take-over says so. On a fake resmgr.slice on this host's
// cgroup2; stopping an emptied slice needs systemd, which this host does not run as PID 1.
TEST_F(CgroupfsHost, ARestartTakesOverTheProcessesOfTheUnitsLayout) {
    const std::string base = root + "-layouts", slices = base + "/resmgr.slice", scope = slices + "/" + cgroup::kDelegatedScope;
    for (const auto& dir : {base, slices, scope}) ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << dir << ": " << std::strerror(errno);
    const std::string slice = slices + "/" + cgroup::slice_name("alloc_up");
    ::mkdir(slice.c_str(), 0755);
    std::vector<pid_t> kids;
    auto occupied = [&](const std::string& unit) {
        const std::string dir = slice + "/" + unit;
        ::mkdir(dir.c_str(), 0755);
        kids.push_back(spin());
        std::ofstream(dir + "/cgroup.procs") << kids.back();
        return kids.back();
    };
    const pid_t main_pid = occupied(cgroup::scope_name("alloc_up", "main", 100));
    const pid_t agent_pid = occupied(cgroup::scope_name("alloc_up", "reviewer", 200));
    const pid_t stranger = occupied("not-a-scope-of-it");
    auto cgroup_of = [&](pid_t pid) { return slurp("/proc/" + std::to_string(pid) + "/cgroup"); };

    {
        cgroup::DelegatedScopeBackend delegated(scope, "test");
        delegated.create("alloc_up", cgroup::Limits{});
        try {
            delegated.take_over_elsewhere("alloc_up");
            ADD_FAILURE() << "the slice still holds the stranger: the take-over must say so";
        } catch (const cgroup::BackendError& e) {
            EXPECT_NE(std::string(e.what()).find("still holds processes after 2 moved"), std::string::npos) << e.what();
        }
        EXPECT_EQ(delegated.take_over_elsewhere("alloc_none"), 0u); // nothing of it elsewhere
        const std::string group = scope.substr(mount.size()) + "/groups/alloc_up";
        EXPECT_NE(cgroup_of(main_pid).find(group + "/main\n"), std::string::npos) << cgroup_of(main_pid);
        EXPECT_NE(cgroup_of(agent_pid).find(group + "/reviewer\n"), std::string::npos) << cgroup_of(agent_pid);
        EXPECT_NE(cgroup_of(stranger).find("/not-a-scope-of-it\n"), std::string::npos) << cgroup_of(stranger);
        for (pid_t pid : kids) ::kill(pid, SIGKILL), ::waitpid(pid, nullptr, 0);
        delegated.destroy("alloc_up");
    }
    for (const auto& dir : {slice + "/" + cgroup::scope_name("alloc_up", "main", 100), slice + "/" + cgroup::scope_name("alloc_up", "reviewer", 200),
                            slice + "/not-a-scope-of-it", slice, scope + "/groups", scope, slices, base})
        EXPECT_EQ(::rmdir(dir.c_str()), 0) << dir << ": " << std::strerror(errno);
}
