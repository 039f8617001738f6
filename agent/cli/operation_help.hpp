// `resmgr help OPERATION`: an operation's forms, summary and parameters (name, type, range,
// required, optional or its default, what it means) from the catalog resmgrd checks requests against, so the help and
// the checks cannot drift apart.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace resmgr::cli {

// The help of every catalog row named `operation` (e.g. status, status conflicts, status TYPE),
// or nullopt when the catalog has no such operation.
std::optional<std::string> operation_help(const std::string& operation);

// What bash completion offers (`resmgr --completion-words`, read by completions/resmgr.bash):
// "OPERATION" for each operation (top and help too), and "OPERATION TYPE" for each resource type
// the catalog names (status conflicts; status agents from the row's usage "agents|workflows|...").
std::vector<std::string> completion_words();

} // namespace resmgr::cli
