// The loaded eBPF probes (resmgr.bpf.c): which cgroups they watch, the ring buffer of process
// events, per-cgroup counters and run-queue latency histograms. Probes::load() never throws:
// without BPF it says why, and the daemon runs on /proc sampling alone.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace resmgr::bpf {

// A cgroup's id as the probes see it: the inode number of its cgroup2 directory.
std::optional<std::uint64_t> cgroup_id_of(const std::string& cgroup_dir);

enum class EventKind { exec, fork, exit, oom_kill };
const char* to_string(EventKind kind);

struct ProcessEvent {
    EventKind kind = EventKind::exec;
    std::uint32_t pid = 0;  // thread id; the child's for fork, the victim's for oom_kill
    std::uint32_t tgid = 0;
    std::uint32_t ppid = 0; // the real parent's tgid
    std::uint64_t cgroup_id = 0;
    std::uint64_t timestamp_ns = 0; // CLOCK_MONOTONIC
    std::string comm;               // the program's basename, at most 15 characters
    int exit_code = 0;              // exit: the code passed to exit(), 0 when killed
    int exit_signal = 0;            // exit: the signal that ended the process, or 0
};

struct Counters {
    std::uint64_t execs = 0;
    std::uint64_t forks = 0; // new processes; threads are not counted
    std::uint64_t exits = 0; // processes, counted when their last thread exits
    std::uint64_t oom_kills = 0;
};

// Time from becoming runnable (woken, or preempted while runnable) to running again.
struct RunqLatency {
    static constexpr std::size_t bucket_count = 24;
    // buckets[i] counts waits in [2^i, 2^(i+1)) µs; buckets[0] is [0, 2) µs, the last is open-ended.
    std::array<std::uint64_t, bucket_count> buckets{};
    std::uint64_t count = 0;
    std::uint64_t total_us = 0;
    // Estimated from the buckets by linear interpolation inside the bucket holding the rank.
    double percentile_us(double p) const;
    double p50_us() const { return percentile_us(50); }
    double p99_us() const { return percentile_us(99); }
};

struct LoadOptions {
    // Power of two. 2 MiB holds 32,768 events (64 bytes each with the header): 1.6 s of a
    // 10,000 execs/s storm in allocations (an exec and an exit event each) while the consumer
    // stalls; what does not fit is counted by dropped(). The ring is mapped twice (so a record
    // can be read across its end) and so counts twice in resmgrd's RSS (/proc/PID/smaps: 4 MiB
    // were 8.2 MiB of an idle resmgrd's 19.5). `bench_bpf_exec 5 2 2` (BENCHMARKS.md): 0 dropped
    // at 40,000 events/s with resmgrd's batched reader; a reader stalled for a whole 1 s storm of
    // 20,000 execs/s (twice the target) lost 19 %. The loop's longest stall measured is a
    // sampling pass at 10,000 groups, ~165 ms.
    std::size_t ring_buffer_bytes = 2u << 20;
    bool fork_events = false; // forks are always counted; events only on request
    // Zero: every event wakes ring_fd() once the reader has caught up (lowest latency, most
    // wakeups). Otherwise an event after a quiet interval still wakes it at once, but a burst
    // wakes it at most once per interval, and the reader must also call consume() on a timer
    // of this period to collect the tail of a burst.
    std::chrono::milliseconds wakeup_interval{0};
    // Cgroups watched at most: every group and leaf of the live allocations (10,000 allocations
    // are ~20,000). Entries are allocated as they are used (the map is not preallocated).
    std::size_t max_watched = 65536;
};

class Probes {
public:
    struct LoadResult {
        std::unique_ptr<Probes> probes; // null when loading failed
        std::string error;              // why, e.g. "no kernel BTF", "permission denied", verifier log excerpt
    };
    // Opens, loads and attaches every program. Never throws.
    static LoadResult load(const LoadOptions& options = {});

    ~Probes();
    Probes(const Probes&) = delete;
    Probes& operator=(const Probes&) = delete;

    // Start or stop accounting and reporting a cgroup; watching resets its counters.
    // map_full: max_watched cgroups are watched already; no_memory: the kernel could not
    // allocate the entry (the map is not preallocated). Neither is logged: the caller says it
    // once and tries no more until room comes. refused: another refusal, logged with its reason.
    enum class Watch { watched, map_full, no_memory, refused };
    Watch watch(std::uint64_t cgroup_id);
    bool unwatch(std::uint64_t cgroup_id);

    // Readable when events are waiting (an epoll fd: add it to the daemon's event loop).
    int ring_fd() const;
    // Decodes and hands over every waiting event without blocking; returns how many.
    using EventHandler = std::function<void(const ProcessEvent&)>;
    int consume(const EventHandler& handler);

    // nullopt when the cgroup is not watched.
    std::optional<Counters> counters(std::uint64_t cgroup_id) const;
    std::optional<RunqLatency> runq_latency(std::uint64_t cgroup_id) const;
    // Events lost since load because the ring buffer was full.
    std::uint64_t dropped() const;

private:
    struct State;
    explicit Probes(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

} // namespace resmgr::bpf
