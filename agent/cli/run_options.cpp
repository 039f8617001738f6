// resmgr-run's options: the table, the rules between options, getopt_long over them, the help.
#include "cli/run_options.hpp"

#include <getopt.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <string_view>

#include "cli/command_line.hpp"
#include "cli/result_tables.hpp"

namespace resmgr::cli {
namespace {

// One option. Exactly one of text, flag, list and number says where its value goes.
struct OptionSpec {
    const char* name; // without "--"
    char short_name = 0;
    const char* value = nullptr; // the value's name in --help; nullptr for a flag
    const char* help = "";
    std::string RunOptions::* text = nullptr;
    bool RunOptions::* flag = nullptr;
    std::vector<std::string> RunOptions::* list = nullptr; // repeatable
    std::string (*number)(RunOptions&, std::string_view) = nullptr; // "" or what is wrong with the value
};

// A finite number >= min (a whole one if `whole`), all of `text`.
bool number_at_least(std::string_view text, double min, bool whole, double& out) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size() && std::isfinite(out) && out >= min && (!whole || out == std::floor(out));
}

const std::vector<OptionSpec>& option_table() {
    static const std::vector<OptionSpec> table{
        {.name = "help", .short_name = 'h', .help = "Print this help and exit"},
        {.name = "socket", .value = "PATH", .help = "resmgrd's socket (default: $RESMGR_SOCKET, else /run/resmgr/resmgr.sock)", .text = &RunOptions::socket},
        {.name = "workflow", .value = "ID", .help = "Workflow id (default: $RESMGR_WORKFLOW, else run-<pid>)", .text = &RunOptions::workflow},
        {.name = "type",
         .value = "NAME",
         .help = "The kind of work (build, test, lint, ...): resmgrd records each run under it, and sizes later runs of the type from "
                 "what earlier ones used",
         .text = &RunOptions::workflow_type},
        {.name = "auto",
         .help = "Size the allocation (CPU, memory) from what earlier runs of --type used; with too few runs recorded it runs uncapped "
                 "and says so",
         .flag = &RunOptions::auto_size},
        {.name = "priority", .value = "LEVEL", .help = "critical, high, medium (the default), low, or 0-100", .text = &RunOptions::priority},
        {.name = "cpu",
         .value = "CORES",
         .help = "CPU cores, fractional (0.5 = half a core); default uncapped",
         .number = [](RunOptions& o, std::string_view v) {
             return number_at_least(v, 0, false, o.cpu) ? std::string() : std::string("must be a number of cores >= 0, e.g. 0.5 or 2");
         }},
        {.name = "memory", .value = "SIZE", .help = "Memory cap such as 4G or 512M (binary units); default uncapped", .text = &RunOptions::memory},
        {.name = "storage",
         .value = "SIZE",
         .help = "Room in the allocation's temporary directory ($TMPDIR) such as 10G; default none reserved (a project quota enforces it "
                 "where the filesystem has one)",
         .text = &RunOptions::storage},
        {.name = "pids",
         .value = "N",
         .help = "Maximum number of tasks (pids.max / TasksMax)",
         .number = [](RunOptions& o, std::string_view v) {
             double n = 0;
             // Below 2^53 a double holds every whole number exactly.
             if (!number_at_least(v, 1, true, n) || n > 9007199254740992.0) return std::string("must be a whole number of tasks >= 1, e.g. 512");
             o.pids = static_cast<long long>(n);
             return std::string();
         }},
        {.name = "duration",
         .value = "TIME",
         .help = "How long the allocation may live, e.g. 2h, 30m (default: the policy's max_duration); then COMMAND gets SIGTERM, and "
                 "SIGKILL after --grace",
         .text = &RunOptions::duration},
        {.name = "grace", .value = "TIME", .help = "Time between SIGTERM and SIGKILL when --duration runs out (default 5m)", .text = &RunOptions::grace},
        {.name = "allocation",
         .value = "ID",
         .help = "Join this existing allocation instead of allocating; it is not released on exit",
         .text = &RunOptions::allocation},
        {.name = "exclusive",
         .value = "FILE",
         .help = "Hold FILE exclusively while COMMAND runs (repeatable, one FILE each): processes outside the allocation cannot open it "
                 "for writing (the kernel refuses them, or holds them until release, per the policy's file_conflicts). A file another "
                 "allocation holds makes the allocation fail, or wait with --wait",
         .list = &RunOptions::exclusive},
        {.name = "agent",
         .value = "NAME",
         .help = "Run COMMAND as agent NAME of the workflow, in its own child group of the allocation; the agent pool "
                 "(active/idle/failed) is observed from that group. With --allocation it takes one of the allocation's agent slots, "
                 "else it allocates one (agents: 1)",
         .text = &RunOptions::agent},
        {.name = "wait-slot",
         .value = "DURATION",
         .help = "When the allocation has no free agent slot, wait up to DURATION (e.g. 10s, 5m) for one instead of failing; waiting "
                 "starts go in priority order, then arrival order. Default: fail at once, except while resmgrd's pressure responder "
                 "holds new agent starts (agent pool over its threshold), when it waits up to 5m; 0 never waits",
         .text = &RunOptions::wait_slot},
        {.name = "quiet", .short_name = 'q', .help = "Do not warn about limits this host cannot enforce", .flag = &RunOptions::quiet},
        {.name = "wait",
         .help = "When the node is full (or a conflicting workflow runs, or an --exclusive file is held), queue and wait instead of "
                 "failing; queued requests start in priority order, then arrival order",
         .flag = &RunOptions::wait},
        {.name = "version", .help = "Print the version and exit"},
    };
    return table;
}

struct Pair {
    const char* first;
    const char* second;
};

// Options that cannot be given together: joining an allocation takes it as it is.
constexpr Pair kExcludes[] = {
    {"allocation", "cpu"},     {"allocation", "memory"}, {"allocation", "pids"},     {"allocation", "storage"},
    {"allocation", "duration"}, {"allocation", "grace"}, {"allocation", "workflow"}, {"allocation", "type"},
    {"allocation", "exclusive"}, {"allocation", "auto"}, {"auto", "cpu"},            {"auto", "memory"},
    {"auto", "pids"},          {"auto", "storage"},      {"auto", "agent"},
};
// An option that means nothing without another.
constexpr Pair kNeeds[] = {{"wait-slot", "agent"}, {"auto", "type"}};

std::string dashed(std::string_view name) { return "--" + std::string(name); }

// An option word without any "=value".
std::string without_value(std::string_view word) { return std::string(word.substr(0, word.find('='))); }

// The option word getopt_long just stopped at, without any "=value".
std::string offending_word(int argc, char* const* argv) { return optind < 1 || optind > argc ? "" : without_value(argv[optind - 1]); }

ParsedRunOptions ended(ParsedRunOptions::Outcome outcome, std::string error = "") {
    ParsedRunOptions parsed;
    parsed.outcome = outcome;
    parsed.error = std::move(error);
    return parsed;
}

ParsedRunOptions usage_error(std::string error) { return ended(ParsedRunOptions::Outcome::usage_error, std::move(error)); }

} // namespace

