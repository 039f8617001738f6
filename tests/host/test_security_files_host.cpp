// Exclusive files as local users met them in issue "Local users can crash, hijack and block
// resmgrd" (items 10 and 11), against a private resmgrd: a user may hold only regular files it
// could write itself, looked at with its own permissions (root's files, private directories,
// symlinks to them, cgroupfs, FIFOs and devices are refused and root's writes go on, and a link
// renamed over a held file later is not followed); a held
// opener that is killed gives back its fds at once; one user's held openers are capped.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "security_fixture.hpp"

using namespace resmgr;
using namespace resmgr::host;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

class SecurityFilesHost : public SecurityHost {
protected:
    void SetUp() override {
        SecurityHost::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        json doctor = cli_json({"doctor"});
        if (!doctor["result"]["daemon"]["file_guard"].value("available", false)) GTEST_SKIP() << "no file guard on this host";
    }
    // A file (or, with `mode` 0, a directory) owned by `user` (nullptr: root).
    std::string make(const std::string& name, mode_t mode, const ScopedUser* user = nullptr, bool directory = false) {
        const std::string path = dir + "/" + name;
        if (directory) std::filesystem::create_directories(path);
        else std::ofstream(path) << "x\n";
        ::chmod(path.c_str(), mode);
        if (user) {
            EXPECT_EQ(::chown(path.c_str(), user->uid(), user->gid()), 0) << path << ": " << std::strerror(errno);
        }
        return path;
    }
    json hold_as(const ScopedUser* user, const std::string& file) {
        const std::string params = json{{"workflow_id", "wf-files"}, {"resources", {{"agents", 1}}}, {"exclusive_files", {file}}}.dump();
        if (user) return cli_json_as(*user, {"allocate", params});
        RunResult r = cli({"allocate", params}); // root's refusals exit non-zero
        return json::parse(r.out, nullptr, false);
    }
    RunAs as(const ScopedUser& user) const { return {user.uid(), user.gid()}; }
    int waiting_openers() { return static_cast<int>(cli_json({"status", "conflicts"})["result"]["waiting_openers"].size()); }
};

TEST_F(SecurityFilesHost, AUserMayHoldOnlyRegularFilesItCouldWriteItself) {
    const std::string root644 = make("root644", 0644), root600 = make("root600", 0600);
    const std::string private_dir = make("private", 0700, nullptr, true);
    const std::string in_private = make("private/inner", 0666);
    const std::string mine = make("mallory", 0755, mallory.get(), true);
    const std::string link = mine + "/link";
    ASSERT_EQ(::symlink(root644.c_str(), link.c_str()), 0);
    const std::string cgroup_file = mount + "/cgroup.procs";
    const std::string fifo = dir + "/fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
    ::chmod(fifo.c_str(), 0666);

    struct Case {
        std::string path;
        std::string code;
    };
    const std::vector<Case> refused{{root644, "PERMISSION_DENIED"},
                                    {root600, "PERMISSION_DENIED"},
                                    {in_private, "PERMISSION_DENIED"},
                                    {private_dir + "/not-yet", "PERMISSION_DENIED"},
                                    {link, "PERMISSION_DENIED"},
                                    {cgroup_file, "INVALID_REQUEST"},
                                    {fifo, "INVALID_REQUEST"},
                                    {"/dev/null", "INVALID_REQUEST"},
                                    {"/proc/self/status", "INVALID_REQUEST"}};
    for (const auto& c : refused) {
        json r = hold_as(mallory.get(), c.path);
        EXPECT_EQ(r["error"]["code"], c.code) << c.path << ": " << r.dump(2);
    }
    // A private directory's file and a name not there yet are refused in the same words.
    json existing = hold_as(mallory.get(), in_private), missing = hold_as(mallory.get(), private_dir + "/not-yet");
    EXPECT_EQ(existing["error"]["details"], missing["error"]["details"]);
    EXPECT_EQ(existing["error"]["code"], missing["error"]["code"]);
    // Root may hold any regular file, but no FIFO, device or kernel file either.
    for (const std::string& path : {fifo, std::string("/dev/null"), cgroup_file, std::string("/proc/self/status")}) {
        json r = hold_as(nullptr, path);
        EXPECT_EQ(r["error"]["code"], "INVALID_REQUEST") << path << ": " << r.dump(2);
    }
    json guard = cli_json({"doctor"})["result"]["daemon"]["file_guard"]["status"];
    EXPECT_TRUE(guard["holds"].empty()) << guard.dump(2);
    // Nothing was held, so root's writes go ahead at once.
    for (const std::string& path : {root644, root600, in_private})
        EXPECT_EQ(exit_within(try_open(path, O_WRONLY), 3s), kOpened) << path << " held root's write";
}

