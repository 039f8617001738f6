// Line protocol over a Unix stream socket on sd-event.
#include "server/socket_server.hpp"

#include "resmgr/operations.hpp"
#include "resmgr/json.hpp"

#include "server/event_loop.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include <spdlog/spdlog.h>

#include "resmgr/protocol.hpp"

namespace resmgr::server {
namespace {

std::runtime_error sys_error(const std::string& what) { return std::runtime_error(what + ": " + std::strerror(errno)); }

constexpr auto kPauseLogInterval = std::chrono::seconds(10);

bool has_line(const std::string& in) { return in.find('\n') != std::string::npos; }

// Most answers go into an empty buffer: then the text is moved in, not copied.
void append_moved(std::string& to, std::string&& text) {
    if (to.empty()) to = std::move(text);
    else to += text;
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 // Linux 6.5; Debian 12's headers predate it
#endif

// The connecting process as a pidfd: from the kernel with the connection where it can (exact),
// else opened now (the connecting pid, if it is still that process).
int peer_pidfd(int cfd, pid_t pid) {
    int pidfd = -1;
    socklen_t len = sizeof pidfd;
    if (::getsockopt(cfd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0) return pidfd;
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

// How often idle connections are looked for: a tenth of the timeout, at least every second.
std::uint64_t idle_check_usec(std::chrono::seconds timeout) {
    const auto tenth = std::chrono::duration_cast<std::chrono::microseconds>(timeout) / 10;
    return static_cast<std::uint64_t>(std::max<std::chrono::microseconds>(tenth, std::chrono::seconds(1)).count());
}

} // namespace

Owner SocketServer::current_peer(const Owner& at_connect, int pidfd) {
    Owner peer = at_connect;
    // The pidfd polls readable once the process has exited, whoever has its pid now. Signal 0
    // through it still reached an exited process its parent had not reaped yet: a connector that
    // had just exited passed for alive (host test AConnectionOutlivingItsConnectorCarriesNoPidToAttach
    // failed so once, on a loaded machine).
    pollfd exited{pidfd, POLLIN, 0};
    if (pidfd < 0 || ::poll(&exited, 1, 0) != 0) peer.pid = 0;
    return peer;
}

SocketServer::SocketServer(sd_event* event, std::string path, Handler handler, SocketOptions options)
    : event_(event), path_(std::move(path)), handler_(std::move(handler)), options_(options) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof addr.sun_path) throw std::runtime_error("socket path too long: " + path_);
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);

    auto dir = std::filesystem::path(path_).parent_path();
    std::error_code ec;
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    if (ec) throw std::runtime_error("cannot create socket directory " + dir.string() + ": " + ec.message());

    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw sys_error("socket");
    // A socket file left by a crashed daemon would make bind fail; a live daemon would answer.
    if (::access(path_.c_str(), F_OK) == 0) {
        int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool alive = probe >= 0 && ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        if (probe >= 0) ::close(probe);
        if (alive) {
            ::close(listen_fd_);
            throw std::runtime_error("another resmgrd is already serving " + path_);
        }
        ::unlink(path_.c_str());
    }
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
        auto err = sys_error("bind " + path_);
        ::close(listen_fd_);
        throw err;
    }
    if ((options_.group && ::chown(path_.c_str(), 0, *options_.group) < 0) || ::chmod(path_.c_str(), options_.mode) < 0) {
        auto err = sys_error("setting the owner and mode of " + path_);
        ::close(listen_fd_);
        throw err;
    }
    if (::listen(listen_fd_, 128) < 0) throw sys_error("listen " + path_);
    int r = sd_event_add_io(event_, &listen_source_, listen_fd_, EPOLLIN, on_accept, this);
    if (r < 0) throw std::runtime_error(std::string("sd_event_add_io: ") + std::strerror(-r));
    r = sd_event_add_time_relative(event_, &idle_timer_, CLOCK_MONOTONIC, idle_check_usec(options_.idle_timeout), 0, on_idle_check, this);
    if (r < 0) throw std::runtime_error(std::string("sd_event_add_time_relative: ") + std::strerror(-r));
}

SocketServer::~SocketServer() {
    while (!clients_.empty()) drop(clients_.begin()->first);
    if (idle_timer_) sd_event_source_disable_unref(idle_timer_);
    if (accept_retry_) sd_event_source_disable_unref(accept_retry_);
    if (listen_source_) sd_event_source_unref(listen_source_);
    if (listen_fd_ >= 0) {
        ::close(listen_fd_);
        ::unlink(path_.c_str());
    }
}

