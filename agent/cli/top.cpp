// `resmgr top`: polls resmgrd (status, monitor system, usage per workflow) once per sampling
// pass and prints the frame top_view.cpp makes of the answers.
//
// Plain ANSI escapes, not ncurses: the frame is already a list of lines fitted to the width by
// the pure renderer (which sanitizes, measures UTF-8 and cuts), so all the terminal needs is the
// alternate screen, cursor home, erase to the end of the line/screen and a hidden cursor, five
// sequences every terminal since the VT100 knows. ncurses would add a dependency and a second
// notion of character width (ncursesw + the locale's wcwidth), and its endwin() is not
// async-signal-safe, while restoring the terminal from a SIGINT/SIGTERM handler here is a write()
// and a tcsetattr(), both async-signal-safe.
#include "cli/top.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <set>

#include <CLI/CLI.hpp>

#include "cli/top_view.hpp"
#include "resmgr/client.hpp"
#include "resmgr/model.hpp"

namespace resmgr::cli {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kEnter = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J"; // alternate screen, cursor hidden, cleared
constexpr const char* kLeave = "\x1b[?25h\x1b[?1049l";              // cursor shown, main screen back
constexpr std::chrono::milliseconds kMaxInterval{2000};          // refresh at least this often

struct termios g_saved;
volatile sig_atomic_t g_raw = 0;     // the terminal is in top's mode and must be restored
volatile sig_atomic_t g_resized = 1; // SIGWINCH since the last look at the size (1: look at start)

void write_all(const char* data, size_t size) {
    while (size > 0) {
        ssize_t n = ::write(STDOUT_FILENO, data, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        data += n;
        size -= static_cast<size_t>(n);
    }
}

// Async-signal-safe: write() and tcsetattr() only.
void restore_terminal() {
    if (!g_raw) return;
    g_raw = 0;
    write_all(kLeave, std::strlen(kLeave));
    ::tcsetattr(STDIN_FILENO, TCSANOW, &g_saved);
}

void enter_terminal() {
    struct termios raw = g_saved;
    raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO)); // keys one at a time, not echoed; ISIG stays: Ctrl-C is SIGINT
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    ::tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    write_all(kEnter, std::strlen(kEnter));
    g_raw = 1;
}

void on_resize(int) { g_resized = 1; }

// SIGINT, SIGTERM, SIGHUP, SIGQUIT: the terminal back as it was, then die of the signal as if
// top had not caught it (the shell sees the real cause).
void on_fatal(int sig) {
    restore_terminal();
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

void install(int sig, void (*handler)(int)) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    ::sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: poll() returns at once on SIGWINCH
    ::sigaction(sig, &sa, nullptr);
}

// Ctrl-Z: leave the screen as the shell expects it while stopped, take it again on fg.
void on_stop(int) {
    const bool was_raw = g_raw;
    restore_terminal();
    ::signal(SIGTSTP, SIG_DFL);
    ::raise(SIGTSTP);
    // continued
    install(SIGTSTP, on_stop);
    if (was_raw) enter_terminal();
    g_resized = 1;
}

// One connection, reopened after a failure; each refresh asks status, monitor system and the
// usage of every workflow status names.
class Poller {
public:
    explicit Poller(std::string path) : path_(std::move(path)) {}

    // Refreshes `s`; on a failure keeps what `s` had and says why in s.problem.
    void poll(TopSnapshot& s) {
        try {
            if (!client_) client_ = std::make_unique<Client>(path_);
            TopSnapshot next;
            next.status = ask({"status", "", json::object()});
            next.monitor = ask({"monitor", "system", json::object()});
            std::set<std::string> workflows;
            if (const json& list = next.status.value("allocations", json::array()); list.is_array())
                for (const auto& a : list)
                    if (a.is_object() && a.value("workflow_id", json()).is_string()) workflows.insert(a["workflow_id"].get<std::string>());
            for (const auto& wf : workflows) {
                // An allocation released between the two calls: its workflow has no usage now.
                json envelope = client_->call({"usage", "", {{"workflow_id", wf}}});
                if (envelope.value("status", "") == "success") next.usage[wf] = envelope.value("result", json::object());
            }
            s = std::move(next);
        } catch (const ClientError& e) {
            client_.reset();
            s.problem = e.what();
        } catch (const std::exception& e) { // an error envelope, or an answer not of the shape asked for
            client_.reset();
            s.problem = e.what();
        }
    }

private:
    json ask(const Request& request) {
        json envelope = client_->call(request);
        if (envelope.value("status", "") != "success") {
            const json& error = envelope.value("error", json::object());
            throw std::runtime_error(request.operation + ": " + error.value("code", "ERROR") + ": " + error.value("message", ""));
        }
        return envelope.value("result", json::object());
    }

