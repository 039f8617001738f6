// `resmgr help OPERATION`: an operation's forms, summary and parameters (name, type, required or
// not, range, what it means) from the catalog resmgrd checks requests against, so the help and
// the checks cannot drift apart.
#pragma once

#include <optional>
#include <string>

namespace resmgr::cli {

// The help of every catalog row named `operation` (e.g. status, status conflicts, status TYPE),
// or nullopt when the catalog has no such operation.
std::optional<std::string> operation_help(const std::string& operation);

} // namespace resmgr::cli
