// The allocations' journal (state_store.hpp): replay over the snapshot, a torn last record cut
// off, corruption before the tail refused by file and offset with the files untouched,
// compaction, a snapshot newer than the journal, and Lifecycle writing one batch per change.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "fake_backend.hpp"
#include "resmgr/json.hpp"
#include "server/service.hpp"
#include "state/state_store.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using namespace resmgr::state;

namespace {

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

void spit(const std::filesystem::path& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

Change upsert(const Allocation& a) { return {a.allocation_id, &a}; }
Change removal(const std::string& id) { return {id, nullptr}; }

// id -> cpu_cores of what a fresh store (a restart) loads.
std::map<std::string, double> loaded(const std::filesystem::path& dir) {
    std::map<std::string, double> out;
    for (auto& a : StateStore(dir).load_allocations()) out[a.allocation_id] = a.resources.cpu_cores;
    return out;
}

size_t journal_size(const StateStore& s) { return std::filesystem::file_size(s.journal_path()); }

constexpr size_t kHeader = 8, kRecordHeader = 16;

} // namespace

TEST(StateJournal, ReplaysTheJournalOverTheSnapshot) {
    TempDir dir;
    {
        StateStore store(dir.path());
        store.save_allocations({sample_allocation("alloc_a"), sample_allocation("alloc_b")}, Clock::now());
        const Allocation a2 = sample_allocation("alloc_a", 3), c = sample_allocation("alloc_c", 2);
        store.record({upsert(a2)});
        store.record({removal("alloc_b"), upsert(c)});
        store.record({removal("alloc_never_recorded")}); // a removal of what is not there: nothing
        // The snapshot was not rewritten by the changes: only the journal grew.
        EXPECT_EQ(StateStore(dir.path()).load_allocations().size(), 2u);
    }
    EXPECT_EQ(loaded(dir.path()), (std::map<std::string, double>{{"alloc_a", 3}, {"alloc_c", 2}}));
    // The snapshot's order first, then the new ones.
    auto all = StateStore(dir.path()).load_allocations();
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].allocation_id, "alloc_a");
    EXPECT_EQ(all[0].owner.uid, 1000u);
    EXPECT_EQ(all[1].allocation_id, "alloc_c");
}

TEST(StateJournal, JournalWithoutSnapshot) {
    TempDir dir;
    {
        StateStore store(dir.path());
        const Allocation a = sample_allocation("alloc_a");
        store.record({upsert(a)});
    }
    EXPECT_FALSE(std::filesystem::exists(StateStore(dir.path()).allocations_path()));
    EXPECT_EQ(loaded(dir.path()), (std::map<std::string, double>{{"alloc_a", 1.5}}));
}

TEST(StateJournal, TornLastRecordIsCutOffAndStartGoesOn) {
    TempDir probe;
    // Every length the last batch's write could have been cut at, from its first byte to one short
    // of its end: the batch is dropped, everything before it is kept, the file is cut back.
    StateStore sizing(probe.path());
    const Allocation a = sample_allocation("alloc_a"), b = sample_allocation("alloc_b", 2), c = sample_allocation("alloc_c", 4);
    sizing.record({upsert(a)});
    const size_t one = journal_size(sizing);
    sizing.record({upsert(b), upsert(c)});
    const size_t two = journal_size(sizing);
    const std::string full = slurp(sizing.journal_path());
    for (size_t cut = one; cut < two; cut += (cut < one + 40 ? 1 : 37)) {
        TempDir dir;
        StateStore store(dir.path());
        spit(store.journal_path(), full.substr(0, cut));
        EXPECT_EQ(loaded(dir.path()), (std::map<std::string, double>{{"alloc_a", 1.5}})) << "cut at " << cut;
        EXPECT_EQ(journal_size(store), one) << "cut at " << cut;
        // It goes on: the next change lands after the last whole batch.
        const Allocation d = sample_allocation("alloc_d", 8);
        store.record({upsert(d)});
        EXPECT_EQ(loaded(dir.path()), (std::map<std::string, double>{{"alloc_a", 1.5}, {"alloc_d", 8}})) << "cut at " << cut;
    }
    // A torn file header (the journal was being created) is an empty journal.
    TempDir header;
    StateStore store(header.path());
    spit(store.journal_path(), "RMJ");
    EXPECT_TRUE(store.load_allocations().empty());
    EXPECT_EQ(journal_size(store), 0u);
}

