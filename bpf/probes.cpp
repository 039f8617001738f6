#include "bpf/probes.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <numeric>

#include <spdlog/spdlog.h>

#include "bpf/resmgr_events.h"

namespace resmgr::bpf {

static_assert(RESMGR_RUNQ_BUCKETS == RunqLatency::bucket_count);

std::optional<std::uint64_t> cgroup_id_of(const std::string& cgroup_dir) {
    struct stat st{};
    if (::stat(cgroup_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return std::nullopt;
    return static_cast<std::uint64_t>(st.st_ino);
}

const char* to_string(EventKind kind) {
    switch (kind) {
    case EventKind::exec: return "exec";
    case EventKind::fork: return "fork";
    case EventKind::exit: return "exit";
    case EventKind::oom_kill: return "oom_kill";
    }
    return "unknown";
}

double RunqLatency::percentile_us(double p) const {
    // The buckets, not `count`: the kernel updates them one by one, so only they agree.
    std::uint64_t total = std::accumulate(buckets.begin(), buckets.end(), std::uint64_t{0});
    if (total == 0) return 0;
    double rank = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(total);
    double below = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
        double in_bucket = static_cast<double>(buckets[i]);
        double low = i == 0 ? 0 : std::ldexp(1.0, static_cast<int>(i));
        if (i + 1 == bucket_count) return low; // open-ended: its lower bound is all we know
        if (in_bucket > 0 && below + in_bucket >= rank) {
            double high = std::ldexp(1.0, static_cast<int>(i) + 1);
            return low + (rank - below) / in_bucket * (high - low);
        }
        below += in_bucket;
    }
    return 0;
}

} // namespace resmgr::bpf

#if RESMGR_HAVE_BPF

#include <unistd.h>

#include <bpf/libbpf.h>

#include <cstdarg>
#include <mutex>
#include <vector>

#include "bpf/libbpf_log.hpp"
#include "resmgr.skel.h"

namespace resmgr::bpf {

namespace {

constexpr const char* kernel_btf = "/sys/kernel/btf/vmlinux";

ProcessEvent decode(const resmgr_event& raw) {
    ProcessEvent e;
    switch (raw.kind) {
    case RESMGR_EVENT_FORK: e.kind = EventKind::fork; break;
    case RESMGR_EVENT_EXIT: e.kind = EventKind::exit; break;
    case RESMGR_EVENT_OOM_KILL: e.kind = EventKind::oom_kill; break;
    default: e.kind = EventKind::exec; break;
    }
    e.pid = raw.pid;
    e.tgid = raw.tgid;
    e.ppid = raw.ppid;
    e.cgroup_id = raw.cgroup_id;
    e.timestamp_ns = raw.timestamp_ns;
    e.comm.assign(raw.comm, ::strnlen(raw.comm, sizeof raw.comm));
    if (e.kind == EventKind::exit) {
        // wait(2) status layout: the signal in the low 7 bits, the exit code above.
        e.exit_signal = static_cast<int>(raw.exit_status & 0x7f);
        e.exit_code = e.exit_signal ? 0 : static_cast<int>((raw.exit_status >> 8) & 0xff);
    }
    return e;
}

} // namespace

struct Probes::State {
    resmgr_bpf* skeleton = nullptr;
    ring_buffer* ring = nullptr;
    const EventHandler* handler = nullptr; // set for the duration of consume()

    ~State() {
        ring_buffer__free(ring);
        resmgr_bpf__destroy(skeleton);
    }