ParsedRunOptions parse_run_options(int argc, char* const* argv) {
    const auto& table = option_table();
    std::vector<option> longs;
    std::string shorts = "+:"; // stop at the command; ':' tells a missing value from an unknown option
    for (std::size_t i = 0; i < table.size(); ++i) {
        const int has_arg = table[i].value ? required_argument : no_argument;
        longs.push_back({table[i].name, has_arg, nullptr, static_cast<int>(256 + i)});
        if (table[i].short_name) shorts += table[i].short_name;
    }
    longs.push_back({nullptr, 0, nullptr, 0});

    ParsedRunOptions parsed;
    RunOptions& o = parsed.options;
    std::set<std::string_view> given;
    optind = 0; // glibc: start afresh (parse_run_options may run more than once in a process)
    opterr = 0; // the messages below say it in resmgr-run's words
    for (;;) {
        const int word_at = optind == 0 ? 1 : optind; // a long option is always a word of its own
        const int c = getopt_long(argc, argv, shorts.c_str(), longs.data(), nullptr);
        if (c == -1) break;
        if (c == ':') return usage_error(offending_word(argc, argv) + ": needs a value");
        if (c == '?') {
            // optopt: a long option's val when it was given a value it takes none of ("--wait=yes"),
            // the letter of an unknown short one, 0 for an unknown long one.
            if (optopt >= 256) return usage_error(dashed(table[static_cast<std::size_t>(optopt - 256)].name) + " takes no value");
            const std::string word = optopt ? std::string{'-', static_cast<char>(optopt)} : offending_word(argc, argv);
            std::vector<std::string> names;
            for (const auto& spec : table) names.push_back(dashed(spec.name));
            const std::string near = closest_word(word, names);
            return usage_error("unknown option " + word + (near.empty() ? "" : "; did you mean " + near + "?"));
        }
        const OptionSpec* spec = nullptr;
        for (const auto& s : table)
            if (c == s.short_name || c == 256 + (&s - table.data())) spec = &s;
        if (!spec) return usage_error("unknown option");
        // getopt_long also takes a long option's unique prefix ("--mem"): such a word would
        // change meaning the day an option with the same start is added, so it is refused.
        if (const std::string word = without_value(argv[word_at]); word.starts_with("--") && word != dashed(spec->name))
            return usage_error(word + ": write the option out in full: " + dashed(spec->name));
        if (spec->name == std::string_view("help")) return ended(ParsedRunOptions::Outcome::help);
        if (spec->name == std::string_view("version")) return ended(ParsedRunOptions::Outcome::version);
        // A value given twice is a mistake to point out (which one was meant?); a flag twice is harmless.
        if (!given.insert(spec->name).second && spec->value && !spec->list) return usage_error(dashed(spec->name) + ": given more than once");
        if (spec->text) o.*(spec->text) = optarg;
        else if (spec->flag) o.*(spec->flag) = true;
        else if (spec->list) (o.*(spec->list)).emplace_back(optarg);
        else if (std::string wrong = spec->number(o, optarg); !wrong.empty()) return usage_error(dashed(spec->name) + ": " + wrong);
    }
    for (const auto& [a, b] : kExcludes)
        if (given.contains(a) && given.contains(b)) return usage_error(dashed(a) + " and " + dashed(b) + " cannot be used together");
    for (const auto& [option, needed] : kNeeds)
        if (given.contains(option) && !given.contains(needed)) return usage_error(dashed(option) + " needs " + dashed(needed));
    o.command.assign(argv + optind, argv + argc);
    if (o.command.empty()) return usage_error("no command given");
    return parsed;
}

