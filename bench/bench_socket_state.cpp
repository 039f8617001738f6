// Durable state over the socket (issue 12), one or more resmgrd binaries side by side in one
// run: for each binary a fresh daemon (cgroupfs backend under the cgroup2 mount, file guard
// off, its own state directory), then
//   - allocate round trip p50/p99 at LIVE live allocations (one client; each allocate is
//     followed by an untimed release),
//   - durable changes per second from 1, 4 and 16 concurrent clients (allocate + release pairs
//     for SECONDS each; every answer means the change is on disk), with resmgrd's CPU time per
//     change (all its threads, and its event loop's alone: the loop is one thread, so its CPU
//     a change bounds the rate; a steadier figure than the rate on a shared host),
//   - resmgrd's RSS (VmRSS) at each live count, and at the most live after ten sampling passes
//     with its high-water mark (VmHWM).
// Needs root and a cgroup2 mount.
//   build/bench/bench_socket_state SECONDS LIVE,LIVE,... RESMGRD [RESMGRD...]
// or, for a comparison on a host whose speed wanders (this one's does, by 20 % from minute to
// minute), only the 16-client rate at 0 live, ROUNDS times, the binaries' order alternating
// (a fresh daemon each time, 1 s of warm-up), and each binary's medians at the end:
//   build/bench/bench_socket_state SECONDS rate:ROUNDS RESMGRD [RESMGRD...]
// e.g. bench_socket_state 5 0,100,1000,10000 build-before/agent/resmgrd build-release/agent/resmgrd
#include <fcntl.h>
#include <signal.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/magic.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cgroup2_mount.hpp"
#include "resmgr/client.hpp"

using namespace resmgr;
using json = nlohmann::json;
using Ms = std::chrono::duration<double, std::milli>;

namespace {

// A field of /proc/PID/status in KiB: VmRSS (now) or VmHWM (the highest RSS so far).
long status_kib(pid_t pid, const std::string& field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
    return -1;
}

double mib(long kib) { return static_cast<double>(kib) / 1024.0; }

struct Daemon {
    pid_t pid = -1;
    std::string dir, socket, root;

