// The two ways the metrics leave resmgrd: an HTTP endpoint serving /metrics (prometheus-cpp's
// Exposer, on its own threads) and node_exporter's textfile collector (DIR/resmgr.prom, written
// whole to a temporary file and renamed over, so a reader never sees half of it). The address
// and the directory come from the command line and are checked before anything starts.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include <prometheus/collectable.h>

namespace prometheus {
class Exposer;
}

namespace resmgr::metrics {

// A bad --metrics-listen or --metrics-textfile, or a port that cannot be had: the message says
// which and why (resmgrd exits with status 2, as for other bad arguments).
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// "127.0.0.1:9464" or "[::1]:9464": a numeric IPv4 or bracketed IPv6 address and a port 1-65535.
// (Serving IPv6 takes a civetweb built with it; Debian 12's is not, and MetricsServer says so.)
struct ListenAddress {
    std::string host; // without brackets
    std::uint16_t port = 0;
    bool ipv6 = false;

    std::string to_string() const; // as given: "[::1]:9464"
    // 0.0.0.0 or ::: every interface, so anyone who can reach the host reads the metrics.
    bool is_wildcard() const;
};
// Throws UsageError naming what is wrong.
ListenAddress parse_listen_address(std::string_view text);

// Serves `collectable` at http://ADDRESS/metrics from two threads of its own until destroyed.
// Throws UsageError when the address cannot be bound (in use, not this host's, not permitted).
class MetricsServer {
public:
    MetricsServer(const ListenAddress& address, std::weak_ptr<prometheus::Collectable> collectable);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

private:
    std::unique_ptr<prometheus::Exposer> exposer_;
};

// The textfile collector's file in `dir`. The directory must exist and be writable by resmgrd
// (checked at start: UsageError); each write replaces the file atomically (std::runtime_error
// naming the step that failed).
class Textfile {
public:
    static constexpr const char* kName = "resmgr.prom";
    explicit Textfile(std::filesystem::path dir);
    void write(const std::string& text) const;
    std::filesystem::path path() const { return dir_ / kName; }

private:
    std::filesystem::path dir_;
};

} // namespace resmgr::metrics
