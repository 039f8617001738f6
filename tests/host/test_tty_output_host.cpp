// `resmgr status`, `usage` and `capacity` as a person at a terminal sees them (a real
// pseudo-terminal, forkpty) against a resmgrd of the test's own with two allocations: tables,
// no JSON, sparklines of the last hour once samples exist; and the same commands through a pipe
// print the seed's envelope unchanged. Also `history recent`, what the sparklines are drawn from.
#include "build_paths.hpp"
#include <gtest/gtest.h>

#include <poll.h>
#include <pty.h>
#include <sys/ioctl.h>

#include "daemon_fixture.hpp"
#include "resmgr/json.hpp"

using namespace resmgr::host;

namespace {

bool has_sparkline(const std::string& text) {
    for (const char* mark : {"\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588"})
        if (text.find(mark) != std::string::npos) return true;
    return false;
}

class TtyOutputHost : public DaemonHost {
protected:
    // Everything `resmgr --socket S args...` writes to a pty `cols` wide, and its exit status.
    std::pair<std::string, int> on_pty(const std::vector<std::string>& args, unsigned short cols) {
        struct winsize ws {};
        ws.ws_col = cols;
        ws.ws_row = 50;
        int master = -1;
        const pid_t pid = ::forkpty(&master, nullptr, nullptr, &ws);
        if (pid < 0) return {std::string("forkpty: ") + std::strerror(errno), -1};
        if (pid == 0) {
            ::setenv("TERM", "xterm-256color", 1);
            ::setenv("LANG", "C.UTF-8", 1);
            ::unsetenv("NO_COLOR");
            std::vector<std::string> argv{build_paths::resmgr_cli, "--socket", socket};
            argv.insert(argv.end(), args.begin(), args.end());
            std::vector<char*> raw;
            for (auto& a : argv) raw.push_back(a.data());
            raw.push_back(nullptr);
            ::execv(raw[0], raw.data());
            ::_exit(127);
        }
        std::string seen;
        for (;;) {
            struct pollfd pfd {master, POLLIN, 0};
            if (::poll(&pfd, 1, 10000) <= 0) break;
            char buf[4096];
            const ssize_t n = ::read(master, buf, sizeof buf);
            if (n <= 0) break; // EIO: the CLI has exited
            seen.append(buf, static_cast<size_t>(n));
        }
        ::close(master);
        int status = 0;
        ::waitpid(pid, &status, 0);
        return {seen, decode_status(status)};
    }

    std::vector<std::string> ids;

    void allocate_two() {
        for (const char* wf : {"wf-tty-a", "wf-tty-b"}) {
            json a = cli_json({"allocate", json{{"workflow_id", wf}, {"resources", {{"cpu_cores", 0.25}, {"memory_gb", 0.125}}}}.dump()});
            ASSERT_EQ(a.value("status", ""), "success") << a.dump();
            ids.push_back(a["result"]["allocation"]["allocation_id"]);
        }
    }
};

} // namespace

TEST_F(TtyOutputHost, StatusUsageCapacityOnATerminalAreTablesWithSparklines) {
    ASSERT_NO_FATAL_FAILURE(allocate_two());
    for (const auto& args : std::vector<std::vector<std::string>>{{"status"}, {"usage", "wf-tty-a"}, {"capacity"}, {"monitor", "system"}, {"doctor"}}) {
        auto [out, status] = on_pty(args, 160);
        const std::string text = without_escapes(out);
        EXPECT_EQ(status, 0) << text;
        EXPECT_EQ(text.find('{'), std::string::npos) << args[0] << " printed JSON on a terminal:\n" << text;
        EXPECT_FALSE(text.empty());
    }
    auto [status_out, rc] = on_pty({"status"}, 160);
    const std::string status_text = without_escapes(status_out);
    EXPECT_NE(status_text.find("ALLOCATION"), std::string::npos) << status_text;
    for (const auto& id : ids) EXPECT_NE(status_text.find(id), std::string::npos) << status_text;
    EXPECT_NE(without_escapes(on_pty({"usage", "wf-tty-a"}, 160).first).find(ids[0]), std::string::npos);
    EXPECT_NE(without_escapes(on_pty({"capacity"}, 160).first).find("CPU CORES"), std::string::npos);

    // The daemon samples every second: within a few passes the node's last hour has samples,
    // and status, usage and capacity draw them.
    for (const auto& args : std::vector<std::vector<std::string>>{{"status"}, {"usage", "wf-tty-a"}, {"capacity"}}) {
        std::string text;
        EXPECT_TRUE(wait_until([&] {
            text = without_escapes(on_pty(args, 160).first);
            // Until the node's CPU and memory both have samples, the row without says so.
            return text.find("LAST HOUR") != std::string::npos && has_sparkline(text) &&
                   text.find("no samples in the last hour yet") == std::string::npos;
        }, std::chrono::seconds(15)))
            << args[0] << ":\n" << text;
    }
    // Narrow terminal: every line fits in 40 columns.
    const std::string narrow = without_escapes(on_pty({"status"}, 40).first);
    size_t from = 0;
    for (size_t at; (at = narrow.find('\n', from)) != std::string::npos; from = at + 1) {
        size_t cols = 0;
        for (size_t i = from; i < at; ++i) cols += (static_cast<unsigned char>(narrow[i]) & 0xC0) != 0x80;
        EXPECT_LE(cols, 40u) << narrow.substr(from, at - from);
    }
}