TEST(StateJournal, BadChecksumOfTheLastRecordIsCutOff) {
    TempDir dir;
    StateStore store(dir.path());
    const Allocation a = sample_allocation("alloc_a"), b = sample_allocation("alloc_b", 2);
    store.record({upsert(a)});
    const size_t one = journal_size(store);
    store.record({upsert(b)});
    std::string bytes = slurp(store.journal_path());
    bytes[bytes.size() - 3] ^= 0x20; // in the last payload
    spit(store.journal_path(), bytes);
    EXPECT_EQ(loaded(dir.path()), (std::map<std::string, double>{{"alloc_a", 1.5}}));
    EXPECT_EQ(journal_size(store), one);
    // Zeros after the last record (a file extended, its data never written) are a torn tail too.
    spit(store.journal_path(), slurp(store.journal_path()) + std::string(4096, '\0'));
    EXPECT_EQ(loaded(dir.path()), (std::map<std::string, double>{{"alloc_a", 1.5}}));
    EXPECT_EQ(journal_size(store), one);
}

TEST(StateJournal, ChecksumMismatchInTheMiddleIsNamedWithItsOffsetAndTouchesNothing) {
    TempDir dir;
    StateStore store(dir.path());
    store.save_allocations({sample_allocation("alloc_s")}, Clock::now());
    const Allocation a = sample_allocation("alloc_a"), b = sample_allocation("alloc_b", 2), c = sample_allocation("alloc_c", 4);
    store.record({upsert(a)});
    const size_t second = journal_size(store); // where the second record starts
    store.record({upsert(b)});
    store.record({upsert(c)});
    const std::string good = slurp(store.journal_path());
    const std::string snapshot = slurp(store.allocations_path());
    struct Damage {
        const char* what;
        size_t at;
    };
    for (Damage d : {Damage{"payload", second + kRecordHeader + 10}, Damage{"payload checksum", second + 8},
                     Damage{"header checksum", second + 12}, Damage{"length", second + 1}, Damage{"kind", second + 4}}) {
        std::string bad = good;
        bad[d.at] ^= 0x5a;
        spit(store.journal_path(), bad);
        try {
            StateStore(dir.path()).load_allocations();
            ADD_FAILURE() << d.what << ": loaded";
        } catch (const StateError& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find(store.journal_path().string()), std::string::npos) << msg;
            EXPECT_NE(msg.find("byte offset " + std::to_string(second) + ":"), std::string::npos) << d.what << ": " << msg;
        }
        // Untouched: the same bytes, and the snapshot as it was.
        EXPECT_EQ(slurp(store.journal_path()), bad) << d.what;
        EXPECT_EQ(slurp(store.allocations_path()), snapshot) << d.what;
        // Appending is refused too: it would bury the damage under more records.
        StateStore writer(dir.path());
        EXPECT_THROW(writer.record({upsert(a)}), StateError) << d.what;
        EXPECT_EQ(slurp(store.journal_path()), bad) << d.what;
    }
    // Not a journal at all: offset 0.
    spit(store.journal_path(), "{\"version\": 1}\n");
    try {
        StateStore(dir.path()).load_allocations();
        ADD_FAILURE() << "loaded";
    } catch (const StateError& e) {
        EXPECT_NE(std::string(e.what()).find("byte offset 0"), std::string::npos) << e.what();
    }
}

TEST(StateJournal, ValidRecordWithAnInvalidAllocationIsNamed) {
    TempDir dir;
    StateStore store(dir.path());
    Allocation a = sample_allocation("alloc_a");
    a.resources.cpu_cores = 1e9; // checksummed, but not an allocation this resmgrd loads (at most 4096)
    store.record({upsert(a)});
    try {
        StateStore(dir.path()).load_allocations();
        ADD_FAILURE() << "loaded";
    } catch (const StateError& e) {
        EXPECT_NE(std::string(e.what()).find("byte offset " + std::to_string(kHeader)), std::string::npos) << e.what();
    }
}

TEST(StateJournal, CompactionThenMoreChangesThenRestart) {
    TempDir dir;
    std::map<std::string, double> expected;
    {
        StateStore store(dir.path());
        std::vector<Allocation> live;
        for (int i = 0; i < 10 && !store.snapshot_due(); ++i) {
            std::vector<Allocation> batch;
            for (int j = 0; j < 100; ++j) batch.push_back(sample_allocation("alloc_" + std::to_string(i * 100 + j), 1 + j % 3));
            std::vector<Change> changes;
            for (auto& a : batch) changes.push_back(upsert(a));
            store.record(changes);
            live.insert(live.end(), batch.begin(), batch.end());
        }
        EXPECT_TRUE(store.snapshot_due()); // 1,000 records
        store.save_allocations(live, Clock::now());
        EXPECT_FALSE(store.snapshot_due());
        EXPECT_EQ(journal_size(store), kHeader); // emptied
        for (auto& a : live) expected[a.allocation_id] = a.resources.cpu_cores;
        // More changes after the compaction.
        const Allocation grown = sample_allocation("alloc_7", 9), fresh = sample_allocation("alloc_new", 5);
        store.record({upsert(grown), removal("alloc_8")});
        store.record({upsert(fresh)});
        expected["alloc_7"] = 9;
        expected.erase("alloc_8");
        expected["alloc_new"] = 5;
        EXPECT_GT(journal_size(store), kHeader);
    }
    EXPECT_EQ(loaded(dir.path()), expected);
    // The compaction threshold follows the snapshot's size: 1,000 allocations, 1,000 records.
    StateStore again(dir.path());
    again.load_allocations();
    EXPECT_FALSE(again.snapshot_due());
}

