// sd-event bindings for the lifecycle (see event_loop.hpp).
#include "server/event_loop.hpp"

#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace resmgr::server {

void run_handler(const char* what, const std::function<void()>& handler) noexcept {
    try {
        handler();
    } catch (const std::exception& e) {
        spdlog::error("{}: {} (the event loop goes on)", what, e.what());
    } catch (...) {
        spdlog::error("{}: unknown exception (the event loop goes on)", what);
    }
}

EventLoop::EventLoop(sd_event* event, lifecycle::Completion& completion, std::function<void()> sample)
    : event_(event), completion_(completion), sample_(std::move(sample)) {}

EventLoop::~EventLoop() {
    if (timer_) sd_event_source_disable_unref(timer_);
    if (sampler_) sd_event_source_disable_unref(sampler_);
    for (auto& w : fd_watches_) {
        sd_event_source_disable_unref(w->source);
        if (w->follow_up_timer) sd_event_source_disable_unref(w->follow_up_timer);
    }
    for (auto& p : periodic_) sd_event_source_disable_unref(p->source);
    for (auto& [_, w] : supervisors_) drop(w);
    if (group_source_) sd_event_source_disable_unref(group_source_);
    if (group_inotify_ >= 0) ::close(group_inotify_);
}

void EventLoop::drop(Watch& w) {
    if (w.source) sd_event_source_disable_unref(w.source);
    if (w.fd >= 0) ::close(w.fd);
    w.source = nullptr;
    w.fd = -1;
}

lifecycle::LoopHooks EventLoop::hooks() {
    return {[this](std::optional<TimePoint> when) { schedule(when); },
            [this](const std::string& id, const std::string& path, bool may_have_changed) { watch_group(id, path, may_have_changed); },
            [this](const std::string& id) { unwatch_group(id); },
            [this](const std::string& id, pid_t pid) { watch_supervisor(id, pid); },
            [this](Millis delay) { sample_soon(delay); },
            {}}; // may_start_queued: the cluster's, set where there is one
}

void EventLoop::schedule(std::optional<TimePoint> when) {
    if (!when) {
        if (timer_) sd_event_source_set_enabled(timer_, SD_EVENT_OFF);
        return;
    }
    // Deadlines are wall-clock instants (expires_at is stored as a timestamp): CLOCK_REALTIME.
    auto usec = static_cast<std::uint64_t>(std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::microseconds>(when->time_since_epoch()).count()));
    if (!timer_) {
        int r = sd_event_add_time(event_, &timer_, CLOCK_REALTIME, usec, 10'000,
                                  [](sd_event_source*, uint64_t, void* self) {
                                      run_handler("duration timer", [self] { static_cast<EventLoop*>(self)->completion_.on_timer(); });
                                      return 0;
                                  },
                                  this);
        if (r < 0) spdlog::error("cannot arm the duration timer: {}", std::strerror(-r));
        return;
    }
    sd_event_source_set_time(timer_, usec);
    sd_event_source_set_enabled(timer_, SD_EVENT_ONESHOT);
}

void EventLoop::start_sampling(Millis interval) {
    sample_interval_ = interval;
    auto usec = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(interval).count());
    auto on_tick = [](sd_event_source* source, uint64_t, void* self) {
        auto* loop = static_cast<EventLoop*>(self);
        sd_event_now(loop->event_, CLOCK_MONOTONIC, &loop->last_pass_usec_);
        run_handler("sampling pass", [loop] { loop->sample_(); });
        std::uint64_t now = 0;
        sd_event_now(loop->event_, CLOCK_MONOTONIC, &now);
        auto next = std::chrono::duration_cast<std::chrono::microseconds>(loop->sample_interval_).count();
        sd_event_source_set_time(source, now + static_cast<std::uint64_t>(next));
        return 0;
    };
    // First pass at once, so `monitor` has figures right after start.
    int r = sd_event_add_time_relative(event_, &sampler_, CLOCK_MONOTONIC, 0, usec / 100, on_tick, this);
    if (r < 0) {
        spdlog::error("cannot arm the sampling timer: {}", std::strerror(-r));
        return;
    }
    sd_event_source_set_enabled(sampler_, SD_EVENT_ON);
}

