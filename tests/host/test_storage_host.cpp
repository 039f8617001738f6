// Per-allocation temporary directories on the real filesystem through a real resmgrd: made at
// allocate with the requester's ownership (0700 under a 0711 root), the TMPDIR of resmgr-run's
// command, what is written there measured in status, removed at release without following a
// symlink planted to the outside, storage_gb over the filesystem's free space refused, and, on an
// ext4 loop filesystem of the test's own with project quotas (skipped, saying why, where the
// kernel cannot mount one), storage_gb enforced by the quota.
#include "build_paths.hpp"
#include <sys/mount.h>
#include <sys/stat.h>

#include "daemon_fixture.hpp"

namespace resmgr::host {
namespace {

class StorageHost : public DaemonHost {
protected:
    std::string temp_root() const { return dir + "/state-tmp"; } // resmgrd's default beside --state-dir

    // The whole status entry of one allocation.
    json status_of(const std::string& id) {
        json st = cli_json({"status", json{{"allocation_id", id}}.dump()});
        return st["result"]["allocations"][0];
    }
};

TEST_F(StorageHost, AllocateMakesTheRequestersTmpdirAndReleaseRemovesItWithoutFollowingLinks) {
    // A user other than root asks (the socket and the test dir let them in).
    ASSERT_EQ(::chmod(dir.c_str(), 0711), 0);
    ASSERT_EQ(::chmod(socket.c_str(), 0666), 0);
    RunResult r = run({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", build_paths::resmgr_cli, "--socket", socket, "--json",
                       "allocate", R"({"workflow_id":"tmp-user","resources":{"cpu_cores":0.5,"storage_gb":"16M"}})"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    json a = json::parse(r.out)["result"];
    const std::string id = a["allocation_id"], tmpdir = a["tmpdir"];
    EXPECT_EQ(tmpdir, temp_root() + "/" + id);
    struct stat st{};
    ASSERT_EQ(::stat(temp_root().c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(st.st_mode & 07777, 0711u);
    ASSERT_EQ(::lstat(tmpdir.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_uid, 65534u);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    // This host's filesystem has no project quotas on: admitted, and the answer says why not enforced.
    if (!a["storage"]["enforced"].get<bool>()) {
        std::cout << "storage_gb not enforced here: " << a["storage"]["reason"].get<std::string>() << "\n";
        EXPECT_FALSE(a["storage"]["reason"].get<std::string>().empty());
    }

    // The user plants a symlink to something of root's outside, and a deep tree.
    const std::string precious = dir + "/precious";
    std::filesystem::create_directories(precious + "/keep");
    std::ofstream(precious + "/keep/file") << "do not remove";
    std::filesystem::create_directory_symlink(precious, tmpdir + "/escape");
    std::filesystem::create_symlink(precious + "/keep/file", tmpdir + "/escape-file");
    std::string deep = tmpdir;
    for (int i = 0; i < 60; ++i) deep += "/d";
    std::filesystem::create_directories(deep);
    std::filesystem::create_directory_symlink(precious + "/keep", deep + "/escape-deep");

    json rel = cli_json({"release", json{{"allocation_id", id}}.dump()});
    EXPECT_EQ(rel["status"], "success");
    EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(tmpdir))) << tmpdir << " is still there";
    EXPECT_EQ(slurp(precious + "/keep/file"), "do not remove") << "release followed a planted symlink";
}

TEST_F(StorageHost, ResmgrRunGivesTheCommandItsTmpdirAndWhatItWritesIsMeasured) {
    const std::string seen = dir + "/seen";
    // The command says its TMPDIR, writes 2 MiB there (renamed into place once written), and
    // stays a while so status can measure it.
    const std::string script = "echo \"$TMPDIR\" > " + seen + "; head -c 2097152 /dev/zero > \"$TMPDIR/part\" && mv \"$TMPDIR/part\" "
                               "\"$TMPDIR/data\"; sleep 25";
    pid_t runner = spawn({build_paths::resmgr_run, "--socket", socket, "--workflow", "tmp-run", "--storage", "64M", "--", "/bin/sh", "-c", script},
                         dir + "/run.log");
    ASSERT_TRUE(wait_until([&] { return slurp(seen).size() > 1; }, std::chrono::seconds(10))) << slurp(dir + "/run.log");
    std::string tmpdir = slurp(seen);
    tmpdir.pop_back();
    EXPECT_EQ(tmpdir.rfind(temp_root() + "/alloc_", 0), 0u) << tmpdir;
    const std::string id = tmpdir.substr(tmpdir.rfind('/') + 1);
    json storage;
    // Measured by a walk at most every 10 s (a quota's count every pass).
    bool measured = wait_until([&] {
        storage = status_of(id)["storage"];
        return storage["used_bytes"].is_number() && storage["used_bytes"].get<std::uint64_t>() >= 2u << 20;
    }, std::chrono::seconds(25));
    EXPECT_TRUE(measured) << storage.dump();
    EXPECT_EQ(status_of(id)["tmpdir"], tmpdir);
    ::kill(runner, SIGTERM);
    int status = 0;
    ::waitpid(runner, &status, 0);
    EXPECT_TRUE(wait_until([&] { return !std::filesystem::exists(std::filesystem::symlink_status(tmpdir)); }, std::chrono::seconds(10)))
        << tmpdir << " outlived its allocation";
}

TEST_F(StorageHost, StorageOverTheFreeSpaceIsRefused) {
    json r = cli_json({"allocate", R"({"workflow_id":"tmp-big","resources":{"storage_gb":1000000}})"}, 1);
    EXPECT_EQ(r["error"]["code"], "RESOURCE_EXHAUSTED") << r.dump(2);
    EXPECT_EQ(r["error"]["affected_resources"], json::array({"storage"}));
    EXPECT_NE(r["error"]["details"].get<std::string>().find("of temporary storage"), std::string::npos) << r.dump(2);
    json st = cli_json({"status"});
    EXPECT_GT(st["result"]["capacity"]["storage"]["total_gb"].get<double>(), 0) << st["result"]["capacity"].dump();
}

// resmgrd on a temp root inside an ext4 loop filesystem of the test's own, with project quotas.
class QuotaStorageHost : public StorageHost {
protected:
    std::string mnt, img, why_not;
    bool mounted = false;

    std::vector<std::string> daemon_args() override {
        img = dir + "/prj.img";
        mnt = dir + "/mnt";
        std::filesystem::create_directories(mnt);
        RunResult mk = run({"/bin/sh", "-c", "truncate -s 64M " + img + " && mkfs.ext4 -q -F -O quota,project " + img});
        RunResult mount = mk.status == 0 ? run({"/bin/mount", "-o", "loop,prjquota", img, mnt}) : mk;
        mounted = mount.status == 0;
        if (!mounted) {
            why_not = "cannot make an ext4 filesystem with project quotas here: " + mount.err +
                      " (this kernel needs CONFIG_QUOTA and CONFIG_QFMT_V2; dmesg says which)";
            return {};
        }
        return {"--temp-root", mnt + "/resmgr"};
    }
    void TearDown() override {
        StorageHost::TearDown(); // stops resmgrd and removes `dir`'s contents but the mount's
        if (mounted) {
            if (::umount2(mnt.c_str(), 0) < 0) ::umount2(mnt.c_str(), MNT_DETACH);
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
        }
    }
};

TEST_F(QuotaStorageHost, ProjectQuotaEnforcesStorageGb) {
    if (!mounted) GTEST_SKIP() << why_not;
    json a = cli_json({"allocate", R"({"workflow_id":"tmp-quota","resources":{"storage_gb":"4M"}})"})["result"];
    ASSERT_TRUE(a["storage"]["enforced"].get<bool>()) << a["storage"].dump();
    const std::string tmpdir = a["tmpdir"];
    // Over 4 MiB the kernel refuses the write (EDQUOT).
    RunResult w = run({"/bin/sh", "-c", "head -c 8388608 /dev/zero > " + tmpdir + "/big"});
    EXPECT_NE(w.status, 0) << "an 8 MiB write into a 4 MiB quota succeeded";
    EXPECT_NE(w.err.find("quota"), std::string::npos) << w.err;
    json storage;
    EXPECT_TRUE(wait_until([&] {
        storage = status_of(a["allocation_id"])["storage"];
        return storage["measured_by"] == "project_quota" && storage["used_bytes"].get<std::uint64_t>() > 0;
    }, std::chrono::seconds(5))) << storage.dump();
    EXPECT_LE(storage["used_bytes"].get<std::uint64_t>(), 4u << 20);
}

} // namespace
} // namespace resmgr::host
