// resmgr-run's split of argv into its own options and the command; resmgr's spelling help.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>

#include "cli/command_line.hpp"

using resmgr::cli::split_command_line;
using Words = std::vector<std::string>;

namespace {

// The shapes of resmgr-run's options: long with a value, short flag, repeatable with a value.
struct Wrapper {
    CLI::App app{"wrapper"};
    std::string text;
    double number = 0;
    bool flag = false;
    std::vector<std::string> files;
    Wrapper() {
        app.add_option("--text,-t", text);
        app.add_option("--cpu", number);
        app.add_flag("-q,--quiet", flag);
        app.add_option("--file", files)->allow_extra_args(false);
    }
    resmgr::cli::SplitCommandLine split(Words words) {
        words.insert(words.begin(), "resmgr-run");
        std::vector<const char*> argv;
        for (auto& w : words) argv.push_back(w.c_str());
        return split_command_line(app, static_cast<int>(argv.size()), argv.data());
    }
};

} // namespace

TEST(SplitCommandLine, EverythingAfterTheFirstDoubleDashIsTheCommand) {
    Wrapper w;
    auto s = w.split({"--cpu", "2", "--", "echo", "--", "-q", "", "a b", "\xff\xfe", "--"});
    EXPECT_EQ(s.options, (Words{"resmgr-run", "--cpu", "2"}));
    EXPECT_EQ(s.command, (Words{"echo", "--", "-q", "", "a b", "\xff\xfe", "--"}));
    EXPECT_EQ(w.split({"--", "--", "x"}).command, (Words{"--", "x"}));
    EXPECT_EQ(w.split({"-q", "--"}).command, Words{});
}

TEST(SplitCommandLine, WithoutDoubleDashTheCommandStartsAtTheFirstNonOption) {
    Wrapper w;
    auto s = w.split({"--text", "-x", "-q", "--cpu=-1", "-tvalue", "-qt", "v", "--file", "f", "ls", "-l", "--cpu", "--"});
    EXPECT_EQ(s.options, (Words{"resmgr-run", "--text", "-x", "-q", "--cpu=-1", "-tvalue", "-qt", "v", "--file", "f"}));
    EXPECT_EQ(s.command, (Words{"ls", "-l", "--cpu", "--"}));
    EXPECT_EQ(w.split({"-q", "echo", "hi"}).command, (Words{"echo", "hi"})); // a flag takes no value
    EXPECT_EQ(w.split({"--quiet", "echo"}).command, Words{"echo"});
    EXPECT_EQ(w.split({"-", "x"}).command, (Words{"-", "x"}));
    EXPECT_EQ(w.split({"--cpu", "", "cmd"}).command, Words{"cmd"}); // an empty value is still the value
}

TEST(SplitCommandLine, UnknownOptionsAndAMissingValueAreLeftForCLI11) {
    Wrapper w;
    auto s = w.split({"--bogus", "-z", "cmd"});
    EXPECT_EQ(s.options, (Words{"resmgr-run", "--bogus", "-z"}));
    EXPECT_EQ(s.command, Words{"cmd"});
    EXPECT_EQ(w.split({"--cpu"}).options, (Words{"resmgr-run", "--cpu"}));
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
