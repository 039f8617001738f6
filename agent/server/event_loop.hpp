// Binds the lifecycle's LoopHooks to sd-event: one realtime timer for durations, an inotify watch
// on each group's cgroup.events (the kernel signals every populated/frozen change there, so no
// polling), all in one inotify instance, and a pidfd for each supervising resmgr-run.
#pragma once

#include <sys/epoll.h>
#include <systemd/sd-event.h>

#include <cstdint>

#include <functional>
#include <map>
#include <memory>
#include <vector>
#include <string>

#include "lifecycle/completion.hpp"
#include "lifecycle/lifecycle.hpp"

namespace resmgr::server {

// Runs one sd-event handler. sd-event is C, and an exception unwinding through it ends the
// process; so a handler that throws is logged (naming `what`) and the loop goes on. Each change
// to the ledger and its state file is made as one step, so what a failed handler leaves is a
// state resmgrd can serve from.
void run_handler(const char* what, const std::function<void()>& handler) noexcept;

class EventLoop {
public:
    // Durations, group changes and supervisor exits go to `completion`; each sampling tick calls `sample`.
    EventLoop(sd_event* event, lifecycle::Completion& completion, std::function<void()> sample);
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    lifecycle::LoopHooks hooks();
    // Calls sample() now and then every `interval` (monotonic, 1% accuracy: the
    // kernel may batch the wakeup with others, which keeps an idle daemon cheap).
    void start_sampling(Millis interval);
    // The next sampling pass within `delay` (not sooner than half an interval after the last).
    void sample_soon(Millis delay);
    // Calls on_readable() whenever `fd` is readable (the eBPF ring buffer's epoll fd). With a
    // `follow_up`, also once more that long after the last time it was readable: for a source
    // that signals a burst at most once per interval, so its tail is read too. `events`: EPOLLPRI
    // for a PSI trigger, which signals a crossing as priority data.
    void watch_fd(int fd, std::function<void()> on_readable, Millis follow_up = Millis{0}, std::uint32_t events = EPOLLIN);
    // Calls tick() every `interval` (monotonic, 1 % accuracy), first after one interval: light
    // periodic work apart from the sampling pass (the cluster member's figures).
    void every(Millis interval, std::function<void()> tick);

private:
    struct Watch {
        EventLoop* loop;
        std::string id;
        sd_event_source* source = nullptr;
        int fd = -1; // pidfd, for supervisor watches
    };

    void schedule(std::optional<TimePoint> when);
    void watch_group(const std::string& id, const std::string& path, bool may_have_changed);
    void unwatch_group(const std::string& id);
    bool open_group_watches();
    void on_group_watches();
    void watch_supervisor(const std::string& id, pid_t pid);
    static void drop(Watch& w);

    sd_event* event_;
    lifecycle::Completion& completion_;
    std::function<void()> sample_;
    sd_event_source* timer_ = nullptr;
    sd_event_source* sampler_ = nullptr;
    Millis sample_interval_{0};
    std::uint64_t last_pass_usec_ = 0; // CLOCK_MONOTONIC start of the last sampling pass
    struct FdWatch {
        sd_event_source* source = nullptr;
        sd_event_source* follow_up_timer = nullptr;
        std::uint64_t follow_up_usec = 0;
        std::function<void()> on_readable;
    };
    std::vector<std::unique_ptr<FdWatch>> fd_watches_;
    struct Periodic {
        sd_event_source* source = nullptr;
        std::uint64_t interval_usec = 0;
        std::function<void()> tick;
    };
    std::vector<std::unique_ptr<Periodic>> periodic_;
    // One inotify instance and one sd-event source for every group: an sd-event inotify source
    // per group cost ~400 bytes of sd-event's own per allocation (issue 12).
    int group_inotify_ = -1;
    sd_event_source* group_source_ = nullptr;
    std::map<std::string, int> group_watches_; // allocation id -> inotify watch descriptor
    std::map<int, std::string> watched_groups_; // the reverse
    std::map<std::string, Watch> supervisors_;
};

} // namespace resmgr::server
