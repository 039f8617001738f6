#include "conflicts/guard_reports.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "conflicts/file_guard_detail.hpp"

namespace resmgr::conflicts {
namespace {

// How long the decision thread's reports may wait before the loop is told: short next to what a
// person reading the journal notices, long next to one open (~60 us) in a retry loop.
constexpr auto kReportBatch = std::chrono::milliseconds(10);

} // namespace

using detail::SteadyClock;

std::string_view to_string(GuardReport::Kind kind) {
    switch (kind) {
    case GuardReport::Kind::denied: return "denied";
    case GuardReport::Kind::queued: return "queued";
    case GuardReport::Kind::granted: return "granted";
    case GuardReport::Kind::timed_out: return "timed_out";
    case GuardReport::Kind::advisory: return "advisory";
    case GuardReport::Kind::stalled: return "stalled";
    case GuardReport::Kind::replaced: return "replaced";
    case GuardReport::Kind::removed: return "removed";
    case GuardReport::Kind::modified: return "modified";
    case GuardReport::Kind::rename_refused: return "rename_refused";
    case GuardReport::Kind::unlink_refused: return "unlink_refused";
    case GuardReport::Kind::truncate_refused: return "truncate_refused";
    case GuardReport::Kind::overflow: break;
    }
    return "overflow";
}

ReportQueue::ReportQueue() : event_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (event_fd_ < 0) throw GuardError(detail::errno_text("eventfd for the guard's reports"));
}

ReportQueue::~ReportQueue() { ::close(event_fd_); }

GuardReport* ReportQueue::waiting_like(const GuardReport& r) {
    auto same = std::find_if(reports_.begin(), reports_.end(), [&](const GuardReport& q) {
        return q.kind == r.kind && q.path == r.path && q.allocation_id == r.allocation_id && q.opener.pid == r.opener.pid &&
               q.opener.cgroup == r.opener.cgroup;
    });
    return same == reports_.end() ? nullptr : &*same;
}

bool ReportQueue::count_if_waiting(const GuardReport& r) {
    std::lock_guard lock(mutex_);
    GuardReport* same = waiting_like(r);
    if (same) same->count += r.count; // the loop has been or will be told
    return same != nullptr;
}

void ReportQueue::push(GuardReport r, bool batched) {
    r.at = std::chrono::system_clock::now();
    std::lock_guard lock(mutex_);
    if (GuardReport* same = waiting_like(r)) {
        same->count += r.count;
        return;
    }
    reports_.push_back(std::move(r));
    const auto now = SteadyClock::now();
    if (batched && now - last_signal_ < kReportBatch) {
        signal_due_ = true; // the decision thread (the caller) flushes it from its loop
        return;
    }
    last_signal_ = now;
    signal_due_ = false;
    detail::signal_eventfd(event_fd_);
}

std::optional<SteadyClock::time_point> ReportQueue::flush() {
    std::lock_guard lock(mutex_);
    if (!signal_due_) return std::nullopt;
    const auto due = last_signal_ + kReportBatch;
    if (SteadyClock::now() < due) return due;
    last_signal_ = SteadyClock::now();
    signal_due_ = false;
    detail::signal_eventfd(event_fd_);
    return std::nullopt;
}

std::vector<GuardReport> ReportQueue::take() {
    detail::drain_eventfd(event_fd_);
    std::lock_guard lock(mutex_);
    return std::exchange(reports_, {});
}

} // namespace resmgr::conflicts
