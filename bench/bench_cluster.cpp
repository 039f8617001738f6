// Cluster-scoped exclusive files (issue 17) against the local-only hold, side by side in one run:
// a three-member etcd on loopback (data on /var/tmp's disk) and resmgrd nodes with --cluster
// (cgroupfs backend, file guard off), then
//   - ROUNDS allocate + release round trips of an allocation holding one exclusive file, with
//     file_scope "local" and "cluster" interleaved: p50/p99 of allocate, of release, the ratio;
//   - placement with three nodes: ROUNDS `cluster place` calls per client, booked and dry-run,
//     from one client and from three at once (one per node), against `cluster status` (the
//     table an orchestrator would otherwise read to pick a node itself, with nothing booked):
//     decisions per second and p50/p99;
//   - REPEATS times: node a holds a cluster-scoped file and is killed (SIGKILL); how long until
//     node b's allocate of the file succeeds (b asks every 20 ms), against the lease's TTL.
// Needs root, a cgroup2 mount and etcd (Debian's etcd-server, etcd-client).
//   build/bench/bench_cluster ROUNDS REPEATS RESMGRD   (e.g. 200 5 build-release/agent/resmgrd)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cgroup2_mount.hpp"
#include "etcd_cluster.hpp"
#include "resmgr/client.hpp"

using namespace resmgr;
using json = nlohmann::json;
using Ms = std::chrono::duration<double, std::milli>;
using Steady = std::chrono::steady_clock;

namespace {

constexpr const char* kTtl = "3s";

struct Node {
    std::string name, dir, socket, root;
    pid_t pid = -1;

    std::string binary;