TEST_F(SecurityFilesHost, AUserHoldsItsOwnFilesAndRootAnyRegularFile) {
    const std::string home = make("alice", 0755, alice.get(), true);
    const std::string own = make("alice/own", 0644, alice.get());
    ASSERT_EQ(::symlink("own", (home + "/link").c_str()), 0);
    json r = hold_as(alice.get(), home + "/link");
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    EXPECT_EQ(r["result"]["allocation"]["constraints"]["exclusive_access"], json({own})) << "held by the link's target";
    EXPECT_EQ(hold_as(alice.get(), home + "/not-yet")["status"], "success") << "a file she may create";
    EXPECT_EQ(hold_as(nullptr, make("root600", 0600))["status"], "success");
    // Mallory may not claim alice's 0644 file.
    EXPECT_EQ(hold_as(mallory.get(), make("alice/other", 0644, alice.get()))["error"]["code"], "PERMISSION_DENIED");
}

TEST_F(SecurityFilesHost, ALinkPutInPlaceOfAHeldFileIsNotFollowed) {
    const std::string root644 = make("root644", 0644);
    make("alice", 0755, alice.get(), true);
    const std::string own = make("alice/own", 0644, alice.get());
    ASSERT_EQ(hold_as(alice.get(), own)["status"], "success");
    // Alice renames a link to root's file over the one she holds.
    pid_t swap = ::fork();
    if (swap == 0) {
        const std::string link = own + ".link";
        if (::setgid(alice->gid()) != 0 || ::setuid(alice->uid()) != 0) ::_exit(3);
        ::_exit(::symlink(root644.c_str(), link.c_str()) == 0 && ::rename(link.c_str(), own.c_str()) == 0 ? 0 : 1);
    }
    ASSERT_EQ(exit_within(swap, 5s), 0);
    EXPECT_TRUE(wait_until(
        [&] {
            const json listed = cli_json({"status", "conflicts"});
            for (const auto& c : listed["result"]["conflicts"])
                if (c["event"] == "removed" || c["event"] == "replaced") return true;
            return false;
        },
        5s))
        << "the guard saw the held path change";
    EXPECT_EQ(exit_within(try_open(root644, O_WRONLY), 3s), kOpened) << "root's file was marked through alice's link";
}

class SecurityQueueHost : public SecurityFilesHost {
protected:
    std::string file, holder;
    void SetUp() override {
        SecurityFilesHost::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        json policy = cli_json({"prevent-conflicts", json{{"file_conflicts", {{"strategy", "queue_and_serialize"}, {"timeout", "10m"}}}}.dump()});
        ASSERT_EQ(policy["status"], "success") << policy.dump(2);
        make("alice", 0755, alice.get(), true);
        file = make("alice/shared", 0666, alice.get()); // anyone may write it, so openers from outside wait
        json r = hold_as(alice.get(), file);
        ASSERT_EQ(r["status"], "success") << r.dump(2);
        holder = r["result"]["allocation_id"];
    }
    // `count` of mallory's writers, waiting for the held file.
    std::vector<pid_t> queue_openers(int count) {
        const int before = waiting_openers();
        std::vector<pid_t> openers;
        for (int i = 0; i < count; ++i) openers.push_back(try_open(file, O_WRONLY, {}, false, as(*mallory)));
        EXPECT_TRUE(wait_until([&] { return waiting_openers() == before + count; }, 10s)) << waiting_openers() << " waiting";
        return openers;
    }
};

