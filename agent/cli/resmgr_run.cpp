// resmgr-run: run one command inside an allocation. As root it allocates, then starts the
// command born in the new group (clone3 CLONE_INTO_CGROUP). Otherwise it forks the command's
// process first, which waits; allocates with that process to be placed in the new group in the
// same step (or joins an allocation and has it attached; resmgrd checks via SO_PEERCRED that the
// pid is the asker's own child), then lets it exec the command. Either way it waits, releases,
// and exits with the command's status.
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <iostream>

#include "cli/run_options.hpp"
#include "cli/progress.hpp"
#include "cli/text.hpp"
#include "resmgr/client.hpp"

namespace {

using nlohmann::json;

constexpr int kOwnError = 125; // like env(1)/nice(1): resmgr-run itself failed
constexpr int kCannotExec = 126;
constexpr int kNotFound = 127;

volatile sig_atomic_t g_child = 0;
volatile sig_atomic_t g_stop_waiting = 0;

void stop_waiting(int sig) { g_stop_waiting = sig; }

void forward_signal(int sig) {
    if (g_child > 0) ::kill(g_child, sig);
}

std::string error_text(const json& envelope) {
    const json& e = envelope.value("error", json::object());
    std::string text = e.value("code", "ERROR") + ": " + e.value("message", "unknown error");
    if (auto d = e.value("details", ""); !d.empty()) text += " (" + d + ")";
    for (auto& s : envelope.value("alternative_options", json::array())) text += "\n  or: " + s.get<std::string>();
    return text;
}

// In the child: "<exit code> <message>" to the parent through `err_fd`, then exit.
[[noreturn]] void child_fail(int err_fd, int code, const std::string& message) {
    std::string msg = std::to_string(code) + " " + message;
    (void)!::write(err_fd, msg.data(), msg.size());
    ::_exit(code);
}

// In the child: become the command, or report why not through `err_fd`.
[[noreturn]] void exec_command(const std::vector<std::string>& command, int err_fd) {
    std::vector<char*> argv;
    for (auto& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    int err = errno;
    child_fail(err_fd, err == ENOENT ? kNotFound : kCannotExec, command[0] + ": " + std::strerror(err));
}

// In the child: wait until resmgr-run has had us placed in the group, then become the command.
// After `go` comes the allocation's temporary directory (maybe none), which becomes TMPDIR.
[[noreturn]] void run_child(const std::vector<std::string>& command, int go_fd, int err_fd) {
    char go[4097];
    ssize_t n = 0, got = 0;
    while (got < static_cast<ssize_t>(sizeof go) - 1 && ((n = ::read(go_fd, go + got, sizeof go - 1 - got)) > 0 || (n < 0 && errno == EINTR)))
        got += n > 0 ? n : 0;
    if (got < 1) ::_exit(kOwnError); // resmgr-run gave up before placing us, and says why
    go[got] = 0;
    if (got > 1) ::setenv("TMPDIR", go + 1, 1);
    exec_command(command, err_fd);
}

// The command's process: its pid, the pipe it reports an exec failure on, and (until `go` is
// written) the pipe it waits on; go_fd is -1 for a process born in its group, which runs at once.
struct Command {
    pid_t pid = -1;
    int go_fd = -1;
    int err_fd = -1;
};

// Forks the process that waits for `go`. pid -1 (errno set) on failure.
Command fork_waiting(const std::vector<std::string>& command) {
    int err_pipe[2], go_pipe[2];
    if (::pipe2(err_pipe, O_CLOEXEC) < 0) return {};
    if (::pipe2(go_pipe, O_CLOEXEC) < 0) {
        ::close(err_pipe[0]), ::close(err_pipe[1]);
        return {};
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(err_pipe[0]);
        ::close(go_pipe[1]);
        run_child(command, go_pipe[0], err_pipe[1]);
    }
    ::close(err_pipe[1]);
    ::close(go_pipe[0]);
    if (pid < 0) {
        const int err = errno;
        ::close(err_pipe[0]), ::close(go_pipe[1]);
        errno = err;
        return {};
    }
    return {pid, go_pipe[1], err_pipe[0]};
}

// Starts COMMAND born in the cgroup `leaf_dir` (clone3 with CLONE_INTO_CGROUP; glibc 2.36 has
// no wrapper). pid -1 when the kernel refuses; nothing has run then.
Command spawn_into(const std::string& leaf_dir, const std::vector<std::string>& command, const std::string& tmpdir) {
    const int cgroup_fd = ::open(leaf_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgroup_fd < 0) return {};
    int err_pipe[2];
    if (::pipe2(err_pipe, O_CLOEXEC) < 0) {
        ::close(cgroup_fd);
        return {};
    }
    clone_args args{};
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = static_cast<std::uint64_t>(cgroup_fd);
    const long pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) {
        ::close(err_pipe[0]);
        if (!tmpdir.empty()) ::setenv("TMPDIR", tmpdir.c_str(), 1);
        exec_command(command, err_pipe[1]);
    }
    ::close(cgroup_fd);
    ::close(err_pipe[1]);
    if (pid < 0) {
        ::close(err_pipe[0]);
        return {};
    }
    return {static_cast<pid_t>(pid), -1, err_pipe[0]};
}

} // namespace

