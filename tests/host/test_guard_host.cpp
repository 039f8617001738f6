// The fanotify guard on this host's kernel, driven directly (the daemon-level tests are in
// test_conflicts_host.cpp): the holder's cgroup writes, outsiders are denied writes and allowed
// reads, the open mode is read from the opener's syscall, queued openers wait for the holder and
// go ahead (or time out), a stalled decision falls back, rename-over and unlink are seen after the
// fact and the new file is marked, and 200 processes hammering held files while holds come and
// go all get answers with no fd left behind.
#include <gtest/gtest.h>

#include <poll.h>

#include <atomic>

#include "conflicts/file_guard.hpp"
#include "host_support.hpp"

using namespace resmgr;
using namespace resmgr::conflicts;
using namespace resmgr::host;
using namespace std::chrono_literals;

namespace {

size_t count_fds() {
    size_t n = 0;
    for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

class GuardHost : public ::testing::Test {
protected:
    std::string mount = cgroup2_mount();
    std::string owner_dir;    // the holder's group, absolute
    std::string owner_cgroup; // as /proc/PID/cgroup shows it
    std::string dir;          // the files
    std::string file;
    std::unique_ptr<FileGuard> guard;

    void SetUp() override {
        if (auto why = cgroup2_unavailable(mount)) GTEST_SKIP() << "guard host test skipped: " << *why;
        owner_cgroup = "/resmgr-guardtest-" + std::to_string(::getpid());
        owner_dir = mount + owner_cgroup;
        ASSERT_EQ(::mkdir(owner_dir.c_str(), 0755), 0) << owner_dir << ": " << std::strerror(errno);
        dir = "/var/tmp/resmgr-guardtest-" + std::to_string(::getpid());
        std::filesystem::create_directories(dir);
        file = dir + "/critical_file.nix";
        write_file(file, "x");
    }
    void TearDown() override {
        guard.reset();
        if (!owner_dir.empty()) ::rmdir(owner_dir.c_str());
        if (!dir.empty()) std::filesystem::remove_all(dir);
    }
    static void write_file(const std::string& path, const std::string& content) {
        std::ofstream(path, std::ios::trunc) << content;
    }
    void start(GuardPolicy policy, FileGuard::Options options = {}) {
        try {
            guard = std::make_unique<FileGuard>(std::move(policy), std::move(options));
        } catch (const GuardError& e) {
            FAIL() << "the guard did not start on a root host with fanotify: " << e.what();
        }
    }
    Hold hold_for(const std::string& path, const std::string& allocation = "alloc_test") {
        return Hold{path, allocation, "wf-guard", 50, owner_cgroup, std::nullopt};
    }
    static GuardPolicy locking() {
        GuardPolicy p;
        p.strategy = Strategy::file_locking;
        return p;
    }
    // Waits for a report of `kind`, handling directory notifications as the daemon's loop does.
    std::optional<GuardReport> wait_report(GuardReport::Kind kind, std::chrono::milliseconds limit = 3s) {
        std::optional<GuardReport> found;
        wait_until(
            [&] {
                pollfd p{guard->watch_fd(), POLLIN, 0};
                if (::poll(&p, 1, 0) > 0) guard->on_watch_ready();
                for (auto& r : guard->reports().take())
                    if (r.kind == kind && !found) found = r;
                return found.has_value();
            },
            limit);
        return found;
    }
};

TEST_F(GuardHost, TheHoldersGroupWritesAndOutsidersAreDeniedWritesButMayRead) {
    start(locking());
    guard->hold(hold_for(file));
    EXPECT_EQ(exit_within(try_open(file, O_WRONLY, owner_dir), 5s), kOpened) << "a process in the holder's group writes";
    EXPECT_EQ(exit_within(try_open(file, O_RDONLY), 5s), kOpened) << "read_only_operations: outsiders may read";
    pid_t outsider = try_open(file, O_WRONLY);
    EXPECT_EQ(exit_within(outsider, 5s), kDenied) << "an outsider may not open it for writing";
    auto report = wait_report(GuardReport::Kind::denied);
    ASSERT_TRUE(report);
    EXPECT_EQ(report->path, file);
    EXPECT_EQ(report->allocation_id, "alloc_test");
    EXPECT_EQ(report->opener.pid, outsider);
    EXPECT_FALSE(report->opener.comm.empty());
    EXPECT_FALSE(report->opener.cgroup.empty());
    EXPECT_EQ(report->opener.mode, OpenMode::write);
    EXPECT_EQ(guard->status()["counters"]["denied"], 1);
    // Strict: reads from outside are refused too.
    GuardPolicy strict = locking();
    strict.allow_reads = false;
    guard->set_policy(strict);
    EXPECT_EQ(exit_within(try_open(file, O_RDONLY), 5s), kDenied);
    // Released: anyone writes.
    guard->release("alloc_test");
    EXPECT_EQ(exit_within(try_open(file, O_WRONLY), 5s), kOpened);
}

// One thread, three opens: refused outside, let in as soon as it joins the holder's group (a
// remembered outsider's cgroup is trusted only while no task has moved), and still let in once
// it has moved out again (the guard remembers an insider while the thread lives; it could have
// kept an fd anyway). With the eBPF migration count and without it.
class GuardMigrationHost : public GuardHost, public ::testing::WithParamInterface<bool> {};

TEST_P(GuardMigrationHost, AThreadThatJoinsTheHoldersGroupIsLetInAtOnce) {
    FileGuard::Options options;
    options.bpf_migrations = GetParam();
    start(locking(), options);
    if (GetParam() && guard->status()["cgroup_migrations"].get<std::string>().rfind("counted", 0) != 0)
        GTEST_SKIP() << "the eBPF migration count did not load here: " << guard->status()["cgroup_migrations"];
    guard->hold(hold_for(file));
    pid_t child = ::fork();
    if (child == 0) {
        auto attempt = [&] {
            int fd = ::open(file.c_str(), O_WRONLY);
            if (fd >= 0) ::close(fd);
            return fd >= 0 ? 'o' : errno == EPERM ? 'd' : 'e';
        };
        char answers[3];
        answers[0] = attempt();
        join_cgroup(owner_dir);
        answers[1] = attempt();
        join_cgroup(mount);
        answers[2] = attempt();
        ::_exit((answers[0] == 'd' ? 1 : 0) | (answers[1] == 'o' ? 2 : 0) | (answers[2] == 'o' ? 4 : 0));
    }
    const int code = exit_within(child, 5s);
    EXPECT_TRUE(code >= 0 && (code & 1)) << "refused while outside (exit " << code << ")";
    EXPECT_TRUE(code >= 0 && (code & 2)) << "let in once inside (exit " << code << ")";
    EXPECT_TRUE(code >= 0 && (code & 4)) << "still let in after moving out (exit " << code << ")";
}

INSTANTIATE_TEST_SUITE_P(MigrationCount, GuardMigrationHost, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "counted" : "not_counted"; });

// The count moves when a task is moved between cgroups, and not when nothing moves.
TEST_F(GuardHost, TheMigrationCountMovesWhenATaskChangesCgroup) {
    auto loaded = bpf::CgroupMigrations::load();
    ASSERT_TRUE(loaded.counter) << "tp_btf loads on this host: " << loaded.error;
    const std::uint64_t before = loaded.counter->count();
    std::this_thread::sleep_for(20ms);
    pid_t child = ::fork();
    if (child == 0) {
        ::pause();
        ::_exit(0);
    }
    const std::uint64_t after_fork = loaded.counter->count();
    std::ofstream(owner_dir + "/cgroup.procs") << child;
    const std::uint64_t after_move = loaded.counter->count();
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    EXPECT_GT(after_move, after_fork) << "moving the child counted";
    EXPECT_GE(after_fork, before);
}

// A retry loop hammering a held file: every open is refused, and the loop gets a few counted
// reports, not one per open.
TEST_F(GuardHost, RepeatedRefusalsOfOneOpenerAreCountedInFewReports) {
    start(locking());
    guard->hold(hold_for(file));
    constexpr int kAttempts = 50;
    pid_t child = ::fork();
    if (child == 0) {
        int refused = 0;
        for (int i = 0; i < kAttempts; ++i) {
            int fd = ::open(file.c_str(), O_WRONLY);
            if (fd >= 0) ::close(fd);
            else if (errno == EPERM) ++refused;
        }
        ::_exit(refused == kAttempts ? 0 : 1);
    }
    ASSERT_EQ(exit_within(child, 5s), 0) << "every attempt refused";
    long counted = 0;
    size_t reports = 0;
    wait_until(
        [&] {
            for (auto& r : guard->reports().take()) {
                EXPECT_EQ(r.kind, GuardReport::Kind::denied);
                EXPECT_EQ(r.opener.pid, child);
                counted += r.count;
                ++reports;
            }
            return counted >= kAttempts;
        },
        3s);
    EXPECT_EQ(counted, kAttempts) << "every refusal counted";
    EXPECT_LT(reports, static_cast<size_t>(kAttempts) / 5) << "repeats folded into few reports";
    EXPECT_EQ(guard->status()["counters"]["denied"], kAttempts);
}

TEST_F(GuardHost, TheOpenModeIsReadFromTheOpenersSyscall) {
    start(locking());
    guard->hold(hold_for(file));
    struct Case {
        const char* name;
        int flags;
        bool openat2;
        int expected;
    };
    for (const Case& c : {Case{"O_RDONLY", O_RDONLY, false, kOpened}, Case{"O_RDONLY|O_CLOEXEC", O_RDONLY | O_CLOEXEC, false, kOpened},
                          Case{"O_WRONLY", O_WRONLY, false, kDenied}, Case{"O_RDWR", O_RDWR, false, kDenied},
                          Case{"O_WRONLY|O_APPEND", O_WRONLY | O_APPEND, false, kDenied},
                          Case{"O_RDONLY|O_TRUNC", O_RDONLY | O_TRUNC, false, kDenied},
                          Case{"openat2 O_RDONLY", O_RDONLY, true, kOpened}, Case{"openat2 O_RDWR", O_RDWR, true, kDenied}})
        EXPECT_EQ(exit_within(try_open(file, c.flags, {}, c.openat2), 5s), c.expected) << c.name;
}

TEST_F(GuardHost, AQueuedOpenerWaitsForTheHolderAndGoesAheadWhenItLetsGo) {
    start(GuardPolicy{}); // the seed's default: queue_and_serialize, 10m
    guard->hold(hold_for(file));
    pid_t waiting = try_open(file, O_WRONLY);
    ASSERT_TRUE(wait_report(GuardReport::Kind::queued));
    std::this_thread::sleep_for(300ms);
    EXPECT_TRUE(still_running(waiting)) << "the opener is held while the allocation holds the file";
    EXPECT_EQ(guard->open_fds(), 3u) << "one O_PATH fd for the mark, one queued event and its opener's pidfd";
    guard->release("alloc_test");
    EXPECT_EQ(exit_within(waiting, 3s), kOpened);
    EXPECT_TRUE(wait_report(GuardReport::Kind::granted));
    EXPECT_EQ(guard->open_fds(), 0u);
}

TEST_F(GuardHost, AQueuedOpenerIsDeniedWhenTheQueueTimeoutPasses) {
    GuardPolicy policy;
    policy.queue_timeout = 300ms;
    start(policy);
    guard->hold(hold_for(file));
    auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(exit_within(try_open(file, O_WRONLY), 5s), kDenied);
    EXPECT_GE(std::chrono::steady_clock::now() - started, 300ms);
    EXPECT_TRUE(wait_report(GuardReport::Kind::timed_out));
}

TEST_F(GuardHost, TheGuardsOwnProcessOpensHeldFilesWithoutDeadlock) {
    start(locking());
    guard->hold(hold_for(file));
    // This process runs the guard's decision thread: its own opens must not wait on it.
    int fd = ::open(file.c_str(), O_WRONLY);
    EXPECT_GE(fd, 0) << std::strerror(errno);
    if (fd >= 0) ::close(fd);
    EXPECT_GE(guard->status()["counters"]["own_opens"].get<int>(), 1);
}

TEST_F(GuardHost, AStalledDecisionFallsBackToTheDefaultAnswer) {
    FileGuard::Options options;
    options.decision_deadline = 200ms;
    options.describe_opener = [](pid_t tid) {
        std::this_thread::sleep_for(1500ms); // a /proc read that hangs
        return describe_from_proc(tid);
    };
    start(locking(), options);
    guard->hold(hold_for(file));
    auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(exit_within(try_open(file, O_WRONLY), 5s), kOpened) << "the watchdog answered allow";
    EXPECT_LT(std::chrono::steady_clock::now() - started, 1200ms);
    EXPECT_TRUE(wait_report(GuardReport::Kind::stalled));
}

TEST_F(GuardHost, ShuttingDownAnswersQueuedOpeners) {
    start(GuardPolicy{});
    guard->hold(hold_for(file));
    pid_t waiting = try_open(file, O_WRONLY);
    ASSERT_TRUE(wait_report(GuardReport::Kind::queued));
    guard.reset();
    EXPECT_EQ(exit_within(waiting, 3s), kOpened);
}

TEST_F(GuardHost, RenameOverByAnOutsiderIsReportedAndTheNewFileIsMarked) {
    start(locking());
    guard->hold(hold_for(file));
    const std::string replacement = dir + "/replacement";
    write_file(replacement, "y");
    pid_t mover = ::fork();
    if (mover == 0) ::_exit(::rename(replacement.c_str(), file.c_str()) == 0 ? 0 : 1);
    ASSERT_EQ(exit_within(mover, 5s), 0);
    auto report = wait_report(GuardReport::Kind::replaced);
    ASSERT_TRUE(report) << "rename-over raises no permission event; it is seen on the directory";
    EXPECT_EQ(report->path, file);
    EXPECT_EQ(report->opener.pid, mover);
    EXPECT_EQ(exit_within(try_open(file, O_WRONLY), 5s), kDenied) << "the file now at the path is held";
    EXPECT_EQ(guard->status()["holds"][0]["marked"], true);
}

TEST_F(GuardHost, UnlinkIsReportedAndAFileCreatedAtThePathIsMarkedAgain) {
    start(locking());
    guard->hold(hold_for(file));
    pid_t remover = ::fork();
    if (remover == 0) ::_exit(::unlink(file.c_str()) == 0 ? 0 : 1);
    ASSERT_EQ(exit_within(remover, 5s), 0);
    ASSERT_TRUE(wait_report(GuardReport::Kind::removed));
    EXPECT_EQ(guard->status()["holds"][0]["marked"], false);
    // The holder writes the file back: no conflict, and it is held again.
    pid_t writer = ::fork();
    if (writer == 0) {
        join_cgroup(owner_dir);
        int fd = ::open(file.c_str(), O_WRONLY | O_CREAT, 0644);
        ::_exit(fd >= 0 ? 0 : 1);
    }
    ASSERT_EQ(exit_within(writer, 5s), 0);
    ASSERT_TRUE(wait_until(
        [&] {
            pollfd p{guard->watch_fd(), POLLIN, 0};
            if (::poll(&p, 1, 0) > 0) guard->on_watch_ready();
            return guard->status()["holds"][0]["marked"] == true;
        },
        3s));
    EXPECT_EQ(exit_within(try_open(file, O_WRONLY), 5s), kDenied);
}

TEST_F(GuardHost, TwoHundredOpenersWhileHoldsComeAndGoAllGetAnAnswer) {
    const size_t fds_before = count_fds();
    GuardPolicy policy;
    policy.queue_timeout = 50ms; // queue some, time some out, grant some at release
    start(policy);
    std::vector<std::string> files;
    for (int i = 0; i < 4; ++i) {
        files.push_back(dir + "/file" + std::to_string(i));
        write_file(files.back(), "x");
    }
    constexpr int kProcesses = 200;
    const auto run_for = 5s; // the daemon-level test runs the full 10 s
    const std::vector<pid_t> openers = spawn_openers(files, kProcesses, run_for, 0us);
    auto until = std::chrono::steady_clock::now() + run_for;
    for (int round = 0; std::chrono::steady_clock::now() < until; ++round) {
        for (size_t f = 0; f < files.size(); ++f)
            if ((round + f) % 2 == 0) guard->hold(hold_for(files[f], "alloc_" + std::to_string(f)));
        std::this_thread::sleep_for(40ms);
        for (size_t f = 0; f < files.size(); ++f) guard->release("alloc_" + std::to_string(f));
        guard->reports().take();
    }
    const OpenerOutcome outcome = wait_openers(openers, 5s);
    EXPECT_EQ(outcome.stuck, 0) << "every opener was answered";
    EXPECT_EQ(outcome.failed, 0) << "opens only ever succeeded or failed with EPERM";
    auto counters = guard->status()["counters"];
    std::cout << "[          ] " << counters.dump() << "\n";
    EXPECT_GT(counters["queued"].get<long>(), 0);
    EXPECT_EQ(counters["granted_after_queue"].get<long>() + counters["timed_out"].get<long>(), counters["queued"].get<long>())
        << "every queued open was answered: granted at a release or denied at its timeout";
    EXPECT_EQ(guard->open_fds(), 0u);
    guard.reset();
    EXPECT_EQ(count_fds(), fds_before) << "no fd left behind";
}

} // namespace

