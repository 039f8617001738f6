// A three-member etcd cluster of a test's or a benchmark's own: loopback ports, its own data
// directories, stopped member by member (to lose the one a node talks to, or all of them) and
// started again with its data. Needs Debian's etcd-server and etcd-client. No gtest here: the
// benchmarks use it too; start() and restart() answer "" or why not.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "host_support.hpp"

namespace resmgr::host {

inline bool port_free(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return free;
}

// Six free loopback ports in a row (three members: client and peer each), from a pid-derived start.
inline int free_port_base() {
    for (int base = 20000 + (::getpid() % 4000) * 6; base < 60000; base += 6) {
        bool all = true;
        for (int p = base; p < base + 6 && all; ++p) all = port_free(p);
        if (all) return base;
    }
    return -1;
}

struct EtcdCluster {
    static constexpr const char* kEtcd = "/usr/bin/etcd";
    std::string dir;
    int base = -1;
    std::vector<pid_t> pids{-1, -1, -1};
    std::vector<std::vector<std::string>> argv{3};

    std::string client_url(int i) const { return "http://127.0.0.1:" + std::to_string(base + 2 * i); }
    std::string peer_url(int i) const { return "http://127.0.0.1:" + std::to_string(base + 2 * i + 1); }
    std::string endpoints() const { return client_url(0) + "," + client_url(1) + "," + client_url(2); }

    std::string start(const std::string& parent) {
        dir = parent + "/etcd";
        std::filesystem::create_directories(dir);
        base = free_port_base();
        if (base < 0) return "no six free loopback ports";
        std::string initial;
        for (int i = 0; i < 3; ++i) initial += (i ? "," : "") + std::string("m") + std::to_string(i) + "=" + peer_url(i);
        for (int i = 0; i < 3; ++i) {
            const std::string name = "m" + std::to_string(i);
            argv[i] = {kEtcd, "--name", name, "--data-dir", dir + "/" + name, "--listen-client-urls", client_url(i),
                       "--advertise-client-urls", client_url(i), "--listen-peer-urls", peer_url(i), "--initial-advertise-peer-urls",
                       peer_url(i), "--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token",
                       "resmgr-test-" + std::to_string(::getpid())};
        }
        return restart();
    }
    // Starts every member that is not running (a stopped one comes back with its data); up when
    // a key can be written through each (so there is a leader and a quorum).
    std::string restart() {
        for (int i = 0; i < 3; ++i)
            if (pids[i] <= 0) pids[i] = spawn(argv[i], dir + "/m" + std::to_string(i) + ".log");
        for (int i = 0; i < 3; ++i) {
            const bool up = wait_until([&] {
                return run({"/usr/bin/etcdctl", "--endpoints", client_url(i), "--dial-timeout", "1s", "--command-timeout", "1s", "put",
                            "/resmgr-test/up", "1"},
                           {"ETCDCTL_API=3"})
                           .status == 0;
            }, std::chrono::seconds(20));
            if (!up) return "etcd member " + std::to_string(i) + " did not start:\n" + slurp(dir + "/m" + std::to_string(i) + ".log");
        }
        return "";
    }
    void stop(int i) {
        if (pids[i] <= 0) return;
        ::kill(pids[i], SIGTERM);
        ::waitpid(pids[i], nullptr, 0);
        pids[i] = -1;
    }
    ~EtcdCluster() {
        for (int i = 0; i < 3; ++i) stop(i);
    }
};

} // namespace resmgr::host
