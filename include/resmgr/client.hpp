// Blocking client for resmgrd's socket: one JSON request line out, one JSON response line back.
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "resmgr/protocol.hpp"

namespace resmgr {

constexpr const char* kDefaultSocket = "/run/resmgr/resmgr.sock";

struct ClientError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Socket path from, in order: the explicit flag, $RESMGR_SOCKET, the default.
std::string resolve_socket_path(const std::string& flag);

class Client {
public:
    explicit Client(const std::string& socket_path); // throws ClientError with the path and errno text
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Sends one request and waits for its response envelope.
    nlohmann::json call(const Request& request);
    // The next line resmgrd sends (after `subscribe`, one event per line).
    nlohmann::json read_message();
    int fd() const { return fd_; }

private:
    int fd_ = -1;
    std::string path_;
    std::string buffer_;
};

} // namespace resmgr