    Node(std::string node_name, const std::string& parent, const std::string& mount, std::string resmgrd)
        : name(std::move(node_name)), binary(std::move(resmgrd)) {
        dir = parent + "/" + name;
        socket = dir + "/resmgr.sock";
        root = mount + "/resmgr-bench-cluster-" + std::to_string(::getpid()) + "-" + name;
        std::filesystem::create_directories(dir);
    }
    bool start(const std::string& endpoints) {
        pid = host::spawn({binary, "--state-dir", dir + "/state", "--socket", socket, "--cgroup-root", root, "--backend", "cgroupfs",
                           "--no-file-guard", "--log-level", "warn", "--cluster", endpoints, "--node-name", name, "--cluster-lease-ttl", kTtl},
                          dir + "/resmgrd.log");
        return host::wait_until([&] {
            try {
                Client c(socket);
                return c.call({"cluster", "status", json::object()})["result"]["lease"]["held"] == true;
            } catch (const std::exception&) {
                return false;
            }
        }, std::chrono::seconds(15));
    }
    void kill(int sig) {
        if (pid <= 0) return;
        ::kill(pid, sig);
        ::waitpid(pid, nullptr, 0);
        pid = -1;
    }
    ~Node() { clean(); }
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;
    void clean() {
        kill(SIGTERM);
        std::error_code ec;
        for (auto& entry : std::filesystem::directory_iterator(root, ec))
            if (entry.is_directory()) ::rmdir(entry.path().c_str());
        ::rmdir(root.c_str());
    }
};

json holding(const std::string& file, const std::string& scope) {
    return {{"workflow_id", "bench"}, {"resources", {{"cpu_cores", 0.1}, {"memory_gb", 0.1}}}, {"exclusive_files", {file}}, {"file_scope", scope}};
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// One way of choosing a node, asked `rounds` times by each of `clients` (one per node, at once).
struct Throughput {
    double per_second = 0, p50 = 0, p99 = 0;
    int failed = 0;
};

Throughput choose(const std::vector<const Node*>& clients, int rounds, const Request& request) {
    std::vector<std::vector<double>> took(clients.size());
    std::vector<int> failed(clients.size(), 0);
    const auto t0 = Steady::now();
    std::vector<std::thread> threads;
    for (size_t i = 0; i < clients.size(); ++i)
        threads.emplace_back([&, i] {
            Client c(clients[i]->socket);
            for (int r = 0; r < rounds; ++r) {
                const auto s = Steady::now();
                if (c.call(request)["status"] != "success") ++failed[i];
                took[i].push_back(Ms(Steady::now() - s).count());
            }
        });
    for (auto& t : threads) t.join();
    const double seconds = std::chrono::duration<double>(Steady::now() - t0).count();
    std::vector<double> all;
    Throughput out;
    for (size_t i = 0; i < clients.size(); ++i) {
        all.insert(all.end(), took[i].begin(), took[i].end());
        out.failed += failed[i];
    }
    out.per_second = static_cast<double>(all.size()) / seconds;
    out.p50 = percentile(all, 0.5);
    out.p99 = percentile(all, 0.99);
    return out;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s ROUNDS REPEATS RESMGRD\n", argv[0]);
        return 2;
    }
    const int rounds = std::atoi(argv[1]), repeats = std::atoi(argv[2]);
    if (::access(host::EtcdCluster::kEtcd, X_OK) != 0) {
        std::fprintf(stderr, "no %s: apt-get install etcd-server etcd-client\n", host::EtcdCluster::kEtcd);
        return 1;
    }
    const std::string mount = cgroup2_mount();
    if (mount.empty()) {
        std::fprintf(stderr, "no cgroup2 mount\n");
        return 1;
    }
    char tmpl[] = "/var/tmp/resmgr-bench-cluster-XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    int status = 0;
    {
        host::EtcdCluster etcd;
        if (const std::string why = etcd.start(dir); !why.empty()) {
            std::fprintf(stderr, "%s\n", why.c_str());
            return 1;
        }
        Node a("a", dir, mount, argv[3]), b("b", dir, mount, argv[3]);
        if (!a.start(etcd.endpoints()) || !b.start(etcd.endpoints())) {
            std::fprintf(stderr, "a node did not get its lease; logs in %s\n", dir.c_str());
            return 1;
        }
        const std::string file = dir + "/shared.lock";
        std::ofstream(file) << "x";

        // Round trips, local and cluster interleaved on one connection.
        std::vector<double> alloc[2], release[2];
        const char* scopes[2] = {"local", "cluster"};
        {
            Client c(a.socket);
            for (int r = 0; r < rounds; ++r)
                for (int s = 0; s < 2; ++s) {
                    auto t0 = Steady::now();
                    json got = c.call({"allocate", "", holding(file, scopes[s])});
                    auto t1 = Steady::now();
                    if (got["status"] != "success") {
                        std::fprintf(stderr, "allocate (%s) failed: %s\n", scopes[s], got.dump().c_str());
                        return 1;
                    }
                    c.call({"release", "", {{"allocation_id", got["result"]["allocation_id"]}}});
                    auto t2 = Steady::now();
                    alloc[s].push_back(Ms(t1 - t0).count());
                    release[s].push_back(Ms(t2 - t1).count());
                }
        }
        std::printf("allocate + release of an allocation holding one exclusive file, %d rounds each, interleaved:\n", rounds);
        std::printf("| | local | cluster | cluster / local |\n|---|---:|---:|---:|\n");
        auto row = [](const char* what, double local, double cluster) {
            std::printf("| %s | %.2f ms | %.2f ms | %.1fx |\n", what, local, cluster, cluster / local);
        };
        row("allocate p50", percentile(alloc[0], 0.5), percentile(alloc[1], 0.5));
        row("allocate p99", percentile(alloc[0], 0.99), percentile(alloc[1], 0.99));
        row("release p50", percentile(release[0], 0.5), percentile(release[1], 0.5));
        row("release p99", percentile(release[0], 0.99), percentile(release[1], 0.99));

        // Placement with three nodes. Tiny requests with a 2 s timeout: the cluster never fills,
        // and the bookings read with each decision are those of the last 2 s.
        {
            Node c("c", dir, mount, argv[3]);
            if (!c.start(etcd.endpoints())) {
                std::fprintf(stderr, "node c did not get its lease; logs in %s\n", dir.c_str());
                return 1;
            }
            auto place = [](bool dry_run) {
                return Request{"cluster", "place", {{"workflow_id", "bench-place"}, {"resources", {{"cpu_cores", 0.0005}, {"memory_gb", 0}}},
                                                    {"timeout", "2s"}, {"dry_run", dry_run}}};
            };
            const Request status{"cluster", "status", json::object()};
            std::printf("\nchoosing a node among 3, %d calls per client (decisions/s over all clients; p50/p99 of one call):\n", rounds);
            std::printf("| clients | cluster status (read, nothing booked) | place, dry run | place, booked | status / booked |\n|---:|---:|---:|---:|---:|\n");
            for (const std::vector<const Node*>& clients : {std::vector<const Node*>{&a}, std::vector<const Node*>{&a, &b, &c}}) {
                const Throughput read = choose(clients, rounds, status), dry = choose(clients, rounds, place(true)),
                                 booked = choose(clients, rounds, place(false));
                auto cell = [](const Throughput& t) {
                    char text[120];
                    std::snprintf(text, sizeof text, "%.0f/s (%.2f/%.2f ms%s)", t.per_second, t.p50, t.p99,
                                  t.failed ? (", " + std::to_string(t.failed) + " failed").c_str() : "");
                    return std::string(text);
                };
                std::printf("| %zu | %s | %s | %s | %.1fx |\n", clients.size(), cell(read).c_str(), cell(dry).c_str(), cell(booked).c_str(),
                            read.per_second / booked.per_second);
            }
        }

        // A dead node's claim: a holds, a is killed, b asks every 20 ms.
        std::vector<double> freed;
        for (int i = 0; i < repeats; ++i) {
            {
                Client c(a.socket);
                if (json got = c.call({"allocate", "", holding(file, "cluster")}); got["status"] != "success") {
                    std::fprintf(stderr, "repeat %d: a could not claim the file: %s\n", i, got.dump().c_str());
                    return 1;
                }
            }
            a.kill(SIGKILL);
            const auto t0 = Steady::now();
            std::string taken;
            host::wait_until([&] {
                try {
                    Client c(b.socket);
                    json got = c.call({"allocate", "", holding(file, "cluster")});
                    if (got["status"] != "success") return false;
                    taken = got["result"]["allocation_id"];
                    return true;
                } catch (const std::exception&) {
                    return false;
                }
            }, std::chrono::seconds(20));
            if (taken.empty()) {
                std::fprintf(stderr, "b never got the file\n");
                return 1;
            }
            freed.push_back(Ms(Steady::now() - t0).count());
            Client(b.socket).call({"release", "", {{"allocation_id", taken}}});
            // a comes back (its restored allocation lets go of the file b took) and releases it.
            if (!a.start(etcd.endpoints())) return 1;
            Client c(a.socket);
            const json restored = c.call({"status", "", json::object()});
            for (const auto& alloc_a : restored["result"]["allocations"]) c.call({"release", "", {{"allocation_id", alloc_a["allocation_id"]}}});
        }
        std::printf("\na killed node's claim taken by another node after (lease TTL %s, %d repeats): min %.0f ms, median %.0f ms, max %.0f ms\n",
                    kTtl, repeats, *std::min_element(freed.begin(), freed.end()), percentile(freed, 0.5),
                    *std::max_element(freed.begin(), freed.end()));
    }
    std::filesystem::remove_all(dir);
    return status;
}