int SocketServer::on_accept(sd_event_source*, int fd, uint32_t, void* userdata) {
    auto* self = static_cast<SocketServer*>(userdata);
    for (;;) {
        int cfd = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) self->pause_accepting(errno);
            else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                spdlog::warn("accept on {}: {}", self->path_, std::strerror(errno));
            return 0;
        }
        if (self->clients_.size() >= self->options_.max_clients) {
            self->refuse(cfd, "resmgrd is serving too many connections",
                         "at most " + std::to_string(self->options_.max_clients) + " at once (--max-clients)");
            continue;
        }
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
            spdlog::warn("SO_PEERCRED: {}; dropping client", std::strerror(errno));
            ::close(cfd);
            continue;
        }
        if ((cred.uid != 0 || self->options_.limit_root) && self->connections_of(cred.uid) >= self->options_.max_per_user) {
            self->refuse(cfd, "uid " + std::to_string(cred.uid) + " has too many connections open",
                         "at most " + std::to_string(self->options_.max_per_user) + " per user (the policy's limits.connections_per_user)");
            continue;
        }
        auto conn = std::make_unique<ClientConn>();
        conn->fd = cfd;
        conn->peer = Owner{cred.uid, cred.pid};
        conn->pidfd = peer_pidfd(cfd, cred.pid);
        conn->last_input = std::chrono::steady_clock::now();
        int r = sd_event_add_io(self->event_, &conn->source, cfd, EPOLLIN, on_client, self);
        if (r < 0) {
            spdlog::warn("sd_event_add_io for client: {}", std::strerror(-r));
            ::close(cfd);
            continue;
        }
        self->clients_.emplace(cfd, std::move(conn));
    }
}

