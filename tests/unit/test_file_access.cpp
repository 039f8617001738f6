// Who may hold which exclusive file (conflicts::holdable, pure): regular files the requester
// could write, or create, for everyone; any regular file for the privileged; never a FIFO, a
// device or a kernel file; a refusal that reads the same whether or not the file exists.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cerrno>

#include <linux/magic.h>

#include "conflicts/file_access.hpp"

using namespace resmgr::conflicts;
using Verdict = Holdability::Verdict;

namespace {

PathFacts regular(const std::string& resolved, bool writable) {
    PathFacts f;
    f.resolved = resolved;
    f.exists = true;
    f.type = S_IFREG;
    f.fs_type = EXT4_SUPER_MAGIC;
    f.writable = writable;
    return f;
}

TEST(Holdable, ARegularFileTheRequesterCanWriteIsHeldByItsCanonicalPath) {
    Holdability h = holdable("/home/a/link", regular("/home/a/real", true), false);
    EXPECT_EQ(h.verdict, Verdict::ok);
    EXPECT_EQ(h.path, "/home/a/real");
}

TEST(Holdable, OneItCannotWriteIsForThePrivilegedOnly) {
    EXPECT_EQ(holdable("/etc/passwd", regular("/etc/passwd", false), false).verdict, Verdict::denied);
    EXPECT_EQ(holdable("/etc/passwd", regular("/etc/passwd", false), true).verdict, Verdict::ok);
}

TEST(Holdable, ADenialSaysNothingOfWhetherTheFileExists) {
    PathFacts unsearchable;
    unsearchable.error = EACCES;
    PathFacts not_writable = regular("/root/x", false);
    PathFacts new_in_closed_dir; // nothing there, the directory not writable
    new_in_closed_dir.resolved = "/srv/new";
    new_in_closed_dir.fs_type = EXT4_SUPER_MAGIC;
    Holdability a = holdable("/root/x", unsearchable, false), b = holdable("/root/x", not_writable, false),
                c = holdable("/root/x", new_in_closed_dir, false);
    for (const auto* h : {&a, &b, &c}) {
        EXPECT_EQ(h->verdict, Verdict::denied);
        EXPECT_EQ(h->reason, a.reason);
        EXPECT_EQ(h->reason.find("/root/x"), std::string::npos) << "the words do not depend on the path";
    }
}

TEST(Holdable, AFileNotThereYetIsHeldWhenItsDirectoryLetsTheRequesterCreateIt) {
    PathFacts f;
    f.resolved = "/home/a/new";
    f.fs_type = EXT4_SUPER_MAGIC;
    f.writable = true;
    EXPECT_EQ(holdable("/home/a/new", f, false).verdict, Verdict::ok);
    PathFacts no_dir;
    no_dir.error = ENOENT;
    Holdability h = holdable("/no/such/f", no_dir, false);
    EXPECT_EQ(h.verdict, Verdict::invalid);
    EXPECT_NE(h.reason.find("its directory does not exist"), std::string::npos);
    PathFacts dangling = f;
    dangling.dangling_link = true;
    EXPECT_EQ(holdable("/home/a/new", dangling, true).verdict, Verdict::invalid);
}

TEST(Holdable, FifosDevicesSocketsDirectoriesAndKernelFilesAreRefusedToEveryone) {
    for (mode_t type : {S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK, S_IFDIR}) {
        PathFacts f = regular("/dev/x", true);
        f.type = type;
        Holdability h = holdable("/dev/x", f, true);
        EXPECT_EQ(h.verdict, Verdict::invalid) << type;
    }
    PathFacts dir = regular("/home/a", true);
    dir.type = S_IFDIR;
    EXPECT_NE(holdable("/home/a", dir, true).reason.find("is a directory"), std::string::npos);
    for (long magic : {PROC_SUPER_MAGIC, SYSFS_MAGIC, CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC}) {
        PathFacts f = regular("/mnt/x/cgroup.procs", true);
        f.fs_type = magic;
        EXPECT_EQ(holdable("/mnt/x/cgroup.procs", f, true).verdict, Verdict::invalid) << magic;
    }
    // By path too: on hybrid hosts /sys/fs/cgroup is a tmpfs.
    PathFacts tmpfs = regular("/sys/fs/cgroup/x", true);
    tmpfs.fs_type = TMPFS_MAGIC;
    EXPECT_EQ(holdable("/sys/fs/cgroup/x", tmpfs, true).verdict, Verdict::invalid);
    EXPECT_TRUE(kernel_filesystem(TMPFS_MAGIC, "/proc"));
    EXPECT_FALSE(kernel_filesystem(TMPFS_MAGIC, "/procfiles/x"));
    EXPECT_FALSE(kernel_filesystem(TMPFS_MAGIC, "/system/x"));
}

} // namespace
