// The pure parts of the systemd backend: unit names and slice properties.
#include <gtest/gtest.h>

#include <limits>

#include "cgroup/systemd_backend.hpp"

using namespace resmgr::cgroup;

TEST(SystemdBackend, UnitNames) {
    EXPECT_EQ(slice_name("alloc_1a2b"), "resmgr-alloc_1a2b.slice");
    EXPECT_EQ(scope_name("alloc_1a2b", "main", 42), "resmgr-alloc_1a2b-main-42.scope");
    EXPECT_EQ(id_from_slice("resmgr-alloc_1a2b.slice"), "alloc_1a2b");
    EXPECT_EQ(id_from_slice("resmgr.slice"), "");
    EXPECT_EQ(id_from_slice("resmgr-.slice"), "");
    EXPECT_EQ(id_from_slice("resmgr-a-b.slice"), ""); // nested, not ours
    EXPECT_EQ(id_from_slice("system.slice"), "");
    // A scope's leaf, read back when the units' layout is taken over after a restart.
    EXPECT_EQ(leaf_of_scope("alloc_1a2b", scope_name("alloc_1a2b", "main", 42)), "main");
    EXPECT_EQ(leaf_of_scope("alloc_1a2b", scope_name("alloc_1a2b", "reviewer_2", 7)), "reviewer_2");
    EXPECT_EQ(leaf_of_scope("alloc_1a2b", "resmgr-alloc_1a2b-main.scope"), "");       // no pid
    EXPECT_EQ(leaf_of_scope("alloc_1a2b", "resmgr-alloc_1a2b--42.scope"), "");        // no leaf
    EXPECT_EQ(leaf_of_scope("alloc_1a2b", "resmgr-alloc_1a2b-main-4x.scope"), "");    // not a pid
    EXPECT_EQ(leaf_of_scope("alloc_1a2b", "resmgr-alloc_9-main-42.scope"), "");       // another allocation's
    EXPECT_EQ(leaf_of_scope("alloc_1a2b", "resmgr-alloc_1a2b-main-42.slice"), "");    // not a scope
    EXPECT_EQ(leaf_of_scope("alloc_1a2b", "resmgr-alloc_1a2b-a/b-42.scope"), "");     // not a leaf name
}

TEST(SystemdBackend, SliceProperties) {
    Limits l;
    l.cpu_quota_us = 50000; // half a core
    l.cpu_weight = 133;
    l.memory_max = 64ULL << 20;
    l.memory_high = (64ULL << 20) / 10 * 9;
    auto props = slice_properties(l);
    constexpr auto inf = std::numeric_limits<std::uint64_t>::max();
    EXPECT_EQ(props, (std::vector<UnitProperty>{{"CPUQuotaPerSecUSec", 500000},
                                                {"CPUWeight", 133},
                                                {"MemoryMax", 64ULL << 20},
                                                {"MemoryHigh", (64ULL << 20) / 10 * 9},
                                                {"TasksMax", inf}}));
    Limits none;
    EXPECT_EQ(slice_properties(none)[0], (UnitProperty{"CPUQuotaPerSecUSec", inf}));
}
