// The Unix stream socket on sd-event: accepts clients, identifies each with SO_PEERCRED at
// accept time, splits input into lines, hands each line to a handler and queues the answer.
// Non-blocking throughout: a client that stops reading cannot stall the daemon, nor grow it (it
// is not read further while its answers are backed up). Out of fds, it stops accepting for a
// while rather than spin on EMFILE.
#pragma once

#include <systemd/sd-event.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "events/event.hpp"
#include "resmgr/model.hpp"
#include "resmgr/protocol.hpp"

namespace resmgr::server {

class SocketServer {
public:
    using Handler = std::function<nlohmann::json(std::string_view line, const Owner& peer)>;

    // Creates the socket's directory if needed, replaces a stale socket file, binds and listens.
    // Mode 0666: any local user may ask; what they may do is decided per request from SO_PEERCRED.
    // At most `max_clients` connections at once (subscribers included): one more is answered
    // with a RESOURCE_EXHAUSTED envelope and closed, so idle connections cannot use up the
    // daemon's fds (which the file guard needs for every held open).
    SocketServer(sd_event* event, std::string path, Handler handler, size_t max_clients = kDefaultMaxClients);
    ~SocketServer();
    SocketServer(const SocketServer&) = delete;
    SocketServer& operator=(const SocketServer&) = delete;

    size_t client_count() const { return clients_.size(); }
    static constexpr size_t kMaxLine = 1 << 20;
    static constexpr size_t kDefaultMaxClients = 512;
    // A subscriber that lets this much pile up unread is dropped rather than grow the daemon.
    static constexpr size_t kMaxSubscriberBacklog = 4 << 20;
    // Past this much unsent output a client's requests wait (unread, unserved) until it reads:
    // one client pipelining 200k requests took resmgrd from 41 to 811 MB of RSS (issue 18).
    static constexpr size_t kMaxPendingOutput = 1 << 20;
    // How long accepting pauses when accept(2) runs out of fds or memory.
    static constexpr std::chrono::milliseconds kAcceptPause{250};

    // Sends the event as one JSON line to every client that asked with the `subscribe`
    // operation (params {"types": [...]}; none = all types). Never blocks.
    void broadcast(const events::Event& event);

private:
    struct ClientConn {
        int fd = -1;
        Owner peer;
        sd_event_source* source = nullptr;
        std::string in, out;
        bool closing = false; // close once `out` drains
        bool subscriber = false;
        std::set<events::EventType> types; // empty: every type
    };

    static int on_accept(sd_event_source*, int fd, uint32_t, void* self);
    static int on_client(sd_event_source*, int fd, uint32_t revents, void* self);
    // Disables the listener for kAcceptPause (the pending connection keeps it readable, so
    // retrying at once is a busy loop); says so in the log at most every 10 s.
    void pause_accepting(int error);
    static int on_accept_retry(sd_event_source*, uint64_t, void* self);
    // Answers complete lines until none is left or the answers are backed up.
    void serve(ClientConn& c);
    // Answers a `subscribe` request and turns the connection into an event stream.
    nlohmann::json subscribe(ClientConn& c, const Request& request);
    bool flush(ClientConn& c); // false when the connection failed; sets what to wait for
    void drop(int fd);

    sd_event* event_;
    std::string path_;
    Handler handler_;
    size_t max_clients_;
    int listen_fd_ = -1;
    sd_event_source* listen_source_ = nullptr;
    sd_event_source* accept_retry_ = nullptr;
    std::chrono::steady_clock::time_point last_pause_log_{};
    unsigned pauses_unlogged_ = 0;
    std::map<int, std::unique_ptr<ClientConn>> clients_;
};

// The EventBus sink that feeds socket subscribers (`resmgr events --follow`).
class SubscriberSink : public events::EventSink {
public:
    explicit SubscriberSink(SocketServer& server) : server_(server) {}
    void publish(const events::Event& event) override { server_.broadcast(event); }

private:
    SocketServer& server_;
};

} // namespace resmgr::server
