// `resmgr top` as a person sees it: under a real pseudo-terminal (forkpty), against a resmgrd of
// the test's own with two running workflows; and `--once` as a script reads it.
#include "build_paths.hpp"
#include <gtest/gtest.h>

#include <poll.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <termios.h>

#include <sstream>

#include "daemon_fixture.hpp"

using namespace resmgr::host;

namespace {

constexpr const char* kLeave = "\x1b[?25h\x1b[?1049l"; // cursor shown, main screen back

// The lines of the last complete frame top drew (from cursor home to "erase below"), as the
// terminal shows them: erase-line and colour sequences and carriage returns taken out.
std::vector<std::string> last_frame(const std::string& seen) {
    const size_t end = seen.rfind("\x1b[J");
    if (end == std::string::npos) return {};
    const size_t start = seen.rfind("\x1b[H", end);
    if (start == std::string::npos) return {};
    // top ends lines with "\r\n"; the pty's ONLCR makes that "\r\r\n": without_escapes drops the "\r".
    const std::string plain = without_escapes(seen.substr(start + 3, end - start - 3));
    std::vector<std::string> lines;
    size_t from = 0;
    for (size_t at; (at = plain.find('\n', from)) != std::string::npos; from = at + 1) lines.push_back(plain.substr(from, at - from));
    lines.push_back(plain.substr(from));
    return lines;
}

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (auto& l : lines) out += l + "\n";
    return out;
}

// The table row of `workflow` split into words (a row's cells hold no spaces on this host).
std::vector<std::string> row_words(const std::vector<std::string>& frame, const std::string& workflow) {
    for (auto& line : frame)
        if (line.rfind(workflow + " ", 0) == 0) {
            std::istringstream in(line);
            std::vector<std::string> words;
            for (std::string w; in >> w;) words.push_back(w);
            return words;
        }
    return {};
}

size_t row_index(const std::vector<std::string>& frame, const std::string& workflow) {
    for (size_t i = 0; i < frame.size(); ++i)
        if (frame[i].rfind(workflow + " ", 0) == 0) return i;
    return std::string::npos;
}

// Columns on screen: UTF-8 characters (the frame's dashes, bars and ellipses are one column each).
size_t columns(const std::string& line) {
    size_t n = 0;
    for (unsigned char c : line) n += (c & 0xC0) != 0x80;
    return n;
}

class TopHost : public DaemonHost {
protected:
    std::vector<pid_t> runners;
    pid_t top = -1;
    int master = -1;
    std::string seen;

    void TearDown() override {
        if (top > 0) {
            ::kill(top, SIGKILL);
            ::waitpid(top, nullptr, 0);
        }
        if (master >= 0) ::close(master);
        for (pid_t r : runners) ::kill(r, SIGTERM);
        DaemonHost::TearDown(); // releases the allocations (killing what is left in them)
        for (pid_t r : runners) exit_within(r, std::chrono::seconds(10));
    }

    // wf-burn (low priority) keeps a CPU busy; wf-grow (high priority) starts a process every 0.3 s.
    void start_two_workflows() {
        runners.push_back(spawn({build_paths::resmgr_run, "--socket", socket, "--workflow", "wf-burn", "--priority", "low", "--cpu", "0.5", "--",
                                 "/bin/sh", "-c", "while :; do :; done"},
                                dir + "/burn.log"));
        runners.push_back(spawn({build_paths::resmgr_run, "--socket", socket, "--workflow", "wf-grow", "--priority", "high", "--cpu", "1", "--",
                                 "/bin/sh", "-c", "for i in $(seq 1 100); do sleep 120 & sleep 0.3; done; wait"},
                                dir + "/grow.log"));
        ASSERT_TRUE(wait_until([&] {
            json st = cli_json({"status"});
            int running = 0;
            for (auto& a : st["result"]["allocations"]) running += a.value("pids", json(0)).is_number() && a["pids"].get<int>() > 0;
            return running == 2;
        }, std::chrono::seconds(15))) << slurp(dir + "/burn.log") << slurp(dir + "/grow.log");
    }

    void start_top(unsigned short cols, unsigned short rows) {
        struct winsize ws {};
        ws.ws_col = cols;
        ws.ws_row = rows;
        top = ::forkpty(&master, nullptr, nullptr, &ws);
        ASSERT_GE(top, 0) << std::strerror(errno);
        if (top == 0) {
            ::setenv("TERM", "xterm-256color", 1);
            ::setenv("LANG", "C.UTF-8", 1);
            ::unsetenv("NO_COLOR");
            ::execl(build_paths::resmgr_cli, build_paths::resmgr_cli, "--socket", socket.c_str(), "top", "--interval", "0.5", static_cast<char*>(nullptr));
            ::_exit(127);
        }
    }

