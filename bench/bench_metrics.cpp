// The cost of Prometheus metrics (issue 19): a sampling pass with metrics off and on (figures for
// the next scrape; and the node_exporter textfile written too), and a scrape (families built and
// serialized; and a real HTTP GET of /metrics over loopback), at 100 and 1,000 allocations. Side
// by side: `status` through the router, what a script polling `resmgr status` would cost instead.
// The groups are plain files in a scratch directory shaped like cgroup2 groups, so the pass reads
// as many files as on a real host and the benchmark needs neither root nor a cgroup2 mount.
//   build/bench/bench_metrics
#include <benchmark/benchmark.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cgroup/accounting_backend.hpp"
#include "metrics/exposition.hpp"
#include "metrics/metrics.hpp"
#include "resmgr/json.hpp"
#include "server/service.hpp"

using namespace resmgr;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
    fs::path dir = fs::temp_directory_path() / ("resmgr-bench-metrics-" + std::to_string(::getpid())) / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

// No kernel groups: each allocation's "group" is a directory of the files a pass reads.
class FileTreeBackend : public cgroup::AccountingBackend {
public:
    explicit FileTreeBackend(fs::path root) : AccountingBackend("bench: file tree"), root_(std::move(root)) {}
    std::string group_path(const std::string& id) override { return (root_ / id).string(); }

private:
    fs::path root_;
};

void write_group(const fs::path& dir, int i) {
    fs::create_directories(dir);
    std::ofstream(dir / "cpu.stat") << "usage_usec " << 1000000 + i << "\nuser_usec 600000\nsystem_usec 400000\nnr_periods 100\n"
                                       "nr_throttled 3\nthrottled_usec 2000\n";
    std::ofstream(dir / "memory.current") << (100 << 20) + i << "\n";
    std::ofstream(dir / "memory.events") << "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n";
    std::ofstream(dir / "pids.current") << 3 << "\n";
    std::ofstream(dir / "cgroup.events") << "populated 1\nfrozen 0\n";
}

// A node with N live allocations, each with a group directory, and monitoring.
struct Node {
    fs::path dir;
    FileTreeBackend backend;
    state::StateStore store;
    core::Ledger ledger{core::NodeCapacity{65536, 65536 * kGiB}, core::Policy::defaults()};
    server::Service service{ledger, backend, store, [] { return Clock::now(); }, json::object(), json::object()};
    monitor::Monitoring monitoring;

    static monitor::Monitoring::Options options() {
        monitor::Monitoring::Options o;
        o.sources.filesystems = {fs::temp_directory_path().string()};
        return o;
    }
    explicit Node(int allocations)
        : dir(scratch("node-" + std::to_string(allocations))), backend(dir / "groups"), store(dir / "state"),
          monitoring(ledger, backend, options(), service.events()) {
        spdlog::set_level(spdlog::level::warn);
        service.set_monitoring(&monitoring);
        for (int i = 0; i < allocations; ++i) {
            const auto& a = ledger.allocate(parse_allocation_request({{"workflow_id", "wf-" + std::to_string(i)},
                                                                      {"priority", i % 2 ? "high" : "medium"},
                                                                      {"resources", {{"cpu_cores", 0.5}, {"memory_gb", 1}}}}),
                                            Owner{0, 0}, Clock::now());
            write_group(dir / "groups" / a.allocation_id, i);
        }
        service.on_sample(); // the first pass opens the files and has no rates yet
    }
};

Node& node(int allocations) {
    static std::map<int, std::unique_ptr<Node>> nodes;
    auto& n = nodes[allocations];
    if (!n) n = std::make_unique<Node>(allocations);
    return *n;
}

// mode 0: metrics off (what resmgrd does without the flags); 1: --metrics-listen (the figures
// for the next scrape); 2: --metrics-listen and --metrics-textfile (and the file written).
void BM_SamplingPass(benchmark::State& state) {
    Node& n = node(static_cast<int>(state.range(0)));
    const int mode = static_cast<int>(state.range(1));
    metrics::Metrics m;
    metrics::Textfile textfile(scratch("textfile"));
    for (auto _ : state) {
        n.service.on_sample();
        if (mode >= 1) m.on_pass(metrics::figures_of(n.ledger, &*n.monitoring.latest(), n.service.files().registry().active().size()));
        if (mode >= 2) textfile.write(m.text());
    }
    state.SetLabel(mode == 0 ? "metrics off" : mode == 1 ? "metrics on" : "metrics on + textfile");
}
BENCHMARK(BM_SamplingPass)->ArgsProduct({{100, 1000}, {0, 1, 2}})->Unit(benchmark::kMicrosecond);

metrics::Metrics& metrics_of(int allocations) {
    static std::map<int, std::shared_ptr<metrics::Metrics>> all;
    auto& m = all[allocations];
    if (!m) {
        Node& n = node(allocations);
        m = std::make_shared<metrics::Metrics>();
        m->on_pass(metrics::figures_of(n.ledger, &*n.monitoring.latest(), 0));
    }
    return *m;
}

// What a scrape costs resmgrd's process: Collect and the text format.
void BM_ScrapeText(benchmark::State& state) {
    metrics::Metrics& m = metrics_of(static_cast<int>(state.range(0)));
    size_t bytes = 0;
    for (auto _ : state) {
        std::string text = m.text();
        bytes = text.size();
        benchmark::DoNotOptimize(text);
    }
    state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_ScrapeText)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

std::string http_get(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) throw std::runtime_error("connect failed");
    const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string reply;
    char buffer[65536];
    for (ssize_t r; (r = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) reply.append(buffer, static_cast<size_t>(r));
    ::close(fd);
    return reply;
}

// A whole scrape as Prometheus makes it: TCP connect, GET /metrics, the reply read to its end.
void BM_ScrapeHttp(benchmark::State& state) {
    const int allocations = static_cast<int>(state.range(0));
    auto m = std::make_shared<metrics::Metrics>();
    m->on_pass(metrics::figures_of(node(allocations).ledger, &*node(allocations).monitoring.latest(), 0));
    const std::uint16_t port = static_cast<std::uint16_t>(19400 + allocations % 97);
    metrics::MetricsServer server(metrics::parse_listen_address("127.0.0.1:" + std::to_string(port)), m);
    for (auto _ : state) {
        std::string reply = http_get(port);
        if (reply.rfind("HTTP/1.1 200", 0) != 0 && reply.rfind("HTTP/1.0 200", 0) != 0) {
            state.SkipWithError(reply.substr(0, 80).c_str());
            break;
        }
        benchmark::DoNotOptimize(reply);
    }
}
BENCHMARK(BM_ScrapeHttp)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond)->UseRealTime();

// The alternative: `resmgr status` (every allocation, as JSON) through the router.
void BM_StatusJson(benchmark::State& state) {
    Node& n = node(static_cast<int>(state.range(0)));
    const std::string line = R"({"operation":"status","params":{}})";
    for (auto _ : state) {
        std::string text = n.service.router().handle_line(line, Owner{0, 0}).dump();
        benchmark::DoNotOptimize(text);
    }
}
BENCHMARK(BM_StatusJson)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

} // namespace

BENCHMARK_MAIN();
