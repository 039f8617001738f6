// What a mistyped word of a command line (an operation, an option) was meant to be.
#pragma once

#include <string>
#include <vector>

namespace resmgr::cli {

// The one of `candidates` that `word` most likely misspells: the nearest by edit distance, at most
// 1 for words of up to 4 letters and 2 for longer ones; "" when none is that near.
std::string closest_word(const std::string& word, const std::vector<std::string>& candidates);

} // namespace resmgr::cli
