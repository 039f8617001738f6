// PSI trigger specs (parsed and checked against the kernel's rules) and setup errors falling back
// to polling. Registration on the real kernel is the host test's (tests/host/test_psi_host.cpp).
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

#include "monitor/psi_trigger.hpp"
#include "monitor/stall_share.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using namespace resmgr::monitor;
using namespace std::chrono_literals;

TEST(PsiTriggerSpec, ParsesWhatTheKernelTakes) {
    auto s = parse_psi_trigger("some 150000 1000000");
    EXPECT_EQ(s.kind, "some");
    EXPECT_EQ(s.stall, 150000us);
    EXPECT_EQ(s.window, 1000000us);
    EXPECT_EQ(s.text(), "some 150000 1000000");
    EXPECT_DOUBLE_EQ(s.percent(), 15);
    EXPECT_EQ(parse_psi_trigger("  full\t500000 500000 ").text(), "full 500000 500000");
    EXPECT_EQ(parse_psi_trigger("some 1 10000000").window, 10s);
}

TEST(PsiTriggerSpec, RefusesWhatTheKernelWould) {
    for (const char* bad : {"", "some", "some 150000", "some 150000 1000000 1", "avg 150000 1000000", "SOME 150000 1000000",
                            "some 0 1000000", "some 2000000 1000000", "some 100000 499999", "some 100000 10000001",
                            "some -1 1000000", "some 1.5 1000000", "some 150000 1e6", "some 99999999999999999999 1000000",
                            "some 150000 1000000\x01"}) {
        EXPECT_THROW(parse_psi_trigger(bad), PsiSpecError) << bad;
    }
    try {
        parse_psi_trigger("some 100000 100000");
        FAIL();
    } catch (const PsiSpecError& e) {
        EXPECT_NE(std::string(e.what()).find("500000 to 10000000"), std::string::npos) << e.what();
    }
}

TEST(PsiTriggerSpec, FromAPolicyThreshold) {
    EXPECT_EQ(psi_trigger_for("some", 20, 1000ms).text(), "some 200000 1000000");
    EXPECT_EQ(psi_trigger_for("full", 5, 2000ms).text(), "full 100000 2000000");
    EXPECT_EQ(psi_trigger_for("some", 0.00001, 500ms).stall, 1us); // rounded up to the smallest stall
    EXPECT_THROW(psi_trigger_for("some", 0, 1000ms), PsiSpecError);
    EXPECT_THROW(psi_trigger_for("some", 101, 1000ms), PsiSpecError);
    EXPECT_THROW(psi_trigger_for("some", 20, 100ms), PsiSpecError);
    EXPECT_THROW(psi_trigger_for("half", 20, 1000ms), PsiSpecError);
}

TEST(PsiTrigger, MissingFileFallsBackToPollingAndSaysWhy) {
    TempDir dir;
    PsiTrigger t((dir.path() / "memory.pressure").string(), parse_psi_trigger("some 150000 1000000"));
    EXPECT_EQ(t.mode(), PsiTrigger::Mode::polling);
    EXPECT_EQ(t.fd(), -1);
    EXPECT_EQ(t.error(), ENOENT);
    EXPECT_NE(t.describe().find("polling avg10 of"), std::string::npos);
    EXPECT_NE(t.describe().find("ENOENT"), std::string::npos);
    EXPECT_THROW(t.read(), ParseError);
}

TEST(PsiTrigger, DirectoryIsRefusedAndTheFallbackReadsTheFile) {
    TempDir dir;
    PsiTrigger on_dir(dir.path().string(), parse_psi_trigger("some 150000 1000000"));
    EXPECT_EQ(on_dir.mode(), PsiTrigger::Mode::polling);
    EXPECT_EQ(on_dir.error(), EISDIR);

    // A read-only pressure file: no trigger, but avg10 is read for the fallback.
    auto file = dir.path() / "memory.pressure";
    std::ofstream(file) << "some avg10=12.50 avg60=3.00 avg300=1.00 total=123456\n"
                           "full avg10=2.25 avg60=0.00 avg300=0.00 total=456\n";
    std::filesystem::permissions(file, std::filesystem::perms::owner_read | std::filesystem::perms::group_read);
    if (::geteuid() != 0) { // root writes read-only files anyway
        PsiTrigger ro(file.string(), parse_psi_trigger("some 150000 1000000"));
        EXPECT_EQ(ro.mode(), PsiTrigger::Mode::polling);
        EXPECT_EQ(ro.error(), EACCES);
        EXPECT_DOUBLE_EQ(ro.read().some.avg10, 12.5);
    }
    PsiTrigger moved = std::move(on_dir);
    EXPECT_EQ(moved.error(), EISDIR);
    moved = PsiTrigger((dir.path() / "absent").string(), parse_psi_trigger("full 100000 1000000"));
    EXPECT_EQ(moved.error(), ENOENT);
    EXPECT_EQ(moved.spec().kind, "full");
    auto p = read_pressure(file.string()); // what read() returns in polling mode
    EXPECT_DOUBLE_EQ(p.some.avg10, 12.5);
    ASSERT_TRUE(p.full.has_value());
    EXPECT_DOUBLE_EQ(p.full->avg10, 2.25);
}

