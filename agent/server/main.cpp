// resmgrd: the node agent. Wires the parts together and runs the sd-event loop.
#include <signal.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <grp.h>
#include <malloc.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "bpf/probes.hpp"
#include "bpf/tool_classes.hpp"
#include "cgroup/factory.hpp"
#include "cgroup/probe.hpp"
#include "cluster/agent_pool.hpp"
#include "cluster/claims.hpp"
#include "cluster/curl_library.hpp"
#include "cluster/member.hpp"
#include "cluster/placer.hpp"
#include "conflicts/file_guard.hpp"
#include "core/ledger.hpp"
#include "events/sink_thread.hpp"
#include "metrics/exposition.hpp"
#include "metrics/metrics.hpp"
#include "monitor/node.hpp"
#include "resmgr/client.hpp"
#include "monitor/monitoring.hpp"
#include "server/event_loop.hpp"
#include "server/group_commit.hpp"
#include "server/service.hpp"
#include "server/socket_server.hpp"
#include "state/state_store.hpp"

namespace {

constexpr const char* kDefaultConfig = "/etc/resmgr/resmgr.json";
// How often freed heap pages go back to the kernel (malloc_trim, after a sampling pass).
constexpr std::chrono::seconds kTrimEvery{10};
// Blocks from this size up are mmap'ed and given back whole when freed. glibc's default starts
// there but raises the threshold (up to 32 MiB) each time such a block is freed, and at 10,000
// allocations resmgrd makes and frees blocks of hundreds of KB at every pass (the list of groups
// for the sampler alone is 10,000 x 64 bytes): they then came from the heap and left holes that
// small long-lived objects pinned. Set, it stays (mallopt(3)): a fill to 10,000 allocations and
// 6,000 allocate/release pairs, RSS after the fill 46.1-46.6 -> 41.5-41.7 MiB, at rest after the
// pairs 47.2-48.2 -> 42.5-43.5 MiB (issue 12, BENCHMARKS).
constexpr int kMmapThreshold = 128 * 1024;

resmgr::core::Policy load_policy(const std::string& path, bool explicit_path) {
    if (!std::filesystem::exists(path)) {
        if (explicit_path) throw std::runtime_error("config file " + path + " does not exist");
        spdlog::info("no config at {}; using the seed's default resource policies", path);
        return resmgr::core::Policy::defaults();
    }
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read config file " + path);
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        throw std::runtime_error("config file " + path + " is not valid JSON: " + e.what());
    }
    try {
        return resmgr::core::parse_policy(j);
    } catch (const resmgr::ApiError& e) {
        throw std::runtime_error("config file " + path + ": " + e.what() + (e.details.empty() ? "" : " (" + e.details + ")"));
    }
}

// Each client is a socket, each held file an O_PATH fd (and each queued opener its event fd), and
// the sampler keeps up to 256 group files open, so the daemon needs more than the default soft
// limit of 1024: it takes the hard limit, as systemd advises for programs that never use select().
void raise_fd_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) spdlog::warn("cannot raise the open file limit: {}", strerror(errno));
}

// The signals the loop handles are blocked before any thread starts (the file guard's two): a
// process signal goes to any thread that does not block it, and one that reached a guard thread
// took the default action, ending resmgrd with 143 and no shutdown. sd_event_add_signal then
// reads them from a signalfd. SIGPIPE is ignored: a client that has gone must not end the
// daemon (141, every file hold lapsing); socket writes also pass MSG_NOSIGNAL.
void prepare_signals() {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
}

int on_signal(sd_event_source* source, const signalfd_siginfo* info, void*) {
    spdlog::info("received {}, shutting down (allocations and their groups are kept for the next start)",
                 strsignal(static_cast<int>(info->ssi_signo)));
    sd_notify(0, "STOPPING=1");
    return sd_event_exit(sd_event_source_get_event(source), 0);
}

// Who may connect to the socket: the install's group (sysusers) with 0660, else root alone.
struct SocketAccess {
    std::optional<gid_t> group;
    mode_t mode = 0600;
    std::string description;
};