std::string run_options_help() {
    std::string text = "resmgr-run - run a command inside a resource allocation enforced by resmgrd.\n\n"
                       "Usage: resmgr-run [OPTIONS] [--] COMMAND [ARGS...]\n\n"
                       "Allocates the resources asked for (or joins --allocation), runs COMMAND in the\n"
                       "allocation's cgroup, so the kernel caps it at --cpu and --memory, and releases the\n"
                       "allocation when COMMAND exits. Options end at COMMAND, or at \"--\". Example:\n"
                       "  resmgr-run --workflow wf-42 --priority high --cpu 2 --memory 4G -- make -j8 test\n\n"
                       "Options:\n";
    constexpr std::size_t kColumn = 26, kWidth = 80;
    for (const auto& spec : option_table()) {
        std::string left = spec.short_name ? std::string("  -") + spec.short_name + ", " : std::string("      ");
        left += dashed(spec.name);
        if (spec.value) left += std::string(" ") + spec.value;
        std::string help = spec.help;
        std::string others;
        for (const auto& [a, b] : kExcludes)
            if (spec.name == std::string_view(a) || spec.name == std::string_view(b))
                others += (others.empty() ? "" : ", ") + dashed(spec.name == std::string_view(a) ? b : a);
        if (!others.empty()) help += ". Not with " + others;
        for (const auto& [option, needed] : kNeeds)
            if (spec.name == std::string_view(option)) help += ". Needs " + dashed(needed);
        text += left;
        if (left.size() + 2 > kColumn) text += "\n" + std::string(kColumn, ' ');
        else text += std::string(kColumn - left.size(), ' ');
        const auto lines = wrap(help, kWidth - kColumn);
        for (std::size_t i = 0; i < lines.size(); ++i) text += (i ? std::string(kColumn, ' ') : "") + lines[i] + "\n";
    }
    text += "\nExit status: COMMAND's own, 128+N when it was killed by signal N (137 for SIGKILL,\n"
            "e.g. by the OOM killer, which resmgr-run then names), 125 when resmgr-run itself failed\n"
            "(allocation refused, resmgrd unreachable), 126 when COMMAND cannot run, 127 when not found.\n";
    return text;
}

} // namespace resmgr::cli