TEST(PsiTrigger, OnlyKernelFilesAreWritten) {
    TempDir dir;
    auto file = dir.path() / "memory.pressure";
    const std::string text = "some avg10=1.00 avg60=0.00 avg300=0.00 total=1\n";
    std::ofstream(file) << text;
    PsiTrigger t(file.string(), parse_psi_trigger("some 150000 1000000"));
    EXPECT_EQ(t.mode(), PsiTrigger::Mode::polling);
    EXPECT_EQ(t.error(), EOPNOTSUPP);
    EXPECT_NE(t.reason().find("not a kernel pressure file"), std::string::npos);
    std::ifstream in(file);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), text); // untouched
    EXPECT_DOUBLE_EQ(t.read().some.avg10, 1.0);                        // the fallback reads it
}

// ---- the stall over the last interval (what the responder judges memory pressure by) ----

TEST(StallShare, TheShareOfTheIntervalSinceTheLastReading) {
    using resmgr::monitor::StallShare;
    const resmgr::TimePoint t0 = resmgr::TimePoint(std::chrono::seconds(1'800'000'000));
    const resmgr::Millis gap{3000};
    StallShare stalls;
    EXPECT_FALSE(stalls.share("node/some", 5'000'000, t0, gap)); // no base yet
    // 300 ms of stall in 1 s: 30 %, however high avg10 may still be from earlier.
    EXPECT_DOUBLE_EQ(*stalls.share("node/some", 5'300'000, t0 + std::chrono::seconds(1), gap), 30);
    // The stall ended: 0 at once (avg10 would take tens of seconds to decay).
    EXPECT_DOUBLE_EQ(*stalls.share("node/some", 5'300'000, t0 + std::chrono::seconds(2), gap), 0);
    // A reading older than the gap is no base; nor is a total that went back (a re-created group).
    EXPECT_FALSE(stalls.share("node/some", 9'000'000, t0 + std::chrono::seconds(10), gap));
    EXPECT_FALSE(stalls.share("node/some", 100, t0 + std::chrono::seconds(11), gap));
    // Keys are independent, and retain forgets the ones it is told to.
    EXPECT_FALSE(stalls.share("alloc_1/some", 0, t0, gap));
    EXPECT_DOUBLE_EQ(*stalls.share("alloc_1/some", 2'000'000, t0 + std::chrono::seconds(1), gap), 100); // capped
    stalls.retain([](const std::string& key) { return key.rfind("node/", 0) == 0; });
    EXPECT_EQ(stalls.size(), 1u);
}

TEST(StallShare, AYoungGroupsFirstReadingCountsFromItsBirth) {
    using resmgr::monitor::StallShare;
    const resmgr::TimePoint t0 = resmgr::TimePoint(std::chrono::seconds(1'800'000'000));
    const resmgr::Millis gap{3000};
    StallShare stalls;
    // Made 500 ms ago, 250 ms stalled since: 50 % at the first reading (its totals began at 0).
    EXPECT_DOUBLE_EQ(*stalls.share("alloc_2/cpu/some", 250'000, t0 + std::chrono::milliseconds(500), gap, t0), 50);
    // Then from that reading on, as any other key.
    EXPECT_DOUBLE_EQ(*stalls.share("alloc_2/cpu/some", 250'000, t0 + std::chrono::milliseconds(1500), gap, t0), 0);
    // A group older than the gap has no base at its first reading: its life's average is no
    // figure of the last interval.
    EXPECT_FALSE(stalls.share("alloc_3/cpu/some", 9'000'000, t0 + std::chrono::seconds(60), gap, t0));
}