SocketAccess socket_access(const std::string& group_name, const std::string& mode_text) {
    SocketAccess access;
    if (const group* gr = group_name.empty() ? nullptr : ::getgrnam(group_name.c_str())) {
        access.group = gr->gr_gid;
        access.mode = 0660;
    }
    if (!mode_text.empty()) {
        char* end = nullptr;
        const unsigned long mode = std::strtoul(mode_text.c_str(), &end, 8);
        if (mode_text.empty() || *end != '\0' || mode > 0777) throw std::runtime_error("--socket-mode: expected an octal mode such as 0660, got " + mode_text);
        access.mode = static_cast<mode_t>(mode);
    }
    char mode_octal[8];
    std::snprintf(mode_octal, sizeof mode_octal, "%04o", static_cast<unsigned>(access.mode));
    access.description = std::string("root:") + (access.group ? group_name : "root") + " " + mode_octal;
    if (!access.group && (access.mode & 0007) == 0)
        access.description += " (no group '" + group_name + "': only root may use resmgr; create it, e.g. with the package's "
                                                              "sysusers file, or pass --socket-group)";
    spdlog::info("socket access {}", access.description);
    return access;
}

// Prometheus metrics: off unless --metrics-listen or --metrics-textfile asks for them.
struct MetricsOutput {
    std::shared_ptr<resmgr::metrics::Metrics> metrics; // null: off
    std::unique_ptr<resmgr::metrics::MetricsServer> server;
    std::optional<resmgr::metrics::Textfile> textfile;
    std::string last_textfile_error; // logged once until it changes
};

// Checks both flags and starts the HTTP server (its threads inherit the blocked signals).
// Throws metrics::UsageError.
MetricsOutput start_metrics(const std::string& listen, const std::string& textfile_dir) {
    MetricsOutput out;
    if (listen.empty() && textfile_dir.empty()) return out;
    std::optional<resmgr::metrics::ListenAddress> address;
    if (!listen.empty()) address = resmgr::metrics::parse_listen_address(listen);
    if (!textfile_dir.empty()) out.textfile.emplace(textfile_dir);
    out.metrics = std::make_shared<resmgr::metrics::Metrics>();
    if (address) {
        out.server = std::make_unique<resmgr::metrics::MetricsServer>(*address, out.metrics);
        spdlog::info("serving Prometheus metrics at http://{}/metrics", address->to_string());
        if (address->is_wildcard())
            spdlog::warn("--metrics-listen {}: the metrics are served unauthenticated on every interface; anyone who can reach "
                         "this host can read workflow names and usage (use 127.0.0.1 or a firewall)", address->to_string());
    }
    if (out.textfile) spdlog::info("writing Prometheus metrics to {} after each sampling pass", out.textfile->path().string());
    return out;
}

// After a sampling pass (and once at start): the figures for the next scrape, and the textfile.
void publish_metrics(MetricsOutput& out, resmgr::server::Service& service, const resmgr::monitor::Monitoring& monitoring) {
    if (!out.metrics) return;
    out.metrics->on_pass(resmgr::metrics::figures_of(service.lifecycle().ledger(), monitoring.latest() ? &*monitoring.latest() : nullptr,
                                                     service.files().registry().active().size()));
    if (!out.textfile) return;
    try {
        out.textfile->write(out.metrics->text());
        out.last_textfile_error.clear();
    } catch (const std::exception& e) {
        if (e.what() != out.last_textfile_error) spdlog::warn("metrics textfile: {}", e.what());
        out.last_textfile_error = e.what();
    }
}

// The cluster section: the config file's, with each flag given taking its field's place.
resmgr::cluster::ClusterConfig cluster_config(const resmgr::core::Policy& policy, const std::string& config_path, const std::string& endpoints,
                                              const std::string& node_name, const std::string& lease_ttl) {
    resmgr::cluster::ClusterConfig c;
    try {
        c = resmgr::cluster::parse_cluster_config(policy.cluster);
    } catch (const resmgr::ApiError& e) {
        throw std::runtime_error("config file " + config_path + ": " + e.what());
    }
    try {
        if (!endpoints.empty()) c.endpoints = resmgr::cluster::parse_endpoints(endpoints);
        if (!node_name.empty()) {
            resmgr::cluster::check_node_name(node_name);
            c.node_name = node_name;
        }
        if (!lease_ttl.empty()) c.lease_ttl = resmgr::cluster::parse_lease_ttl(lease_ttl, "--cluster-lease-ttl");
    } catch (const resmgr::ApiError& e) {
        throw std::runtime_error(e.what());
    }
    if (c.enabled() && c.node_name.empty()) c.node_name = resmgr::cluster::default_node_name();
    return c;
}

} // namespace