    Daemon(const std::string& binary, const std::string& mount) {
        char tmpl[] = "/var/tmp/resmgr-bench-socket-XXXXXX";
        dir = ::mkdtemp(tmpl);
        socket = dir + "/resmgr.sock";
        root = mount + "/resmgr-bench-socket-" + std::to_string(::getpid());
        std::ofstream(dir + "/policy.json")
            << R"({"resource_policies":{"allocation_limits":{"max_cpu_per_workflow":4096,"max_memory_per_workflow":1048576},)"
               R"("limits":{"allocations_per_user":1000000,"connections_per_user":64},)"
               // A pass each second, so the sampler's state for every group is in the RSS figures
               // (the default, 30 s, left most of a run without a pass over the live groups).
               R"("monitoring_intervals":{"resource_check":"1s"}}})";
        pid = ::fork();
        if (pid == 0) {
            int null = ::open("/dev/null", O_WRONLY);
            ::dup2(null, 1);
            ::dup2(null, 2);
            ::execl(binary.c_str(), binary.c_str(), "--config", (dir + "/policy.json").c_str(), "--state-dir", (dir + "/state").c_str(),
                    "--socket", socket.c_str(), "--cgroup-root", root.c_str(), "--backend", "cgroupfs", "--no-file-guard", "--log-level",
                    "warn", static_cast<char*>(nullptr));
            ::_exit(127);
        }
        for (int i = 0; i < 200; ++i) {
            try {
                Client c(socket);
                return;
            } catch (const ClientError&) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
        }
        throw std::runtime_error(binary + " did not start");
    }
    ~Daemon() {
        ::kill(pid, SIGTERM);
        ::waitpid(pid, nullptr, 0);
        std::error_code ec;
        if (std::filesystem::exists(root, ec))
            for (auto& e : std::filesystem::directory_iterator(root, ec)) ::rmdir(e.path().c_str());
        ::rmdir(root.c_str());
        std::filesystem::remove_all(dir, ec);
    }
};

json allocate_request(const std::string& workflow) {
    return {{"workflow_id", workflow}, {"resources", {{"cpu_cores", 0.0001}, {"memory_gb", "1M"}, {"pids", 16}}}};
}

std::string allocate(Client& c, const std::string& workflow) {
    json r = c.call({"allocate", "", allocate_request(workflow)});
    if (r["status"] != "success") throw std::runtime_error("allocate: " + r.dump());
    return r["result"]["allocation_id"];
}

void release(Client& c, const std::string& id) {
    json r = c.call({"release", "", {{"allocation_id", id}}});
    if (r["status"] != "success") throw std::runtime_error("release: " + r.dump());
}

// Brings the live count to `target` with 16 clients (untimed).
void fill(const Daemon& d, int have, int target) {
    std::vector<std::thread> ts;
    const int per = (target - have + 15) / 16;
    for (int i = 0; i < 16; ++i)
        ts.emplace_back([&, i] {
            Client c(d.socket);
            for (int n = 0; n < per && have + i * per + n < target; ++n) allocate(c, "wf-live-" + std::to_string(i));
        });
    for (auto& t : ts) t.join();
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// CPU time used so far (user + system, in seconds) from a /proc stat file: the whole process's,
// or one thread's (task/TID/stat).
double cpu_seconds(const std::string& stat_path) {
    std::ifstream in(stat_path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')'); // the command name may hold spaces and parentheses
    if (close == std::string::npos) return 0;
    std::istringstream fields(text.substr(close + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) { // fields 14 and 15 of proc(5)
        if (i == 14) utime = std::atol(field.c_str());
        if (i == 15) stime = std::atol(field.c_str());
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct Rate {
    double per_second = 0;
    double cpu_us = 0, loop_cpu_us = 0; // resmgrd's CPU per change: all its threads, and its event loop's (the main thread)
};

Rate changes_per_second(const Daemon& d, int clients, double seconds) {
    const std::string proc = "/proc/" + std::to_string(d.pid), process_stat = proc + "/stat", loop_stat = proc + "/task/" + std::to_string(d.pid) + "/stat";
    const double cpu_before = cpu_seconds(process_stat), loop_before = cpu_seconds(loop_stat);
    std::atomic<long> changes{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> ts;
    for (int i = 0; i < clients; ++i)
        ts.emplace_back([&, i] {
            Client c(d.socket);
            while (!stop) {
                release(c, allocate(c, "wf-rate-" + std::to_string(i)));
                changes += 2;
            }
        });
    const auto start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& t : ts) t.join();
    Rate rate;
    const double n = static_cast<double>(changes);
    rate.per_second = n / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rate.cpu_us = (cpu_seconds(process_stat) - cpu_before) / n * 1e6;
    rate.loop_cpu_us = (cpu_seconds(loop_stat) - loop_before) / n * 1e6;
    return rate;
}

double median_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// bench_socket_state SECONDS rate:ROUNDS RESMGRD...: see the top.
int compare_rates(const std::string& mount, double seconds, int rounds, const std::vector<std::string>& binaries) {
    std::vector<std::vector<double>> rates(binaries.size()), loop_us(binaries.size()), cpu_us(binaries.size());
    for (int round = 0; round < rounds; ++round)
        for (std::size_t k = 0; k < binaries.size(); ++k) {
            const std::size_t b = round % 2 ? binaries.size() - 1 - k : k;
            Daemon d(binaries[b], mount);
            changes_per_second(d, 16, 1.0); // warm-up: the page cache, the first groups
            const Rate rate = changes_per_second(d, 16, seconds);
            rates[b].push_back(rate.per_second), loop_us[b].push_back(rate.loop_cpu_us), cpu_us[b].push_back(rate.cpu_us);
            std::printf("round %2d %-40s 16 clients %6.0f changes/s; CPU a change %4.0f us, event loop %4.0f us\n", round + 1,
                        binaries[b].c_str(), rate.per_second, rate.cpu_us, rate.loop_cpu_us);
            std::fflush(stdout);
        }
    for (std::size_t b = 0; b < binaries.size(); ++b)
        std::printf("median of %d: %-40s %6.0f changes/s; CPU a change %4.0f us, event loop %4.0f us\n", rounds, binaries[b].c_str(),
                    median_of(rates[b]), median_of(cpu_us[b]), median_of(loop_us[b]));
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s SECONDS LIVE,LIVE,... RESMGRD [RESMGRD...]\n", argv[0]);
        return 2;
    }
    const std::string mount = cgroup2_mount();
    if (::geteuid() != 0 || mount.empty()) {
        std::printf("bench_socket_state: needs root and a cgroup2 mount\n");
        return 77;
    }
    const double seconds = std::atof(argv[1]);
    if (std::string(argv[2]).rfind("rate:", 0) == 0)
        return compare_rates(mount, seconds, std::max(1, std::atoi(argv[2] + 5)), std::vector<std::string>(argv + 3, argv + argc));
    std::vector<int> lives;
    std::stringstream list(argv[2]);
    for (std::string item; std::getline(list, item, ',');) lives.push_back(std::atoi(item.c_str()));
    std::sort(lives.begin(), lives.end());
    for (int b = 3; b < argc; ++b) {
        std::printf("== %s\n", argv[b]);
        Daemon d(argv[b], mount);
        int live = 0;
        for (int target : lives) {
            fill(d, live, target);
            live = target;
            std::this_thread::sleep_for(std::chrono::milliseconds(500)); // a sampling pass
            Client c(d.socket);
            std::vector<double> t;
            const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
            while (std::chrono::steady_clock::now() < until || t.size() < 50) {
                auto start = std::chrono::steady_clock::now();
                std::string id = allocate(c, "wf-timed");
                t.push_back(Ms(std::chrono::steady_clock::now() - start).count());
                release(c, id);
            }
            std::printf("live %6d: allocate round trip p50 %7.2f ms  p99 %7.2f ms  (%zu)  RSS %6.1f MiB\n", live, percentile(t, 0.5),
                        percentile(t, 0.99), t.size(), mib(status_kib(d.pid, "VmRSS")));
            std::fflush(stdout);
        }
        // Steady state at the most live allocations: ten sampling passes (1 s apart: the policy above)
        // over every group, then RSS and its high-water mark, which includes each pass's peak.
        std::this_thread::sleep_for(std::chrono::seconds(10));
        std::printf("live %6d after 10 s of sampling passes: RSS %6.1f MiB  high-water mark %6.1f MiB\n", live,
                    mib(status_kib(d.pid, "VmRSS")), mib(status_kib(d.pid, "VmHWM")));
        // What the RSS is made of: the heap and other private memory, mapped files (the binary and
        // its libraries), shared memory (the eBPF ring buffer's pages are counted here).
        std::printf("  of which anonymous %6.1f MiB, files %6.1f MiB, shared %6.1f MiB\n", mib(status_kib(d.pid, "RssAnon")),
                    mib(status_kib(d.pid, "RssFile")), mib(status_kib(d.pid, "RssShmem")));
        for (int clients : {1, 4, 16}) {
            const Rate rate = changes_per_second(d, clients, seconds);
            std::printf("clients %2d: %8.0f durable changes/s (at %d live); resmgrd's CPU a change %5.0f us, of which its event loop %5.0f us\n",
                        clients, rate.per_second, live, rate.cpu_us, rate.loop_cpu_us);
        }
        std::printf("after the clients: RSS %6.1f MiB  high-water mark %6.1f MiB\n", mib(status_kib(d.pid, "VmRSS")), mib(status_kib(d.pid, "VmHWM")));
        std::fflush(stdout);
    }
    return 0;
}
