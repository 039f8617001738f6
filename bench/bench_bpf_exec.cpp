// Exec storm through the eBPF probes: FORKERS processes in a watched child of the cgroup2
// hierarchy spawn (posix_spawn: vfork+exec) and wait for PROGRAM as fast as they can while a
// consumer thread drains the ring buffer. Prints execs/s, events delivered vs dropped and the
// consumer's CPU time (waking on every event, batched, and not at all until the storm ends), the
// ring's capacity, and the exec rate of the same storm with no probes loaded and with probes
// loaded but the group not watched, for the overhead. Conditions alternate in 1 s runs, ROUNDS
// of each. PROGRAM defaults to bench_exit0 (static, no libc: one exit system call), the fastest
// exec there is, so the storm is as dense as the machine can make it; /bin/true is the
// realistic one. Needs root and a cgroup2 mount.
//   build/bench/bench_bpf_exec [ROUNDS=10] [FORKERS=2] [RING_MIB=16] [PROGRAM=bench_exit0]
#include <poll.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/magic.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "bpf/probes.hpp"
#include "bpf/resmgr_events.h"

#include <spdlog/spdlog.h>

using namespace resmgr;

namespace {

// Shared with the forker processes through a memfd they inherit across exec.
struct Shared {
    std::atomic<bool> go{false};
    std::atomic<bool> stop{false};
    std::atomic<unsigned long> execs{0};
};

// The pure cgroup2 root, or the hybrid layout's unified hierarchy.
std::string cgroup2_mount() {
    struct statfs fs{};
    if (::statfs("/sys/fs/cgroup", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) return "/sys/fs/cgroup";
    return "/sys/fs/cgroup/unified";
}

double thread_cpu_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void forker(Shared* shared, const std::string& group, const char* program) {
    std::string me = std::to_string(::getpid());
    FILE* procs = std::fopen((group + "/cgroup.procs").c_str(), "w");
    if (!procs || std::fputs(me.c_str(), procs) < 0 || std::fclose(procs) != 0) ::_exit(1);
    char* const child_argv[] = {const_cast<char*>(program), nullptr};
    char* const child_env[] = {nullptr};
    while (!shared->go.load()) ::usleep(100);
    while (!shared->stop.load(std::memory_order_relaxed)) {
        pid_t pid = 0;
        if (::posix_spawn(&pid, program, nullptr, nullptr, child_argv, child_env) != 0) ::_exit(127);
        int status = 0;
        ::waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) shared->execs.fetch_add(1, std::memory_order_relaxed);
    }
    ::_exit(0);
}

struct StormResult {
    double seconds = 0;
    unsigned long execs = 0;
    double execs_per_second() const { return seconds > 0 ? static_cast<double>(execs) / seconds : 0; }
    void add(const StormResult& r) {
        seconds += r.seconds;
        execs += r.execs;
    }
};

Shared* map_shared(int fd) {
    void* memory = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return memory == MAP_FAILED ? nullptr : static_cast<Shared*>(memory);
}

// The forkers re-execute this program: a fork of the bench itself would copy the page tables
// of its ring-buffer mapping on every fork+exec of the storm, a cost real workloads, which are
// not children of the daemon, do not pay.
StormResult storm(const std::string& group, const std::string& program, int forkers, double seconds) {
    int fd = ::memfd_create("bench-bpf-exec", 0);
    if (fd < 0 || ::ftruncate(fd, sizeof(Shared)) != 0) return {};
    auto* shared = new (map_shared(fd)) Shared;
    std::string fd_arg = std::to_string(fd);
    std::vector<pid_t> pids;
    for (int i = 0; i < forkers; ++i) {
        pid_t pid = ::fork();
        if (pid == 0) {
            ::execl("/proc/self/exe", "bench_bpf_exec", "--forker", group.c_str(), fd_arg.c_str(), program.c_str(), nullptr);
            ::_exit(127);
        }
        pids.push_back(pid);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200)); // let them join the group
    auto start = std::chrono::steady_clock::now();
    shared->go = true;
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    shared->stop = true;
    for (pid_t pid : pids) ::waitpid(pid, nullptr, 0);
    StormResult r{std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), shared->execs.load()};
    ::munmap(shared, sizeof(Shared));
    ::close(fd);
    return r;
}

} // namespace

// What a consumer thread saw while the probes watched a storm.
struct Delivery {
    StormResult storm;
    unsigned long exec_events = 0, exit_events = 0, counted = 0, dropped = 0;
    double consumer_cpu = 0;
    void print(const char* name) const {
        unsigned long events = exec_events + exit_events;
        std::printf("%-34s %8.0f execs/s\n", name, storm.execs_per_second());
        std::printf("  events: %lu delivered (%lu exec + %lu exit, %.0f/s), %lu counted in the kernel, %lu dropped\n",
                    events, exec_events, exit_events, static_cast<double>(events) / storm.seconds, counted, dropped);
        std::printf("  consumer thread CPU: %.3f s over %.1f s (%.2f %% of one core, %.2f us per event)\n", consumer_cpu,
                    storm.seconds, 100 * consumer_cpu / storm.seconds,
                    events ? 1e6 * consumer_cpu / static_cast<double>(events) : 0.0);
    }
};

