// resmgr: the command-line client. `resmgr <operation> [resource-type] ['json-params']`, the
// seed's operations word for word.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cgroup/probe.hpp"
#include "resmgr/json.hpp"
#include "cli/backtest.hpp"
#include "cli/command_line.hpp"
#include "cli/operation_help.hpp"
#include "cli/output.hpp"
#include "cli/planning_charts.hpp"
#include "cli/top.hpp"
#include "resmgr/client.hpp"
#include "resmgr/operations.hpp"

namespace {

using nlohmann::json;

constexpr const char* kIntro =
    "resmgr - ask resmgrd for resources, and see what it has promised.\n\n"
    "Usage: resmgr [--socket PATH] [--json] <operation> [resource-type] ['json-params']\n\n"
    "Operations:\n";

// The operations' help comes from the catalog resmgrd routes by, so the two cannot drift.
std::string describe_operations() {
    std::string out = kIntro;
    for (const auto& op : resmgr::operation_catalog()) {
        if (op.by_socket) continue;
        std::string head = "  " + op.name;
        if (!op.resource_type.empty() && op.resource_type != "*") head += " " + op.resource_type;
        if (!op.usage.empty()) head += " " + op.usage;
        if (!op.built) head += "   (not built yet)";
        out += head + "\n";
        std::string summary = op.summary;
        for (size_t start = 0; start < summary.size();) {
            size_t end = summary.find('\n', start);
            if (end == std::string::npos) end = summary.size();
            out += "              " + summary.substr(start, end - start) + "\n";
            start = end + 1;
        }
    }
    out += "  backtest --csv FILE [--horizon 1d] [--step 6h] [--confidence 0.95] [--forecasts-out OUT.csv] [--svg F.svg] [--anomalies]\n"
           "              Offline, no resmgrd: back-test the forecasting models on a timestamp,value CSV and\n"
           "              report their measured accuracy (resmgr backtest --help).\n";
    out += "  top [--once] [--sort cpu|memory|priority] [--filter TEXT]\n"
           "              The node and its allocations live, like top(1); --once prints one frame\n"
           "              for scripts. Keys: c/m/p sort, / filter, space pause, q quit (resmgr top --help).\n";
    out += "  help [OPERATION]\n"
           "              An operation's parameters: name, type, range, required or not, what it means.\n";
    out += "Only the owner of an allocation (the uid that made it) or root may release or reallocate it.\n";
    return out;
}

constexpr const char* kFooter =
    "Output: the seed's JSON envelope when stdout is not a terminal or with --json; on a terminal,\n"
    "tables fitted to its width (status, usage and capacity with sparklines of the last hour from\n"
    "the history; forecast, analyze-trends and plan-capacity with a chart of history, forecast and\n"
    "interval), coloured unless NO_COLOR is set or TERM is dumb. --svg FILE writes those charts as SVG.\n"
    "Exit status: 0 success, 1 error envelope (or resmgrd unreachable), 2 usage error.\n"
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
    std::vector<std::string> known = resmgr::operation_names();
    known.push_back("backtest"); // local, see main()
    known.push_back("top");
    known.push_back("help");
    if (std::find(known.begin(), known.end(), word) != known.end()) return "";
    return resmgr::cli::closest_word(word, known);
}

// The index of the first word that is not an option or an option's value (the operation), or
// argc when there is none.
int operation_index(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--socket" || a == "--type" || a == "--since" || a == "--metric" || a == "--svg") ++i; // their value follows
        else if (a == "--") return i + 1;
        else if (a.empty() || a[0] != '-') return i;
    }
    return argc;
}

// The last hour of `series` for the sparklines of a readable answer: the result of
// `history recent`, or {"unavailable": why} (history off, an older resmgrd).
json recent_history(const std::string& path, const std::vector<std::string>& series, std::size_t points) {
    try {
        resmgr::Client client(path);
        json answer = client.call({"history", "recent", {{"series", series}, {"since", "1h"}, {"points", points}}});
        if (answer.value("status", "") == "success") return answer["result"];
        const json& e = answer.value("error", json::object());
        return {{"unavailable", e.value("message", std::string("history recent failed"))}};
    } catch (const resmgr::ClientError& e) {
        return {{"unavailable", e.what()}};
    }
}

} // namespace