void SocketServer::refuse(int cfd, const std::string& message, const std::string& limit) {
    // Told, not left hanging; the write is best effort (a fresh socket's buffer takes it), and
    // the client may have gone already: no SIGPIPE.
    const std::string refusal =
        dump_text(error_envelope("unknown", ApiError(ErrorCode::RESOURCE_EXHAUSTED, message, limit, {},
                                                     {"Try again when other clients have disconnected"}))) +
        "\n";
    [[maybe_unused]] ssize_t n = ::send(cfd, refusal.data(), refusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::close(cfd);
    spdlog::warn("refused a connection: {} ({})", message, limit);
}

size_t SocketServer::connections_of(std::uint32_t uid) const {
    size_t n = 0;
    for (const auto& [_, c] : clients_) n += c->peer.uid == uid;
    return n;
}

int SocketServer::on_idle_check(sd_event_source* source, uint64_t, void* userdata) {
    auto* self = static_cast<SocketServer*>(userdata);
    const auto cutoff = std::chrono::steady_clock::now() - self->options_.idle_timeout;
    std::vector<int> idle;
    for (const auto& [fd, c] : self->clients_)
        if (!c->subscriber && c->last_input < cutoff) idle.push_back(fd);
    for (int fd : idle) self->drop(fd);
    if (!idle.empty()) spdlog::info("closed {} connection(s) idle for {} s", idle.size(), self->options_.idle_timeout.count());
    sd_event_source_set_time_relative(source, idle_check_usec(self->options_.idle_timeout));
    sd_event_source_set_enabled(source, SD_EVENT_ON);
    return 0;
}

void SocketServer::pause_accepting(int error) {
    sd_event_source_set_enabled(listen_source_, SD_EVENT_OFF);
    const auto pause_usec = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(kAcceptPause).count());
    int r = accept_retry_ ? sd_event_source_set_time_relative(accept_retry_, pause_usec)
                          : sd_event_add_time_relative(event_, &accept_retry_, CLOCK_MONOTONIC, pause_usec, 10'000, on_accept_retry, this);
    if (r >= 0) r = sd_event_source_set_enabled(accept_retry_, SD_EVENT_ONESHOT);
    if (r < 0) {
        // Without the timer the listener would stay off: better to retry at the next turn.
        spdlog::error("cannot arm the accept retry timer: {}", std::strerror(-r));
        sd_event_source_set_enabled(listen_source_, SD_EVENT_ON);
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_pause_log_ < kPauseLogInterval) {
        ++pauses_unlogged_;
        return;
    }
    spdlog::warn("accept on {}: {}; not accepting for {} ms at a time ({} more pauses since the last message); {} clients connected",
                 path_, std::strerror(error), kAcceptPause.count(), std::exchange(pauses_unlogged_, 0), clients_.size());
    last_pause_log_ = now;
}

int SocketServer::on_accept_retry(sd_event_source*, uint64_t, void* userdata) {
    auto* self = static_cast<SocketServer*>(userdata);
    sd_event_source_set_enabled(self->listen_source_, SD_EVENT_ON);
    return 0;
}

int SocketServer::on_client(sd_event_source*, int fd, uint32_t revents, void* userdata) {
    auto* self = static_cast<SocketServer*>(userdata);
    auto it = self->clients_.find(fd);
    if (it == self->clients_.end()) return 0;
    ClientConn& c = *it->second;
    if ((revents & EPOLLIN) && backlog(c) < kMaxPendingOutput) {
        char buf[65536];
        for (;;) {
            ssize_t n = ::read(fd, buf, sizeof buf);
            if (n > 0) {
                c.last_input = std::chrono::steady_clock::now();
                c.in.append(buf, static_cast<size_t>(n));
                if (c.in.size() > kMaxLine * 2) break; // serve() answers the oversize line, then we close
                continue;
            }
            if (n == 0) {
                c.closing = true; // peer finished writing; answer what it sent, then close
                break;
            }
            if (errno == EINTR) continue;
            if (errno != EAGAIN) c.closing = true, c.in.clear();
            break;
        }
    } else if (revents & (EPOLLHUP | EPOLLERR)) {
        c.closing = true;
    }
    self->pump(fd, c);
    return 0;
}

bool SocketServer::pump(int fd, ClientConn& c) {
    // Lines left waiting while the answers were backed up are served as the socket takes them.
    do {
        run_handler("client request", [this, &c] { serve(c); });
        if (!flush(c)) {
            drop(fd);
            return false;
        }
    } while (backlog(c) < kMaxPendingOutput && has_line(c.in));
    if (c.closing && c.out.empty() && c.held.empty()) {
        drop(fd);
        return false;
    }
    return true;
}

void SocketServer::answer(ClientConn& c, const nlohmann::json& envelope) {
    std::string line = dump_text(envelope) + "\n";
    // Every answer waits while anything written before it is not durable: a change's own, and a
    // read's that may show one; and behind this client's earlier held answers, to keep order.
    const std::uint64_t wait_for = unsynced_ ? unsynced_() : 0;
    if (wait_for == 0 && c.held.empty()) {
        append_moved(c.out, std::move(line));
        return;
    }
    append_moved(c.held, std::move(line));
    c.held_for = std::max(c.held_for, wait_for);
}

void SocketServer::durable(std::uint64_t seq) {
    std::vector<int> ready;
    for (auto& [fd, c] : clients_)
        if (!c->held.empty() && c->held_for <= seq) ready.push_back(fd);
    for (int fd : ready) {
        auto it = clients_.find(fd);
        if (it == clients_.end()) continue;
        ClientConn& c = *it->second;
        append_moved(c.out, std::exchange(c.held, {}));
        c.held_for = 0;
        pump(fd, c);
    }
}

void SocketServer::serve(ClientConn& c) {
    while (backlog(c) < kMaxPendingOutput) {
        auto nl = c.in.find('\n');
        if (nl == std::string::npos) {
            if (c.in.size() > kMaxLine) {
                auto err = error_envelope("unknown", ApiError(ErrorCode::INVALID_REQUEST, "request line too long",
                                                              "limit is " + std::to_string(kMaxLine) + " bytes"));
                answer(c, err);
                c.in.clear();
                c.closing = true;
            }
            return;
        }
        std::string line = c.in.substr(0, nl);
        c.in.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        Request request;
        try {
            request = parse_request_line(line); // parsed once, here
        } catch (const ApiError& e) {
            answer(c, error_envelope("unknown", e));
            continue;
        }
        if (request.operation == "subscribe") {
            // Shows no state, and the event lines that follow it go straight out: never held.
            c.out += dump_text(subscribe(c, request)) + "\n";
            continue;
        }
        answer(c, handler_(request, current_peer(c.peer, c.pidfd)));
    }
}

nlohmann::json SocketServer::subscribe(ClientConn& c, const Request& request) {
    auto started = std::chrono::steady_clock::now();
    try {
        check_params(request.params, find_operation("subscribe", "")->params);
        std::set<events::EventType> types;
        if (auto it = request.params.find("types"); it != request.params.end() && !it->is_null()) types = events::parse_event_types(*it);
        c.subscriber = true;
        c.types = std::move(types);
        SuccessBody body;
        nlohmann::json names = nlohmann::json::array();
        for (auto t : c.types) names.push_back(events::to_string(t));
        body.result = {{"subscribed", c.types.empty() ? nlohmann::json("all") : names}};
        auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
        return success_envelope("subscribe", Clock::now(), std::move(body), elapsed.count());
    } catch (const ApiError& e) {
        return error_envelope("subscribe", e);
    }
}

void SocketServer::broadcast(const events::Event& event) {
    std::string line;
    std::vector<int> failed;
    for (auto& [fd, c] : clients_) {
        if (!c->subscriber || (!c->types.empty() && !c->types.count(event.type))) continue;
        if (line.empty()) line = dump_text(event.to_json()) + "\n";
        if (c->out.size() + line.size() > kMaxSubscriberBacklog) {
            spdlog::warn("dropping event subscriber pid {}: {} bytes unread", c->peer.pid, c->out.size());
            failed.push_back(fd);
            continue;
        }
        c->out += line;
        if (!flush(*c)) failed.push_back(fd);
    }
    for (int fd : failed) drop(fd);
}

bool SocketServer::flush(ClientConn& c) {
    while (!c.out.empty()) {
        ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c.out.erase(0, static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        return false;
    }
    // Backed up: wait until the client reads, without reading more from it.
    uint32_t events = backlog(c) < kMaxPendingOutput ? EPOLLIN : 0u;
    if (!c.out.empty()) events |= EPOLLOUT;
    sd_event_source_set_io_events(c.source, events);
    return true;
}

void SocketServer::drop(int fd) {
    auto it = clients_.find(fd);
    if (it == clients_.end()) return;
    sd_event_source_disable_unref(it->second->source);
    if (it->second->pidfd >= 0) ::close(it->second->pidfd);
    ::close(fd);
    clients_.erase(it);
}

} // namespace resmgr::server
