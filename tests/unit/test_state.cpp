// Crash-safe state files: round trip, and corrupt files refused without being touched.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "state/state_store.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using namespace resmgr::state;

namespace {

Allocation sample(const std::string& id) {
    Allocation a;
    a.allocation_id = id;
    a.workflow_id = "wf";
    a.requester = "test";
    a.timestamp = *parse_timestamp("2025-01-15T11:30:00Z");
    a.resources.cpu_cores = 1.5;
    a.resources.memory_bytes = 512ULL << 20;
    a.owner = {1000, 99};
    a.expires_at = a.timestamp + std::chrono::hours(1);
    return a;
}

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
}

} // namespace

TEST(StateStore, CreatesSeedLayout) {
    TempDir dir;
    StateStore store(dir.path() / "state");
    for (auto sub : {"current_state", "monitoring", "policies", "optimization"})
        EXPECT_TRUE(std::filesystem::is_directory(dir.path() / "state" / sub)) << sub;
    EXPECT_TRUE(store.load_allocations().empty()); // no file yet: nothing, not an error
}

TEST(StateStore, RoundTrip) {
    TempDir dir;
    StateStore store(dir.path());
    store.save_allocations({sample("alloc_a"), sample("alloc_b")}, Clock::now());
    auto loaded = StateStore(dir.path()).load_allocations();
    ASSERT_EQ(loaded.size(), 2u);
    EXPECT_EQ(loaded[0].allocation_id, "alloc_a");
    EXPECT_EQ(loaded[1].resources.memory_bytes, 512ULL << 20);
    EXPECT_EQ(loaded[1].owner.uid, 1000u);
    // The temp file of the atomic write does not linger.
    for (auto& entry : std::filesystem::directory_iterator(dir.path() / "current_state"))
        EXPECT_EQ(entry.path().filename(), "allocations.json");
}

TEST(StateStore, TruncatedFileIsRefusedAndKept) {
    TempDir dir;
    StateStore store(dir.path());
    store.save_allocations({sample("alloc_a")}, Clock::now());
    std::string full = slurp(store.allocations_path());
    std::string half = full.substr(0, full.size() / 2);
    { std::ofstream(store.allocations_path()) << half; }
    try {
        store.load_allocations();
        FAIL() << "accepted a truncated state file";
    } catch (const StateError& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find(store.allocations_path().string()), std::string::npos) << msg;
        EXPECT_NE(msg.find("corrupt or truncated"), std::string::npos) << msg;
        EXPECT_NE(msg.find("left as it is"), std::string::npos) << msg;
    }
    EXPECT_EQ(slurp(store.allocations_path()), half); // nothing lost: the evidence stays
}

TEST(StateStore, SemanticallyBadEntriesAreRefused) {
    TempDir dir;
    StateStore store(dir.path());
    for (auto doc : {R"({"version":1})", R"({"version":2,"allocations":[]})", R"([1,2])",
                     R"({"version":1,"allocations":[{"allocation_id":"a"}]})",
                     R"({"version":1,"allocations":[{"allocation_id":"a","workflow_id":"w","timestamp":"yesterday","status":"active"}]})",
                     R"({"version":1,"allocations":[{"allocation_id":"a","workflow_id":"w","timestamp":"2025-01-15T11:30:00Z","status":"zombie"}]})"}) {
        { std::ofstream(store.allocations_path()) << doc; }
        EXPECT_THROW(store.load_allocations(), StateError) << doc;
    }
}

TEST(StateStore, AtomicWriteReplacesWholeFile) {
    TempDir dir;
    auto path = dir.path() / "f.json";
    write_file_atomic(path, std::string(10000, 'x'));
    write_file_atomic(path, "short");
    EXPECT_EQ(slurp(path), "short");
    EXPECT_THROW(write_file_atomic(dir.path() / "missing-dir" / "f", "x"), StateError);
}
