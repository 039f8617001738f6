// Where a wrapper's own options end and the command it runs begins. CLI11's prefix_command()
// hands the command a stray "--"; resmgr-run splits argv itself and lets CLI11 parse only the
// option part, so the command gets its words exactly as they were given. Also: what a mistyped
// word was meant to be.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace resmgr::cli {

struct SplitCommandLine {
    std::vector<std::string> options; // argv[0], then the program's options and their values
    std::vector<std::string> command; // the words after the first "--", else from the first non-option on
};

// `app` tells which options take a value ("--cpu 2", "-c 2", also "--cpu=2", "-c2"); each takes
// one word. An unknown option is left in `options` for CLI11 to report.
SplitCommandLine split_command_line(const CLI::App& app, int argc, const char* const* argv);

// The one of `candidates` that `word` most likely misspells: the nearest by edit distance, at most
// 1 for words of up to 4 letters and 2 for longer ones; "" when none is that near.
std::string closest_word(const std::string& word, const std::vector<std::string>& candidates);

} // namespace resmgr::cli
