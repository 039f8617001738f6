// Generic tables of an answer.
#include "cli/result_tables.hpp"

#include <algorithm>
#include <cmath>

#include "cli/figures.hpp"

namespace resmgr::cli {
namespace {

using nlohmann::json;

constexpr int kMaxDepth = 6; // deeper parts are summarised, not rendered

bool is_scalar_list(const json& v) {
    return v.is_array() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_primitive(); });
}
bool is_simple(const json& v) { return v.is_primitive() || is_scalar_list(v); }
bool is_flat_object(const json& v) {
    return v.is_object() && !v.empty() && std::all_of(v.begin(), v.end(), [](const json& e) { return is_simple(e); });
}
bool is_object_list(const json& v) {
    return v.is_array() && !v.empty() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_object(); });
}
bool is_row_list(const json& v) {
    return v.is_array() && !v.empty() && std::all_of(v.begin(), v.end(), [](const json& e) { return is_scalar_list(e) && !e.empty(); });
}

// Members that are flat objects sharing most of their fields: at least two, and no more
// distinct fields than half again the largest member has.
bool is_matrix(const json& v) {
    if (!v.is_object() || v.size() < 2) return false;
    std::vector<std::string> keys;
    std::size_t largest = 0;
    for (const auto& [name, member] : v.items()) {
        if (!is_flat_object(member)) return false;
        largest = std::max(largest, member.size());
        for (const auto& [key, _] : member.items())
            if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    }
    return keys.size() * 2 <= largest * 3;
}

// JSON objects come with their keys sorted, which put "lower" before "timestamp" and "interval
// coverage" before "model": a row's identity (when, which) goes first, then its value, then the
// rest in key order.
int column_rank(const std::string& key) {
    static const std::vector<std::string> leading{"timestamp", "time", "date", "name", "model", "metric", "workflow_type",
                                                  "workflow_id", "allocation_id", "id", "value"};
    const std::string field = key.substr(0, key.find('.'));
    const auto it = std::find(leading.begin(), leading.end(), field);
    return it == leading.end() ? static_cast<int>(leading.size()) : static_cast<int>(it - leading.begin());
}

std::string join(const std::string& path, const std::string& key) { return path.empty() ? key : path + " \u203A " + key; }

class Renderer {
public:
    explicit Renderer(const Display& d) : d_(d), cs_(d.style.charset) {}

    std::vector<std::string> lines;

    void object(const json& v, const std::string& path, int depth) {
        if (is_matrix(v)) return matrix(v, path);
        std::vector<std::pair<std::string, const json*>> fields; // "a.b" -> value
        std::vector<std::pair<std::string, const json*>> parts;
        // "columns" names the fields of a sibling list of rows (history export): its header.
        const bool has_rows = std::any_of(v.begin(), v.end(), [](const json& m) { return is_row_list(m); });
        for (const auto& [key, member] : v.items()) {
            if (key == "columns" && has_rows) continue;
            if (is_simple(member)) fields.emplace_back(field_text(key), &member);
            else if (is_flat_object(member) && member.size() <= 8)
                for (const auto& [sub, value] : member.items()) fields.emplace_back(field_text(key) + "." + field_text(sub), &value);
            else parts.emplace_back(key, &member);
        }
        if (!fields.empty()) {
            heading(path);
            field_table(fields);
        }
        for (const auto& [key, member] : parts) {
            if (member->is_object() && member->empty()) continue;
            const std::string where = join(path, field_text(key));
            if (depth >= kMaxDepth) {
                heading(where);
                lines.push_back(fit("  (nested deeper: resmgr --json shows it)", d_.width, cs_));
            } else if (member->is_object()) {
                object(*member, where, depth + 1);
            } else if (is_object_list(*member)) {
                object_list(*member, where, depth);
            } else if (is_row_list(*member)) {
                row_list(*member, v.contains("columns") ? v["columns"] : json(), where);
            } else {
                heading(where);
                for (const auto& item : *member) render(item, "", depth + 1);
            }
        }
    }

    void render(const json& v, const std::string& path, int depth) {
        if (v.is_object()) object(v, path, depth);
        else if (is_object_list(v)) object_list(v, path, depth);
        else if (is_row_list(v)) row_list(v, json(), path);
        else if (v.is_array()) {
            heading(path);
            for (const auto& item : v) render(item, "", depth + 1);
        } else {
            for (auto& line : wrap(sanitize(value_text(v, cs_), cs_), d_.width)) lines.push_back(std::move(line));
        }
    }

private:
    const Display& d_;
    Charset cs_;

    void heading(const std::string& path) {
        if (path.empty()) return;
        if (!lines.empty()) lines.emplace_back();
        lines.push_back(paint(fit(sanitize(path, cs_), d_.width, cs_), Colour::bold, d_.style.colour));
    }

