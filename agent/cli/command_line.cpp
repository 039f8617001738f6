// Splitting argv into a wrapper's options and its command; spelling suggestions.
#include "cli/command_line.hpp"

#include <algorithm>

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

// Levenshtein distance, one row at a time.
size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = up;
        }
    }
    return row[b.size()];
}

} // namespace

std::string closest_word(const std::string& word, const std::vector<std::string>& candidates) {
    std::string best;
    size_t best_distance = (word.size() <= 4 ? 1 : 2) + 1;
    for (auto& c : candidates)
        if (size_t d = edit_distance(word, c); d < best_distance) best = c, best_distance = d;
    return best;
}

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
