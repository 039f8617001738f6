// Help for one operation from its rows in the catalog.
#include "cli/operation_help.hpp"

#include <algorithm>

#include "resmgr/operations.hpp"

namespace resmgr::cli {
namespace {

std::string type_text(const ParamSpec& p) {
    std::string t = to_string(p.type);
    if (p.min && p.max) t += " " + std::to_string(*p.min) + ".." + std::to_string(*p.max);
    else if (p.min) t += " >= " + std::to_string(*p.min);
    else if (p.max) t += " <= " + std::to_string(*p.max);
    return t;
}

// "required", "optional", or "default 4h" (the JSON value the handler uses when it is absent).
std::string need_text(const ParamSpec& p) {
    if (p.required) return "required";
    if (p.fallback.is_null()) return "optional";
    return "default " + (p.fallback.is_string() ? p.fallback.get<std::string>() : p.fallback.dump());
}

std::string indented(const std::string& text, const std::string& indent) {
    std::string out;
    for (size_t start = 0; start < text.size();) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        out += indent + text.substr(start, end - start) + "\n";
        start = end + 1;
    }
    return out;
}

} // namespace

std::optional<std::string> operation_help(const std::string& operation) {
    std::string out;
    for (const auto& op : operation_catalog()) {
        if (op.name != operation || op.by_socket) continue;
        if (!out.empty()) out += "\n";
        std::string head = "resmgr " + op.name;
        if (!op.resource_type.empty() && op.resource_type != "*") head += " " + op.resource_type; // "*": the usage names the types
        if (!op.usage.empty()) head += " " + op.usage;
        out += head + (op.built ? "" : "   (not built yet: answers UNSUPPORTED)") + "\n";
        out += indented(op.summary, "  ");
        if (op.seed) out += "  (an operation of the seed)\n";
        if (op.caller == Caller::root) out += "  Root only.\n";
        if (op.open) continue;
        if (op.params.empty()) {
            out += "  No parameters.\n";
            continue;
        }
        out += "  Parameters (JSON, last argument):\n";
        size_t name_width = 0, type_width = 0, need_width = 0;
        for (const auto& p : op.params) {
            name_width = std::max(name_width, std::string(p.name).size());
            type_width = std::max(type_width, type_text(p).size());
            need_width = std::max(need_width, need_text(p).size());
        }
        for (const auto& p : op.params) {
            std::string line = "    " + std::string(p.name);
            line.append(name_width - std::string(p.name).size() + 2, ' ');
            const std::string type = type_text(p), need = need_text(p);
            line += type;
            line.append(type_width - type.size() + 2, ' ');
            line += need;
            if (*p.help) line.append(need_width - need.size() + 2, ' ') += p.help;
            out += line + "\n";
        }
    }
    if (out.empty()) return std::nullopt;
    return out;
}

std::vector<std::string> completion_words() {
    std::vector<std::string> words;
    auto add = [&](std::string w) {
        if (std::find(words.begin(), words.end(), w) == words.end()) words.push_back(std::move(w));
    };
    for (const auto& op : operation_catalog()) {
        if (op.by_socket) continue;
        add(op.name);
        if (!op.resource_type.empty() && op.resource_type != "*") add(op.name + " " + op.resource_type);
        // A usage made of lower-case words and '|' lists the resource types ("system", "agents|cpu").
        const bool types = !op.usage.empty() && std::all_of(op.usage.begin(), op.usage.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '|'; });
        for (size_t start = 0; types && start < op.usage.size();) {
            size_t end = op.usage.find('|', start);
            if (end == std::string::npos) end = op.usage.size();
            if (end > start) add(op.name + " " + op.usage.substr(start, end - start));
            start = end + 1;
        }
    }
    add("backtest");
    add("top");
    add("help");
    return words;
}

} // namespace resmgr::cli
