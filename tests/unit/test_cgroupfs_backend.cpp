// The cgroupfs backend against a fake cgroup tree: a plain temp dir with the files the kernel
// would have, checked for exactly the values written.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cgroup/cgroupfs_backend.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using namespace resmgr::cgroup;

namespace {

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
}

// A plain directory holds regular files where cgroupfs has control files: remove recursively.
int remove_tree(const std::string& path) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    return ec ? ec.value() : 0;
}

struct FakeTree {
    TempDir tmp;
    std::string root = (tmp.path() / "resmgr").string();
    explicit FakeTree(const std::string& controllers) {
        std::filesystem::create_directory(root);
        std::ofstream(root + "/cgroup.controllers") << controllers << "\n";
    }
    CgroupfsBackend backend() { return CgroupfsBackend(root, remove_tree); }
};

Limits two_cores_4g() {
    Limits l;
    l.cpu_quota_us = 200000;
    l.cpu_weight = 133;
    l.memory_max = 4ULL << 30;
    l.memory_high = (4ULL << 30) / 10 * 9;
    l.pids_max = 64;
    return l;
}

} // namespace

TEST(CgroupfsBackend, EnablesControllersOneByOne) {
    FakeTree t("cpu io memory pids hugetlb");
    auto b = t.backend();
    EXPECT_EQ(b.enabled_controllers(), (std::set<std::string>{"cpu", "io", "memory", "pids"}));
    EXPECT_TRUE(b.enforces_limits());
}

TEST(CgroupfsBackend, CreateWritesEveryLimit) {
    FakeTree t("cpu memory pids io");
    auto b = t.backend();
    Enforcement e = b.create("alloc_1", two_cores_4g());
    EXPECT_TRUE(e.unenforced.empty()) << e.to_json().dump();
    auto g = t.root + "/alloc_1/";
    EXPECT_EQ(slurp(g + "cpu.max"), "200000 100000");
    EXPECT_EQ(slurp(g + "cpu.weight"), "133");
    EXPECT_EQ(slurp(g + "memory.max"), "4294967296");
    EXPECT_EQ(slurp(g + "memory.high"), std::to_string((4ULL << 30) / 10 * 9));
    EXPECT_EQ(slurp(g + "pids.max"), "64");
    EXPECT_EQ(b.group_path("alloc_1"), t.root + "/alloc_1");
}

TEST(CgroupfsBackend, UpdateChangesLimitsAndAbsentMeansMax) {
    FakeTree t("cpu memory pids");
    auto b = t.backend();
    b.create("alloc_1", two_cores_4g());
    Limits l;
    l.cpu_quota_us = 50000;
    b.update("alloc_1", l);
    auto g = t.root + "/alloc_1/";
    EXPECT_EQ(slurp(g + "cpu.max"), "50000 100000");
    EXPECT_EQ(slurp(g + "memory.max"), "max");
    EXPECT_EQ(slurp(g + "memory.high"), "max");
    EXPECT_EQ(slurp(g + "pids.max"), "max");
    EXPECT_THROW(b.update("alloc_missing", l), BackendError);
}

// A new cgroup starts with every limit at "max" (cpu.weight 100): create writes only what
// differs, and still reports the defaults as applied; an existing group gets every file written.
TEST(CgroupfsBackend, CreateLeavesKernelDefaultsUnwritten) {
    FakeTree t("cpu memory pids");
    auto b = t.backend();
    Limits l;
    l.memory_max = 64ULL << 20;
    Enforcement e = b.create("alloc_1", l);
    auto g = t.root + "/alloc_1/";
    EXPECT_EQ(slurp(g + "memory.max"), "67108864");
    for (const char* file : {"cpu.max", "cpu.weight", "memory.high", "pids.max"})
        EXPECT_FALSE(std::filesystem::exists(g + file)) << file << " was written with its default";
    EXPECT_EQ(e.applied, (std::vector<std::string>{"cpu.max=max 100000", "cpu.weight=100", "memory.max=67108864", "memory.high=max",
                                                   "pids.max=max"}));
    EXPECT_TRUE(e.unenforced.empty());
    // A period other than the kernel's is not a default.
    Limits other_period;
    other_period.cpu_period_us = 50000;
    b.create("alloc_2", other_period);
    EXPECT_EQ(slurp(t.root + "/alloc_2/cpu.max"), "max 50000");
    // The group was there already (re-adopted after a restart): its files may hold anything.
    std::filesystem::create_directory(t.root + "/alloc_3");
    std::ofstream(t.root + "/alloc_3/pids.max") << "12";
    b.create("alloc_3", Limits{});
    EXPECT_EQ(slurp(t.root + "/alloc_3/pids.max"), "max");
    EXPECT_EQ(slurp(t.root + "/alloc_3/cpu.weight"), "100");
}