int main(int argc, char** argv) {
    // Local subcommands run here without resmgrd, with their own options and --help.
    if (argc >= 2 && std::string(argv[1]) == "backtest") return resmgr::cli::backtest_main(argc - 1, argv + 1);
    // `resmgr top` is the CLI's own view, not an operation of resmgrd: it has options of its own.
    if (int at = operation_index(argc, argv); at < argc && std::string(argv[at]) == "top") {
        std::vector<std::string> args(argv, argv + argc);
        args.erase(args.begin() + at);
        return resmgr::cli::run_top(args);
    }
    CLI::App app{describe_operations(), "resmgr"};
    std::string socket;
    bool as_json = false;
    std::vector<std::string> words;
    app.add_option("--socket", socket, "resmgrd's socket (default: $RESMGR_SOCKET, else /run/resmgr/resmgr.sock)");
    app.add_flag("--json", as_json, "Print the JSON envelope even on a terminal");
    bool follow = false;
    std::vector<std::string> event_types;
    app.add_flag("--follow,-f", follow, "events: keep the connection open and print each event as it happens");
    app.add_option("--type", event_types, "events: only these types (e.g. threshold, oom_kill, RESOURCE_CONFLICT); repeatable");
    std::string history_since, history_csv_file, history_metric;
    bool history_csv = false;
    app.add_option("--since", history_since, "history export: from this RFC 3339 time, or this long ago (24h); default 48h");
    auto* csv_option = app.add_option("--csv", history_csv_file, "history export: print CSV; history import: the CSV FILE to import")
                           ->expected(0, 1);
    app.add_option("--metric", history_metric, "history import: the series the CSV becomes (e.g. node/cpu_percent)");
    std::string svg_file;
    app.add_option("--svg", svg_file, "forecast, analyze-trends, plan-capacity: also write their chart(s) to this SVG file");
    auto* operation_words = app.add_option("operation", words, "<operation> [resource-type] ['json-params']")->expected(1, 3);
    bool completion_words = false;
    app.add_flag("--completion-words", completion_words)->group(""); // hidden: for completions/resmgr.bash
    app.set_version_flag("--version", std::string("resmgr ") + RESMGR_VERSION);
    app.footer(kFooter);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return e.get_exit_code() == 0 ? 0 : (rc == 0 ? 0 : 2);
    }

    if (completion_words) {
        for (const auto& w : resmgr::cli::completion_words()) std::cout << w << "\n";
        return 0;
    }
    if (operation_words->count() == 0) {
        std::cerr << "resmgr: an operation is required (see resmgr --help)\n";
        return 2;
    }
    if (words[0] == "help") { // `resmgr help [OPERATION]`: from the catalog, no daemon needed
        if (words.size() == 1) {
            std::cout << app.help();
            return 0;
        }
        if (words[1] == "top") return resmgr::cli::run_top({"resmgr top", "--help"});
        if (auto text = resmgr::cli::operation_help(words[1])) {
            std::cout << *text;
            return 0;
        }
        std::string meant = misspelt_operation(words[1]);
        std::cerr << "resmgr: no operation '" << words[1] << "'" << (meant.empty() ? "" : "; did you mean '" + meant + "'?")
                  << " (see resmgr --help)\n";
        return 2;
    }
    resmgr::Request request;
    request.operation = words[0];
    if (request.operation == "backtest") {
        std::cerr << "resmgr: backtest takes its own options after it: resmgr backtest --csv FILE [--json] (see resmgr backtest --help)\n";
        return 2;
    }
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
    const bool history_options = !history_since.empty() || csv_option->count() > 0 || !history_metric.empty();
    if (history_options && request.operation != "history") {
        std::cerr << "resmgr: --since, --csv and --metric are options of `resmgr history export|import`\n";
        return 2;
    }
    if (request.operation == "history") {
        history_csv = csv_option->count() > 0 && history_csv_file.empty();
        if (!history_since.empty()) request.params["since"] = history_since;
        if (history_csv) request.params["format"] = "csv";
        if (!history_csv_file.empty()) {
            std::error_code ec;
            request.params["csv_file"] = std::filesystem::absolute(history_csv_file, ec).lexically_normal().string();
        }
        if (!history_metric.empty()) request.params["metric"] = history_metric;
    }
    const int chart_points = resmgr::cli::chart_history_points(request.operation);
    if (!svg_file.empty() && chart_points == 0) {
        std::cerr << "resmgr: --svg is an option of forecast, analyze-trends, plan-capacity (and resmgr backtest)\n";
        return 2;
    }
    // The charts' history comes in the same answer; a pipe or --json without --svg gets the
    // envelope exactly as asked.
    if (chart_points > 0 && (human || !svg_file.empty()) &&
        (request.params.is_null() || (request.params.is_object() && !request.params.contains("history_points"))))
        request.params["history_points"] = chart_points;
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
    if (ok && !svg_file.empty())
        if (auto error = resmgr::cli::write_svg_file(svg_file, resmgr::cli::planning_charts(request.operation, envelope["result"]))) {
            std::cerr << "resmgr: " << *error << "\n";
            return 1;
        }
    if (ok && history_csv) { // the CSV itself, for a file or a pipe
        std::cout << envelope["result"].value("csv", "");
        return 0;
    }
    if (!human) {
        std::cout << resmgr::dump_text(envelope, 2) << "\n";
    } else if (ok) {
        const resmgr::cli::Display display = resmgr::cli::stdout_display();
        json recent;
        if (auto series = resmgr::cli::sparkline_series(request.operation, envelope); !series.empty())
            recent = recent_history(path, series, resmgr::cli::sparkline_points(display));
        resmgr::cli::print_human(std::cout, request.operation, envelope, display, recent);
    } else {
        resmgr::cli::print_error(std::cerr, "resmgr", envelope);
    }
    return ok ? 0 : 1;
}