int main(int argc, char** argv) {
    ::mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
    CLI::App app{"resmgrd - cgroup v2 enforcement agent for parallel development workflows.\n\n"
                 "Turns each resource allocation requested through `resmgr` or `resmgr-run` into a\n"
                 "kernel-enforced cgroup (a systemd slice, or a group under --cgroup-root), keeps the\n"
                 "ledger of what the node has promised, and records it crash-safely under --state-dir.\n"
                 "Runs in the foreground; under systemd use resmgrd.service (Type=notify, watchdog).",
                 "resmgrd"};
    std::string config = kDefaultConfig, state_dir = "/var/lib/resmgr", socket_path = resmgr::kDefaultSocket;
    std::string cgroup_root, backend = "auto", log_level = "info", temp_root;
    bool no_file_guard = false;
    size_t max_clients = resmgr::server::SocketServer::kDefaultMaxClients;
    std::string socket_group = "resmgr", socket_mode;
    app.add_option("--config", config, "Policy file ({\"resource_policies\":{...}}, the seed's format); "
                                        "missing default file means the seed's default policies")
        ->capture_default_str();
    app.add_option("--state-dir", state_dir, "State directory (current_state/allocations.json ...)")->capture_default_str();
    app.add_option("--socket", socket_path, "Unix socket to serve")->capture_default_str();
    app.add_option("--temp-root", temp_root, "Where each allocation's temporary directory (its TMPDIR, storage_gb) is made "
                                             "(default: /var/tmp/resmgr; with a --state-dir other than the default, "
                                             "<state-dir>-tmp, so two daemons never share one). Entries no allocation "
                                             "claims are removed at start");
    app.add_option("--cgroup-root", cgroup_root, "cgroupfs backend: directory under a cgroup2 mount to create groups in "
                                                 "(default: <cgroup2 mount>/resmgr)");
    app.add_option("--backend", backend, "How allocations are enforced: auto picks systemd (systemd as PID 1 on pure "
                                         "cgroup v2), else cgroupfs (a writable cgroup2 hierarchy), else accounting. systemd "
                                         "writes allocations as cgroups of its delegated scope resmgr-allocations.scope, or "
                                         "when that cannot be had makes a transient slice per allocation (systemd-units "
                                         "forces that)")
        ->check(CLI::IsMember({"auto", "systemd", "systemd-units", "cgroupfs", "accounting"}))
        ->capture_default_str();
    app.add_flag("--no-file-guard", no_file_guard, "Do not guard exclusive files on open (fanotify); they stay exclusive at "
                                                   "admission only: a second allocation wanting one is refused or queued");
    app.add_option("--max-clients", max_clients, "Connections served at once, `resmgr events --follow` included; one more is "
                                                 "refused with RESOURCE_EXHAUSTED")
        ->check(CLI::Range(static_cast<size_t>(1), static_cast<size_t>(100000)))
        ->capture_default_str();
    app.add_option("--socket-group", socket_group, "Group allowed to use the socket (root:GROUP, mode 0660); without such a "
                                                   "group the socket is root's alone (0600)")
        ->capture_default_str();
    app.add_option("--socket-mode", socket_mode, "The socket file's mode in octal (default 0660 with --socket-group, else 0600); "
                                                 "0666 lets every local user ask, within the policy's limits");
    std::string metrics_listen, metrics_textfile;
    app.add_option("--metrics-listen", metrics_listen, "Serve Prometheus metrics at http://ADDRESS:PORT/metrics, e.g. 127.0.0.1:9464 "
                                                       "(a numeric address; off by default). Unauthenticated: keep it on loopback or a "
                                                       "trusted network")
        ->type_name("ADDRESS:PORT");
    app.add_option("--metrics-textfile", metrics_textfile, "Write the same metrics to DIR/resmgr.prom after each sampling pass (atomically), "
                                                           "for node_exporter's textfile collector (--collector.textfile.directory)")
        ->type_name("DIR");
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
        ->capture_default_str();
    app.set_version_flag("--version", std::string("resmgrd ") + RESMGR_VERSION);
    std::string cluster_endpoints, node_name, cluster_lease_ttl;
    app.add_option("--cluster", cluster_endpoints, "Join a cluster of resmgrd nodes through etcd: its members' client URLs, e.g. "
                                                   "http://10.0.0.5:2379,http://10.0.0.6:2379 (the config file's \"cluster\": {\"etcd\": [...]}). "
                                                   "The node registers under a lease and publishes its capacity and pressure; "
                                                   "`resmgr cluster status` shows every node. etcd unreachable: local work goes on")
        ->type_name("URL,...");
    app.add_option("--node-name", node_name, "This node's name in the cluster (default: the host name)")->type_name("NAME");
    int cluster_max_agents = -1;
    app.add_option("--cluster-max-agents", cluster_max_agents, "Agents at once across every node of the cluster (the config's "
                                                               "cluster.max_agents; the first node's value is the one etcd keeps); "
                                                               "0: no cluster-wide pool")
        ->check(CLI::Range(0, resmgr::cluster::kMaxClusterAgents))
        ->type_name("N");
    app.add_option("--cluster-lease-ttl", cluster_lease_ttl, "How long the node's lease outlives its last renewal: a node that dies is "
                                                             "shown gone, and its records go, this long after (2s-1h; default 10s)")
        ->type_name("DURATION");
    bool print_default_config = false;
    app.add_flag("--print-default-config", print_default_config,
                 "Print the default policies as a complete policy file (what applies when --config is absent) and exit");
    app.footer("Exit status: 0 after a clean shutdown (SIGTERM/SIGINT), 1 when it cannot start, 2 for a bad\n"
               "--metrics-listen or --metrics-textfile (or a metrics port in use).\n"
               "Check what this host can enforce with `resmgr doctor`.");
    CLI11_PARSE(app, argc, argv);
    if (print_default_config) {
        std::cout << resmgr::core::Policy::defaults().to_json().dump(2) << "\n";
        return 0;
    }
    prepare_signals();
    spdlog::set_level(spdlog::level::from_str(log_level));
    // Under systemd, stderr goes to the journal, which adds its own timestamps.
    if (std::getenv("JOURNAL_STREAM")) spdlog::set_pattern("%l: %v");
    MetricsOutput metrics;
    try {
        metrics = start_metrics(metrics_listen, metrics_textfile);
    } catch (const resmgr::metrics::UsageError& e) {
        spdlog::critical("cannot start: {}", e.what());
        std::cerr << "resmgrd: " << e.what() << "\n";
        return 2;
    }

    try {
        raise_fd_limit();
        bool explicit_config = app.count("--config") > 0;
        resmgr::core::Policy policy = load_policy(config, explicit_config);
        resmgr::cluster::ClusterConfig cluster = cluster_config(policy, config, cluster_endpoints, node_name, cluster_lease_ttl);
        if (cluster_max_agents >= 0) cluster.max_agents = cluster_max_agents;
        // A node configured for a cluster without libcurl is misinstalled: say so before the
        // state is read and the groups reconciled, not after.
        if (cluster.enabled()) resmgr::cluster::curl_library();
        resmgr::core::NodeCapacity capacity = resmgr::monitor::read_node_capacity();

        resmgr::cgroup::HostReport host = resmgr::cgroup::probe_host();
        auto group_backend = resmgr::cgroup::make_backend({backend, cgroup_root}, host);
        spdlog::info("backend {} ({})", group_backend->name(),
                     group_backend->enforces_limits() ? "limits enforced" : "limits NOT enforced on this host; see resmgr doctor");

        resmgr::state::StateStore store(state_dir);
        resmgr::core::Ledger ledger(capacity, policy);
        for (auto& a : store.load_allocations()) ledger.restore(a);
        ledger.clear_changed(); // what was loaded is on disk already

        const SocketAccess access = socket_access(socket_group, socket_mode);
        nlohmann::json daemon_info{{"pid", ::getpid()}, {"version", RESMGR_VERSION}, {"socket", socket_path},
                                   {"socket_access", access.description}, {"state_dir", state_dir}, {"config", config}};
        // Events: journald and alerts.jsonl, written on a thread of their own (sink_thread.hpp),
        // so no request waits on a send or a write. Declared before `service`, whose Notifier
        // sends to it, so that it outlives whatever the service reports on its way out.
        auto writers = std::make_unique<resmgr::events::EventBus>();
        writers->add(std::make_unique<resmgr::events::JournalSink>());
        writers->add(std::make_unique<resmgr::events::JsonlSink>((store.dir() / "monitoring" / "alerts.jsonl").string(), 16u << 20));
        resmgr::events::EventBus events;
        events.add(std::make_unique<resmgr::events::SinkThread>(std::move(writers)));

        resmgr::server::Service service(ledger, *group_backend, store, [] { return resmgr::Clock::now(); },
                                        host.to_json(), daemon_info);
        service.events().set_sink(&events);
        if (metrics.metrics) {
            events.add(std::make_unique<resmgr::metrics::MetricsEventSink>(metrics.metrics));
            service.router().set_observer([m = metrics.metrics](const resmgr::Request& request, const nlohmann::json& envelope,
                                                                std::chrono::microseconds elapsed) { m->on_request(request, envelope, elapsed); });
        }

        // /var/tmp: on disk (a tmpfs /tmp would set storage_gb against memory), meant for large
        // temporary files, and apart from the state directory (0750, resmgrd's alone). The root
        // belongs to one daemon: orphans are judged against its ledger alone.
        if (temp_root.empty()) temp_root = state_dir == "/var/lib/resmgr" ? "/var/tmp/resmgr" : state_dir + "-tmp";
        std::unique_ptr<resmgr::lifecycle::TempDirs> temp_dirs;
        try {
            temp_dirs = std::make_unique<resmgr::lifecycle::TempDirs>(temp_root);
            spdlog::info("temporary directories under {} (storage_gb {})", temp_root,
                         temp_dirs->quota_support().enforced ? "enforced by project quotas" : "not enforced: " + temp_dirs->quota_support().reason);
        } catch (const resmgr::lifecycle::TempDirError& e) {
            spdlog::warn("no temporary directories for allocations (storage_gb is refused): {}", e.what());
        }
        service.lifecycle().set_temp_dirs(temp_dirs.get());

        resmgr::monitor::Monitoring::Options monitor_options;
        monitor_options.sources.filesystems = {store.dir().string(), std::filesystem::temp_directory_path().string()};
        if (temp_dirs) monitor_options.sources.filesystems.push_back(temp_root);
        monitor_options.history_path = (store.dir() / "monitoring" / "usage_history.jsonl").string();
        monitor_options.cgroup_mount = host.cgroup2_mount;
        resmgr::monitor::Monitoring monitoring(ledger, *group_backend, monitor_options, service.events());
        service.set_monitoring(&monitoring);
        // The node's memory of every run; a database that cannot be opened turns history off,
        // never enforcement (doctor says why).
        resmgr::history::History history((store.dir() / "monitoring" / "history.db").string());
        service.set_history(&history);

        // eBPF probes: optional. Without them the daemon samples /proc and cgroup files alone.
        resmgr::bpf::ToolClasses tool_classes = resmgr::bpf::ToolClasses::defaults();
        if (!policy.tool_classes.is_null()) {
            try {
                tool_classes = resmgr::bpf::ToolClasses::from_json(policy.tool_classes);
            } catch (const resmgr::bpf::ToolClassesError& e) {
                throw std::runtime_error("config file " + config + ": resource_policies.tool_classes: " + e.what());
            }
        }
        // A storm of execs wakes the loop at most every 10 ms (bench_bpf_exec: ~0.8 us of CPU per
        // event instead of ~13 us when every event wakes it); the tail of a burst is read by
        // the loop's follow-up timer.
        constexpr std::chrono::milliseconds kProbeWakeup{10};
        auto loaded = resmgr::bpf::Probes::load({.wakeup_interval = kProbeWakeup});
        std::string ebpf_status = loaded.probes ? "loaded" : "not loaded: " + loaded.error;
        if (loaded.probes) spdlog::info("eBPF probes loaded (exec/fork/exit, OOM kills, run-queue latency)");
        else spdlog::warn("eBPF probes {}; monitoring from /proc and cgroup files only", ebpf_status);
        monitoring.probes().set_probes(loaded.probes.get(), ebpf_status, tool_classes);

        // Exclusive files: a fanotify guard when the kernel allows it; admission-only otherwise.
        std::unique_ptr<resmgr::conflicts::FileGuard> guard;
        std::string guard_unavailable = "disabled with --no-file-guard";
        if (!no_file_guard) {
            try {
                resmgr::conflicts::FileGuard::Options guard_options;
                guard_options.cgroup_mount = host.cgroup2_mount;
                guard = std::make_unique<resmgr::conflicts::FileGuard>(resmgr::conflicts::guard_policy(policy.file_conflicts),
                                                                       guard_options);
                spdlog::info("file guard running (fanotify open permission events on exclusive files; BPF LSM {})",
                             guard->status().value("bpf_lsm", ""));
            } catch (const resmgr::conflicts::GuardError& e) {
                guard_unavailable = e.what();
                spdlog::warn("file guard not running: {}; exclusive files are enforced at admission only", guard_unavailable);
            }
        }
        service.files().set_guard(guard.get(), guard_unavailable);

        sd_event* event = nullptr;
        if (int r = sd_event_default(&event); r < 0) throw std::runtime_error(std::string("sd_event_default: ") + strerror(-r));
        auto last_trim = std::chrono::steady_clock::now();
        resmgr::server::EventLoop loop(event, service.completion(), [&] {
            service.on_sample();
            publish_metrics(metrics, service, monitoring);
            // glibc gives back only the top of its heap by itself; what allocations that came and
            // went free in the middle stays resident until malloc_trim hands those pages back
            // (at 10,000 live after bench_socket_state's client phases, one trim called from gdb
            // took RSS from 68.5 to 63.2 MiB). At most every kTrimEvery, not at each pass: passes
            // may be a second apart, and a trim walks the whole heap.
            if (const auto now = std::chrono::steady_clock::now(); now - last_trim >= kTrimEvery) {
                ::malloc_trim(0);
                last_trim = now;
            }
        });
        {
            resmgr::lifecycle::LoopHooks hooks = loop.hooks();
            // Until the cluster member is up (after reconcile, whose refill may start queued
            // allocations), a queued allocation with cluster-scoped files does not start: it
            // must claim them first (the gate set with the member below).
            if (cluster.enabled())
                hooks.may_start_queued = [&cluster](const resmgr::Allocation& a) {
                    return resmgr::cluster::cluster_scoped(a.constraints.exclusive_access, a.constraints.cluster_files, cluster.shared_paths).empty();
                };
            service.lifecycle().set_hooks(std::move(hooks));
        }
        history.write_runs_in_background();
        // What the pressure responder held back before a restart comes back on the groups reconcile re-adopts.
        service.pressure().load();
        auto reconciled = service.completion().reconcile();
        spdlog::info("restored {} allocation(s): {}", ledger.allocations().size(), reconciled.dump());
        if (temp_dirs) spdlog::info("temporary directories: {}", service.lifecycle().recover_temp_dirs().dump());
        publish_metrics(metrics, service, monitoring);
        sd_event_add_signal(event, nullptr, SIGTERM, on_signal, nullptr);
        sd_event_add_signal(event, nullptr, SIGINT, on_signal, nullptr);
        // Sends WATCHDOG=1 at half of WatchdogSec= while the loop turns; no-op outside systemd.
        sd_event_set_watchdog(event, true);

        // From here on changes are synced in groups (group_commit.hpp); start's reconcile above
        // was synced change by change.
        resmgr::server::GroupCommit commit(event, store, [&] { resmgr::lifecycle::write_snapshot(ledger, store, resmgr::Clock::now()); });
        resmgr::server::SocketServer server(event, socket_path, [&](const resmgr::Request& request, const resmgr::Owner& peer) {
            return service.router().handle(request, peer);
        }, resmgr::server::SocketOptions{access.group, access.mode, max_clients,
                                         static_cast<size_t>(policy.limits.connections_per_user), policy.limits.include_root,
                                         policy.limits.idle_connection_timeout});
        server.hold_answers_until_durable([&] { return commit.unsynced(); });
        commit.set_on_durable([&](std::uint64_t seq) { server.durable(seq); });
        events.add(std::make_unique<resmgr::server::SubscriberSink>(server));
        loop.start_sampling(monitoring.interval());
        if (loaded.probes) loop.watch_fd(loaded.probes->ring_fd(), [&] { monitoring.probes().consume(); }, kProbeWakeup);
        // Where the kernel took the memory PSI trigger, it wakes the responder (EPOLLPRI) within its window.
        if (const auto& trigger = monitoring.memory_trigger(); trigger && trigger->fd() >= 0)
            loop.watch_fd(trigger->fd(), [&] { service.pressure().on_trigger(monitoring); }, resmgr::Millis{0}, EPOLLPRI);
        if (guard) {
            loop.watch_fd(guard->reports().fd(), [&] { service.files().on_guard_reports(guard->reports().take()); });
            loop.watch_fd(guard->watch_fd(), [&] { guard->on_watch_ready(); });
            if (guard->lsm_fd() >= 0) loop.watch_fd(guard->lsm_fd(), [&] { guard->on_lsm_ready(); });
        }
        spdlog::info("serving {} (state {}, capacity {} CPUs, {} memory, sampling every {})", socket_path, state_dir,
                     capacity.cpu_cores, resmgr::format_size(capacity.memory_bytes),
                     resmgr::format_duration(monitoring.interval()));
        // The cluster member: a thread of its own (etcd never holds the loop); the loop hands it
        // the node's figures every second, and it publishes them when they changed.
        std::unique_ptr<resmgr::cluster::ClusterMember> member;
        std::unique_ptr<resmgr::cluster::ClusterClaims> claims;
        std::unique_ptr<resmgr::cluster::ClusterAgentPool> agent_pool;
        std::unique_ptr<resmgr::cluster::ClusterPlacer> placer;
        if (cluster.enabled()) {
            member = std::make_unique<resmgr::cluster::ClusterMember>(cluster, resmgr::cluster::make_curl_transport());
            const resmgr::cluster::ClusterClaims::Lease lease{[m = member.get()] { return m->held_lease(); },
                                                              [m = member.get()] { return m->problem(); }};
            claims = std::make_unique<resmgr::cluster::ClusterClaims>(member->config(), lease, resmgr::cluster::make_curl_transport());
            agent_pool = std::make_unique<resmgr::cluster::ClusterAgentPool>(member->config(), lease, resmgr::cluster::make_curl_transport());
            placer = std::make_unique<resmgr::cluster::ClusterPlacer>(member->config(), resmgr::cluster::make_curl_transport());
            resmgr::server::Context& ctx = service.context();
            ctx.placer = placer.get();
            ctx.cluster = member.get();
            ctx.claims = claims.get();
            ctx.agent_pool = agent_pool.get();
            service.files().set_on_release([&ctx](const std::string& id, const std::optional<std::string>& file) {
                resmgr::server::on_files_released(ctx, id, file);
            });
            resmgr::server::adopt_cluster_shares(ctx); // taken again under this run's lease at the first tick
            resmgr::lifecycle::LoopHooks hooks = loop.hooks();
            hooks.may_start_queued = [&ctx](const resmgr::Allocation& a) { return resmgr::server::may_start_queued(ctx, a); };
            service.lifecycle().set_hooks(std::move(hooks));
            const auto started_at = resmgr::Clock::now();
            auto tick = [&ctx, &member, &cluster, started_at] {
                member->offer(resmgr::server::cluster_node_status(ctx, cluster.node_name, started_at));
                resmgr::server::on_cluster_tick(ctx);
            };
            member->offer(resmgr::server::cluster_node_status(ctx, cluster.node_name, started_at));
            loop.every(std::chrono::seconds(1), tick);
            member->start();
            spdlog::info("cluster: node {} joining through etcd at {} (lease TTL {})", cluster.node_name,
                         resmgr::cluster::join_endpoints(cluster.endpoints), resmgr::format_duration(cluster.lease_ttl));
        }
        sd_notify(0, "READY=1\nSTATUS=serving");
        int r = sd_event_loop(event);
        if (member) {
            // Marked shut down in etcd. Allocations outlive resmgrd, and their claims and agent
            // slots with them: then the lease is left to run out, not revoked, so they stay held
            // through a restart (the next run takes them over).
            const bool holds = !claims->files_held_empty() || agent_pool->holds_any();
            member->stop(!holds);
            service.context().cluster = nullptr;
            service.context().claims = nullptr;
            service.context().agent_pool = nullptr;
            service.context().placer = nullptr;
            service.files().set_on_release(nullptr);
        }
        history.write_runs_in_foreground(); // the loop is done: what is queued, then each at once
        sd_event_unref(event);
        if (r < 0) spdlog::critical("the event loop failed: {}", std::strerror(-r));
        // Compaction at shutdown: the next start reads one snapshot and an empty journal.
        try {
            resmgr::lifecycle::write_snapshot(ledger, store, resmgr::Clock::now());
        } catch (const resmgr::state::StateError& e) {
            spdlog::warn("cannot write the allocations' snapshot at shutdown; the journal keeps the changes: {}", e.what());
        }
        return r < 0 ? 1 : 0;
    } catch (const std::exception& e) {
        spdlog::critical("cannot start: {}", e.what());
        std::cerr << "resmgrd: " << e.what() << "\n";
        return 1;
    }
}