void EventLoop::every(Millis interval, std::function<void()> tick) {
    auto p = std::make_unique<Periodic>();
    p->interval_usec = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(interval).count());
    p->tick = std::move(tick);
    auto on_tick = [](sd_event_source* source, uint64_t, void* data) {
        auto* periodic = static_cast<Periodic*>(data);
        run_handler("periodic tick", periodic->tick);
        // From now: a tick that took long is not followed by others back to back.
        std::uint64_t now = 0;
        sd_event_now(sd_event_source_get_event(source), CLOCK_MONOTONIC, &now);
        sd_event_source_set_time(source, now + periodic->interval_usec);
        return 0;
    };
    int r = sd_event_add_time_relative(event_, &p->source, CLOCK_MONOTONIC, p->interval_usec, p->interval_usec / 100, on_tick, p.get());
    if (r < 0) {
        spdlog::error("cannot arm a periodic timer: {}", std::strerror(-r));
        return;
    }
    sd_event_source_set_enabled(p->source, SD_EVENT_ON);
    periodic_.push_back(std::move(p));
}

void EventLoop::sample_soon(Millis delay) {
    if (!sampler_) return;
    std::uint64_t now = 0, due = 0;
    if (sd_event_now(event_, CLOCK_MONOTONIC, &now) < 0 || sd_event_source_get_time(sampler_, &due) < 0) return;
    auto usec = [](Millis m) { return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(m).count()); };
    // Never sooner than half an interval after the last pass: a burst of starts costs at most
    // twice the passes (a pass over 10,000 groups takes ~0.4 s of CPU).
    const std::uint64_t soon = std::max(now + usec(delay), last_pass_usec_ + usec(sample_interval_) / 2);
    if (soon < due) sd_event_source_set_time(sampler_, soon);
}

void EventLoop::watch_fd(int fd, std::function<void()> on_readable, Millis follow_up, std::uint32_t events) {
    auto w = std::make_unique<FdWatch>();
    w->on_readable = std::move(on_readable);
    w->follow_up_usec = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(follow_up).count());
    auto on_timer = [](sd_event_source*, uint64_t, void* data) {
        run_handler("fd follow-up", [data] { static_cast<FdWatch*>(data)->on_readable(); });
        return 0;
    };
    if (w->follow_up_usec > 0) {
        // Armed (and pushed back) on every readable; fires once, then sleeps: an idle daemon pays nothing.
        int r = sd_event_add_time_relative(event_, &w->follow_up_timer, CLOCK_MONOTONIC, w->follow_up_usec, 1000, on_timer, w.get());
        if (r < 0) {
            spdlog::error("cannot arm the follow-up timer for fd {}: {}", fd, std::strerror(-r));
            return;
        }
        sd_event_source_set_enabled(w->follow_up_timer, SD_EVENT_OFF);
    }
    auto on_io = [](sd_event_source*, int, uint32_t, void* data) {
        auto* watch = static_cast<FdWatch*>(data);
        run_handler("fd reader", [watch] { watch->on_readable(); });
        if (watch->follow_up_timer) {
            sd_event_source_set_time_relative(watch->follow_up_timer, watch->follow_up_usec);
            sd_event_source_set_enabled(watch->follow_up_timer, SD_EVENT_ONESHOT);
        }
        return 0;
    };
    if (int r = sd_event_add_io(event_, &w->source, fd, events, on_io, w.get()); r < 0) {
        spdlog::error("cannot watch fd {}: {}", fd, std::strerror(-r));
        if (w->follow_up_timer) sd_event_source_disable_unref(w->follow_up_timer);
        return;
    }
    fd_watches_.push_back(std::move(w));
}