    // Reads what top writes for up to `limit`, until `done` holds for the last frame.
    bool read_until(const std::function<bool(const std::vector<std::string>&)>& done, std::chrono::milliseconds limit) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            if (done(last_frame(seen))) return true;
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
            if (left <= 0) return false;
            struct pollfd pfd {master, POLLIN, 0};
            if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) continue;
            char buf[4096];
            const ssize_t n = ::read(master, buf, sizeof buf);
            if (n <= 0) return done(last_frame(seen)); // top has gone (EIO on the master)
            seen.append(buf, static_cast<size_t>(n));
        }
    }

    // Everything top writes until it exits; its exit status.
    int drain_until_exit(std::chrono::milliseconds limit) {
        read_until([](const auto&) { return false; }, limit);
        const int status = exit_within(top, std::chrono::seconds(1));
        top = -1;
        return status;
    }

    void press(const std::string& keys) { ASSERT_EQ(::write(master, keys.data(), keys.size()), static_cast<ssize_t>(keys.size())); }

    // The pty's settings after top: line editing and echo back on (termios is shared by both ends).
    void expect_terminal_restored() {
        EXPECT_NE(seen.rfind(kLeave), std::string::npos) << "the cursor and the main screen are given back";
        EXPECT_GT(seen.rfind(kLeave), seen.rfind("\x1b[J")) << "after the last frame";
        struct termios t {};
        ASSERT_EQ(::tcgetattr(master, &t), 0);
        EXPECT_TRUE(t.c_lflag & ICANON) << "line editing back";
        EXPECT_TRUE(t.c_lflag & ECHO) << "echo back";
    }
};

} // namespace

TEST_F(TopHost, LiveViewShowsBothWorkflowsUpdatesSortsFiltersResizesAndQuits) {
    ASSERT_NO_FATAL_FAILURE(start_two_workflows());
    ASSERT_NO_FATAL_FAILURE(start_top(160, 40));
    // Both rows, each with a measured CPU figure ("used/allocated").
    ASSERT_TRUE(read_until([](const auto& f) { return row_words(f, "wf-burn").size() > 7 && row_words(f, "wf-grow").size() > 7; },
                           std::chrono::seconds(15)))
        << joined(last_frame(seen)) << slurp(log);
    const std::vector<std::string> first = last_frame(seen);
    EXPECT_NE(first[0].find("resmgr top"), std::string::npos) << joined(first);
    EXPECT_NE(joined(first).find("WORKFLOW"), std::string::npos);
    EXPECT_NE(joined(first).find("q quit"), std::string::npos) << "the key line";
    for (auto& line : first) EXPECT_LE(columns(line), 160u) << line;
    // wf-grow's processes (PIDS, the 8th word of its row) grow between two captures.
    const auto pids = [](const std::vector<std::string>& frame) {
        auto words = row_words(frame, "wf-grow");
        return words.size() > 7 ? std::atol(words[7].c_str()) : -1;
    };
    const long pids_before = pids(first);
    EXPECT_GE(pids_before, 1) << joined(first);
    EXPECT_TRUE(read_until([&](const auto& f) { return pids(f) > pids_before; }, std::chrono::seconds(5)))
        << "before:\n" << joined(first) << "after:\n" << joined(last_frame(seen));

    // p: priority, high (wf-grow) above low (wf-burn).
    press("p");
    EXPECT_TRUE(read_until([](const auto& f) {
        return joined(f).find("sort: priority") != std::string::npos && row_index(f, "wf-grow") < row_index(f, "wf-burn");
    }, std::chrono::seconds(3))) << joined(last_frame(seen));
    // c: CPU used, the busy loop (wf-burn) above the sleeps (wf-grow).
    press("c");
    EXPECT_TRUE(read_until([](const auto& f) {
        return joined(f).find("sort: cpu") != std::string::npos && row_index(f, "wf-burn") < row_index(f, "wf-grow");
    }, std::chrono::seconds(5))) << joined(last_frame(seen));
    // / filters by workflow as it is typed; Enter keeps it.
    press("/burn\r");
    EXPECT_TRUE(read_until([](const auto& f) {
        return joined(f).find("filter: burn") != std::string::npos && row_index(f, "wf-burn") != std::string::npos &&
               row_index(f, "wf-grow") == std::string::npos;
    }, std::chrono::seconds(3))) << joined(last_frame(seen));
    // A narrower terminal: the next frame fits it.
    struct winsize ws {};
    ws.ws_col = 50;
    ws.ws_row = 20;
    ASSERT_EQ(::ioctl(master, TIOCSWINSZ, &ws), 0);
    ::kill(top, SIGWINCH);
    EXPECT_TRUE(read_until([](const auto& f) {
        if (f.size() > 20 || row_index(f, "wf-burn") == std::string::npos) return false;
        return std::all_of(f.begin(), f.end(), [](const std::string& l) { return columns(l) <= 50; });
    }, std::chrono::seconds(3))) << [&] {
        std::string out;
        for (auto& l : last_frame(seen)) out += std::to_string(columns(l)) + ": " + l + "\n";
        return out;
    }();

    press("q");
    EXPECT_EQ(drain_until_exit(std::chrono::seconds(3)), 0);
    expect_terminal_restored();
}

