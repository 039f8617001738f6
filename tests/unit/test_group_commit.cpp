// Group commit (server/group_commit.hpp): batches written while a sync is in flight are made
// durable together by the next one; the socket server holds answers until their batch is
// durable, in order per client, and sends them once it is.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "resmgr/protocol.hpp"
#include "server/group_commit.hpp"
#include "server/socket_server.hpp"
#include "state/state_store.hpp"
#include "tests_support.hpp"

using namespace resmgr;

namespace {

void record_one(state::StateStore& store, const std::string& id) {
    Allocation a = sample_allocation(id);
    store.record({{id, &a}});
}

// Runs the loop until `done` or 5 s.
template <class Done>
bool run_until(sd_event* event, Done done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        sd_event_run(event, 50'000);
    }
    return true;
}

struct Loop {
    sd_event* event = nullptr;
    Loop() { sd_event_new(&event); }
    ~Loop() { sd_event_unref(event); }
};

int connect_to(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// What has arrived on fd so far, without waiting.
std::string received(int fd) {
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0;) out.append(buf, static_cast<size_t>(n));
    return out;
}

} // namespace

TEST(GroupCommit, BatchesWrittenDuringASyncShareTheNextOne) {
    TempDir dir;
    Loop loop;
    state::StateStore store(dir.path());
    int snapshots = 0;
    std::uint64_t reported = 0;
    {
        server::GroupCommit commit(loop.event, store, [&] { ++snapshots; });
        commit.set_on_durable([&](std::uint64_t seq) { reported = seq; });
        record_one(store, "alloc_first");
        const std::uint64_t first = commit.unsynced();
        EXPECT_EQ(first, 1u) << "the batch just written waits";
        EXPECT_LT(store.durable_seq(), first);
        // Fifty more changes while that sync may be in flight: none starts a sync of its own.
        for (int i = 0; i < 50; ++i) {
            record_one(store, "alloc_" + std::to_string(i));
            commit.unsynced();
        }
        ASSERT_TRUE(run_until(loop.event, [&] { return store.durable_seq() == store.written_seq(); }));
        EXPECT_EQ(store.written_seq(), 51u);
        EXPECT_EQ(reported, 51u) << "the socket server is told every batch is durable";
        EXPECT_LE(commit.syncs(), 2u) << "51 batches, one sync in flight when the other 50 were written";
        EXPECT_EQ(commit.unsynced(), 0u) << "nothing left to wait for";
        EXPECT_EQ(snapshots, 0) << "the journal synced: no fallback";
    }
    // A restart sees every batch.
    state::StateStore again(dir.path());
    EXPECT_EQ(again.load_allocations().size(), 51u);
}

TEST(GroupCommit, AChangeOutsideARequestIsSyncedByTheLoop) {
    TempDir dir;
    Loop loop;
    state::StateStore store(dir.path());
    server::GroupCommit commit(loop.event, store, [] {});
    // A timer's change (an expiry, say): no request asks, the loop's post hook starts the sync.
    sd_event_source* timer = nullptr;
    sd_event_add_time_relative(
        loop.event, &timer, CLOCK_MONOTONIC, 1000, 0,
        [](sd_event_source*, uint64_t, void* store) {
            record_one(*static_cast<state::StateStore*>(store), "alloc_expired");
            return 0;
        },
        &store);
    ASSERT_TRUE(run_until(loop.event, [&] { return store.written_seq() == 1 && store.durable_seq() == 1; }));
    EXPECT_EQ(commit.syncs(), 1u);
    sd_event_source_disable_unref(timer);
}

TEST(GroupCommit, TheSocketServerHoldsAnswersUntilTheirChangeIsDurable) {
    TempDir dir;
    Loop loop;
    const std::string path = (dir.path() / "s.sock").string();
    std::uint64_t unsynced = 0;
    int served = 0;
    server::SocketServer server(
        loop.event, path,
        [&](const Request& request, const Owner&) {
            ++served;
            if (request.operation == "allocate") unsynced = 7; // this change's batch is not on disk yet
            return nlohmann::json{{"status", "success"}, {"operation", request.operation}, {"n", served}};
        },
        server::SocketOptions{std::nullopt, 0600});
    server.hold_answers_until_durable([&] { return unsynced; });

    int writer = connect_to(path), reader = connect_to(path);
    ASSERT_GE(writer, 0);
    ASSERT_GE(reader, 0);
    const std::string change = R"({"operation":"allocate","params":{}})" "\n";
    const std::string read = R"({"operation":"status","params":{}})" "\n";
    ASSERT_EQ(::write(writer, change.data(), change.size()), static_cast<ssize_t>(change.size()));
    ASSERT_TRUE(run_until(loop.event, [&] { return served == 1; }));
    // The reader's status could show the change: it waits too.
    ASSERT_EQ(::write(reader, read.data(), read.size()), static_cast<ssize_t>(read.size()));
    ASSERT_TRUE(run_until(loop.event, [&] { return served == 2; }));
    for (int i = 0; i < 5; ++i) sd_event_run(loop.event, 10'000);
    EXPECT_EQ(received(writer), "") << "no answer before its change is durable";
    EXPECT_EQ(received(reader), "") << "no read shows a change before it is durable";

    // An older batch being durable is not enough.
    server.durable(6);
    for (int i = 0; i < 3; ++i) sd_event_run(loop.event, 10'000);
    EXPECT_EQ(received(writer), "");

    unsynced = 0;
    server.durable(7);
    std::string w, r;
    ASSERT_TRUE(run_until(loop.event, [&] {
        w += received(writer);
        r += received(reader);
        return !w.empty() && !r.empty();
    }));
    EXPECT_EQ(nlohmann::json::parse(w)["operation"], "allocate");
    EXPECT_EQ(nlohmann::json::parse(r)["operation"], "status");

    // Pipelined behind a held answer, a later one keeps its place.
    unsynced = 9;
    const std::string both = change + read;
    ASSERT_EQ(::write(writer, both.data(), both.size()), static_cast<ssize_t>(both.size()));
    ASSERT_TRUE(run_until(loop.event, [&] { return served == 4; }));
    unsynced = 0;
    server.durable(9);
    std::string lines;
    ASSERT_TRUE(run_until(loop.event, [&] {
        lines += received(writer);
        return std::count(lines.begin(), lines.end(), '\n') == 2;
    }));
    EXPECT_LT(lines.find("allocate"), lines.find("status")) << "answers keep the order of the requests";
    ::close(writer);
    ::close(reader);
}