    static int on_sample(void* ctx, void* data, std::size_t size) {
        auto* self = static_cast<State*>(ctx);
        resmgr_event raw{};
        std::memcpy(&raw, data, std::min(size, sizeof raw));
        if (self->handler && *self->handler) (*self->handler)(decode(raw));
        return 0;
    }
};

Probes::Probes(std::unique_ptr<State> state) : state_(std::move(state)) {}
Probes::~Probes() = default;

Probes::LoadResult Probes::load(const LoadOptions& options) {
    if (::access(kernel_btf, R_OK) != 0) return {nullptr, std::string("no kernel BTF (") + kernel_btf + " is missing)"};

    LibbpfLogCapture capture;

    auto state = std::make_unique<State>();
    state->skeleton = resmgr_bpf__open();
    if (!state->skeleton) return {nullptr, "opening the BPF object failed: " + describe_errno(errno) + capture.excerpt()};
    auto* skel = state->skeleton;
    skel->rodata->emit_fork_events = options.fork_events;
    skel->rodata->wakeup_interval_ns =
        static_cast<__u64>(std::chrono::duration_cast<std::chrono::nanoseconds>(options.wakeup_interval).count());
    if (int err = bpf_map__set_max_entries(skel->maps.events, static_cast<__u32>(options.ring_buffer_bytes)))
        return {nullptr, "ring buffer size " + std::to_string(options.ring_buffer_bytes) + ": " + describe_errno(err)};
    if (int err = bpf_map__set_max_entries(skel->maps.watched, static_cast<__u32>(options.max_watched)))
        return {nullptr, "max_watched " + std::to_string(options.max_watched) + ": " + describe_errno(err)};

    if (int err = resmgr_bpf__load(skel))
        return {nullptr, "loading the BPF programs failed: " + describe_errno(err) + capture.excerpt()};
    if (int err = resmgr_bpf__attach(skel))
        return {nullptr, "attaching the BPF programs failed: " + describe_errno(err) + capture.excerpt()};

    state->ring = ring_buffer__new(bpf_map__fd(skel->maps.events), &State::on_sample, state.get(), nullptr);
    if (!state->ring) return {nullptr, "opening the ring buffer failed: " + describe_errno(errno) + capture.excerpt()};

    spdlog::info("bpf: probes loaded (ring buffer {} KiB, fork events {}, wakeup interval {} ms)",
                 options.ring_buffer_bytes >> 10, options.fork_events ? "on" : "off", options.wakeup_interval.count());
    return {std::unique_ptr<Probes>(new Probes(std::move(state))), {}};
}

Probes::Watch Probes::watch(std::uint64_t cgroup_id) {
    resmgr_cgroup_stats zero{};
    if (int err = bpf_map__update_elem(state_->skeleton->maps.watched, &cgroup_id, sizeof cgroup_id, &zero, sizeof zero,
                                       BPF_ANY)) {
        if (err == -E2BIG) return Watch::map_full; // a full hash map refuses a new key with E2BIG
        if (err == -ENOMEM) return Watch::no_memory;
        spdlog::warn("bpf: cannot watch cgroup {}: {}", cgroup_id, describe_errno(err));
        return Watch::refused;
    }
    return Watch::watched;
}

bool Probes::unwatch(std::uint64_t cgroup_id) {
    int err = bpf_map__delete_elem(state_->skeleton->maps.watched, &cgroup_id, sizeof cgroup_id, 0);
    if (err && err != -ENOENT) {
        spdlog::warn("bpf: cannot unwatch cgroup {}: {}", cgroup_id, describe_errno(err));
        return false;
    }
    return true;
}

int Probes::ring_fd() const { return ring_buffer__epoll_fd(state_->ring); }

int Probes::consume(const EventHandler& handler) {
    state_->handler = &handler;
    int n = ring_buffer__consume(state_->ring);
    state_->handler = nullptr;
    if (n < 0) {
        spdlog::warn("bpf: reading the ring buffer failed: {}", describe_errno(n));
        return 0;
    }
    return n;
}

namespace {
std::optional<resmgr_cgroup_stats> lookup_stats(const resmgr_bpf* skel, std::uint64_t cgroup_id) {
    resmgr_cgroup_stats stats{};
    if (bpf_map__lookup_elem(skel->maps.watched, &cgroup_id, sizeof cgroup_id, &stats, sizeof stats, 0) != 0)
        return std::nullopt;
    return stats;
}
} // namespace

std::optional<Counters> Probes::counters(std::uint64_t cgroup_id) const {
    auto stats = lookup_stats(state_->skeleton, cgroup_id);
    if (!stats) return std::nullopt;
    return Counters{stats->execs, stats->forks, stats->exits, stats->oom_kills};
}

std::optional<RunqLatency> Probes::runq_latency(std::uint64_t cgroup_id) const {
    auto stats = lookup_stats(state_->skeleton, cgroup_id);
    if (!stats) return std::nullopt;
    RunqLatency latency;
    std::copy(std::begin(stats->runq_buckets), std::end(stats->runq_buckets), latency.buckets.begin());
    latency.count = stats->runq_count;
    latency.total_us = stats->runq_total_us;
    return latency;
}

std::uint64_t Probes::dropped() const {
    int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) return 0;
    std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(cpus));
    std::uint32_t zero = 0;
    if (bpf_map__lookup_elem(state_->skeleton->maps.dropped, &zero, sizeof zero, per_cpu.data(),
                             per_cpu.size() * sizeof(std::uint64_t), 0) != 0)
        return 0;
    return std::accumulate(per_cpu.begin(), per_cpu.end(), std::uint64_t{0});
}

} // namespace resmgr::bpf

#else // built without BPF: load() says so, and no Probes object ever exists.

namespace resmgr::bpf {

struct Probes::State {};

Probes::Probes(std::unique_ptr<State> state) : state_(std::move(state)) {}
Probes::~Probes() = default;

Probes::LoadResult Probes::load(const LoadOptions&) { return {nullptr, RESMGR_NO_BPF_REASON}; }
bool Probes::watch(std::uint64_t) { return false; }
bool Probes::unwatch(std::uint64_t) { return false; }
int Probes::ring_fd() const { return -1; }
int Probes::consume(const EventHandler&) { return 0; }
std::optional<Counters> Probes::counters(std::uint64_t) const { return std::nullopt; }
std::optional<RunqLatency> Probes::runq_latency(std::uint64_t) const { return std::nullopt; }
std::uint64_t Probes::dropped() const { return 0; }

} // namespace resmgr::bpf

#endif