    std::string path_;
    std::unique_ptr<Client> client_;
};

// How often to ask: the daemon's sampling interval (a new pass each time), at most kMaxInterval.
std::chrono::milliseconds refresh_interval(const TopSnapshot& s, std::optional<double> seconds) {
    if (seconds) return std::chrono::milliseconds(static_cast<long long>(*seconds * 1000));
    std::chrono::milliseconds interval = kMaxInterval;
    if (auto it = s.monitor.find("sample_interval"); it != s.monitor.end() && it->is_string())
        if (auto d = parse_duration(it->get<std::string>()); d && *d > Millis(0)) interval = std::min(interval, *d);
    return interval;
}

std::pair<size_t, size_t> terminal_size() {
    struct winsize ws {};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) return {ws.ws_col, ws.ws_row};
    return {80, 24};
}

void draw(const std::vector<std::string>& lines) {
    std::string out = "\x1b[H";
    for (size_t i = 0; i < lines.size(); ++i) {
        out += lines[i] + "\x1b[K";
        if (i + 1 < lines.size()) out += "\r\n";
    }
    out += "\x1b[J";
    write_all(out.data(), out.size());
}

// The last character of a UTF-8 string taken off (backspace in the filter prompt).
void drop_last_character(std::string& s) {
    while (!s.empty()) {
        const auto c = static_cast<unsigned char>(s.back());
        s.pop_back();
        if ((c & 0xC0) != 0x80) break;
    }
}

struct Keys {
    bool quit = false;
    bool poll_now = false;
};

// Applies the bytes read from the keyboard to the options.
Keys handle_keys(std::string_view input, TopOptions& o, std::string& filter_before) {
    Keys keys;
    for (size_t i = 0; i < input.size(); ++i) {
        const char c = input[i];
        if (o.prompt) { // typing a filter: applied as it is typed
            if (c == '\r' || c == '\n') {
                o.prompt.reset();
            } else if (c == '\x1b') { // Esc: the filter as it was (an arrow key's sequence is dropped too)
                o.filter = filter_before;
                o.prompt.reset();
                return keys;
            } else if (c == '\x7f' || c == '\b') {
                drop_last_character(*o.prompt);
            } else if (static_cast<unsigned char>(c) >= 0x20 && o.prompt->size() < 200) {
                *o.prompt += c;
            }
            if (o.prompt) o.filter = *o.prompt;
            continue;
        }
        switch (c) {
        case 'q': case 'Q': keys.quit = true; return keys;
        case 'c': o.sort = SortKey::cpu; break;
        case 'm': o.sort = SortKey::memory; break;
        case 'p': o.sort = SortKey::priority; break;
        case '/': case 'f':
            filter_before = o.filter;
            o.prompt = o.filter;
            break;
        case ' ':
            o.paused = !o.paused;
            keys.poll_now = !o.paused;
            break;
        case '\x1b': return keys; // an escape sequence (arrows, function keys): not ours
        default: break;
        }
    }
    return keys;
}

int live(Poller& poller, TopOptions o, std::optional<double> interval_seconds) {
    if (::tcgetattr(STDIN_FILENO, &g_saved) != 0) {
        std::cerr << "resmgr top: the terminal's settings cannot be read: " << std::strerror(errno) << "\n";
        return 1;
    }
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) install(sig, on_fatal);
    install(SIGWINCH, on_resize);
    install(SIGTSTP, on_stop);
    enter_terminal();
    o.keys = true;
    TopSnapshot snapshot;
    std::string filter_before;
    auto next_poll = Clock::now();
    bool quit = false;
    while (!quit) {
        const auto now = Clock::now();
        if (!o.paused && now >= next_poll) {
            poller.poll(snapshot);
            next_poll = Clock::now() + refresh_interval(snapshot, interval_seconds);
        }
        if (g_resized) {
            g_resized = 0;
            std::tie(o.width, o.height) = terminal_size();
        }
        draw(render_top(snapshot, o));
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_poll - Clock::now()).count();
        struct pollfd pfd {STDIN_FILENO, POLLIN, 0};
        const int ready = ::poll(&pfd, 1, o.paused ? -1 : static_cast<int>(std::max<long long>(0, wait)));
        if (ready > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL))) break; // the terminal went away
        if (ready > 0) {
            char buf[64];
            const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
            if (n > 0) {
                Keys keys = handle_keys(std::string_view(buf, static_cast<size_t>(n)), o, filter_before);
                quit = keys.quit;
                if (keys.poll_now) next_poll = Clock::now();
            }
        }
    }
    restore_terminal();
    return 0;
}

