// The client programs as a user runs them: what they hand to the command, and what they say
// when they are used wrongly.
#include "build_paths.hpp"
#include <gtest/gtest.h>

#include "daemon_fixture.hpp"
#include "resmgr/operations.hpp"

using namespace resmgr::host;

namespace {

// A command that prints each of its arguments in brackets, so every byte of each one shows.
const std::vector<std::string> kShowArgs{"/bin/sh", "-c", R"(for a; do printf '[%s]' "$a"; done)", "zero"};

// Arguments that look like resmgr-run's own options, empty, with spaces, a "--", bytes that are not UTF-8.
const std::vector<std::string> kAwkwardArgs{"-x", "--cpu", "2", "", "two words", "--", "\xff\xfe", "-q", "--priority=low", "--"};
const std::string kAwkwardShown = "[-x][--cpu][2][][two words][--][\xff\xfe][-q][--priority=low][--]";

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

} // namespace

TEST_F(DaemonHost, ResmgrRunGivesTheCommandExactlyItsWords) {
    const std::vector<std::vector<std::string>> options{
        {"--workflow", "wf-argv", "--cpu", "0.5"}, {"--workflow=wf-argv", "--cpu=0.5", "-q"}, {}};
    for (auto& own : options)
        for (bool marker : {true, false}) {
            std::vector<std::string> args = own;
            if (marker) args.push_back("--");
            RunResult r = resmgr_run(concat(concat(args, kShowArgs), kAwkwardArgs));
            EXPECT_EQ(r.status, 0) << r.err;
            EXPECT_EQ(r.out, kAwkwardShown) << (marker ? "with" : "without") << " --, options " << testing::PrintToString(own);
        }
    // The command's own first word may look like an option once "--" says it is the command.
    RunResult dashed = resmgr_run({"--", "--", "/bin/true"});
    EXPECT_EQ(dashed.status, 127) << dashed.err; // a command named "--", not found
}

TEST(ClientPrograms, EachSaysItsVersion) {
    for (auto [path, name] : {std::pair{build_paths::resmgrd, "resmgrd"}, {build_paths::resmgr_cli, "resmgr"}, {build_paths::resmgr_run, "resmgr-run"}}) {
        RunResult r = run({path, "--version"});
        EXPECT_EQ(r.status, 0) << name << ": " << r.err;
        EXPECT_EQ(r.out, std::string(name) + " " + RESMGR_VERSION + "\n");
    }
}

// The help lists every operation of the catalog resmgrd routes by, the seed's included.
TEST(ClientPrograms, HelpNamesEveryOperation) {
    RunResult r = run({build_paths::resmgr_cli, "--help"});
    ASSERT_EQ(r.status, 0) << r.err;
    for (const auto& op : resmgr::operation_catalog()) {
        if (op.by_socket) continue;
        const bool listed = r.out.find("\n  " + op.name + " ") != std::string::npos || r.out.find("\n  " + op.name + "\n") != std::string::npos;
        EXPECT_TRUE(listed) << op.name << " is missing from resmgr --help";
    }
    for (const auto& name : resmgr::seed_operations()) EXPECT_NE(r.out.find("  " + name), std::string::npos) << name;
}

// Usage errors are caught before resmgrd is asked (the socket here does not exist), in a line a person can act on.
TEST(ClientPrograms, SayPlainlyWhatIsWrongWithTheirArguments) {
    const std::string nowhere = "/nonexistent/resmgr.sock";
    struct Case {
        std::vector<std::string> argv;
        std::string said;
    };
    for (auto& c : std::vector<Case>{
             {{build_paths::resmgr_run, "--socket", nowhere, "--cpu", "-1", "--", "/bin/true"}, "--cpu: must be a number of cores >= 0, e.g. 0.5 or 2"},
             {{build_paths::resmgr_run, "--socket", nowhere, "--cpu", "lots", "/bin/true"}, "--cpu: must be a number of cores >= 0, e.g. 0.5 or 2"},
             {{build_paths::resmgr_run, "--socket", nowhere, "--pids=0", "/bin/true"}, "--pids: must be a whole number of tasks >= 1, e.g. 512"},
             {{build_paths::resmgr_cli, "--socket", nowhere, "allocate", R"({"workflow_id":)"},
              "resmgr: the JSON parameters are not valid JSON: syntax error while parsing value - unexpected end of input; "
              "expected '[', '{', or a literal, at byte 16"},
             {{build_paths::resmgr_cli, "--socket", nowhere, "alocate", "{}"}, "resmgr: unknown operation 'alocate'; did you mean 'allocate'?"},
             {{build_paths::resmgr_cli, "--socket", nowhere, "stats"}, "did you mean 'status'?"}}) {
        RunResult r = run(c.argv);
        EXPECT_EQ(r.status, 2) << testing::PrintToString(c.argv) << r.err;
        EXPECT_NE(r.err.find(c.said), std::string::npos) << r.err;
        EXPECT_EQ(r.err.find("json.exception"), std::string::npos) << r.err;
        EXPECT_LT(r.err.size(), 300u) << r.err;
    }
    // A word near no operation is resmgrd's to judge (it may know operations this client does not).
    RunResult far = run({build_paths::resmgr_cli, "--socket", nowhere, "frobnicate"});
    EXPECT_EQ(far.status, 1) << far.err;
    EXPECT_NE((far.out + far.err).find("resmgrd is not reachable"), std::string::npos) << far.out << far.err;
}
