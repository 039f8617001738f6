// Crash-safe state files: round trip, and corrupt files refused without being touched.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "resmgr/json.hpp"
#include "state/state_store.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using namespace resmgr::state;

namespace {

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
    store.save_allocations({sample_allocation("alloc_a"), sample_allocation("alloc_b")}, Clock::now());
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
    store.save_allocations({sample_allocation("alloc_a")}, Clock::now());
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

// The snapshot is streamed an allocation at a time; the text is the one the whole document
// dumped with an indent of 2 would give, with none and with several allocations.
TEST(StateStore, StreamedSnapshotIsTheWholeDocumentsText) {
    TempDir dir;
    StateStore store(dir.path());
    const auto now = Clock::now();
    for (const std::vector<Allocation>& allocations :
         {std::vector<Allocation>{}, {sample_allocation("alloc_a")}, {sample_allocation("alloc_a"), sample_allocation("alloc_b", 0.25)}}) {
        store.save_allocations(allocations, now);
        nlohmann::json list = nlohmann::json::array();
        for (auto& a : allocations) list.push_back(to_json(a));
        const nlohmann::json doc{{"version", 1}, {"updated", format_timestamp(now)}, {"allocations", list}};
        EXPECT_EQ(slurp(dir.path() / "current_state" / "allocations.json"), doc.dump(2) + "\n");
    }
}

// A producer that throws leaves the old file as it was and no temp file behind.
TEST(StateStore, AtomicWriteOfAFailedProducerKeepsTheOldFile) {
    TempDir dir;
    auto path = dir.path() / "f.json";
    write_file_atomic(path, "old");
    EXPECT_THROW(write_file_atomic(path,
                                   [](const PutText& put) {
                                       put(std::string(200000, 'x')); // past one chunk: some of it is on disk
                                       throw std::runtime_error("producer failed");
                                   }),
                 std::runtime_error);
    EXPECT_EQ(slurp(path), "old");
    size_t files = 0;
    for ([[maybe_unused]] auto& entry : std::filesystem::directory_iterator(dir.path())) ++files;
    EXPECT_EQ(files, 1u);
}

// A state file is outside input too (a disk error, an editor, another version). Randomly
// damaged versions of a real one either load or are refused with a StateError that names the
// file; nothing else escapes (ASan/UBSan watch this in the sanitizer build), and a file that
// loads saves back to one that loads the same.
TEST(StateStore, RandomlyDamagedFilesLoadOrAreRefusedByName) {
    TempDir dir;
    StateStore store(dir.path());
    Allocation full = sample_allocation("alloc_full");
    full.constraints.exclusive_access = {"/src/flake.nix"};
    full.constraints.conflict_avoidance = {"wf-other"};
    full.supervisor_pid = 77;
    full.populated_once = true;
    Allocation queued = sample_allocation("alloc_queued");
    queued.status = AllocationStatus::queued;
    store.save_allocations({full, queued, sample_allocation("alloc_plain")}, Clock::now());
    const nlohmann::json original = nlohmann::json::parse(slurp(store.allocations_path()));
    const std::vector<nlohmann::json> odd = {nullptr, true, -1, 0, 1e308, -1.5, 18446744073709551615ULL, "", "x", "2025-99-99T00:00:00Z",
                                             "-3h", nlohmann::json::array(), nlohmann::json::object(), std::string(3000, 'z')};
    JsonMutator fuzz(4242, odd, /*add_unknown_keys=*/false);
    auto pick = [&](size_t n) { return fuzz.pick(n); };
    int loaded = 0, refused = 0;
    for (int round = 0; round < 1500; ++round) {
        nlohmann::json doc = original;
        fuzz.mutate(doc);
        std::string text = doc.dump(1);
        if (pick(8) == 0) text[pick(text.size())] = static_cast<char>(pick(256)); // a flipped byte
        { std::ofstream(store.allocations_path(), std::ios::trunc) << text; }
        try {
            auto allocations = store.load_allocations();
            ++loaded;
            store.save_allocations(allocations, Clock::now());
            EXPECT_EQ(store.load_allocations().size(), allocations.size()) << text;
        } catch (const StateError& e) {
            ++refused;
            EXPECT_NE(std::string(e.what()).find(store.allocations_path().string()), std::string::npos) << e.what();
        }
    }
    std::cout << "[          ] " << loaded << " loaded, " << refused << " refused\n";
    EXPECT_GT(loaded, 0);
    EXPECT_GT(refused, 0);
}
