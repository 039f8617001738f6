// resmgr: the command-line client. `resmgr <operation> [resource-type] ['json-params']`, the
// seed's operations word for word.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cgroup/probe.hpp"
#include "resmgr/json.hpp"
#include "cli/command_line.hpp"
#include "cli/output.hpp"
#include "resmgr/client.hpp"

namespace {

using nlohmann::json;

constexpr const char* kDescription =
    "resmgr - ask resmgrd for resources, and see what it has promised.\n\n"
    "Usage: resmgr [--socket PATH] [--json] <operation> [resource-type] ['json-params']\n\n"
    "Operations:\n"
    "  allocate    '{\"workflow_id\":\"wf\",\"priority\":\"high\",\"resources\":{\"cpu_cores\":2,\"memory_gb\":4}}'\n"
    "              Admit an allocation and create its cgroup. priority: critical|high|medium|low or 0-100.\n"
    "              resources: cpu_cores (fractional), memory_gb (GiB, or a size such as \"512M\"), agents,\n"
    "              pids, tool_instances. Also: duration (\"2h\"; default the policy's max_duration),\n"
    "              exclusive_files, constraints{max_duration,exclusive_access,conflict_avoidance},\n"
    "              performance_requirements, auto_release{on_completion,on_timeout,on_failure,grace_period}.\n"
    "              \"wait\": true queues it when the node is full (status queued, started in priority order).\n"
    "  reserve     '{\"reservation_id\":\"res_1\",\"start_time\":\"2027-01-15T15:00:00Z\",\"duration\":\"2h\",\"resources\":{...}}'\n"
    "              Book capacity for a future window; at start_time it becomes an active allocation.\n"
    "  release     '{\"allocation_id\":\"alloc_...\",\"force\":false}'   Kill what runs in it, remove its cgroup.\n"
    "  reallocate  '{\"allocation_id\":\"alloc_...\",\"resources\":{\"cpu_cores\":4}}'  Change limits live.\n"
    "  status      ['{\"allocation_id\":\"...\"}' | '{\"workflow_id\":\"...\"}']   Allocations, limits, capacity.\n"
    "  check-conflicts '{\"proposed_allocation\":{\"workflow_id\":\"w\",\"resources\":{...},\"files\":[...]},\n"
    "              \"check_future\":true,\"time_horizon\":\"4h\"}'   Resource, time, workflow and file conflicts.\n"
    "  status conflicts ['{\"all\":true}']   Conflicts recorded (conf_... ids): opens the file guard refused\n"
    "              or held, held files renamed over or unlinked, allocations refused a held file.\n"
    "  resolve-conflicts '{\"conflict_id\":\"conf_...\",\"strategy\":\"priority_based|queue_and_serialize|release\"}'\n"
    "              priority_based: a higher-priority claimant allocation takes the file; queue_and_serialize:\n"
    "              outside writers wait for the holder; release: the holder lets go of the file.\n"
    "              \"notify_affected\": false resolves without publishing an event to each affected workflow.\n"
    "  prevent-conflicts ['{\"file_conflicts\":{\"strategy\":\"file_locking\",\"timeout\":\"10m\",\n"
    "              \"enforcement\":\"strict|exclusive_writes|advisory\",\"exceptions\":{\"cgroups\":[],\"commands\":[]}},\n"
    "              \"pending_requests\":[{...}],\"prediction_horizon\":\"1h\",\"risk_threshold\":\"low|medium|high\",\n"
    "              \"notification_enabled\":true}']   Set how held files are enforced (root), and check pending\n"
    "              requests for conflicts before they are made (published as events with notification_enabled).\n"
    "              The seed's form works too: '{\"policy_type\":\"file_locking\",\"scope\":\"global\",\n"
    "              \"enforcement\":\"strict\",\"exceptions\":[\"read_only_operations\"]}' (= exclusive_writes).\n"
    "  status agents|workflows|cpu|memory|storage   The agent pool, workflows, or one resource, measured.\n"
    "  monitor system   The node as measured: CPU/memory/storage use, PSI pressure, agent pool, workflows,\n"
    "              tool instances, threshold states (sampled every monitoring_intervals.resource_check).\n"
    "  usage <workflow_id>   Per allocation: allocated vs used CPU and memory, throttling, OOM events,\n"
    "              IO, per-agent breakdown, efficiency = used / allocated.\n"
    "  capacity    Node capacity, what is allocatable, allocated and free, and peaks since resmgrd started.\n"
    "  events [--follow] [--type T ...]   Recent events (allocated, released, expired, denied, queued,\n"
    "              preempted, resumed, conflict, threshold, threshold_cleared, oom_kill); --follow streams\n"
    "              them live until interrupted.\n"
    "  why PATH    Who holds PATH exclusively and since when, what a process outside the holder meets\n"
    "              when it opens it (EPERM, or a wait of at most the queue timeout), who waits for it now,\n"
    "              and its conflict records. PATH is resolved here, with your own permissions.\n"
    "  doctor      What this host enforces, what it does not and how to get it (cgroup mode, controllers,\n"
    "              systemd, backend, file guard, BPF LSM, eBPF).\n"
    "Only the owner of an allocation (the uid that made it) or root may release or reallocate it.\n";

constexpr const char* kFooter =
    "Output: the seed's JSON envelope when stdout is not a terminal or with --json; a readable\n"
    "summary on a terminal. Exit status: 0 success, 1 error envelope (or resmgrd unreachable),\n"
    "2 usage error.\n"
    "Environment: RESMGR_SOCKET sets the socket when --socket is not given (default /run/resmgr/resmgr.sock).";

json local_doctor_result(const std::string& socket, const std::string& daemon_error) {
    return {{"host", resmgr::cgroup::probe_host().to_json()},
            {"daemon", {{"reachable", false}, {"socket", socket}, {"error", daemon_error}}}};
}

void print_event(const json& event, bool human) {
    if (!human) {
        std::cout << event.dump() << std::endl; // one line per event, flushed: fit for a pipe
        return;
    }
    resmgr::cli::print_event_line(std::cout, event);
    std::cout.flush();
}

// Subscribes and prints events until resmgrd goes away or the user interrupts.
int follow_events(const std::string& path, resmgr::Request request, bool human) {
    request.operation = "subscribe";
    try {
        resmgr::Client client(path);
        json answer = client.call(request);
        if (answer.value("status", "") != "success") {
            resmgr::cli::print_error(std::cerr, "resmgr", answer);
            return 1;
        }
        const json& subscribed = answer["result"]["subscribed"];
        std::cerr << "resmgr: following " << (subscribed.is_string() ? "all events" : subscribed.dump()) << " from " << path << std::endl;
        for (;;) print_event(client.read_message(), human);
    } catch (const resmgr::ClientError& e) {
        std::cerr << "resmgr: events: " << e.what() << "\n";
        return 1;
    }
}

// The operation `word` mistypes, or "" when it is one, or not near one: resmgrd has the last word
// on what exists, the client only catches typos. The operations are the seed's and these.
std::string misspelt_operation(const std::string& word) {
    std::vector<std::string> known = resmgr::seed_operations();
    known.insert(known.end(), {"doctor", "events", "attach", "detach", "why"});
    if (std::find(known.begin(), known.end(), word) != known.end()) return "";
    return resmgr::cli::closest_word(word, known);
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{kDescription, "resmgr"};
    std::string socket;
    bool as_json = false;
    std::vector<std::string> words;
    app.add_option("--socket", socket, "resmgrd's socket (default: $RESMGR_SOCKET, else /run/resmgr/resmgr.sock)");
    app.add_flag("--json", as_json, "Print the JSON envelope even on a terminal");
    bool follow = false;
    std::vector<std::string> event_types;
    app.add_flag("--follow,-f", follow, "events: keep the connection open and print each event as it happens");
    app.add_option("--type", event_types, "events: only these types (e.g. threshold, oom_kill, RESOURCE_CONFLICT); repeatable");
    app.add_option("operation", words, "<operation> [resource-type] ['json-params']")->required()->expected(1, 3);
    app.set_version_flag("--version", std::string("resmgr ") + RESMGR_VERSION);
    app.footer(kFooter);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return e.get_exit_code() == 0 ? 0 : (rc == 0 ? 0 : 2);
    }

