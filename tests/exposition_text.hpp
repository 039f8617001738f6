// A strict reader of Prometheus' text exposition format for the tests: every line is a
// "# HELP name text" or "# TYPE name type" comment or a sample "name{label="value",...} value".
// Anything else throws std::runtime_error naming the line, so a malformed exposition fails a test.
#pragma once

#include <cctype>
#include <cstdlib>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace resmgr::testing_support {

struct PromSample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};

inline std::vector<PromSample> parse_exposition(const std::string& text) {
    std::vector<PromSample> out;
    std::istringstream in(text);
    std::string line;
    int number = 0;
    auto fail = [&](const std::string& why) { throw std::runtime_error("exposition line " + std::to_string(number) + ": " + why + ": " + line); };
    auto name_char = [](char c, bool first) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' || (!first && std::isdigit(static_cast<unsigned char>(c))); };
    while (std::getline(in, line)) {
        ++number;
        if (line.empty()) continue;
        if (line[0] == '#') {
            if (line.rfind("# HELP ", 0) != 0 && line.rfind("# TYPE ", 0) != 0) fail("a comment that is neither HELP nor TYPE");
            continue;
        }
        PromSample s;
        size_t i = 0;
        while (i < line.size() && name_char(line[i], i == 0)) s.name += line[i++];
        if (s.name.empty()) fail("no metric name");
        if (i < line.size() && line[i] == '{') {
            ++i;
            while (i < line.size() && line[i] != '}') {
                std::string key;
                while (i < line.size() && name_char(line[i], key.empty())) key += line[i++];
                if (key.empty() || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') fail("a label without name=\"value\"");
                i += 2;
                std::string value;
                while (i < line.size() && line[i] != '"') {
                    if (line[i] == '\\') {
                        if (++i >= line.size()) fail("a dangling escape");
                        value += line[i] == 'n' ? '\n' : line[i];
                        ++i;
                    } else {
                        value += line[i++];
                    }
                }
                if (i >= line.size()) fail("an unterminated label value");
                ++i; // the closing quote
                if (!s.labels.emplace(key, value).second) fail("a label given twice");
                if (i < line.size() && line[i] == ',') ++i;
            }
            if (i >= line.size()) fail("no '}'");
            ++i;
        }
        if (i >= line.size() || line[i] != ' ') fail("no space before the value");
        const std::string value = line.substr(i + 1);
        char* end = nullptr;
        s.value = std::strtod(value.c_str(), &end);
        if (value.empty() || *end != '\0') fail("a value that is not a number");
        out.push_back(std::move(s));
    }
    return out;
}

// The samples named `name` whose labels include every one of `labels`.
inline std::vector<PromSample> find_samples(const std::vector<PromSample>& samples, const std::string& name,
                                            const std::map<std::string, std::string>& labels = {}) {
    std::vector<PromSample> out;
    for (const auto& s : samples) {
        if (s.name != name) continue;
        bool match = true;
        for (const auto& [k, v] : labels) {
            auto it = s.labels.find(k);
            match = match && it != s.labels.end() && it->second == v;
        }
        if (match) out.push_back(s);
    }
    return out;
}

} // namespace resmgr::testing_support