    void add_table(const std::vector<Column>& columns, const std::vector<std::vector<Cell>>& rows) {
        for (auto& line : render_table(columns, rows, d_.width, d_.style)) lines.push_back(std::move(line));
    }

    void field_table(const std::vector<std::pair<std::string, const json*>>& fields) {
        std::size_t name_width = 5;
        for (const auto& f : fields) name_width = std::max(name_width, display_width(sanitize(f.first, cs_)));
        name_width = std::min(name_width, d_.width / 2);
        const std::size_t value_width = std::max<std::size_t>(8, d_.width > name_width + 2 ? d_.width - name_width - 2 : 0);
        std::vector<std::vector<Cell>> rows;
        for (const auto& [name, value] : fields) {
            const auto text = wrap(sanitize(value_text(*value, cs_), cs_), value_width);
            for (std::size_t i = 0; i < text.size(); ++i) rows.push_back({{i ? "" : name}, {text[i], colour_of(*value)}});
        }
        add_table({{"FIELD", false, true, 8, 1}, {"VALUE", false, true, 8, 2}}, rows);
    }

    // Rows: the members; columns: their fields, in first-seen order.
    void matrix(const json& v, const std::string& path) {
        std::vector<std::string> keys;
        for (const auto& [_, member] : v.items())
            for (const auto& [key, value] : member.items())
                if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
        std::vector<Column> columns{{"", false, false, 8, 100}};
        for (std::size_t i = 0; i < keys.size(); ++i) {
            const bool text_column = std::any_of(v.begin(), v.end(), [&](const json& m) { return m.contains(keys[i]) && m[keys[i]].is_string(); });
            columns.push_back({header_text(keys[i]), !text_column, text_column, 8, static_cast<int>(keys.size() - i)});
        }
        std::vector<std::vector<Cell>> rows;
        for (const auto& [name, member] : v.items()) {
            std::vector<Cell> row{{field_text(name)}};
            for (const auto& key : keys) row.push_back(member.contains(key) ? Cell{value_text(member[key], cs_), colour_of(member[key])} : Cell{""});
            rows.push_back(std::move(row));
        }
        heading(path);
        add_table(columns, rows);
    }

    void object_list(const json& list, const std::string& path, int depth) {
        std::vector<std::string> keys; // "a" or "a.b" (a flat member flattened)
        std::vector<std::string> nested;
        for (const auto& item : list)
            for (const auto& [key, value] : item.items()) {
                auto add = [&](const std::string& k) {
                    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
                };
                if (is_simple(value)) add(key);
                else if (is_flat_object(value) && value.size() <= 4)
                    for (const auto& [sub, _] : value.items()) add(key + "." + sub);
                else if (std::find(nested.begin(), nested.end(), key) == nested.end() && !(value.is_object() && value.empty()) &&
                         !(value.is_array() && value.empty()))
                    nested.push_back(key);
            }
        std::stable_sort(keys.begin(), keys.end(), [](const std::string& a, const std::string& b) { return column_rank(a) < column_rank(b); });
        heading(path + (path.empty() ? "" : " (" + std::to_string(list.size()) + ")"));
        std::vector<Column> columns;
        for (std::size_t i = 0; i < keys.size(); ++i) {
            const bool text_column = std::any_of(list.begin(), list.end(), [&](const json& item) { return cell_of(item, keys[i]).is_string(); });
            columns.push_back({header_text(keys[i]), !text_column, text_column, 8, static_cast<int>(keys.size() - i)});
        }
        std::vector<std::vector<Cell>> rows;
        for (std::size_t r = 0; r < list.size() && r < kMaxRows; ++r) {
            std::vector<Cell> row;
            for (const auto& key : keys) {
                const json& value = cell_of(list[r], key);
                row.push_back({value.is_null() && !has(list[r], key) ? "" : value_text(value, cs_), colour_of(value)});
            }
            rows.push_back(std::move(row));
        }
        if (!columns.empty()) add_table(columns, rows);
        if (list.size() > kMaxRows) lines.push_back("  ... " + std::to_string(list.size() - kMaxRows) + " more (resmgr --json shows all)");
        if (!nested.empty() && depth < kMaxDepth) {
            std::string names;
            for (const auto& n : nested) names += (names.empty() ? "" : ", ") + field_text(n);
            lines.push_back(fit(sanitize("  per item also: " + names + " (resmgr --json shows them)", cs_), d_.width, cs_));
        }
    }

