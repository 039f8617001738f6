// Prometheus metrics of a real resmgrd: /metrics scraped over a real TCP socket on a free
// loopback port and parsed line by line, an allocation's series appearing and vanishing with
// it, the textfile written for node_exporter, and bad flags refused with exit status 2.
#include "build_paths.hpp"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "daemon_fixture.hpp"
#include "exposition_text.hpp"

namespace resmgr::host {
namespace {

using testing_support::find_samples;
using testing_support::parse_exposition;
using testing_support::PromSample;

// A loopback port nobody listens on now: bound to port 0 (the kernel picks), then let go.
std::uint16_t free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    ::close(fd);
    return ntohs(sa.sin_port);
}

struct HttpReply {
    int status = 0;
    std::string body;
};

// One HTTP/1.0 GET over a TCP connection to 127.0.0.1:port (no keep-alive, no chunking).
HttpReply http_get(std::uint16_t port, const std::string& path) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        throw std::runtime_error("connect to port " + std::to_string(port) + ": " + std::strerror(errno));
    }
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
        ::close(fd);
        throw std::runtime_error("send failed");
    }
    std::string reply;
    char buffer[65536];
    ssize_t n;
    while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0) reply.append(buffer, static_cast<size_t>(n));
    ::close(fd);
    HttpReply r;
    if (reply.rfind("HTTP/1.", 0) != 0 || reply.size() < 12) throw std::runtime_error("not an HTTP reply: " + reply.substr(0, 200));
    r.status = std::stoi(reply.substr(9, 3));
    const auto end_of_headers = reply.find("\r\n\r\n");
    if (end_of_headers == std::string::npos) throw std::runtime_error("no end of headers: " + reply.substr(0, 200));
    r.body = reply.substr(end_of_headers + 4);
    return r;
}

class MetricsHost : public DaemonHost {
protected:
    std::uint16_t port = free_loopback_port();
    std::string textfile_dir;

    std::vector<std::string> daemon_args() override {
        textfile_dir = dir + "/textfile";
        std::filesystem::create_directory(textfile_dir);
        return {"--metrics-listen", "127.0.0.1:" + std::to_string(port), "--metrics-textfile", textfile_dir};
    }

    std::vector<PromSample> scrape() {
        HttpReply r = http_get(port, "/metrics");
        EXPECT_EQ(r.status, 200) << r.body;
        return parse_exposition(r.body); // throws on any line that is not a comment or `name{labels} value`
    }
};

TEST_F(MetricsHost, AnAllocationsSeriesAppearOnScrapeAndVanishAfterRelease) {
    // The node's families are there from the first pass.
    ASSERT_TRUE(wait_until([&] { return !find_samples(scrape(), "resmgr_sampling_passes_total").empty(); }, std::chrono::seconds(5)));
    auto s = scrape();
    EXPECT_EQ(find_samples(s, "resmgr_queue_length").size(), 1u);
    EXPECT_EQ(find_samples(s, "resmgr_capacity_cpu_cores").size(), 1u);
    EXPECT_TRUE(find_samples(s, "resmgr_allocation_info").empty());

    const std::string id = allocate(R"({"workflow_id":"wf-metrics","priority":"high","resources":{"cpu_cores":1,"memory_gb":1}})");
    ASSERT_FALSE(id.empty());
    const std::map<std::string, std::string> labels{{"allocation", id}, {"workflow", "wf-metrics"}, {"priority", "high"}};
    // The answer is counted at once; the allocation's series come with the next pass (every second here).
    s = scrape();
    EXPECT_GE(find_samples(s, "resmgr_admission_decisions_total", {{"priority", "high"}, {"outcome", "allocated"}}).at(0).value, 1);
    EXPECT_GE(find_samples(s, "resmgr_admission_duration_seconds_count", {{"outcome", "allocated"}}).at(0).value, 1);
    ASSERT_TRUE(wait_until([&] { return !find_samples(scrape(), "resmgr_allocation_cpu_usage_seconds_total", labels).empty(); },
                           std::chrono::seconds(5)))
        << "log:\n" << slurp(log);
    s = scrape();
    EXPECT_EQ(find_samples(s, "resmgr_allocation_info", labels).size(), 1u);
    EXPECT_EQ(find_samples(s, "resmgr_allocation_cpu_limit_cores", labels).at(0).value, 1);
    EXPECT_EQ(find_samples(s, "resmgr_allocation_memory_limit_bytes", labels).at(0).value, 1024.0 * 1024 * 1024);
    EXPECT_GE(find_samples(s, "resmgr_allocated_cpu_cores").at(0).value, 1);

    // The textfile holds the same families, whole and parseable.
    const std::string textfile = textfile_dir + "/resmgr.prom";
    ASSERT_TRUE(wait_until([&] { return !find_samples(parse_exposition(slurp(textfile)), "resmgr_allocation_info", labels).empty(); },
                           std::chrono::seconds(5)));
    EXPECT_FALSE(std::filesystem::exists(textfile + ".tmp"));

    // Released: gone from the very next scrape, and from the textfile after the next pass.
    json released = cli_json({"release", json{{"allocation_id", id}}.dump()});
    ASSERT_EQ(released["status"], "success") << released.dump();
    s = scrape();
    for (const auto& sample : s) {
        EXPECT_FALSE(sample.labels.contains("allocation") && sample.labels.at("allocation") == id) << sample.name << " outlived the allocation";
    }
    EXPECT_TRUE(wait_until([&] { return find_samples(parse_exposition(slurp(textfile)), "resmgr_allocation_info", labels).empty(); },
                           std::chrono::seconds(5)));
}

TEST_F(MetricsHost, NothingButMetricsIsServed) {
    EXPECT_EQ(http_get(port, "/").status, 404);
    EXPECT_EQ(http_get(port, "/state").status, 404);
}

// A daemon whose metrics flags are wrong exits with status 2 before it touches anything.
RunResult start_with(const std::vector<std::string>& metrics_args, const std::string& dir) {
    std::vector<std::string> argv{build_paths::resmgrd, "--state-dir", dir + "/state", "--socket", dir + "/resmgr.sock", "--backend", "accounting"};
    argv.insert(argv.end(), metrics_args.begin(), metrics_args.end());
    return run(argv);
}

TEST(MetricsFlags, BadAddressesAndBusyPortsExitWithStatus2) {
    char tmpl[] = "/tmp/resmgr-metrics-XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    for (const char* bad : {"9464", "localhost:9464", "127.0.0.1:70000", "[::1:9464"}) {
        RunResult r = start_with({"--metrics-listen", bad}, dir);
        EXPECT_EQ(r.status, 2) << bad << ": " << r.err;
        EXPECT_NE(r.err.find("--metrics-listen"), std::string::npos) << r.err;
    }
    // A port another socket listens on.
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(fd, 1), 0);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    RunResult busy = start_with({"--metrics-listen", "127.0.0.1:" + std::to_string(ntohs(sa.sin_port))}, dir);
    ::close(fd);
    EXPECT_EQ(busy.status, 2) << busy.err;
    EXPECT_NE(busy.err.find("Address already in use"), std::string::npos) << busy.err;
    // A textfile directory that is not there.
    RunResult missing = start_with({"--metrics-textfile", dir + "/missing"}, dir);
    EXPECT_EQ(missing.status, 2) << missing.err;
    EXPECT_NE(missing.err.find("--metrics-textfile"), std::string::npos) << missing.err;
    EXPECT_FALSE(std::filesystem::exists(dir + "/state")) << "a refused start made the state directory";
    std::filesystem::remove_all(dir);
}

} // namespace
} // namespace resmgr::host