// One storm with the probes watching the group and a thread draining the ring buffer: on
// every wakeup of ring_fd(), with a wakeup interval also on a timer of that period, and with
// timer_ms < 0 only once the storm is over (a consumer stalled for the whole storm).
void watched_storm(Delivery& d, bpf::Probes& probes, std::uint64_t group_id, const std::string& group, const std::string& program,
                   int forkers, double seconds, int timer_ms) {
    if (probes.watch(group_id) != bpf::Probes::Watch::watched) throw std::runtime_error("the probes cannot watch the storm's group");
    std::atomic<bool> stop{false};
    std::thread consumer([&] {
        double cpu_before = thread_cpu_seconds();
        pollfd pfd{probes.ring_fd(), POLLIN, 0};
        auto count = [&](const bpf::ProcessEvent& e) {
            if (e.kind == bpf::EventKind::exec) ++d.exec_events;
            if (e.kind == bpf::EventKind::exit) ++d.exit_events;
        };
        while (!stop.load()) {
            if (timer_ms < 0) { // a stalled consumer: everything waits in the ring until the end
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
            if (::poll(&pfd, 1, timer_ms > 0 ? timer_ms : 100) > 0 || timer_ms > 0) probes.consume(count);
        }
        probes.consume(count);
        d.consumer_cpu += thread_cpu_seconds() - cpu_before;
    });
    d.storm.add(storm(group, program, forkers, seconds));
    stop = true;
    consumer.join();
    auto counters = probes.counters(group_id).value_or(bpf::Counters{});
    d.counted += counters.execs + counters.exits;
    probes.unwatch(group_id);
}

int main(int argc, char** argv) {
    if (argc == 5 && std::string(argv[1]) == "--forker") {
        if (Shared* shared = map_shared(std::atoi(argv[3]))) forker(shared, argv[2], argv[4]);
        return 1;
    }
    int rounds = std::max(1, argc > 1 ? std::atoi(argv[1]) : 10);
    int forkers = argc > 2 ? std::atoi(argv[2]) : 2;
    std::size_t ring_mib = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 16;
#if defined(__x86_64__)
    const std::string program = argc > 4 ? argv[4] : BENCH_EXIT0;
#else
    const std::string program = argc > 4 ? argv[4] : "/bin/true";
#endif
    if (::access(program.c_str(), X_OK) != 0) {
        std::perror(program.c_str());
        return 1;
    }
    spdlog::set_level(spdlog::level::warn);

    const std::string group = cgroup2_mount() + "/resmgr-bench-exec-" + std::to_string(::getpid());
    if (::mkdir(group.c_str(), 0755) != 0) {
        std::perror(group.c_str());
        return 1;
    }
    auto group_id = bpf::cgroup_id_of(group).value_or(0);
    std::printf("exec storm: %d forkers, posix_spawn+wait of %s, ring buffer %zu MiB; %d rounds of 1 s per\n"
                "condition, interleaved (the host is shared: its load drifts between runs)\n",
                forkers, program.c_str(), ring_mib, rounds);

    StormResult bare, unwatched;
    Delivery each_event, batched, stalled;
    constexpr int batch_ms = 10, stalled_consumer = -1;
    for (int round = 0; round < rounds; ++round) {
        bare.add(storm(group, program, forkers, 1));
        for (int interval_ms : {0, batch_ms, stalled_consumer}) {
            auto loaded = bpf::Probes::load(
                {.ring_buffer_bytes = ring_mib << 20, .wakeup_interval = std::chrono::milliseconds(std::max(interval_ms, 0))});
            if (!loaded.probes) {
                std::printf("probes did not load: %s\n", loaded.error.c_str());
                ::rmdir(group.c_str());
                return 1;
            }
            // The programs run on every exec and context switch of the machine: first their
            // cost when they find nothing to account, then accounting and delivery.
            if (interval_ms == 0) unwatched.add(storm(group, program, forkers, 1));
            auto& d = interval_ms == 0 ? each_event : interval_ms == batch_ms ? batched : stalled;
            watched_storm(d, *loaded.probes, group_id, group, program, forkers, 1, interval_ms);
            d.dropped += loaded.probes->dropped();
        }
    }

    std::printf("%-34s %8.0f execs/s\n", "no probes", bare.execs_per_second());
    std::printf("%-34s %8.0f execs/s\n", "probes, group not watched", unwatched.execs_per_second());
    each_event.print("probes, watched, wake per event");
    batched.print("probes, watched, wake <= 1/10 ms");
    stalled.print("probes, watched, consumer stalled");
    // A ring record is the event rounded up to 8 bytes plus an 8-byte header.
    const std::size_t record = (sizeof(resmgr_event) + 7) / 8 * 8 + 8, capacity = (ring_mib << 20) / record;
    std::printf("ring capacity: %zu events of %zu bytes = %.1f s of a 10,000 execs/s storm (exec + exit each) with no consumer\n",
                capacity, record, static_cast<double>(capacity) / 20000);
    std::printf("exec throughput vs no probes: not watched %.3f, watched %.3f (wake per event), %.3f (batched)\n",
                unwatched.execs_per_second() / bare.execs_per_second(),
                each_event.storm.execs_per_second() / bare.execs_per_second(),
                batched.storm.execs_per_second() / bare.execs_per_second());

    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ::rmdir(group.c_str());
    return 0;
}