    void row_list(const json& list, const json& names, const std::string& path) {
        std::size_t width = 0;
        for (const auto& row : list) width = std::max(width, row.size());
        heading(path + " (" + std::to_string(list.size()) + ")");
        std::vector<Column> columns;
        for (std::size_t i = 0; i < width; ++i) {
            const std::string name = names.is_array() && i < names.size() && names[i].is_string() ? names[i].get<std::string>() : std::to_string(i + 1);
            columns.push_back({header_text(name), i > 0, i == 0, 8, static_cast<int>(width - i)});
        }
        std::vector<std::vector<Cell>> rows;
        // The newest rows matter most in a series: keep the last kMaxRows.
        const std::size_t first = list.size() > kMaxRows ? list.size() - kMaxRows : 0;
        if (first) lines.push_back("  ... " + std::to_string(first) + " earlier rows (resmgr --json shows all)");
        for (std::size_t r = first; r < list.size(); ++r) {
            std::vector<Cell> row;
            for (const auto& value : list[r]) row.push_back({value_text(value, cs_)});
            rows.push_back(std::move(row));
        }
        add_table(columns, rows);
    }

    static bool has(const json& item, const std::string& key) {
        const auto dot = key.find('.');
        if (dot == std::string::npos) return item.contains(key);
        const auto it = item.find(key.substr(0, dot));
        return it != item.end() && it->is_object() && it->contains(key.substr(dot + 1));
    }

    static const json& cell_of(const json& item, const std::string& key) {
        static const json none;
        const auto dot = key.find('.');
        const auto it = item.find(key.substr(0, dot));
        if (it == item.end()) return none;
        if (dot == std::string::npos) return *it;
        if (!it->is_object()) return none;
        const auto sub = it->find(key.substr(dot + 1));
        return sub == it->end() ? none : *sub;
    }

    static Colour colour_of(const json& v) {
        if (!v.is_string()) return Colour::none;
        const auto& s = v.get_ref<const std::string&>();
        if (s == "failed" || s == "critical" || s == "denied" || s == "error") return Colour::red;
        if (s == "warning" || s == "queued" || s == "paused" || s == "degraded") return Colour::yellow;
        return Colour::none;
    }
};

} // namespace

std::string value_text(const json& value, Charset charset) {
    switch (value.type()) {
    case json::value_t::null: return unknown(charset);
    case json::value_t::boolean: return value.get<bool>() ? "yes" : "no";
    case json::value_t::string: return value.get<std::string>();
    case json::value_t::number_integer: return std::to_string(value.get<long long>());
    case json::value_t::number_unsigned: return std::to_string(value.get<unsigned long long>());
    case json::value_t::number_float: {
        const double v = value.get<double>();
        if (!std::isfinite(v)) return unknown(charset);
        if (std::abs(v) >= 1e15 || (v == std::floor(v) && std::abs(v) >= 1000)) return format("%.0f", v);
        std::string s = format("%.3f", v);
        while (s.back() == '0') s.pop_back();
        if (s.back() == '.') s.pop_back();
        return s == "-0" ? "0" : s;
    }
    case json::value_t::array: {
        if (value.empty()) return "none";
        std::string out;
        for (const auto& e : value) out += (out.empty() ? "" : ", ") + (e.is_primitive() ? value_text(e, charset) : e.dump());
        return out;
    }
    default: return value.dump();
    }
}

std::string field_text(const std::string& key) {
    std::string out = key;
    std::replace(out.begin(), out.end(), '_', ' ');
    return out;
}

std::string header_text(const std::string& key) {
    std::string out = field_text(key);
    for (char& c : out)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return out;
}

std::vector<std::string> wrap(const std::string& text, std::size_t width) {
    std::vector<std::string> out;
    width = std::max<std::size_t>(width, 1);
    std::string line;
    std::size_t used = 0;
    for (std::size_t start = 0; start <= text.size();) {
        std::size_t end = text.find(' ', start);
        if (end == std::string::npos) end = text.size();
        std::string word = text.substr(start, end - start);
        std::size_t w = display_width(word);
        // A word longer than a line is broken into pieces a line wide, so nothing is lost.
        while (w > width) {
            if (used > 0) out.push_back(std::move(line)), line.clear(), used = 0;
            std::size_t cut = 0;
            for (std::size_t next = 1; next <= word.size(); ++next) {
                if (next < word.size() && (static_cast<unsigned char>(word[next]) & 0xC0) == 0x80) continue; // inside a character
                if (display_width(std::string_view(word).substr(0, next)) > width) break;
                cut = next;
            }
            if (cut == 0) cut = 1; // a character wider than the line: it goes alone
            out.push_back(word.substr(0, cut));
            word.erase(0, cut);
            w = display_width(word);
        }
        if (used > 0 && used + 1 + w > width) {
            out.push_back(std::move(line));
            line.clear();
            used = 0;
        }
        if (used > 0) line += ' ', ++used;
        line += word;
        used += w;
        start = end + 1;
    }
    out.push_back(std::move(line));
    return out;
}

std::vector<std::string> render_fields(const json& value, const Display& display) {
    Renderer r(display);
    r.render(value, "", 0);
    return std::move(r.lines);
}

} // namespace resmgr::cli