TEST(CgroupfsBackend, MissingControllersAreReportedWithReasons) {
    FakeTree t("hugetlb"); // this build host's /sys/fs/cgroup/unified
    auto b = t.backend();
    EXPECT_FALSE(b.enforces_limits());
    Enforcement e = b.create("alloc_1", two_cores_4g());
    ASSERT_EQ(e.unenforced.size(), 5u) << e.to_json().dump();
    EXPECT_NE(e.unenforced[0].find("cpu.max=200000 100000: controller 'cpu' not available"), std::string::npos) << e.unenforced[0];
    EXPECT_TRUE(std::filesystem::is_directory(t.root + "/alloc_1")); // the group still exists
    EXPECT_FALSE(std::filesystem::exists(t.root + "/alloc_1/memory.max"));
    // Nothing asked, nothing to report.
    EXPECT_TRUE(b.create("alloc_2", Limits{}).unenforced.empty());
}

TEST(CgroupfsBackend, AttachWritesPidIntoLeaf) {
    FakeTree t("cpu");
    auto b = t.backend();
    b.create("alloc_1", Limits{});
    b.attach("alloc_1", "main", 4242);
    EXPECT_EQ(slurp(t.root + "/alloc_1/main/cgroup.procs"), "4242");
    EXPECT_EQ(b.pids("alloc_1"), std::vector<pid_t>{4242});
}

TEST(CgroupfsBackend, RejectsPathTraversal) {
    FakeTree t("cpu");
    auto b = t.backend();
    for (auto bad : {"..", ".", "", "a/b", "../etc", "x y"}) EXPECT_THROW(b.create(bad, Limits{}), BackendError) << bad;
    b.create("alloc_1", Limits{});
    EXPECT_THROW(b.attach("alloc_1", "../../x", 1), BackendError);
}

TEST(CgroupfsBackend, ListAndDestroy) {
    FakeTree t("cpu");
    auto b = t.backend();
    b.create("alloc_a", Limits{});
    b.create("alloc_b", Limits{});
    b.attach("alloc_b", "main", 1);
    auto groups = b.list_groups();
    std::sort(groups.begin(), groups.end());
    EXPECT_EQ(groups, (std::vector<std::string>{"alloc_a", "alloc_b"}));
    b.destroy("alloc_b");
    EXPECT_FALSE(std::filesystem::exists(t.root + "/alloc_b"));
    EXPECT_EQ(b.list_groups(), std::vector<std::string>{"alloc_a"});
    b.destroy("alloc_b"); // already gone: fine
}

// Allocations that got the same enforcement share one copy; a different one is its own; a copy
// no allocation holds any more is swept from the pool as it is used.
TEST(EnforcementPool, SharesEqualEnforcementsAndForgetsUnheldOnes) {
    EnforcementPool pool;
    const Enforcement missing{{"cpu.weight=100"}, {"memory.max=1073741824: controller 'memory' not available in the cgroup root"}};
    auto a = pool.share(missing);
    auto b = pool.share(missing);
    auto c = pool.share(Enforcement{{"cpu.weight=200"}, {}});
    EXPECT_EQ(a.get(), b.get());
    EXPECT_NE(a.get(), c.get());
    EXPECT_EQ(*a, missing);
    EXPECT_EQ(pool.size(), 2u);
    c.reset();
    for (unsigned i = 0; i < 1024; ++i) b = pool.share(missing);
    EXPECT_EQ(pool.size(), 1u) << "the copy nobody holds was swept";
    EXPECT_EQ(b.get(), a.get());

    EXPECT_EQ(pool.with_unenforced(a, {}).get(), a.get()) << "nothing added: the same copy";
    auto guarded = pool.with_unenforced(a, {"exclusive_files: held at admission only"});
    EXPECT_EQ(guarded->unenforced.size(), 2u);
    EXPECT_EQ(a->unenforced.size(), 1u) << "the shared copy is never changed";
}
