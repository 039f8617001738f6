// Splitting argv into a wrapper's options and its command.
#include "cli/command_line.hpp"

#include <CLI/CLI.hpp>

namespace resmgr::cli {
namespace {

bool takes_value(const CLI::App& app, const std::string& name) {
    const CLI::Option* opt = app.get_option_no_throw(name);
    return opt != nullptr && opt->get_items_expected_min() > 0; // a flag expects none
}

// Whether `word`, one option or a cluster of short ones, leaves its value to the next word.
bool value_follows(const CLI::App& app, const std::string& word) {
    if (word.starts_with("--")) return word.find('=') == std::string::npos && takes_value(app, word);
    for (size_t i = 1; i < word.size(); ++i) {
        const std::string name{'-', word[i]};
        if (app.get_option_no_throw(name) == nullptr) return false;
        if (takes_value(app, name)) return i + 1 == word.size(); // else the rest of the word is the value
    }
    return false;
}

} // namespace

SplitCommandLine split_command_line(const CLI::App& app, int argc, const char* const* argv) {
    SplitCommandLine split;
    if (argc > 0) split.options.emplace_back(argv[0]);
    int i = 1;
    for (; i < argc; ++i) {
        const std::string word = argv[i];
        if (word == "--") {
            ++i;
            break;
        }
        if (word.size() < 2 || word[0] != '-') break; // the command; "-" alone is a word too
        split.options.push_back(word);
        if (value_follows(app, word) && i + 1 < argc) split.options.emplace_back(argv[++i]);
    }
    split.command.assign(argv + i, argv + argc);
    return split;
}

} // namespace resmgr::cli
