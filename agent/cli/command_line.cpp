// Spelling suggestions for a mistyped word of a command line.
#include "cli/command_line.hpp"

#include <algorithm>

namespace resmgr::cli {
namespace {

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

} // namespace resmgr::cli