bool EventLoop::open_group_watches() {
    if (group_source_) return true;
    group_inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (group_inotify_ < 0) {
        spdlog::warn("cannot watch groups: inotify_init1: {}; completion is then only seen through resmgr-run", std::strerror(errno));
        return false;
    }
    auto on_io = [](sd_event_source*, int, uint32_t, void* self) {
        static_cast<EventLoop*>(self)->on_group_watches();
        return 0;
    };
    if (int r = sd_event_add_io(event_, &group_source_, group_inotify_, EPOLLIN, on_io, this); r < 0) {
        spdlog::warn("cannot watch groups: sd_event_add_io: {}", std::strerror(-r));
        ::close(group_inotify_);
        group_inotify_ = -1;
        return false;
    }
    return true;
}

void EventLoop::on_group_watches() {
    alignas(inotify_event) char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(group_inotify_, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return; // EAGAIN: all read
        for (ssize_t at = 0; at < n;) {
            inotify_event event;
            std::memcpy(&event, buffer + at, sizeof event);
            at += static_cast<ssize_t>(sizeof event + event.len);
            std::vector<std::string> ids; // copies: a handler may end the allocation and drop its watch
            if (event.mask & IN_Q_OVERFLOW) { // events were lost: every group is looked at again
                for (const auto& [id, _] : group_watches_) ids.push_back(id);
            } else if (auto it = watched_groups_.find(event.wd); it != watched_groups_.end()) {
                if (event.mask & IN_IGNORED) { // the group was removed: the kernel dropped the watch
                    group_watches_.erase(it->second);
                    watched_groups_.erase(it);
                    continue;
                }
                ids.push_back(it->second);
            }
            for (const auto& id : ids) run_handler("cgroup.events watch", [this, &id] { completion_.on_group_event(id); });
        }
    }
}

void EventLoop::watch_group(const std::string& id, const std::string& path, bool may_have_changed) {
    unwatch_group(id);
    if (!open_group_watches()) return;
    const int wd = ::inotify_add_watch(group_inotify_, path.c_str(), IN_MODIFY);
    if (wd < 0) {
        spdlog::warn("{}: cannot watch {}: {}; completion is then only seen through resmgr-run", id, path, std::strerror(errno));
        return;
    }
    group_watches_[id] = wd;
    watched_groups_[wd] = id;
    // The group may have changed before the watch existed.
    if (may_have_changed) completion_.on_group_event(id);
}

void EventLoop::unwatch_group(const std::string& id) {
    auto it = group_watches_.find(id);
    if (it == group_watches_.end()) return;
    ::inotify_rm_watch(group_inotify_, it->second);
    watched_groups_.erase(it->second);
    group_watches_.erase(it);
    if (auto s = supervisors_.find(id); s != supervisors_.end()) {
        drop(s->second);
        supervisors_.erase(s);
    }
}

void EventLoop::watch_supervisor(const std::string& id, pid_t pid) {
    // A pidfd becomes readable when the process exits; no SIGCHLD, no polling, no pid reuse race.
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0 && errno == ESRCH) {
        completion_.on_supervisor_exit(id); // already gone (e.g. while resmgrd was down)
        return;
    }
    if (fd < 0) {
        // Out of fds, say: the wrapper may well be alive, so its allocation stays; the group
        // watch still sees the command end, and the wrapper's own release still comes.
        spdlog::error("{}: cannot watch its resmgr-run (pid {}): {}", id, pid, std::strerror(errno));
        return;
    }
    Watch& w = supervisors_[id];
    drop(w);
    w.loop = this;
    w.id = id;
    w.fd = fd;
    int r = sd_event_add_io(event_, &w.source, fd, EPOLLIN,
                            [](sd_event_source*, int, uint32_t, void* userdata) {
                                auto* watch = static_cast<Watch*>(userdata);
                                std::string id = watch->id;
                                EventLoop* loop = watch->loop;
                                drop(*watch);
                                loop->supervisors_.erase(id);
                                run_handler("supervisor exit", [loop, &id] { loop->completion_.on_supervisor_exit(id); });
                                return 0;
                            },
                            &w);
    if (r < 0) {
        spdlog::warn("{}: cannot watch supervisor pid {}: {}", id, pid, std::strerror(-r));
        drop(w);
        supervisors_.erase(id);
    }
}

} // namespace resmgr::server