namespace {

TEST(TaskProcReaderHost, ACachedFdAnswersForItsTaskOnlyAndNeverForAnExitedOne) {
    pid_t child = ::fork();
    if (child == 0) {
        ::pause();
        ::_exit(0);
    }
    TaskProcReader reader;
    const std::string own_comm = slurp("/proc/self/comm").substr(0, slurp("/proc/self/comm").find('\n'));
    EXPECT_EQ(reader.comm(child), own_comm);
    EXPECT_EQ(reader.last_cgroup(child), nullptr) << "nothing read yet";
    const std::string cgroup = reader.cgroup(child, 7);
    EXPECT_FALSE(cgroup.empty());
    ASSERT_NE(reader.last_cgroup(child), nullptr);
    EXPECT_EQ(reader.last_cgroup(child)->cgroup, cgroup);
    EXPECT_EQ(reader.last_cgroup(child)->migrations, 7u) << "remembered with the count it was read at";
    EXPECT_EQ(reader.cached(), 1u);
    EXPECT_EQ(reader.comm(child), own_comm) << "read again through the cached fd";
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    EXPECT_EQ(reader.comm(child), "") << "the task is gone: no answer, not a stale one";
    EXPECT_EQ(reader.open_mode(child), OpenMode::unknown);
    EXPECT_EQ(reader.cached(), 0u);
    EXPECT_EQ(reader.last_cgroup(child), nullptr) << "a reused tid must not inherit the remembered cgroup";
}

} // namespace
