// Classification of executed programs into the seed's tool categories (bash_shells,
// search_operations, web_requests, file_operations, or any a policy file defines) by the
// command name the kernel reports (comm: the basename, at most 15 characters), and a per-cgroup
// tally of classified execs. Pure: no kernel, no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace resmgr::bpf {

// A tool classification that could not be read; what() names the offending field.
class ToolClassesError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

class ToolClasses {
public:
    // The kernel keeps 15 characters of a command name; longer names match by that prefix.
    static constexpr std::size_t comm_max = 15;

    // bash_shells, search_operations, web_requests, file_operations with the seed's commands.
    static ToolClasses defaults();

    // {"category": ["command", ...], ...}. Replaces the defaults entirely. Throws
    // ToolClassesError on anything else: not an object, a list that is not an array of
    // non-empty strings without '/', or a command listed under two categories.
    static ToolClasses from_json(const nlohmann::json& j);
    // The same from text, with JSON syntax errors reported as ToolClassesError too.
    static ToolClasses parse(std::string_view text);

    // The category of a command name, or nullopt when it is in none.
    std::optional<std::string> classify(std::string_view comm) const;
    std::vector<std::string> categories() const;
    nlohmann::json to_json() const;

private:
    std::map<std::string, std::vector<std::string>> commands_by_category_;
    std::map<std::string, std::string, std::less<>> category_by_comm_;
};

struct ToolCounts {
    std::map<std::string, std::uint64_t> by_category; // only categories seen at least once
    std::uint64_t unclassified = 0;
    nlohmann::json to_json() const; // {"bash_shells": 6, ..., "unclassified": 2}
};

// Execs per cgroup and category, fed from exec events.
class ToolTally {
public:
    explicit ToolTally(ToolClasses classes = ToolClasses::defaults()) : classes_(std::move(classes)) {}

    void record_exec(std::uint64_t cgroup_id, std::string_view comm);
    ToolCounts counts(std::uint64_t cgroup_id) const; // zero counts for an unknown group
    void forget(std::uint64_t cgroup_id);
    const ToolClasses& classes() const { return classes_; }

private:
    ToolClasses classes_;
    std::map<std::uint64_t, ToolCounts> counts_;
};

} // namespace resmgr::bpf
