// The systemd fast path's layout (agent/cgroup/delegated_scope) on a fake tree: a plain temp dir
// standing for resmgr-allocations.scope, with the files the kernel would have.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cgroup/delegated_scope.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using namespace resmgr::cgroup;

namespace {

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
}

int remove_tree(const std::string& path) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    return ec ? ec.value() : 0;
}

struct FakeScope {
    TempDir tmp;
    std::string dir = (tmp.path() / kDelegatedScope).string();
    explicit FakeScope(const std::string& controllers) {
        std::filesystem::create_directory(dir);
        std::ofstream(dir + "/cgroup.controllers") << controllers << "\n";
    }
    // What the groups' root would offer once the scope enabled its controllers.
    void groups_offer(const std::string& controllers) {
        std::filesystem::create_directories(dir + "/groups");
        std::ofstream(dir + "/groups/cgroup.controllers") << controllers << "\n";
    }
};

} // namespace

TEST(DelegatedScope, DirIsTheScopeUnderResmgrSlice) {
    EXPECT_EQ(delegated_scope_dir("/sys/fs/cgroup"), "/sys/fs/cgroup/resmgr.slice/resmgr-allocations.scope");
}

TEST(DelegatedScope, PrepareMovesTheKeeperOutOfTheScopeRootAndEnablesControllers) {
    FakeScope s("cpu io memory pids");
    EXPECT_FALSE(keeper_alive(s.dir));
    EXPECT_EQ(prepare_delegated_scope(s.dir, 4242), s.dir + "/groups");
    EXPECT_EQ(slurp(s.dir + "/keeper/cgroup.procs"), "4242");
    EXPECT_TRUE(keeper_alive(s.dir));
    // Written one controller at a time (each write replaces the fake file): the last one is io's.
    EXPECT_EQ(slurp(s.dir + "/cgroup.subtree_control"), "+io");
}

TEST(DelegatedScope, AdoptingLeavesALiveKeeperWhereItIs) {
    FakeScope s("cpu memory");
    std::filesystem::create_directory(s.dir + "/keeper");
    std::ofstream(s.dir + "/keeper/cgroup.procs") << "77\n";
    prepare_delegated_scope(s.dir, 0);
    EXPECT_EQ(slurp(s.dir + "/keeper/cgroup.procs"), "77\n");
    EXPECT_TRUE(keeper_alive(s.dir));
}

TEST(DelegatedScope, AScopeWithoutControllersIsRefusedWithTheReason) {
    FakeScope s("");
    try {
        prepare_delegated_scope(s.dir, 4242);
        FAIL() << "a scope offering no controller must not be used";
    } catch (const BackendError& e) {
        EXPECT_NE(std::string(e.what()).find("no controller could be enabled in " + s.dir), std::string::npos) << e.what();
    }
}

TEST(DelegatedScope, AllocationsAreGroupsUnderTheScopeAndTheKeeperIsNoneOfThem) {
    FakeScope s("cpu memory pids io");
    prepare_delegated_scope(s.dir, 4242);
    s.groups_offer("cpu memory pids io");
    DelegatedScopeBackend b(s.dir, "started by this resmgrd", remove_tree);
    EXPECT_EQ(b.name(), "systemd-delegated");
    EXPECT_TRUE(b.enforces_limits());
    Limits l;
    l.memory_max = 64ULL << 20;
    l.cpu_quota_us = 50000;
    Enforcement e = b.create("alloc_1", l);
    EXPECT_TRUE(e.unenforced.empty());
    EXPECT_EQ(b.group_path("alloc_1"), s.dir + "/groups/alloc_1");
    EXPECT_EQ(slurp(s.dir + "/groups/alloc_1/memory.max"), "67108864");
    EXPECT_EQ(slurp(s.dir + "/groups/alloc_1/cpu.max"), "50000 100000");
    b.attach("alloc_1", "main", 999);
    EXPECT_EQ(slurp(s.dir + "/groups/alloc_1/main/cgroup.procs"), "999");
    // Orphan cleanup at start destroys listed groups no allocation claims: never the keeper.
    EXPECT_EQ(b.list_groups(), std::vector<std::string>{"alloc_1"});
    b.destroy("alloc_1");
    EXPECT_FALSE(std::filesystem::exists(s.dir + "/groups/alloc_1"));
    EXPECT_TRUE(keeper_alive(s.dir));
}

TEST(DelegatedScope, DescribeSaysWhichScopeAndWhy) {
    FakeScope s("cpu memory");
    prepare_delegated_scope(s.dir, 4242);
    s.groups_offer("cpu memory");
    DelegatedScopeBackend b(s.dir, "adopted with its keeper", remove_tree);
    const nlohmann::json d = b.describe();
    EXPECT_EQ(d["backend"], "systemd-delegated");
    EXPECT_EQ(d["scope"], "resmgr-allocations.scope");
    EXPECT_EQ(d["scope_cgroup"], s.dir);
    EXPECT_EQ(d["root"], s.dir + "/groups");
    EXPECT_EQ(d["keeper_alive"], true);
    EXPECT_NE(d["why"].get<std::string>().find("Delegate=yes, adopted with its keeper"), std::string::npos) << d.dump();
    EXPECT_EQ(d["controllers_missing"], (nlohmann::json{"io", "pids"}));
}