TEST_F(TtyOutputHost, ThroughAPipeTheEnvelopeIsUnchanged) {
    ASSERT_NO_FATAL_FAILURE(allocate_two());
    ASSERT_TRUE(wait_until([&] { return cli_json({"history", "recent", R"({"series":["node/cpu_percent"]})"})["result"]["series"]["node/cpu_percent"]
                                            .value("samples", 0) > 0; },
                           std::chrono::seconds(15)));
    for (const auto& args : std::vector<std::vector<std::string>>{{"status"}, {"usage", "wf-tty-a"}, {"capacity"}}) {
        std::vector<std::string> piped{build_paths::resmgr_cli, "--socket", socket};
        piped.insert(piped.end(), args.begin(), args.end());
        RunResult pipe = run(piped);
        RunResult flagged = cli(args); // --json
        ASSERT_EQ(pipe.status, 0) << pipe.err;
        json a = json::parse(pipe.out), b = json::parse(flagged.out);
        // The seed's envelope, printed as resmgrd's dump_text prints it, byte for byte.
        EXPECT_EQ(pipe.out, resmgr::dump_text(a, 2) + "\n");
        // Nothing added for the terminal (no history, no sparklines): the same keys as --json,
        // the same answer but for when it was made.
        for (json* e : {&a, &b}) {
            e->erase("timestamp");
            e->erase("metrics");
            (*e)["result"].erase("sampled_at");
            if ((*e)["result"].contains("utilization_analysis")) (*e)["result"].erase("utilization_analysis");
            if ((*e)["result"].contains("allocations"))
                for (auto& x : (*e)["result"]["allocations"])
                    for (const char* volatile_key : {"used", "efficiency", "kernel_probes", "throttling", "io", "memory_events", "pids"}) x.erase(volatile_key);
            if ((*e)["result"].contains("totals")) (*e)["result"].erase("totals"), (*e)["result"].erase("efficiency");
            if ((*e)["result"].contains("capacity")) (*e)["result"]["capacity"]["cpu_cores"].erase("utilization_percent");
        }
        EXPECT_EQ(a.dump(2), b.dump(2)) << args[0];
        EXPECT_EQ(pipe.out.find("LAST HOUR"), std::string::npos);
        EXPECT_EQ(pipe.out.find("node/cpu_percent"), std::string::npos) << "no history in the envelope";
    }
}

TEST_F(TtyOutputHost, HistoryRecentSlotsTheLastHour) {
    ASSERT_TRUE(wait_until([&] { return cli_json({"history", "recent", R"({"series":["node/cpu_percent"]})"})["result"]["series"]["node/cpu_percent"]
                                            .value("samples", 0) >= 2; },
                           std::chrono::seconds(15)));
    json r = cli_json({"history", "recent", R"({"series":["node/cpu_percent","node/no_such_series"],"points":12})"});
    const json& cpu = r["result"]["series"]["node/cpu_percent"];
    ASSERT_EQ(cpu["values"].size(), 12u) << r.dump();
    EXPECT_TRUE(cpu["values"].back().is_number()) << "the newest slot holds the samples just taken: " << r.dump();
    for (auto& v : cpu["values"])
        if (v.is_number()) {
            EXPECT_TRUE(v.get<double>() >= 0 && v.get<double>() <= 100) << v;
        }
    EXPECT_DOUBLE_EQ(r["result"]["slot_seconds"].get<double>(), 300.0) << "the default since is 1h";
    EXPECT_EQ(r["result"]["series"]["node/no_such_series"]["samples"], 0);
    for (auto& v : r["result"]["series"]["node/no_such_series"]["values"]) EXPECT_TRUE(v.is_null());
    // Hostile input: a clear error with a code.
    for (const char* bad : {R"({"series":[1]})", R"({"series":["a"],"points":0})", R"({"series":["a"],"since":"soon"})", R"({})"}) {
        json e = cli_json({"history", "recent", bad}, 1);
        EXPECT_EQ(e["error"].value("code", ""), "INVALID_REQUEST") << bad << " " << e.dump();
    }
    json many = json::array();
    for (int i = 0; i < 300; ++i) many.push_back("s" + std::to_string(i));
    EXPECT_EQ(cli_json({"history", "recent", json{{"series", many}}.dump()}, 1)["error"].value("code", ""), "INVALID_REQUEST");
}