    resmgr::Request request;
    request.operation = words[0];
    if (std::string meant = misspelt_operation(request.operation); !meant.empty()) {
        std::cerr << "resmgr: unknown operation '" << request.operation << "'; did you mean '" << meant << "'? (see resmgr --help)\n";
        return 2;
    }
    for (size_t i = 1; i < words.size(); ++i) {
        const std::string& w = words[i];
        if (!w.empty() && w.find_first_not_of(" \t\n") != std::string::npos && w[w.find_first_not_of(" \t\n")] == '{') {
            if (i + 1 != words.size()) {
                std::cerr << "resmgr: the JSON parameters must come last\n";
                return 2;
            }
            try {
                request.params = json::parse(w);
            } catch (const json::parse_error& e) {
                std::cerr << "resmgr: the JSON parameters are not valid JSON: " << resmgr::cli::parse_error_text(e) << "\n";
                return 2;
            }
        } else if (request.resource_type.empty() && i == 1) {
            request.resource_type = w;
        } else {
            std::cerr << "resmgr: unexpected argument '" << w << "' (expected JSON parameters in '{...}')\n";
            return 2;
        }
    }

    // `why PATH`: resolved here, with the asker's permissions; resmgrd only looks the path up.
    if (request.operation == "why" && !request.resource_type.empty()) {
        std::error_code ec;
        auto path = std::filesystem::absolute(request.resource_type, ec);
        if (auto canonical = std::filesystem::weakly_canonical(path, ec); !ec) path = canonical;
        request.params["path"] = path.lexically_normal().string();
        request.resource_type.clear();
    }

    const bool human = !as_json && ::isatty(STDOUT_FILENO);
    const std::string path = resmgr::resolve_socket_path(socket);
    if ((follow || !event_types.empty()) && request.operation != "events") {
        std::cerr << "resmgr: --follow and --type are options of `resmgr events`\n";
        return 2;
    }
    if (request.operation == "events") {
        if (!event_types.empty()) request.params["types"] = event_types;
        if (follow) return follow_events(path, request, human);
    }
    json envelope;
    try {
        resmgr::Client client(path);
        envelope = client.call(request);
    } catch (const resmgr::ClientError& e) {
        if (request.operation == "doctor") {
            // The host report is still useful when the daemon is down.
            envelope = {{"status", "success"}, {"operation", "doctor"}, {"result", local_doctor_result(path, e.what())},
                        {"recommendations", {"resmgrd is not reachable: start it (systemctl start resmgrd)"}}};
        } else {
            envelope = resmgr::error_envelope(request.operation,
                                              resmgr::ApiError(resmgr::ErrorCode::BACKEND_ERROR, "resmgrd is not reachable", e.what(),
                                                               {}, {"Start resmgrd (systemctl start resmgrd)", "Check --socket / RESMGR_SOCKET"}));
        }
    }
    const bool ok = envelope.value("status", "") == "success";
    if (!human) {
        std::cout << resmgr::dump_text(envelope, 2) << "\n";
    } else if (ok) {
        resmgr::cli::print_human(std::cout, request.operation, envelope);
    } else {
        resmgr::cli::print_error(std::cerr, "resmgr", envelope);
    }
    return ok ? 0 : 1;
}