constexpr const char* kDescription =
    "resmgr top - the node and its allocations, live.\n\n"
    "Usage: resmgr [--socket PATH] top [--once] [--sort cpu|memory|priority] [--filter TEXT] [--interval SECONDS] [--width N]\n\n"
    "A node line (CPU and memory used and allocated, PSI pressure, agents, thresholds raised), then one\n"
    "row per allocation: workflow, allocation, priority, state (running, idle, paused, degraded,\n"
    "queued #N), CPU used/allocated, memory used/allocated with a bar, processes, live agents/slots,\n"
    "tools running (eBPF), share of CPU periods throttled, run-queue latency p99 (eBPF). What this host\n"
    "does not measure is shown as \"-\" and named below the table.\n"
    "Refreshed every sampling pass of resmgrd (at least every 2 s).\n\n"
    "Keys: c sort by CPU, m by memory, p by priority; / or f filter by workflow (Enter keeps it,\n"
    "Esc drops it); space pause; q quit.";

constexpr const char* kExamples =
    "Examples:\n"
    "  resmgr top                           live view (a terminal is needed)\n"
    "  resmgr top --sort memory --filter wf-4\n"
    "  resmgr top --once                    one frame on stdout: no escapes unless a terminal, every row\n"
    "  resmgr top --once --width 200 | grep queued\n"
    "Colour only on a terminal and when NO_COLOR is unset; UTF-8 bars only in a UTF-8 locale.";

} // namespace

int run_top(const std::vector<std::string>& args) {
    CLI::App app{kDescription, "resmgr top"};
    std::string socket, sort = "cpu", filter;
    bool once = false;
    std::optional<double> interval;
    std::optional<size_t> width;
    app.add_option("--socket", socket, "resmgrd's socket (default: $RESMGR_SOCKET, else /run/resmgr/resmgr.sock)");
    app.add_flag("--once", once, "Print one frame and exit (for scripts)");
    app.add_option("--sort", sort, "Sort by cpu (used), memory (used) or priority; largest first")
        ->check(CLI::IsMember({"cpu", "memory", "priority"}));
    app.add_option("--filter", filter, "Only workflows whose id contains TEXT (ignoring case)");
    app.add_option("--interval", interval, "Seconds between refreshes (default: resmgrd's sampling interval, at most 2)")
        ->check(CLI::Range(0.1, 3600.0));
    app.add_option("--width", width, "--once: columns to fit (default: the terminal's width, else $COLUMNS, else 120)")
        ->check(CLI::Range(20, 10000));
    app.footer(kExamples);
    std::vector<std::string> reversed(args.rbegin(), args.rend() - 1);
    try {
        app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return e.get_exit_code() == 0 ? 0 : (rc == 0 ? 0 : 2);
    }

    TopOptions o;
    o.sort = sort == "memory" ? SortKey::memory : sort == "priority" ? SortKey::priority : SortKey::cpu;
    o.filter = filter;
    o.charset = locale_charset();
    const bool tty = ::isatty(STDOUT_FILENO) == 1;
    o.colour = colour_wanted(tty, std::getenv("NO_COLOR"), std::getenv("TERM"));
    Poller poller(resolve_socket_path(socket));
    if (!once) {
        if (!tty || ::isatty(STDIN_FILENO) != 1) {
            std::cerr << "resmgr top: the live view needs a terminal on stdin and stdout; for scripts use `resmgr top --once`\n";
            return 2;
        }
        return live(poller, o, interval);
    }
    TopSnapshot snapshot;
    poller.poll(snapshot);
    if (snapshot.status.empty() && !snapshot.problem.empty()) {
        std::cerr << "resmgr top: resmgrd is not reachable: " << snapshot.problem << "\n"
                  << "  try: Start resmgrd (systemctl start resmgrd)\n  try: Check --socket / RESMGR_SOCKET\n";
        return 1;
    }
    if (width) o.width = *width;
    else if (tty) o.width = terminal_size().first;
    else if (const char* columns = std::getenv("COLUMNS"); columns && std::atoi(columns) >= 20) o.width = static_cast<size_t>(std::atoi(columns));
    else o.width = 120;
    for (const auto& line : render_top(snapshot, o)) std::cout << line << "\n";
    return snapshot.problem.empty() ? 0 : 1;
}

} // namespace resmgr::cli
