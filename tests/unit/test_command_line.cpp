// resmgr-run's command line (its options, where COMMAND begins); resmgr's spelling help.
#include <gtest/gtest.h>

#include "cli/command_line.hpp"
#include "cli/run_options.hpp"

using resmgr::cli::ParsedRunOptions;
using Words = std::vector<std::string>;

namespace {

ParsedRunOptions parse(Words words) {
    words.insert(words.begin(), "resmgr-run");
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    return resmgr::cli::parse_run_options(static_cast<int>(words.size()), argv.data());
}

// The one-line error of a refused command line ("" when it was taken).
std::string error_of(Words words) {
    ParsedRunOptions p = parse(std::move(words));
    return p.outcome == ParsedRunOptions::Outcome::usage_error ? p.error : "";
}

} // namespace

TEST(RunOptions, EverythingAfterTheFirstDoubleDashIsTheCommand) {
    auto p = parse({"--cpu", "2", "--", "echo", "--", "-q", "", "a b", "\xff\xfe", "--"});
    ASSERT_EQ(p.outcome, ParsedRunOptions::Outcome::run) << p.error;
    EXPECT_EQ(p.options.cpu, 2);
    EXPECT_FALSE(p.options.quiet);
    EXPECT_EQ(p.options.command, (Words{"echo", "--", "-q", "", "a b", "\xff\xfe", "--"}));
    EXPECT_EQ(parse({"--", "--", "x"}).options.command, (Words{"--", "x"}));
    EXPECT_EQ(error_of({"-q", "--"}), "no command given");
}

TEST(RunOptions, WithoutDoubleDashTheCommandStartsAtTheFirstNonOption) {
    auto p = parse({"--workflow", "-x", "-q", "--priority=low", "--exclusive", "f", "--exclusive=g", "--memory", "", "ls", "-l", "--cpu", "--"});
    ASSERT_EQ(p.outcome, ParsedRunOptions::Outcome::run) << p.error;
    EXPECT_EQ(p.options.workflow, "-x"); // a value may look like an option
    EXPECT_TRUE(p.options.quiet);
    EXPECT_EQ(p.options.priority, "low");
    EXPECT_EQ(p.options.exclusive, (Words{"f", "g"}));
    EXPECT_EQ(p.options.memory, ""); // an empty value is still the value
    EXPECT_EQ(p.options.command, (Words{"ls", "-l", "--cpu", "--"}));
    EXPECT_EQ(parse({"-q", "echo", "hi"}).options.command, (Words{"echo", "hi"})); // a flag takes no value
    EXPECT_EQ(parse({"-", "x"}).options.command, (Words{"-", "x"}));
    EXPECT_EQ(parse({"true"}).options.priority, "medium");
}

TEST(RunOptions, NumbersAreCheckedAndSaidInWords) {
    EXPECT_EQ(parse({"--cpu=0.5", "--pids", "512", "true"}).options.pids, 512);
    EXPECT_EQ(error_of({"--cpu", "-1", "true"}), "--cpu: must be a number of cores >= 0, e.g. 0.5 or 2");
    EXPECT_EQ(error_of({"--cpu", "lots", "true"}), "--cpu: must be a number of cores >= 0, e.g. 0.5 or 2");
    EXPECT_EQ(error_of({"--cpu", "inf", "true"}), "--cpu: must be a number of cores >= 0, e.g. 0.5 or 2");
    EXPECT_EQ(error_of({"--pids=0", "true"}), "--pids: must be a whole number of tasks >= 1, e.g. 512");
    EXPECT_EQ(error_of({"--pids=1.5", "true"}), "--pids: must be a whole number of tasks >= 1, e.g. 512");
    EXPECT_EQ(error_of({"--pids=1e300", "true"}), "--pids: must be a whole number of tasks >= 1, e.g. 512");
}

TEST(RunOptions, MistakesGetOneLineNamingTheOption) {
    EXPECT_EQ(error_of({"--cpu"}), "--cpu: needs a value");
    EXPECT_EQ(error_of({"--bogus", "true"}), "unknown option --bogus");
    EXPECT_EQ(error_of({"--memroy", "1G", "true"}), "unknown option --memroy; did you mean --memory?");
    EXPECT_EQ(error_of({"-z", "true"}), "unknown option -z");
    EXPECT_EQ(error_of({"--wait=yes", "true"}), "--wait takes no value");
    EXPECT_EQ(error_of({"--cpu", "1", "--cpu", "2", "true"}), "--cpu: given more than once");
    EXPECT_EQ(error_of({"-q", "--quiet", "true"}), ""); // a flag twice is still the flag
    EXPECT_EQ(error_of({"--mem", "1G", "true"}), "--mem: write the option out in full: --memory");
    EXPECT_EQ(error_of({"--qui", "true"}), "--qui: write the option out in full: --quiet");
    EXPECT_EQ(error_of({"--cpu=1", "--wait-s=2s", "true"}), "--wait-s: write the option out in full: --wait-slot");
    EXPECT_EQ(error_of({"--allocation", "a", "--cpu", "2", "true"}), "--allocation and --cpu cannot be used together");
    EXPECT_EQ(error_of({"--wait-slot", "2s", "true"}), "--wait-slot needs --agent");
    EXPECT_EQ(error_of({"--auto", "true"}), "--auto needs --type");
    EXPECT_EQ(error_of({"--auto", "--type", "t", "--memory", "1G", "true"}), "--auto and --memory cannot be used together");
    EXPECT_EQ(error_of({"--allocation", "a", "--agent", "b", "--wait-slot", "1s", "true"}), "");
}

TEST(RunOptions, HelpAndVersionWinOverEverythingAfterThem) {
    EXPECT_EQ(parse({"--help", "--bogus"}).outcome, ParsedRunOptions::Outcome::help);
    EXPECT_EQ(parse({"-h"}).outcome, ParsedRunOptions::Outcome::help);
    EXPECT_EQ(parse({"--version"}).outcome, ParsedRunOptions::Outcome::version);
    // The help names every option, and the rules between them.
    const std::string help = resmgr::cli::run_options_help();
    for (const char* option : {"--socket PATH", "--cpu CORES", "--exclusive FILE", "--wait-slot DURATION", "-q, --quiet", "--version"})
        EXPECT_NE(help.find(option), std::string::npos) << option;
    EXPECT_NE(help.find("Needs --agent"), std::string::npos);
    EXPECT_NE(help.find("Usage: resmgr-run [OPTIONS] [--] COMMAND [ARGS...]"), std::string::npos);
}

TEST(ClosestWord, SuggestsTheNearestOperationOnlyWhenItIsNear) {
    const std::vector<std::string> ops{"allocate", "release", "reallocate", "status", "capacity", "tune"};
    EXPECT_EQ(resmgr::cli::closest_word("alocate", ops), "allocate");
    EXPECT_EQ(resmgr::cli::closest_word("realocate", ops), "reallocate");
    EXPECT_EQ(resmgr::cli::closest_word("stauts", ops), "status");
    EXPECT_EQ(resmgr::cli::closest_word("tuen", ops), ""); // two edits is too many for a short word
    EXPECT_EQ(resmgr::cli::closest_word("tne", ops), "tune");
    EXPECT_EQ(resmgr::cli::closest_word("frobnicate", ops), "");
    EXPECT_EQ(resmgr::cli::closest_word("why", ops), "");
}
