// agent/conflicts without a kernel: the allow/deny/queue table, cgroup subtree matching, the
// open mode read from /proc/<tid>/syscall text, and the conflict record (merge, resolve, trim,
// malformed conflicts.json).
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include <fcntl.h>

#include "conflicts/decision.hpp"
#include "conflicts/open_mode.hpp"
#include "conflicts/registry.hpp"

using namespace resmgr;
using namespace resmgr::conflicts;

namespace {

Hold held_by_build() { return Hold{"/src/flake.nix", "alloc_1", "wf-build", 50, "/resmgr.slice/resmgr-alloc_1.slice", std::nullopt}; }

Opener opener(std::string cgroup, OpenMode mode, std::string comm = "vim") { return Opener{4242, std::move(comm), std::move(cgroup), mode}; }

TEST(Subtree, MatchesTheGroupAndItsDescendantsOnly) {
    EXPECT_TRUE(in_subtree("/a/b", "/a/b"));
    EXPECT_TRUE(in_subtree("/a/b/agent-x", "/a/b"));
    EXPECT_FALSE(in_subtree("/a/bc", "/a/b"));
    EXPECT_FALSE(in_subtree("/a", "/a/b"));
    EXPECT_FALSE(in_subtree("/a/b", ""));
    EXPECT_TRUE(in_subtree("/anything", "/"));
}

TEST(Decide, TheHoldersSubtreeIsAlwaysAllowed) {
    GuardPolicy policy;
    policy.allow_reads = false;
    auto d = decide(held_by_build(), opener("/resmgr.slice/resmgr-alloc_1.slice/agent-coder", OpenMode::write), policy);
    EXPECT_EQ(d.verdict, Verdict::allow);
    EXPECT_FALSE(d.conflict);
}

TEST(Decide, OutsideWritesAreDeniedOrQueuedByStrategyAndReadsFollowTheReadException) {
    GuardPolicy policy;
    policy.strategy = Strategy::file_locking;
    EXPECT_EQ(decide(held_by_build(), opener("/user.slice", OpenMode::write), policy).verdict, Verdict::deny);
    EXPECT_EQ(decide(held_by_build(), opener("/user.slice", OpenMode::read), policy).verdict, Verdict::allow);
    policy.allow_reads = false;
    auto strict = decide(held_by_build(), opener("/user.slice", OpenMode::read), policy);
    EXPECT_EQ(strict.verdict, Verdict::deny);
    EXPECT_TRUE(strict.conflict);
    policy.strategy = Strategy::queue_and_serialize;
    EXPECT_EQ(decide(held_by_build(), opener("/user.slice", OpenMode::write), policy).verdict, Verdict::queue);
    Hold locking = held_by_build();
    locking.strategy = Strategy::file_locking; // a per-hold override wins
    EXPECT_EQ(decide(locking, opener("/user.slice", OpenMode::write), policy).verdict, Verdict::deny);
}

TEST(Decide, AnUnknownModeIsAWriteAndAnUnknownCgroupIsAnOutsider) {
    GuardPolicy policy;
    policy.strategy = Strategy::file_locking;
    EXPECT_EQ(decide(held_by_build(), opener("/user.slice", OpenMode::unknown), policy).verdict, Verdict::deny);
    EXPECT_EQ(decide(held_by_build(), opener("", OpenMode::write), policy).verdict, Verdict::deny);
}

TEST(Decide, AdvisoryAllowsButReportsAndExceptionsAreNotConflicts) {
    GuardPolicy policy;
    policy.advisory = true;
    auto d = decide(held_by_build(), opener("/user.slice", OpenMode::write), policy);
    EXPECT_EQ(d.verdict, Verdict::allow);
    EXPECT_TRUE(d.conflict);
    policy.advisory = false;
    policy.exempt_cgroups = {"/system.slice/backup.service"};
    policy.exempt_comms = {"rsync"};
    EXPECT_EQ(decide(held_by_build(), opener("/system.slice/backup.service", OpenMode::write), policy).verdict, Verdict::allow);
    auto by_comm = decide(held_by_build(), opener("/user.slice", OpenMode::write, "rsync"), policy);
    EXPECT_EQ(by_comm.verdict, Verdict::allow);
    EXPECT_FALSE(by_comm.conflict);
}

TEST(OpenFlags, WriteAccessTruncateAndAppendAreWrites) {
    EXPECT_EQ(mode_of_open_flags(O_RDONLY), OpenMode::read);
    EXPECT_EQ(mode_of_open_flags(O_RDONLY | O_CLOEXEC | O_NOFOLLOW), OpenMode::read);
    EXPECT_EQ(mode_of_open_flags(O_WRONLY), OpenMode::write);
    EXPECT_EQ(mode_of_open_flags(O_RDWR), OpenMode::write);
    EXPECT_EQ(mode_of_open_flags(O_RDONLY | O_TRUNC), OpenMode::write);
    EXPECT_EQ(mode_of_open_flags(O_RDONLY | O_APPEND), OpenMode::write);
}

#if defined(__x86_64__)
TEST(SyscallText, OpenatOpenCreatAndOpenat2AreUnderstood) {
    // Lines as /proc/<tid>/syscall shows them (the ones VENUE.md records from this host).
    EXPECT_EQ(parse_syscall_open("257 0xffffff9c 0x7ffd1c0c3f10 0x0 0x0 0x0 0x0 0x7ffd1c0c3e88 0x7f4c2d51a9d2\n").mode, OpenMode::read);
    EXPECT_EQ(parse_syscall_open("257 0xffffff9c 0x7ffd1c0c3f10 0x401 0x1b6 0x0 0x0 0x7ffd 0x7f4c\n").mode, OpenMode::write);
    EXPECT_EQ(parse_syscall_open("257 0xffffff9c 0x7ffd1c0c3f10 0x80002 0x0 0x0 0x0 0x7ffd 0x7f4c\n").mode, OpenMode::write);
    EXPECT_EQ(parse_syscall_open("2 0x55d0c0a0 0x0 0x0 0x0 0x0 0x0 0x7ffd 0x7f4c\n").mode, OpenMode::read);
    EXPECT_EQ(parse_syscall_open("2 0x55d0c0a0 0x241 0x1b6 0x0 0x0 0x0 0x7ffd 0x7f4c\n").mode, OpenMode::write);
    EXPECT_EQ(parse_syscall_open("85 0x55d0c0a0 0x1b6 0x0 0x0 0x0 0x0 0x7ffd 0x7f4c\n").mode, OpenMode::write);
    auto openat2 = parse_syscall_open("437 0xffffff9c 0x7ffd1c0c3f10 0x7ffd1c0c3e00 0x18 0x0 0x0 0x7ffd 0x7f4c\n");
    EXPECT_EQ(openat2.mode, OpenMode::unknown);
    ASSERT_TRUE(openat2.open_how_address);
    EXPECT_EQ(*openat2.open_how_address, 0x7ffd1c0c3e00u);
}
#endif

// An opener caught before it sleeps shows "running": asked again, its call is read (seen in the
// VM, where a cat's read was refused as a write of unknown mode); one that stays on a CPU is
// given up on after a few milliseconds.
TEST(SyscallText, RunningIsAskedAgainUntilTheOpenerSleepsAndNotForever) {
    const std::string line = "257 0xffffff9c 0x7ffd1c0c3f10 0x0 0x0 0x0 0x0 0x7ffd 0x7f4c\n";
    int reads = 0;
    auto answer = [&](const std::string& text, char* buffer, size_t size) {
        ++reads;
        const size_t n = std::min(size, text.size());
        std::memcpy(buffer, text.data(), n);
        return static_cast<ssize_t>(n);
    };
    char buffer[256];
    ssize_t n = read_syscall_text([&](char* b, size_t size) { return answer(reads < 3 ? "running\n" : line, b, size); }, buffer, sizeof buffer);
    EXPECT_EQ(reads, 4);
    EXPECT_EQ(parse_syscall_open(std::string_view(buffer, static_cast<size_t>(n))).mode, OpenMode::read);

    reads = 0;
    const auto start = std::chrono::steady_clock::now();
    n = read_syscall_text([&](char* b, size_t size) { return answer("running\n", b, size); }, buffer, sizeof buffer);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
    EXPECT_GT(reads, 1);
    EXPECT_EQ(parse_syscall_open(std::string_view(buffer, static_cast<size_t>(n))).mode, OpenMode::unknown);
}

TEST(SyscallText, AnythingNotUnderstoodIsUnknown) {
    for (const char* text : {"", "running\n", "-1 0x7ffd 0x7f4c\n", "0 0x3 0x7ffd 0x100 0x0 0x0 0x0 0x7ffd 0x7f4c\n", "257 0xffffff9c\n",
                             "257 0xffffff9c 0x7ffd zz 0x0\n", "garbage", "257x 0x1 0x2 0x3"})
        EXPECT_EQ(parse_syscall_open(text).mode, OpenMode::unknown) << "'" << text << "'";
}

ConflictRecord denial(std::string comm, std::string pid_note = {}) {
    ConflictRecord r;
    r.file = "/src/flake.nix";
    r.event = "denied";
    r.holder = {{"allocation_id", "alloc_1"}, {"workflow_id", "wf-build"}, {"priority", 50}};
    r.claimant = {{"pid", 100}, {"comm", std::move(comm)}, {"cgroup", "/user.slice"}};
    r.reason = "write from outside the holder" + pid_note;
    r.detected_at = r.last_seen = TimePoint(std::chrono::seconds(1'700'000'000));
    return r;
}

TEST(Registry, RepeatedDenialsOfOneClaimantMergeAndOthersAreNewConflicts) {
    ConflictRegistry registry;
    auto [first, is_new] = registry.record(denial("vim"), "conf_1");
    EXPECT_TRUE(is_new);
    EXPECT_EQ(first->conflict_id, "conf_1");
    auto [again, again_new] = registry.record(denial("vim"), "conf_2");
    EXPECT_FALSE(again_new);
    EXPECT_EQ(again->conflict_id, "conf_1");
    EXPECT_EQ(again->occurrences, 2);
    EXPECT_TRUE(registry.record(denial("sed"), "conf_3").second);
    EXPECT_EQ(registry.active().size(), 2u);
}

TEST(Registry, OpenersVaryingTheirNamesCannotGrowTheActiveRecordsPastTheCap) {
    ConflictRegistry registry(500, 3);
    for (int i = 0; i < 3000; ++i) registry.record(denial("comm" + std::to_string(i)), "conf_" + std::to_string(i));
    EXPECT_EQ(registry.active().size(), 3u);
    long occurrences = 0;
    for (const auto* r : registry.active()) occurrences += r->occurrences;
    EXPECT_EQ(occurrences, 3000) << "every denial is still counted";
    auto other = denial("new");
    other.file = "/src/other";
    auto [folded, is_new] = registry.record(other, "conf_x");
    EXPECT_FALSE(is_new);
    EXPECT_EQ(folded->conflict_id, "conf_0") << "with no record over its file, the oldest takes it";
}

TEST(Registry, ResolvingByHolderAndByIdAndKeepingOnlyTheNewestResolved) {
    ConflictRegistry registry(1);
    registry.record(denial("vim"), "conf_1");
    registry.record(denial("sed"), "conf_2");
    const TimePoint now(std::chrono::seconds(1'700'000'100));
    EXPECT_TRUE(registry.resolve("conf_1", "release", now));
    EXPECT_FALSE(registry.resolve("conf_1", "release", now)) << "already resolved";
    EXPECT_FALSE(registry.resolve("conf_nope", "release", now));
    EXPECT_EQ(registry.resolve_for_holder("alloc_1", std::nullopt, "holder released", now), std::vector<std::string>{"conf_2"});
    EXPECT_EQ(registry.size(), 1u) << "only the newest resolved record is kept";
    EXPECT_EQ(registry.find("conf_2")->resolution, "holder released");
    // A resolved conflict does not absorb a new denial.
    EXPECT_TRUE(registry.record(denial("sed"), "conf_4").second);
}

TEST(Registry, RoundTripsAndRejectsMalformedStateWithoutChange) {
    ConflictRegistry registry;
    registry.record(denial("vim"), "conf_1");
    ConflictRegistry loaded;
    loaded.load(registry.to_json());
    ASSERT_NE(loaded.find("conf_1"), nullptr);
    EXPECT_EQ(loaded.find("conf_1")->to_json(), registry.find("conf_1")->to_json());

    nlohmann::json bad = registry.to_json();
    bad["conflicts"][0]["detected_at"] = "yesterday";
    try {
        loaded.load(bad);
        FAIL() << "a bad timestamp must be refused";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("conflicts[0]"), std::string::npos) << e.what();
    }
    EXPECT_THROW(loaded.load(nlohmann::json::array()), std::runtime_error);
    bad = registry.to_json();
    bad["conflicts"][0]["status"] = "maybe";
    EXPECT_THROW(loaded.load(bad), std::runtime_error);
    EXPECT_NE(loaded.find("conf_1"), nullptr) << "a failed load leaves the registry as it was";
}

} // namespace
