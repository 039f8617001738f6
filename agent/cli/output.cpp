// Terminal rendering of envelopes.
#include "cli/output.hpp"

#include <algorithm>
#include <cstdio>
#include <iomanip>

namespace resmgr::cli {
namespace {

using nlohmann::json;

std::string str(const json& j, const char* key, const std::string& fallback = "-") {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

void print_allocation(std::ostream& out, const json& a) {
    const json& r = a.value("resources", json::object());
    out << a.value("allocation_id", "?") << "  workflow " << str(a, "workflow_id") << "  priority " << str(a, "priority")
        << " (" << str(a, "priority_value") << ")  " << str(a, "status") << "\n";
    out << "  cpu " << (r.value("cpu_cores", 0.0) > 0 ? num(r.value("cpu_cores", 0.0)) + " cores" : "uncapped")
        << "  memory " << (r.value("memory_bytes", 0ULL) > 0 ? num(r.value("memory_gb", 0.0)) + " GiB" : "uncapped")
        << "  agents " << r.value("agents", 0);
    if (r.contains("pids")) out << "  pids " << str(r, "pids");
    out << "\n  expires " << str(a, "expires_at") << "  owner uid " << a.value("owner", json::object()).value("uid", 0) << "\n";
    if (a.contains("cgroup_path") && !a["cgroup_path"].get<std::string>().empty()) out << "  cgroup " << str(a, "cgroup_path") << "\n";
    if (a.contains("pids") && a["pids"].is_number()) out << "  processes " << a["pids"].get<long>() << "\n";
}

// What this host cannot enforce is a property of the host, so it is said once, by name
// ("cpu.max" of "cpu.max=200000 100000: controller 'cpu' is not available ..."); the reasons
// are in the envelope and in `resmgr doctor`.
void print_unenforced(std::ostream& out, const json& allocations) {
    std::vector<std::string> names;
    for (auto& a : allocations)
        for (auto& u : a.value("enforcement", json::object()).value("unenforced", json::array())) {
            const std::string text = u.get<std::string>();
            std::string name = text.substr(0, text.find_first_of("=:"));
            if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(std::move(name));
        }
    if (names.empty()) return;
    out << "NOT ENFORCED on this host:";
    for (size_t i = 0; i < names.size(); ++i) out << (i ? ", " : " ") << names[i];
    out << " (see resmgr doctor)\n";
}

void print_capacity(std::ostream& out, const json& c) {
    const json& cpu = c.value("cpu_cores", json::object());
    const json& mem = c.value("memory", json::object());
    const json& pool = c.value("agent_pool", json::object());
    out << "capacity: cpu " << num(cpu.value("available", 0.0)) << " of " << num(cpu.value("total", 0.0)) << " cores free ("
        << num(cpu.value("reserved", 0.0)) << " reserved)  memory " << num(mem.value("available_gb", 0.0)) << " of "
        << num(mem.value("total_gb", 0.0)) << " GiB free (" << num(mem.value("buffer_gb", 0.0)) << " reserved)  agents "
        << pool.value("available_agents", 0) << " of " << pool.value("max_agents", 0) << " free\n";
}

void print_json_tree(std::ostream& out, const json& j, int indent) {
    for (auto& [key, value] : j.items()) {
        out << std::string(static_cast<size_t>(indent), ' ') << key << ":";
        if (value.is_object()) {
            out << "\n";
            print_json_tree(out, value, indent + 2);
        } else if (value.is_array() && !value.empty() && value.front().is_object()) {
            out << "\n";
            for (auto& item : value) print_json_tree(out, item, indent + 2), out << "\n";
        } else {
            out << " " << (value.is_string() ? value.get<std::string>() : value.dump()) << "\n";
        }
    }
}

// `status pressure`: the mode and signal source, each signal, then what is held back from whom.
void print_pressure(std::ostream& out, const json& result) {
    out << "pressure responder: mode " << str(result, "mode") << "; signals: " << str(result, "signal_source") << "\n";
    const json signals = result.value("signals", json::object());
    for (auto& [name, s] : signals.items()) {
        if (!s.value("enabled", true)) continue;
        out << "  " << name << " " << str(s, "value", "unknown") << " % (threshold " << str(s, "threshold") << ", clear " << str(s, "clear")
            << ")" << (s.value("raised", false) ? " RAISED since " + str(s, "raised_at") : "") << "\n";
    }
    const json held = result.value("held", json::array());
    if (held.empty()) out << "nothing held back\n";
    for (auto& h : held) {
        out << "held: " << str(h, "action") << " on " << str(h, "allocation_id", "the node") << " (" << str(h, "workflow_id", "-") << ", priority "
            << str(h, "priority") << ") since " << str(h, "since") << ", for " << str(h, "signal");
        if (!h.value("enforced", true)) out << "; advisory, not taken";
        else if (h.contains("unenforced")) out << "; NOT enforced: " << str(h, "unenforced");
        out << "\n";
    }
    if (auto e = str(result, "load_error", ""); !e.empty()) out << "state file: " << e << "\n";
}

} // namespace

void print_human(std::ostream& out, const std::string& operation, const json& envelope) {
    const json& result = envelope.value("result", json::object());
    if (operation == "allocate" || operation == "reallocate") {
        const json& allocation = result.value("allocation", json::object());
        out << (operation == "allocate" ? "Allocated " : "Reallocated ");
        print_allocation(out, allocation);
        print_unenforced(out, json::array({allocation}));
        if (result.contains("capacity")) print_capacity(out, result["capacity"]);
    } else if (operation == "release") {
        out << "Released " << str(result, "allocation_id") << "\n";
        if (auto f = result.find("final"); f != result.end() && f->value("oom_kills", 0) > 0)
            out << "  the OOM killer killed " << (*f)["oom_kills"] << " process(es) in it\n";
    } else if (operation == "events") {
        for (auto& e : result.value("events", json::array())) print_event_line(out, e);
    } else if (operation == "status" && result.contains("allocations")) {
        const json& list = result.value("allocations", json::array());
        const json& backend = result.value("backend", json::object());
        out << "backend " << str(backend, "name") << (backend.value("enforces_limits", false) ? "" : " (limits NOT enforced)") << ", "
            << list.size() << " allocation(s)\n";
        for (auto& a : list) print_allocation(out, a);
        print_unenforced(out, list);
        if (result.contains("capacity")) print_capacity(out, result["capacity"]);
    } else if (operation == "status" && result.contains("signal_source")) {
        print_pressure(out, result);
    } else if (operation == "doctor" && result.contains("verdict")) {
        out << str(result, "verdict") << "\n";
        for (auto& e : result.value("enforced", json::array())) out << "  enforced: " << e.get<std::string>() << "\n";
        for (auto& e : result.value("not_enforced", json::array())) out << "  NOT enforced: " << e.get<std::string>() << "\n";
        for (auto& r : envelope.value("recommendations", json::array())) out << "fix: " << r.get<std::string>() << "\n";
        out << "(the host and daemon details: resmgr --json doctor)\n";
        return;
    } else if (operation == "why") {
        out << str(result, "explanation") << "\n";
        if (result.value("held", false)) out << "  reads from outside: " << str(result.value("outside_processes", json::object()), "reads") << "\n";
        for (auto& w : result.value("waiting_openers", json::array()))
            out << "  waiting: " << str(w, "comm", "?") << "[" << str(w, "pid", "?") << "] since " << str(w, "waiting_since", "?")
                << ", refused in " << str(w, "refused_in_seconds", "?") << " s unless the holder lets go\n";
        for (auto& c : result.value("conflicts", json::array()))
            out << "  conflict " << str(c, "conflict_id") << ": " << str(c, "event") << ", " << str(c, "occurrences") << " time(s), last "
                << str(c, "last_seen") << "\n";
        for (auto& b : result.value("reservations", json::array()))
            out << "  booked by reservation " << str(b, "reservation_id") << " from " << str(b, "start_time") << "\n";
    } else {
        print_json_tree(out, result, 0);
    }
    for (auto& r : envelope.value("recommendations", json::array())) out << "note: " << r.get<std::string>() << "\n";
}

void print_event_line(std::ostream& out, const json& e) {
    out << str(e, "timestamp", "?") << " " << str(e, "event", "?") << " " << str(e, "workflow_id", "global");
    if (e.contains("allocation_id")) out << " " << str(e, "allocation_id");
    out << ": " << str(e, "message", "") << "\n";
}

std::string parse_error_text(const json::parse_error& e) {
    const std::string what = e.what();
    const auto colon = what.find(": ");
    return (colon == std::string::npos ? what : what.substr(colon + 2)) + ", at byte " + std::to_string(e.byte);
}

void print_error(std::ostream& err, const std::string& program, const json& envelope) {
    const json& e = envelope.value("error", json::object());
    err << program << ": " << str(envelope, "operation", "request") << " failed: " << str(e, "code", "ERROR") << ": "
        << str(e, "message", "unknown error") << "\n";
    if (auto d = str(e, "details", ""); !d.empty()) err << "  " << d << "\n";
    for (auto& s : envelope.value("recovery_suggestions", json::array())) err << "  try: " << s.get<std::string>() << "\n";
    for (auto& s : envelope.value("alternative_options", json::array())) err << "  or:  " << s.get<std::string>() << "\n";
}

} // namespace resmgr::cli
