#include "metrics/exposition.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

#include <prometheus/exposer.h>

namespace resmgr::metrics {

namespace {

std::string errno_text(int error) { return std::strerror(error); }

// Binds the address once, as the HTTP server will, to say plainly why it cannot be had: civetweb
// only reports "null context when constructing CivetServer".
void check_bindable(const ListenAddress& address) {
    const int fd = ::socket(address.ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw UsageError("--metrics-listen " + address.to_string() + ": cannot make a socket: " + errno_text(errno));
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on); // as civetweb does: a port in TIME_WAIT is free
    int r;
    if (address.ipv6) {
        sockaddr_in6 sa{};
        sa.sin6_family = AF_INET6;
        sa.sin6_port = htons(address.port);
        ::inet_pton(AF_INET6, address.host.c_str(), &sa.sin6_addr);
        r = ::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
    } else {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(address.port);
        ::inet_pton(AF_INET, address.host.c_str(), &sa.sin_addr);
        r = ::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
    }
    const int error = errno;
    ::close(fd);
    if (r == 0) return;
    std::string why = errno_text(error);
    if (error == EADDRINUSE) why += " (another program serves that port; choose another)";
    else if (error == EADDRNOTAVAIL) why += " (no interface of this host has that address)";
    throw UsageError("--metrics-listen " + address.to_string() + ": cannot listen there: " + why);
}

} // namespace

std::string ListenAddress::to_string() const {
    return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool ListenAddress::is_wildcard() const {
    return host == "0.0.0.0" || host == "::" || host == "0:0:0:0:0:0:0:0";
}

ListenAddress parse_listen_address(std::string_view text) {
    const std::string shown(text);
    const auto bad = [&](const std::string& why) {
        return UsageError("--metrics-listen: expected ADDRESS:PORT such as 127.0.0.1:9464 or [::1]:9464, got '" + shown + "': " + why);
    };
    ListenAddress a;
    std::string_view port_text;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) throw bad("no ']' after the IPv6 address");
        a.host = std::string(text.substr(1, close - 1));
        a.ipv6 = true;
        if (close + 1 >= text.size() || text[close + 1] != ':') throw bad("no ':PORT' after the address");
        port_text = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) throw bad("no ':PORT'");
        a.host = std::string(text.substr(0, colon));
        if (a.host.find(':') != std::string::npos) throw bad("an IPv6 address goes in brackets");
        port_text = text.substr(colon + 1);
    }
    unsigned char buffer[sizeof(in6_addr)];
    if (a.host.empty() || ::inet_pton(a.ipv6 ? AF_INET6 : AF_INET, a.host.c_str(), buffer) != 1)
        throw bad(a.ipv6 ? "not a numeric IPv6 address" : "not a numeric IPv4 address (host names are not looked up)");
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
        throw bad("the port must be a number from 1 to 65535");
    a.port = static_cast<std::uint16_t>(port);
    return a;
}

MetricsServer::MetricsServer(const ListenAddress& address, std::weak_ptr<prometheus::Collectable> collectable) {
    check_bindable(address);
    // Two threads: a scrape is answered while another client dawdles; a client that sends nothing
    // is dropped after 10 s.
    std::vector<std::string> options{"listening_ports", address.to_string(), "num_threads", "2", "request_timeout_ms", "10000"};
    try {
        exposer_ = std::make_unique<prometheus::Exposer>(std::move(options));
    } catch (const std::exception& e) {
        // The address was free a moment ago; with IPv6 the likely reason is civetweb itself.
        throw UsageError("--metrics-listen " + address.to_string() + ": the HTTP server did not start: " + e.what() +
                         (address.ipv6 ? " (Debian 12's civetweb, which serves /metrics, is built without IPv6: use an IPv4 address such as 127.0.0.1)"
                                       : ""));
    }
    exposer_->RegisterCollectable(collectable, "/metrics");
}

MetricsServer::~MetricsServer() = default;

Textfile::Textfile(std::filesystem::path dir) : dir_(std::move(dir)) {
    struct stat st {};
    if (::stat(dir_.c_str(), &st) != 0)
        throw UsageError("--metrics-textfile " + dir_.string() + ": " + errno_text(errno) + " (give node_exporter's --collector.textfile.directory)");
    if (!S_ISDIR(st.st_mode)) throw UsageError("--metrics-textfile " + dir_.string() + ": not a directory");
    if (::access(dir_.c_str(), W_OK | X_OK) != 0)
        throw UsageError("--metrics-textfile " + dir_.string() + ": resmgrd cannot write there: " + errno_text(errno));
}

void Textfile::write(const std::string& text) const {
    // node_exporter reads only *.prom: the temporary file is never read half-written.
    // A fresh file of resmgrd's own (O_EXCL after the unlink), never one another user left there.
    const std::filesystem::path tmp = dir_ / (std::string(kName) + ".tmp");
    ::unlink(tmp.c_str());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) throw std::runtime_error("cannot create " + tmp.string() + ": " + errno_text(errno));
    size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int error = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            throw std::runtime_error("cannot write " + tmp.string() + ": " + errno_text(error));
        }
        done += static_cast<size_t>(n);
    }
    ::fchmod(fd, 0644); // readable by node_exporter whatever resmgrd's umask
    ::close(fd);
    if (::rename(tmp.c_str(), path().c_str()) != 0) {
        const int error = errno;
        ::unlink(tmp.c_str());
        throw std::runtime_error("cannot rename " + tmp.string() + " to " + path().string() + ": " + errno_text(error));
    }
}

} // namespace resmgr::metrics