TEST(StateJournal, SnapshotNewerThanTheJournal) {
    // A crash after the snapshot's rename, before the journal was emptied: the journal's changes
    // are replayed over a snapshot that already holds them, and the result is the same.
    TempDir dir;
    StateStore store(dir.path());
    store.save_allocations({sample_allocation("alloc_a"), sample_allocation("alloc_b"), sample_allocation("alloc_c")}, Clock::now());
    const Allocation a2 = sample_allocation("alloc_a", 2), a3 = sample_allocation("alloc_a", 3), d = sample_allocation("alloc_d", 4), c2 = sample_allocation("alloc_c", 6);
    store.record({upsert(a2)});
    store.record({removal("alloc_b"), upsert(d)});
    store.record({upsert(a3), removal("alloc_d")});
    store.record({removal("alloc_c")});
    store.record({upsert(c2)}); // back again (a rolled-back end)
    const std::map<std::string, double> expected{{"alloc_a", 3}, {"alloc_c", 6}};
    ASSERT_EQ(loaded(dir.path()), expected);
    const std::string journal = slurp(store.journal_path());
    auto now = StateStore(dir.path()).load_allocations();
    store.save_allocations(now, Clock::now());
    spit(store.journal_path(), journal); // the truncation never happened
    EXPECT_EQ(loaded(dir.path()), expected);
    // And a restart that goes on appending to that journal still comes back right.
    {
        StateStore after(dir.path());
        after.load_allocations();
        const Allocation e = sample_allocation("alloc_e", 7);
        after.record({upsert(e), removal("alloc_a")});
    }
    EXPECT_EQ(loaded(dir.path()), (std::map<std::string, double>{{"alloc_c", 6}, {"alloc_e", 7}}));
}

// Lifecycle writes what a change touched: one batch appended, the snapshot left alone.
TEST(StateJournal, LifecycleRecordsEachChangeAndRestartsFromIt) {
    TempDir dir, groups;
    FakeBackend backend;
    backend.root = groups.path().string();
    const Owner alice{1000, 100};
    auto node = [&](StateStore& store, core::Ledger& ledger) {
        for (auto& a : store.load_allocations()) ledger.restore(a);
        ledger.clear_changed();
        return std::make_unique<server::Service>(ledger, backend, store, [] { return Clock::now(); }, nlohmann::json::object(),
                                                 nlohmann::json::object());
    };
    auto allocate = [&](server::Service& s, double cpu) {
        nlohmann::json r = s.router().handle_line(
            nlohmann::json{{"operation", "allocate"}, {"params", {{"workflow_id", "wf"}, {"resources", {{"cpu_cores", cpu}}}}}}.dump(), alice);
        EXPECT_EQ(r["status"], "success") << r.dump();
        return r["result"].value("allocation_id", "");
    };
    std::string kept, released, resized;
    {
        StateStore store(dir.path());
        core::Ledger ledger(core::NodeCapacity{8, 16 * kGiB}, core::Policy::defaults());
        auto service = node(store, ledger);
        kept = allocate(*service, 1);
        released = allocate(*service, 1);
        resized = allocate(*service, 1);
        const size_t before = journal_size(store);
        // One allocation changed: one record (its JSON and 16 bytes), whatever else is live.
        nlohmann::json r = service->router().handle_line(
            nlohmann::json{{"operation", "reallocate"}, {"params", {{"allocation_id", resized}, {"resources", {{"cpu_cores", 2}}}}}}.dump(),
            alice);
        ASSERT_EQ(r["status"], "success") << r.dump();
        EXPECT_EQ(journal_size(store) - before, kRecordHeader + to_json(*ledger.find(resized)).dump().size());
        r = service->router().handle_line(
            nlohmann::json{{"operation", "release"}, {"params", {{"allocation_id", released}}}}.dump(), alice);
        ASSERT_EQ(r["status"], "success") << r.dump();
        EXPECT_FALSE(std::filesystem::exists(store.allocations_path())); // no snapshot was due
        EXPECT_TRUE(ledger.changed().empty());
    }
    // A restart (no shutdown snapshot: as after kill -9) finds exactly what was acknowledged.
    StateStore store(dir.path());
    core::Ledger ledger(core::NodeCapacity{8, 16 * kGiB}, core::Policy::defaults());
    auto service = node(store, ledger);
    ASSERT_EQ(ledger.allocations().size(), 2u);
    EXPECT_TRUE(ledger.find(kept));
    EXPECT_FALSE(ledger.find(released));
    EXPECT_EQ(ledger.find(resized)->resources.cpu_cores, 2);
}
