#include "bpf/tool_classes.hpp"

namespace resmgr::bpf {

ToolClasses ToolClasses::defaults() {
    return from_json({
        {"bash_shells", {"bash", "sh", "dash", "zsh", "fish"}},
        {"search_operations", {"grep", "rg", "ag", "find", "fd", "ack"}},
        {"web_requests", {"curl", "wget", "http", "git-remote-http"}},
        {"file_operations", {"cp", "mv", "rm", "cat", "tar", "rsync", "sed", "tee", "touch", "mkdir"}},
    });
}

ToolClasses ToolClasses::from_json(const nlohmann::json& j) {
    if (!j.is_object()) throw ToolClassesError("tool_classes: expected an object of category -> [command, ...]");
    ToolClasses classes;
    for (auto& [category, commands] : j.items()) {
        std::string where = "tool_classes." + category;
        if (category.empty()) throw ToolClassesError("tool_classes: empty category name");
        if (!commands.is_array()) throw ToolClassesError(where + ": expected an array of command names");
        auto& list = classes.commands_by_category_[category];
        for (std::size_t i = 0; i < commands.size(); ++i) {
            std::string at = where + "[" + std::to_string(i) + "]";
            if (!commands[i].is_string()) throw ToolClassesError(at + ": expected a string");
            auto name = commands[i].get<std::string>();
            if (name.empty()) throw ToolClassesError(at + ": empty command name");
            if (name.find('/') != std::string::npos)
                throw ToolClassesError(at + ": \"" + name + "\" is a path; use the command's basename");
            auto comm = name.substr(0, comm_max);
            auto [it, added] = classes.category_by_comm_.emplace(comm, category);
            if (!added && it->second != category)
                throw ToolClassesError(at + ": \"" + name + "\" is already in category \"" + it->second + "\"");
            list.push_back(std::move(name));
        }
    }
    return classes;
}

ToolClasses ToolClasses::parse(std::string_view text) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
        throw ToolClassesError(std::string("tool_classes: invalid JSON: ") + e.what());
    }
    return from_json(j);
}

std::optional<std::string> ToolClasses::classify(std::string_view comm) const {
    auto it = category_by_comm_.find(comm.substr(0, comm_max));
    if (it == category_by_comm_.end()) return std::nullopt;
    return it->second;
}

std::vector<std::string> ToolClasses::categories() const {
    std::vector<std::string> names;
    for (auto& [category, _] : commands_by_category_) names.push_back(category);
    return names;
}

nlohmann::json ToolClasses::to_json() const {
    nlohmann::json j = nlohmann::json::object();
    for (auto& [category, commands] : commands_by_category_) j[category] = commands;
    return j;
}

nlohmann::json ToolCounts::to_json() const {
    nlohmann::json j = nlohmann::json::object();
    for (auto& [category, n] : by_category) j[category] = n;
    j["unclassified"] = unclassified;
    return j;
}

void ToolTally::record_exec(std::uint64_t cgroup_id, std::string_view comm) {
    auto& counts = counts_[cgroup_id];
    if (auto category = classes_.classify(comm))
        ++counts.by_category[*category];
    else
        ++counts.unclassified;
}

ToolCounts ToolTally::counts(std::uint64_t cgroup_id) const {
    auto it = counts_.find(cgroup_id);
    return it == counts_.end() ? ToolCounts{} : it->second;
}

void ToolTally::forget(std::uint64_t cgroup_id) { counts_.erase(cgroup_id); }

} // namespace resmgr::bpf
