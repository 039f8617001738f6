// Host probe: mountinfo parsing and the backend `auto` picks, on fixture hosts.
#include <gtest/gtest.h>

#include <fstream>

#include "cgroup/probe.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using namespace resmgr::cgroup;

namespace {

const char* kHybrid =
    "25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw\n"
    "33 25 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
    "34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    "35 33 0:30 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd\n"
    "38 33 0:33 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
    "39 33 0:34 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n";
const char* kPureV2 = "34 33 0:29 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
const char* kV1 = "39 33 0:34 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n";

} // namespace

TEST(Mountinfo, ParsesAndSkipsGarbage) {
    auto m = parse_mountinfo(std::string(kHybrid) + "garbage line\n\n1 2 3\n - - -\n");
    ASSERT_EQ(m.size(), 6u);
    EXPECT_EQ(m[2].mount_point, "/sys/fs/cgroup/unified");
    EXPECT_EQ(m[2].fs_type, "cgroup2");
    EXPECT_EQ(m[4].super_options, "rw,cpu,cpuacct");
    EXPECT_EQ(parse_mountinfo("40 1 0:1 / /mnt/with\\040space rw - ext4 /dev/x rw\n")[0].mount_point, "/mnt/with space");
    // A backslash not followed by three octal digits is taken as it is (it threw before).
    EXPECT_EQ(parse_mountinfo("40 1 0:1 / /mnt/a\\89b rw - ext4 /dev/x rw\n")[0].mount_point, "/mnt/a\\89b");
    EXPECT_EQ(parse_mountinfo("40 1 0:1 / /mnt/end\\04 rw - ext4 /dev/x rw\n")[0].mount_point, "/mnt/end\\04");
}

TEST(Probe, Modes) {
    TempDir dir;
    auto probe = [&](const char* mountinfo, bool systemd) {
        std::ofstream(dir.path() / "mountinfo") << mountinfo;
        std::filesystem::remove_all(dir.path() / "run-systemd");
        if (systemd) std::filesystem::create_directory(dir.path() / "run-systemd");
        return probe_host({(dir.path() / "mountinfo").string(), (dir.path() / "run-systemd").string(), "/proc/1/comm"});
    };
    HostReport hybrid = probe(kHybrid, false);
    EXPECT_EQ(hybrid.cgroup_mode, "hybrid");
    EXPECT_EQ(hybrid.cgroup2_mount, "/sys/fs/cgroup/unified");
    EXPECT_EQ(hybrid.default_cgroup_root, "/sys/fs/cgroup/unified/resmgr");
    EXPECT_NE(std::find(hybrid.v1_controllers.begin(), hybrid.v1_controllers.end(), "memory"), hybrid.v1_controllers.end());

    HostReport v2_systemd = probe(kPureV2, true);
    EXPECT_EQ(v2_systemd.cgroup_mode, "v2");
    EXPECT_EQ(v2_systemd.auto_backend, "systemd");

    HostReport v1 = probe(kV1, false);
    EXPECT_EQ(v1.cgroup_mode, "v1");
    EXPECT_EQ(v1.auto_backend, "accounting");
    EXPECT_NE(v1.auto_reason.find("no cgroup2"), std::string::npos);

    HostReport none = probe("", false);
    EXPECT_EQ(none.cgroup_mode, "none");
    EXPECT_EQ(none.auto_backend, "accounting");
    EXPECT_TRUE(none.to_json().contains("auto_reason"));
}
