// agent/state owns the files under the state directory (the seed's layout: current_state/,
// monitoring/, policies/, optimization/) and makes every write crash-safe: a reader after a
// crash sees either the old state or the new one, never a torn one.
// May call: model (the Allocation and its JSON), zlib (crc32), spdlog, the C library. Nothing else.
//
// The allocations live in two files in current_state/:
//   allocations.json     the snapshot: the seed's format, written whole and crash-safely (temp
//                        file, fsync, rename, fsync of the directory);
//   allocations.journal  the changes since that snapshot, one record per change (an allocation's
//                        new JSON, or the id of one that is gone), appended and fdatasync'd
//                        before record() returns. Work per change is O(size of the change), not
//                        O(live allocations) as when every change rewrote the snapshot.
// Start loads the snapshot, then replays the journal over it. Compaction (save_allocations:
// once the journal holds as many records as the snapshot held allocations, at least
// kSnapshotEvery, right after a record; and at shutdown) writes the snapshot, then empties the
// journal. The snapshot's cost is so spread to O(1) per change.
//
// Why a crash between the two steps is safe: every record holds an allocation's whole state (or
// its removal), never a difference, and the snapshot is written right after a record, so it
// holds exactly the state at the journal's end (nothing changes in between: one thread).
// Replaying the journal over that newer snapshot leaves each id the journal touched at the value
// of its last record, which is its value in the snapshot, and every other id as the snapshot has
// it: the same state, so the replay is idempotent and nothing needs to know which file is newer.
//
// Record format (little-endian), after an 8-byte file header "RMJRNL1\n":
//   u32 payload length | u8 kind (1 upsert, 2 remove) | u8 flags (1: last of its batch) |
//   u16 zero | u32 crc32 of the payload | u32 crc32 of the 12 bytes before it | payload
// The changes of one persist() are one batch in one write and one fdatasync; replay applies a
// batch only when its last record (flagged) is there, so a batch is all or nothing.
// A torn or corrupt tail (a short record, a bad checksum with no valid record after it, a batch
// without its last record) was never acknowledged: it is cut off, logged, and start goes on.
// A bad record followed by a valid one is corruption of acknowledged changes: StateError naming
// the file and the byte offset, and the files are left as they are (as for a corrupt snapshot).
//
// Why a journal and not SQLite (in WAL mode) for the allocations: history.db already uses
// SQLite, and would give the same O(1) durable commit. But the allocations' format of record
// stays the seed's allocations.json, which operators read and repair by hand; with SQLite it
// would become an export of a second copy, and a corrupt database would have to stop the start
// (history can be switched off, state cannot). The journal is one append and one fdatasync per
// change, a format of a few dozen lines whose every failure (torn tail, bad checksum at an
// offset) is named and tested here, and it leaves the snapshot the one source of truth after
// every compaction.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "resmgr/model.hpp"

namespace resmgr::state {

struct StateError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Writes `content` to `path` via a temp file in the same directory: write, fsync, rename,
// fsync the directory. Throws StateError with the path and errno text.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);
// The same, with the content handed piece by piece to `put` by `produce`, so that a large file
// never has to be in memory whole.
using PutText = std::function<void(std::string_view)>;
void write_file_atomic(const std::filesystem::path& path, const std::function<void(const PutText& put)>& produce);

// One change to the recorded allocations: `allocation` is its new state, or null when the
// allocation `id` is gone. The pointer is read during record() only.
struct Change {
    std::string id;
    const Allocation* allocation = nullptr;
};

class StateStore {
public:
    // The journal is compacted after this many records at least (more when the snapshot holds
    // more allocations, so the snapshot's cost stays O(1) per change).
    static constexpr size_t kSnapshotEvery = 1000;

    // Creates the directory layout if missing (mode 0750). Throws StateError.
    explicit StateStore(std::filesystem::path dir);
    ~StateStore();
    StateStore(const StateStore&) = delete;
    StateStore& operator=(const StateStore&) = delete;

    const std::filesystem::path& dir() const { return dir_; }
    const std::filesystem::path& allocations_path() const { return allocations_path_; }
    // Made once: record() checks the journal at its path before every append.
    const std::filesystem::path& journal_path() const { return journal_path_; }

    // The snapshot: writes `allocations` crash-safely, then empties the journal. Throws
    // StateError (the journal is kept: replaying it over either snapshot gives the same state).
    // By pointer: the ledger's allocations are written where they are (a copy of 10,000 for the
    // write was heaptrack's largest peak: 4.8 MB of Allocations, their strings on top, at once
    // in the middle of a burst of changes).
    void save_allocations(const std::vector<const Allocation*>& allocations, TimePoint now);
    void save_allocations(const std::vector<Allocation>& allocations, TimePoint now);
    // Appends `changes` as one batch to the journal, durable when it returns (unless sync is
    // deferred, below). Throws StateError and leaves the journal as it was: the changes were not
    // recorded. A journal moved or removed under it is not appended to: StateError until
    // save_allocations succeeds.
    void record(const std::vector<Change>& changes);

    // Group commit (server/group_commit.hpp): with sync deferred, record() only writes the batch
    // and the caller makes it durable later, with one fdatasync of sync_fd() for every batch
    // written by then (mark_durable). Batches are numbered: written_seq() is the last one
    // written, durable_seq() the last one known to be on disk (after a sync, or a snapshot).
    void defer_sync(bool on) { defer_sync_ = on; }
    std::uint64_t written_seq() const { return written_seq_; }
    std::uint64_t durable_seq() const { return durable_seq_; }
    void mark_durable(std::uint64_t seq) { durable_seq_ = std::max(durable_seq_, seq); }
    // The open journal (-1: none); fdatasync of a dup of it makes every batch written so far durable.
    int sync_fd() const { return journal_fd_; }
    // Time for save_allocations (after a record): the journal holds as many records as the
    // snapshot allocations, or it was moved or removed.
    bool snapshot_due() const;
    // The open journal was moved or removed: record() refuses, save_allocations starts a new one.
    bool journal_lost() const { return journal_lost_; }

    // The snapshot with the journal replayed over it; missing files: empty. A torn tail of the
    // journal is cut off (logged). Unreadable, truncated or malformed snapshot, or a corrupt
    // record before the journal's tail: StateError saying which file, where, what is wrong and
    // what to do; the files are left untouched so nothing is lost.
    std::vector<Allocation> load_allocations();

private:
    // Opens the journal for appending (creating it with its header), checking what is in it.
    void open_journal();

    std::filesystem::path dir_;
    std::filesystem::path allocations_path_ = dir_ / "current_state" / "allocations.json";
    std::filesystem::path journal_path_ = dir_ / "current_state" / "allocations.journal";
    int journal_fd_ = -1;
    std::size_t journal_end_ = 0;      // bytes of whole batches: where the next one goes
    std::size_t journal_records_ = 0;  // records since the snapshot
    std::size_t snapshot_size_ = 0;    // allocations in the snapshot
    bool journal_lost_ = false;        // the open journal is no longer the file at its path
    bool defer_sync_ = false;
    std::uint64_t written_seq_ = 0;
    std::uint64_t durable_seq_ = 0;
};

} // namespace resmgr::state