TEST_F(SecurityQueueHost, AKilledHeldOpenerGivesBackItsFdsAtOnce) {
    constexpr int kBatches = 10, kBatch = 50;
    // The daemon's fds of the held file (its O_PATH mark fd, an event fd per waiting opener) and
    // its pidfds; its other fds (clients, cgroup files the sampler opens) come and go on their own.
    auto guard_fds = [&] {
        std::istringstream fds(open_fds(daemon));
        int n = 0;
        for (std::string line; std::getline(fds, line);) n += line == file || line == "anon_inode:[pidfd]";
        return n;
    };
    // The baseline once the daemon has seen the earlier clients go (their pidfds close when it
    // reads their EOF, a moment after they got their answers).
    int before = guard_fds();
    wait_until([&] {
        const int now = guard_fds();
        std::this_thread::sleep_for(300ms);
        before = guard_fds();
        return now == before;
    }, 5s);
    int most = 0;
    const auto started = std::chrono::steady_clock::now();
    for (int b = 0; b < kBatches; ++b) {
        std::vector<pid_t> openers = queue_openers(kBatch);
        most = std::max(most, guard_fds());
        for (pid_t pid : openers) ::kill(pid, SIGKILL);
        for (pid_t pid : openers) ::waitpid(pid, nullptr, 0);
        ASSERT_TRUE(wait_until([&] { return guard_fds() == before; }, 3s)) << "batch " << b << ": " << guard_fds() << " fds, " << before << " before";
    }
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    json guard = cli_json({"doctor"})["result"]["daemon"]["file_guard"]["status"];
    std::cout << "[          ] " << kBatches * kBatch << " held openers killed in " << took.count() << " ms; the guard's fds: " << before
              << " before, " << most << " with " << kBatch << " waiting, " << guard_fds() << " after; counters " << guard["counters"].dump()
              << "\n";
    EXPECT_EQ(guard["counters"]["openers_gone"], kBatches * kBatch);
    EXPECT_EQ(guard["queue_limits"]["waiting"], 0);
}

TEST_F(SecurityQueueHost, OneUsersHeldOpenersAreCapped) {
    std::vector<pid_t> openers = queue_openers(64);
    const auto asked = std::chrono::steady_clock::now();
    EXPECT_EQ(exit_within(try_open(file, O_WRONLY, {}, false, as(*mallory)), 5s), kDenied) << "the 65th is refused";
    EXPECT_LT(std::chrono::steady_clock::now() - asked, 2s) << "at once";
    EXPECT_EQ(exit_within(try_open(file, O_WRONLY, {}, false, as(*mallory)), 5s), kDenied);
    // Another user's opener still waits its turn.
    pid_t others = try_open(file, O_WRONLY, {}, false, as(*alice));
    EXPECT_TRUE(wait_until([&] { return waiting_openers() == 65; }, 5s)) << waiting_openers();
    json guard = cli_json({"doctor"})["result"]["daemon"]["file_guard"]["status"];
    EXPECT_EQ(guard["counters"]["refused_queue_full"], 2) << guard.dump(2);
    EXPECT_EQ(guard["queue_limits"]["per_user"], 64);
    // Reported once, not once per refusal.
    json events = cli_json({"events", "--type", "conflict"});
    int reported = 0;
    for (const auto& e : events["result"]["events"])
        reported += e["message"].get<std::string>().find("queue_limits.per_user") != std::string::npos;
    EXPECT_EQ(reported, 1) << events.dump(2);
    cli_json({"release", json{{"allocation_id", holder}}.dump()});
    openers.push_back(others);
    const OpenerOutcome outcome = wait_openers(openers, 10s);
    EXPECT_EQ(outcome.stuck, 0) << "every waiting opener went ahead";
    EXPECT_EQ(outcome.failed, 0);
}

} // namespace
