// Group commit of the allocations' journal (issue 12 item 2). The state store writes each
// change's batch at once but defers its fdatasync (StateStore::defer_sync); this part makes the
// batches durable on a worker thread, one fdatasync for every batch written by the time it
// starts, and reports back on the event loop. While one sync is in flight the loop keeps
// serving: the changes of every request that arrives meanwhile are written and covered by the
// next sync, so N concurrent clients share fsyncs. The socket server holds every answer until
// the batches written before it are durable (SocketServer::set_durability), so no answer ever
// acknowledges a change a crash could lose.
//
// Why a thread: sd-event runs one thread, and fdatasync blocks it for the disk's flush latency;
// with the flush on a thread, the loop decides and writes the next requests during it, which is
// where the grouping comes from. The worker touches nothing but a dup of the journal's fd (the
// store may close or truncate its own meanwhile) and the slot it reports through; all state
// stays on the loop's thread.
//
// May call: state (the store), sd-event. Called by: main (assembly), the socket server.
#pragma once

#include <systemd/sd-event.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "state/state_store.hpp"

namespace resmgr::server {

class GroupCommit {
public:
    // `on_durable(seq)`: every batch up to seq is on disk (the socket server releases answers).
    // `snapshot()`: writes the whole snapshot, the way out when a journal sync fails (throws
    // StateError when that fails too; the sync is then retried every second, answers held).
    GroupCommit(sd_event* event, state::StateStore& store, std::function<void()> snapshot);
    ~GroupCommit();
    GroupCommit(const GroupCommit&) = delete;
    GroupCommit& operator=(const GroupCommit&) = delete;

    void set_on_durable(std::function<void(std::uint64_t)> on_durable) { on_durable_ = std::move(on_durable); }
    // The batch an answer produced now must wait for, or 0 when everything written is durable.
    // Starts a sync when none is in flight.
    std::uint64_t unsynced();
    // fdatasyncs started so far (tests and benchmarks read how far requests were grouped).
    std::uint64_t syncs() const { return syncs_; }

private:
    void start_sync();
    void finished(std::uint64_t seq, int error);
    // A sync failed or could not start: write the snapshot instead (retried every second).
    void recover();
    void recover_later(std::uint64_t usec);
    void worker();
    static int on_done(sd_event_source*, int fd, uint32_t, void* self);
    static int on_post(sd_event_source*, void* self);
    static int on_retry(sd_event_source*, uint64_t, void* self);

    sd_event* event_;
    state::StateStore& store_;
    std::function<void()> snapshot_;
    std::function<void(std::uint64_t)> on_durable_;
    int done_fd_ = -1; // eventfd: the worker's "finished" to the loop
    sd_event_source* done_source_ = nullptr;
    sd_event_source* post_source_ = nullptr;
    sd_event_source* retry_timer_ = nullptr;
    bool in_flight_ = false;
    bool recovering_ = false; // a snapshot attempt is scheduled
    std::uint64_t syncs_ = 0;

    // Shared with the worker, under mutex_.
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    int job_fd_ = -1;              // a dup of the journal's fd to fdatasync, owned by the worker once taken
    std::uint64_t job_seq_ = 0;    // the batches it covers
    std::uint64_t done_seq_ = 0;   // the result of the last job
    int done_error_ = 0;
    std::thread thread_;
};

} // namespace resmgr::server
