// agent/state owns the files under the state directory (the seed's layout: current_state/,
// monitoring/, policies/, optimization/) and makes every write crash-safe: a reader after a
// crash sees either the old file or the new one, never a torn one.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "resmgr/model.hpp"

namespace resmgr::state {

struct StateError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Writes `content` to `path` via a temp file in the same directory: write, fsync, rename,
// fsync the directory. Throws StateError with the path and errno text.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

class StateStore {
public:
    // Creates the directory layout if missing (mode 0750). Throws StateError.
    explicit StateStore(std::filesystem::path dir);

    const std::filesystem::path& dir() const { return dir_; }
    std::filesystem::path allocations_path() const { return dir_ / "current_state" / "allocations.json"; }

    void save_allocations(const std::vector<Allocation>& allocations, TimePoint now);
    // Missing file: empty. Unreadable, truncated or malformed file: StateError saying which file,
    // what is wrong and what to do; the file is left untouched so nothing is lost.
    std::vector<Allocation> load_allocations() const;

private:
    std::filesystem::path dir_;
};

} // namespace resmgr::state
