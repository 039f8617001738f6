// resmgr-run's command line: one table of its options (name, value, help), the pairs that
// exclude each other and what needs what, parsed with glibc's getopt_long in "+" mode, which stops
// at the first word that is not an option or after "--": there the command begins, its words
// handed over untouched. Pure: no I/O; main prints what it returns.
//
// Why getopt_long and not CLI11 as `resmgr` uses: resmgr-run starts in front of every job, and
// building CLI11's App took 13-16 ms of each start in the system-test VM (spawn-time, p50 of 30:
// `resmgr-run --version` 30-33 ms against 17-19 ms for the same binary returning before it),
// a sixth of a whole `resmgr-run true`. systemd-run parses with getopt_long too.
#pragma once

#include <string>
#include <vector>

namespace resmgr::cli {

struct RunOptions {
    std::string socket, workflow, workflow_type, priority = "medium", memory, storage, duration, grace, allocation, agent, wait_slot;
    double cpu = 0;
    long long pids = 0;
    bool quiet = false, wait = false, auto_size = false;
    std::vector<std::string> exclusive;
    std::vector<std::string> command; // COMMAND and its ARGS, exactly as given
};

struct ParsedRunOptions {
    enum class Outcome { run, help, version, usage_error };
    Outcome outcome = Outcome::run;
    RunOptions options;
    std::string error; // usage_error: one line a person can act on, e.g. "--cpu: must be ..."
};

ParsedRunOptions parse_run_options(int argc, char* const* argv);

// The --help text (help2man builds resmgr-run(1) from it).
std::string run_options_help();

} // namespace resmgr::cli