int main(int argc, char** argv) {
    using resmgr::cli::ParsedRunOptions;
    ParsedRunOptions parsed = resmgr::cli::parse_run_options(argc, argv);
    switch (parsed.outcome) {
    case ParsedRunOptions::Outcome::help: std::cout << resmgr::cli::run_options_help(); return 0;
    case ParsedRunOptions::Outcome::version: std::cout << "resmgr-run " << RESMGR_VERSION << "\n"; return 0;
    case ParsedRunOptions::Outcome::usage_error: std::cerr << "resmgr-run: " << parsed.error << " (see --help)\n"; return 2;
    case ParsedRunOptions::Outcome::run: break;
    }
    resmgr::cli::RunOptions& opt = parsed.options;
    std::string tmpdir;

    const std::string path = resmgr::resolve_socket_path(opt.socket);
    const bool own_allocation = opt.allocation.empty();

    // Reports how the command ended; resmgrd applies auto_release.on_completion / on_failure.
    auto release = [&](int exit_status) -> json {
        if (!opt.agent.empty()) {
            // The pool counts an agent that exited non-zero as failed.
            try {
                resmgr::Client(path).call({"detach", "", {{"allocation_id", opt.allocation}, {"agent", opt.agent}, {"exit_status", exit_status}}});
            } catch (const std::exception& e) {
                std::cerr << "resmgr-run: could not report agent " << opt.agent << "'s exit: " << e.what() << "\n";
            }
        }
        if (!own_allocation) return json::object();
        try {
            resmgr::Client client(path);
            json reply = client.call({"release", "", {{"allocation_id", opt.allocation}, {"exit_status", exit_status}}});
            if (reply.value("status", "") != "success")
                std::cerr << "resmgr-run: could not release " << opt.allocation << ": " << error_text(reply) << "\n";
            return reply;
        } catch (const std::exception& e) {
            std::cerr << "resmgr-run: could not release " << opt.allocation << ": " << e.what() << "\n";
            return json::object();
        }
    };

    // Root starts the command in its group itself, born there (clone3 CLONE_INTO_CGROUP): no move
    // of a running process (resmgrd's write to cgroup.procs took 15-28 ms under strace in the
    // system-test VM, of a ~90 ms run). Others cannot: the kernel wants write access
    // to cgroup.procs of the common ancestor, the root cgroup. Their command's process is forked
    // first and waits for `go` while resmgrd moves it into the group (for a new allocation in
    // the same step that makes the group).
    const bool spawn = own_allocation && opt.agent.empty() && ::geteuid() == 0;
    Command child;
    auto fork_child = [&] {
        if (child.pid > 0) return true;
        child = fork_waiting(opt.command);
        if (child.pid > 0) return true;
        std::cerr << "resmgr-run: fork: " << std::strerror(errno) << "\n";
        return false;
    };
    // Before `go` the child has not started COMMAND: giving up ends it.
    auto abandon = [&](int code) {
        if (child.go_fd >= 0) ::close(child.go_fd);
        while (child.pid > 0 && ::waitpid(child.pid, nullptr, 0) < 0 && errno == EINTR) {}
        return code;
    };
    if (!spawn && !fork_child()) return kOwnError;
    json place = json::object();
    if (opt.agent.empty()) place["leaf"] = "main";
    else place["agent"] = opt.agent;
    // An agent waiting for a slot is answered "queued" and asks again every 200 ms, as a queued
    // allocation does; resmgrd drops a waiter that stops asking.
    auto attach = [&] {
        if (!fork_child()) return false;
        json params = place;
        params["pid"] = child.pid;
        params["allocation_id"] = opt.allocation;
        if (!opt.wait_slot.empty()) params["wait_slot"] = opt.wait_slot;
        else params["wait_held"] = "5m"; // the default --wait-slot's help states
        struct sigaction on_stop{};
        on_stop.sa_handler = stop_waiting;
        for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &on_stop, nullptr);
        std::size_t shown = 0;
        json reply;
        for (;;) {
            reply = resmgr::Client(path).call({"attach", "", params});
            if (reply.value("status", "") != "success" || !reply["result"].value("queued", false) || g_stop_waiting) break;
            if (const std::size_t position = reply["result"].value("queue_position", std::size_t{0}); position != shown) {
                shown = position;
                std::cerr << "resmgr-run: agent " << opt.agent << " waits for a slot in " << opt.allocation << " (position " << position << ", Ctrl-C gives up)\n";
            }
            ::usleep(200'000);
        }
        for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_DFL);
        const bool started = reply.value("status", "") == "success";
        if (started && reply["result"].value("queued", false)) {
            std::cerr << "resmgr-run: gave up waiting for an agent slot\n";
            return false;
        }
        if (started) {
            tmpdir = reply["result"].value("tmpdir", "");
            if (const double waited = reply["result"].value("slot_wait_seconds", 0.0); waited > 0 && !opt.quiet)
                std::cerr << "resmgr-run: agent " << opt.agent << " started after waiting " << waited << " s for a slot\n";
            return true;
        }
        std::cerr << "resmgr-run: cannot enter allocation " << opt.allocation << ": " << error_text(reply) << "\n";
        return false;
    };
    try {
        if (own_allocation) {
            if (opt.workflow.empty()) {
                const char* env = std::getenv("RESMGR_WORKFLOW");
                opt.workflow = env && *env ? env : "run-" + std::to_string(::getpid());
            }
            json resources{{"cpu_cores", opt.cpu}};
            if (!opt.agent.empty()) resources["agents"] = 1;
            if (!opt.memory.empty()) resources["memory"] = opt.memory;
            if (opt.pids > 0) resources["pids"] = opt.pids;
            if (!opt.storage.empty()) resources["storage_gb"] = opt.storage;
            // supervised: resmgrd leaves release to us while we live, and takes over if we die.
            json params{{"workflow_id", opt.workflow}, {"priority", opt.priority}, {"resources", opt.auto_size ? json("auto") : resources},
                        {"requester", "resmgr-run " + opt.command.front()}, {"supervised", true}};
            // An agent enters through attach, the way every agent start meets the slot queue.
            if (spawn) params["attach"] = {{"spawn", true}};
            else if (opt.agent.empty()) {
                params["attach"] = place;
                params["attach"]["pid"] = child.pid;
            }
            if (!opt.duration.empty()) params["duration"] = opt.duration;
            if (!opt.workflow_type.empty()) params["workflow_type"] = opt.workflow_type;
            if (!opt.grace.empty()) params["auto_release"] = {{"grace_period", opt.grace}};
            if (opt.wait) params["wait"] = true;
            if (!opt.exclusive.empty()) params["exclusive_files"] = opt.exclusive;
            resmgr::Client client(path);
            json reply = client.call({"allocate", "", params});
            if (reply.value("status", "") != "success") {
                std::cerr << "resmgr-run: allocation refused: " << error_text(reply) << "\n";
                return abandon(kOwnError);
            }
            opt.allocation = reply["result"]["allocation_id"];
            tmpdir = reply["result"].value("tmpdir", "");
            const bool placed = reply["result"].contains("attached");
            // The leaf resmgrd made for the command to be born in.
            std::string spawn_dir = reply["result"].value("spawn_into", "");
            if (reply["result"]["allocation"].value("status", "") == "queued") {
                // Waiting: a status query every 200 ms is cheap for resmgrd and survives its restarts.
                std::cerr << "resmgr-run: queued as " << opt.allocation << " (Ctrl-C cancels)\n";
                // What it waits for, on a terminal rewritten in place, else one line per change.
                const bool in_place = ::isatty(STDERR_FILENO) == 1;
                const resmgr::cli::Charset charset = resmgr::cli::locale_charset();
                std::string shown;
                auto show = [&](const json& status_result) {
                    const std::string line = resmgr::cli::queue_progress(status_result, opt.allocation);
                    if (line.empty() || line == shown) return;
                    shown = line;
                    const std::string text = resmgr::cli::sanitize("resmgr-run: " + line, charset);
                    if (in_place) std::cerr << "\r\x1b[K" << text << std::flush;
                    else std::cerr << text << std::endl;
                };
                auto end_line = [&] {
                    if (in_place && !shown.empty()) std::cerr << "\n";
                };
                struct sigaction on_stop{};
                on_stop.sa_handler = stop_waiting;
                for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &on_stop, nullptr);
                for (;;) {
                    if (g_stop_waiting) {
                        end_line();
                        resmgr::Client(path).call({"release", "", {{"allocation_id", opt.allocation}}});
                        std::cerr << "resmgr-run: gave up waiting; queued request " << opt.allocation << " cancelled\n";
                        return abandon(128 + g_stop_waiting);
                    }
                    ::usleep(200'000);
                    // The whole status: capacity, and the others holding what this one waits for.
                    json st = resmgr::Client(path).call({"status", "", json::object()});
                    json mine = json::array();
                    if (st.value("status", "") == "success")
                        for (const auto& a : st["result"].value("allocations", json::array()))
                            if (a.value("allocation_id", "") == opt.allocation) mine.push_back(a);
                    if (st.value("status", "") == "success" && mine.empty())
                        st = resmgr::Client(path).call({"status", "", {{"allocation_id", opt.allocation}}}); // its NOT_FOUND error
                    if (st.value("status", "") != "success") {
                        end_line();
                        std::cerr << "resmgr-run: queued request " << opt.allocation << " is gone: " << error_text(st) << "\n";
                        return abandon(kOwnError);
                    }
                    reply["result"] = {{"enforcement", mine[0].value("enforcement", json::object())}};
                    tmpdir = mine[0].value("tmpdir", "");
                    if (mine[0].value("status", "") == "active") break;
                    show(st["result"]);
                }
                end_line();
                for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_DFL);
                if (!opt.quiet) std::cerr << "resmgr-run: capacity is free, starting\n";
            }
            if (!spawn_dir.empty()) {
                child = spawn_into(spawn_dir, opt.command, tmpdir);
                // Refused (a kernel before 5.7, a seccomp filter): forked and moved after all.
                if (child.pid < 0) spawn_dir.clear();
            }
            if (!placed && spawn_dir.empty() && !attach()) {
                release(kOwnError);
                return abandon(kOwnError);
            }
            if (!opt.quiet)
                for (auto& u : reply["result"]["enforcement"].value("unenforced", json::array()))
                    std::cerr << "resmgr-run: warning: not enforced on this host: " << u.get<std::string>() << "\n";
        } else if (!attach()) {
            return abandon(kOwnError);
        }
    } catch (const std::exception& e) {
        std::cerr << "resmgr-run: " << e.what() << "\n";
        if (own_allocation && !opt.allocation.empty()) release(kOwnError);
        return abandon(kOwnError);
    }
    if (child.go_fd >= 0) {
        const std::string go = "\1" + tmpdir;
        if (::write(child.go_fd, go.data(), go.size()) != static_cast<ssize_t>(go.size())) {
            std::cerr << "resmgr-run: cannot start the command: " << std::strerror(errno) << "\n";
            release(kOwnError);
            return abandon(kOwnError);
        }
        ::close(child.go_fd);
        child.go_fd = -1;
    }
    g_child = child.pid;
    // The terminal delivers ^C/^\ to the whole foreground group, child included; forward only
    // what is sent to us by pid (systemctl stop, kill).
    struct sigaction forward{};
    forward.sa_handler = forward_signal;
    sigemptyset(&forward.sa_mask);
    for (int sig : {SIGTERM, SIGHUP}) ::sigaction(sig, &forward, nullptr);
    for (int sig : {SIGINT, SIGQUIT}) ::signal(sig, SIG_IGN);

    std::string child_error;
    char buf[4096];
    for (ssize_t n; (n = ::read(child.err_fd, buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        child_error.append(buf, static_cast<size_t>(n));
    }
    ::close(child.err_fd);

    int status = 0;
    while (::waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {}
    int exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (!child_error.empty()) exit_status = std::atoi(child_error.substr(0, child_error.find(' ')).c_str());
    json released = release(exit_status);
    if (released.contains("result") && released["result"].value("kept", false))
        std::cerr << "resmgr-run: allocation " << opt.allocation << " is kept (its auto_release settings say so)\n";

    if (!child_error.empty()) {
        std::cerr << "resmgr-run: " << child_error.substr(child_error.find(' ') + 1) << "\n";
        return exit_status;
    }
    if (WIFEXITED(status)) return exit_status;
    int sig = WTERMSIG(status);
    if (released.contains("result") && released["result"].value("reason", "") == "expired")
        std::cerr << "resmgr-run: allocation " << opt.allocation << " reached its duration (--duration " << opt.duration << ")\n";
    long oom_kills = 0;
    if (released.contains("result")) oom_kills = released["result"].value("final", json::object()).value("oom_kills", 0L);
    if (sig == SIGKILL && oom_kills > 0)
        std::cerr << "resmgr-run: " << opt.command.front() << " was killed by the OOM killer (memory limit "
                  << (opt.memory.empty() ? "of the allocation" : opt.memory) << ", " << oom_kills << " OOM kill(s) in "
                  << opt.allocation << ")\n";
    else
        std::cerr << "resmgr-run: " << opt.command.front() << " was killed by signal " << sig << " (" << strsignal(sig) << ")\n";
    return 128 + sig;
}
