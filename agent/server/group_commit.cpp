// Group commit of the allocations' journal (see group_commit.hpp).
#include "server/group_commit.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <spdlog/spdlog.h>

namespace resmgr::server {

GroupCommit::GroupCommit(sd_event* event, state::StateStore& store, std::function<void()> snapshot)
    : event_(event), store_(store), snapshot_(std::move(snapshot)) {
    done_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (done_fd_ < 0) throw std::runtime_error(std::string("group commit: eventfd: ") + std::strerror(errno));
    int r = sd_event_add_io(event_, &done_source_, done_fd_, EPOLLIN, on_done, this);
    // After every dispatch of the loop: changes made outside requests (timers, the sampling
    // pass, completion) are synced too, without a request to start it.
    if (r >= 0) r = sd_event_add_post(event_, &post_source_, on_post, this);
    if (r < 0) {
        if (done_source_) sd_event_source_disable_unref(done_source_);
        ::close(done_fd_);
        throw std::runtime_error(std::string("group commit: sd-event: ") + std::strerror(-r));
    }
    store_.defer_sync(true);
    thread_ = std::thread([this] { worker(); });
}

GroupCommit::~GroupCommit() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
    if (job_fd_ >= 0) ::close(job_fd_);
    // Whatever is still unsynced is synced here, in line: the store's next record is durable
    // on return again (and shutdown writes the snapshot anyway).
    store_.defer_sync(false);
    if (int fd = store_.sync_fd(); fd >= 0 && store_.written_seq() > store_.durable_seq() && ::fdatasync(fd) == 0)
        store_.mark_durable(store_.written_seq());
    for (auto* s : {done_source_, post_source_, retry_timer_})
        if (s) sd_event_source_disable_unref(s);
    ::close(done_fd_);
}

std::uint64_t GroupCommit::unsynced() {
    if (store_.written_seq() <= store_.durable_seq()) return 0;
    if (!in_flight_ && !recovering_) start_sync();
    return store_.written_seq();
}

void GroupCommit::start_sync() {
    const std::uint64_t seq = store_.written_seq();
    const int fd = store_.sync_fd();
    // No journal open (it was lost, say) yet batches unsynced, or no fd to spare: the snapshot,
    // on the next turn of the loop (never inside the request that asked).
    const int copy = fd < 0 ? -1 : ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) {
        spdlog::error("cannot sync {}: {}", store_.journal_path().string(), fd < 0 ? "it is not open" : std::strerror(errno));
        recover_later(0);
        return;
    }
    {
        std::lock_guard lock(mutex_);
        job_fd_ = copy;
        job_seq_ = seq;
    }
    in_flight_ = true;
    ++syncs_;
    wake_.notify_one();
}

void GroupCommit::worker() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return stopping_ || job_fd_ >= 0; });
        if (stopping_) return;
        const int fd = std::exchange(job_fd_, -1);
        const std::uint64_t seq = job_seq_;
        lock.unlock();
        const int error = ::fdatasync(fd) == 0 ? 0 : errno;
        ::close(fd);
        lock.lock();
        done_seq_ = seq;
        done_error_ = error;
        const std::uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(done_fd_, &one, sizeof one);
    }
}

int GroupCommit::on_done(sd_event_source*, int fd, uint32_t, void* userdata) {
    auto* self = static_cast<GroupCommit*>(userdata);
    std::uint64_t count = 0;
    if (::read(fd, &count, sizeof count) < 0) return 0;
    std::uint64_t seq = 0;
    int error = 0;
    {
        std::lock_guard lock(self->mutex_);
        seq = self->done_seq_;
        error = self->done_error_;
    }
    self->finished(seq, error);
    return 0;
}

void GroupCommit::finished(std::uint64_t seq, int error) {
    in_flight_ = false;
    if (error != 0) {
        spdlog::error("cannot fdatasync {}: {}", store_.journal_path().string(), std::strerror(error));
        recover();
        return;
    }
    store_.mark_durable(seq);
    if (on_durable_) on_durable_(store_.durable_seq());
    // Batches written during that sync: the next one covers them all.
    if (store_.written_seq() > store_.durable_seq() && !in_flight_ && !recovering_) start_sync();
}

void GroupCommit::recover() {
    // The batches may not be on disk. The snapshot holds them all (and empties the journal);
    // until one is written, answers stay held.
    recovering_ = false;
    try {
        snapshot_();
    } catch (const std::exception& e) {
        spdlog::critical("{}; answers to changes wait until the state can be made durable (retrying every second)", e.what());
        recover_later(1'000'000);
        return;
    }
    spdlog::warn("the allocations' snapshot holds every change: the journal starts over");
    if (on_durable_) on_durable_(store_.durable_seq());
}

void GroupCommit::recover_later(std::uint64_t usec) {
    recovering_ = true;
    int r = retry_timer_ ? sd_event_source_set_time_relative(retry_timer_, usec)
                         : sd_event_add_time_relative(event_, &retry_timer_, CLOCK_MONOTONIC, usec, 10'000, on_retry, this);
    if (r >= 0) r = sd_event_source_set_enabled(retry_timer_, SD_EVENT_ONESHOT);
    if (r < 0) {
        spdlog::critical("cannot arm the state recovery timer: {}", std::strerror(-r));
        recovering_ = false; // the next change's answer starts another attempt
    }
}

int GroupCommit::on_post(sd_event_source*, void* userdata) {
    static_cast<GroupCommit*>(userdata)->unsynced();
    return 0;
}

int GroupCommit::on_retry(sd_event_source*, uint64_t, void* userdata) {
    static_cast<GroupCommit*>(userdata)->recover();
    return 0;
}

} // namespace resmgr::server