TEST_F(TopHost, SigtermAndSigintRestoreTheTerminal) {
    for (int sig : {SIGTERM, SIGINT}) {
        seen.clear();
        ASSERT_NO_FATAL_FAILURE(start_top(100, 30));
        ASSERT_TRUE(read_until([](const auto& f) { return joined(f).find("(no allocations)") != std::string::npos; },
                               std::chrono::seconds(10)))
            << joined(last_frame(seen));
        ::kill(top, sig);
        EXPECT_EQ(drain_until_exit(std::chrono::seconds(3)), 128 + sig) << "dies of the signal, as the shell expects";
        expect_terminal_restored();
        ::close(master);
        master = -1;
    }
}

TEST_F(TopHost, OnceIsStableForScripts) {
    ASSERT_NO_FATAL_FAILURE(start_two_workflows());
    std::vector<std::vector<std::string>> frames;
    for (int i = 0; i < 2; ++i) {
        if (i) std::this_thread::sleep_for(std::chrono::milliseconds(1200)); // another sampling pass
        RunResult r = run({build_paths::resmgr_cli, "--socket", socket, "top", "--once", "--width", "100", "--sort", "priority"},
                          {"LANG=C.UTF-8", "TERM=xterm"});
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "no escapes when stdout is not a terminal:\n" << r.out;
        std::vector<std::string> lines;
        std::istringstream in(r.out);
        for (std::string l; std::getline(in, l);) lines.push_back(l);
        for (auto& l : lines) EXPECT_LE(columns(l), 100u) << l;
        EXPECT_NE(row_index(lines, "wf-grow"), std::string::npos) << r.out;
        EXPECT_LT(row_index(lines, "wf-grow"), row_index(lines, "wf-burn")) << "--sort priority:\n" << r.out;
        EXPECT_EQ(r.out.find("q quit"), std::string::npos) << "no key line for scripts";
        frames.push_back(lines);
    }
    // The same lines in the same places: only the values change between passes.
    ASSERT_EQ(frames[0].size(), frames[1].size()) << joined(frames[0]) << joined(frames[1]);
    const size_t header = row_index(frames[0], "WORKFLOW");
    ASSERT_NE(header, std::string::npos);
    EXPECT_EQ(frames[0][header], frames[1][header]);
    const auto first_word = [](const std::string& l) { return l.substr(0, l.find(' ')); };
    for (size_t i = 0; i < frames[0].size(); ++i) EXPECT_EQ(first_word(frames[0][i]), first_word(frames[1][i])) << "line " << i;

    RunResult no_tty = run({build_paths::resmgr_cli, "--socket", socket, "top"});
    EXPECT_EQ(no_tty.status, 2);
    EXPECT_NE(no_tty.err.find("use `resmgr top --once`"), std::string::npos) << no_tty.err;
    RunResult help = run({build_paths::resmgr_cli, "top", "--help"});
    EXPECT_EQ(help.status, 0);
    EXPECT_NE(help.out.find("Examples:"), std::string::npos) << help.out;
    RunResult down = run({build_paths::resmgr_cli, "--socket", dir + "/nobody.sock", "top", "--once"});
    EXPECT_EQ(down.status, 1);
    EXPECT_NE(down.err.find("resmgrd is not reachable"), std::string::npos) << down.err;
}
