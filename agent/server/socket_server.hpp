// The Unix stream socket on sd-event: accepts clients, identifies each with SO_PEERCRED at
// accept time, splits input into lines, hands each line to a handler and queues the answer.
// Non-blocking throughout: a client that stops reading cannot stall the daemon, nor grow it (it
// is not read further while its answers are backed up). Out of fds, it stops accepting for a
// while rather than spin on EMFILE.
#pragma once

#include <sys/types.h>
#include <systemd/sd-event.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "events/event.hpp"
#include "resmgr/model.hpp"
#include "resmgr/protocol.hpp"

namespace resmgr::server {

struct SocketOptions {
    // Who may connect: the socket file's group and mode (root:group 0660 with the install's
    // `resmgr` group; 0600, root only, without one). What each may do is decided per request.
    std::optional<gid_t> group;
    mode_t mode = 0600;
    // At most this many connections at once (subscribers included), and per uid; one more is
    // answered with a RESOURCE_EXHAUSTED envelope and closed, so idle connections cannot use up
    // the daemon's fds (which the file guard needs for every held open) nor shut others out.
    size_t max_clients = 512;
    size_t max_per_user = 64;
    bool limit_root = false; // root's connections count against max_per_user too
    // A connection that sends nothing for this long is closed (subscribers are exempt).
    std::chrono::seconds idle_timeout{600};
};

class SocketServer {
public:
    // One parsed request of a peer; malformed lines are answered by the server itself.
    using Handler = std::function<nlohmann::json(const Request& request, const Owner& peer)>;

    // Creates the socket's directory if needed, replaces a stale socket file, binds and listens.
    // Each client is identified by the kernel at connect time (SO_PEERCRED, and a pidfd of the
    // connecting process): a request arriving after that process is gone carries pid 0, so a
    // recycled pid can never be taken for the asker.
    SocketServer(sd_event* event, std::string path, Handler handler, SocketOptions options = {});
    ~SocketServer();
    SocketServer(const SocketServer&) = delete;
    SocketServer& operator=(const SocketServer&) = delete;

    size_t client_count() const { return clients_.size(); }
    static constexpr size_t kMaxLine = 1 << 20;
    static constexpr size_t kDefaultMaxClients = 512;
    // The pid the kernel gave at connect time while that process lives, else 0 (exported for tests).
    static Owner current_peer(const Owner& at_connect, int pidfd);
    // A subscriber that lets this much pile up unread is dropped rather than grow the daemon.
    static constexpr size_t kMaxSubscriberBacklog = 4 << 20;
    // Past this much unsent output a client's requests wait (unread, unserved) until it reads:
    // one client pipelining 200k requests took resmgrd from 41 to 811 MB of RSS (issue 18).
    static constexpr size_t kMaxPendingOutput = 1 << 20;
    // How long accepting pauses when accept(2) runs out of fds or memory.
    static constexpr std::chrono::milliseconds kAcceptPause{250};

    // Group commit (group_commit.hpp): `unsynced()` names the journal batch an answer made now
    // must wait for (0: none); such answers are held, in order per client, until durable(seq)
    // says that batch is on disk. Without it every answer goes out at once.
    void hold_answers_until_durable(std::function<std::uint64_t()> unsynced) { unsynced_ = std::move(unsynced); }
    void durable(std::uint64_t seq);

    // Sends the event as one JSON line to every client that asked with the `subscribe`
    // operation (params {"types": [...]}; none = all types). Never blocks.
    void broadcast(const events::Event& event);

private:
    struct ClientConn {
        int fd = -1;
        Owner peer;
        int pidfd = -1; // the connecting process, from the kernel (SO_PEERPIDFD, else pidfd_open)
        std::chrono::steady_clock::time_point last_input;
        sd_event_source* source = nullptr;
        std::string in, out;
        std::string held;           // answers waiting for their changes to be durable
        std::uint64_t held_for = 0; // the journal batch they wait for
        bool closing = false; // close once `out` (and `held`) drains
        bool subscriber = false;
        std::set<events::EventType> types; // empty: every type
    };

    static int on_accept(sd_event_source*, int fd, uint32_t, void* self);
    static int on_client(sd_event_source*, int fd, uint32_t revents, void* self);
    // Disables the listener for kAcceptPause (the pending connection keeps it readable, so
    // retrying at once is a busy loop); says so in the log at most every 10 s.
    void pause_accepting(int error);
    static int on_accept_retry(sd_event_source*, uint64_t, void* self);
    // Serves and flushes until the client's lines are answered or its answers back up; drops
    // it when it failed or finished. False when it was dropped.
    bool pump(int fd, ClientConn& c);
    // Answers complete lines until none is left or the answers are backed up.
    void serve(ClientConn& c);
    // Queues an answer: out at once, or held behind the change it may report (group commit).
    void answer(ClientConn& c, const nlohmann::json& envelope);
    static size_t backlog(const ClientConn& c) { return c.out.size() + c.held.size(); }
    // Answers a `subscribe` request and turns the connection into an event stream.
    nlohmann::json subscribe(ClientConn& c, const Request& request);
    bool flush(ClientConn& c); // false when the connection failed; sets what to wait for
    void drop(int fd);
    // Refuses a fresh connection with a RESOURCE_EXHAUSTED envelope naming `limit`.
    void refuse(int cfd, const std::string& message, const std::string& limit);
    size_t connections_of(std::uint32_t uid) const;
    static int on_idle_check(sd_event_source*, uint64_t, void* self);

    sd_event* event_;
    std::string path_;
    Handler handler_;
    SocketOptions options_;
    std::function<std::uint64_t()> unsynced_;
    sd_event_source* idle_timer_ = nullptr;
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
