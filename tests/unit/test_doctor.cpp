// The doctor's verdict on hosts written as JSON literals: this build host (hybrid), a v2 host
// that does not delegate, one without securityfs or BPF in its LSM list, and a complete one.
#include <gtest/gtest.h>

#include "server/ops/doctor.hpp"

using namespace resmgr::server;
using nlohmann::json;

namespace {

bool any_has(const std::vector<std::string>& lines, const std::string& needle) {
    for (const auto& l : lines)
        if (l.find(needle) != std::string::npos) return true;
    return false;
}

DoctorFacts complete_host() {
    DoctorFacts f;
    f.host = {{"cgroup_mode", "v2"}, {"cgroup2_mount", "/sys/fs/cgroup"}, {"controllers_available", {"cpu", "memory", "pids", "io"}},
              {"v1_controllers", json::array()}, {"systemd", true}};
    f.backend = "systemd";
    f.enforces_limits = true;
    f.backend_details = {{"backend", "systemd"}};
    f.guard_available = true;
    f.bpf_lsm = "enforcing (file_open, rename, unlink, truncate)";
    f.ebpf = "loaded";
    f.lsm_list = "lockdown,capability,landlock,yama,apparmor,bpf";
    f.watchdog_usec = 30'000'000;
    return f;
}

} // namespace

TEST(Doctor, AHybridHostIsToldToBootWithTheUnifiedHierarchy) {
    DoctorFacts f;
    f.host = {{"cgroup_mode", "hybrid"}, {"cgroup2_mount", "/sys/fs/cgroup/unified"}, {"controllers_available", json::array()},
              {"v1_controllers", {"cpu", "cpuacct", "memory", "pids", "blkio"}}, {"systemd", true}};
    f.backend = "cgroupfs";
    f.enforces_limits = true;
    f.backend_details = {{"controllers_missing", {"cpu", "io", "memory", "pids"}}};
    f.guard_available = true;
    f.bpf_lsm = "not loaded: the kernel does not run BPF LSM programs";
    f.ebpf = "loaded";
    const auto v = doctor_verdict(f);
    EXPECT_NE(v.verdict.find("process groups, freeze and kill (cgroupfs backend)"), std::string::npos) << v.verdict;
    EXPECT_NE(v.verdict.find("exclusive files on open"), std::string::npos) << v.verdict;
    EXPECT_EQ(v.verdict.find("CPU limits"), std::string::npos) << "not enforced here: " << v.verdict;
    EXPECT_TRUE(any_has(v.not_enforced, "memory limits (memory.max, memory.high): the memory controller is held by cgroup v1 (hybrid layout)"));
    EXPECT_TRUE(any_has(v.recommendations, "systemd.unified_cgroup_hierarchy=1"));
    EXPECT_TRUE(any_has(v.recommendations, "mount -t securityfs")) << "no securityfs: say how to see the LSM list";
}

TEST(Doctor, AV2HostWithoutDelegationIsToldWhatToDelegate) {
    DoctorFacts f = complete_host();
    f.host["systemd"] = false;
    f.backend = "cgroupfs";
    f.backend_details = {{"controllers_missing", {"memory", "pids"}}};
    const auto v = doctor_verdict(f);
    EXPECT_TRUE(any_has(v.enforced, "CPU limits"));
    EXPECT_TRUE(any_has(v.not_enforced, "the memory controller is not enabled for resmgr's groups"));
    EXPECT_TRUE(any_has(v.recommendations, "echo '+memory +pids' > /sys/fs/cgroup/cgroup.subtree_control"));
    f.host["systemd"] = true;
    EXPECT_TRUE(any_has(doctor_verdict(f).recommendations, "Delegate=yes"));
}

TEST(Doctor, SaysWhichSystemdPathIsInUseAndWhy) {
    DoctorFacts f = complete_host();
    f.backend = "systemd-delegated";
    f.backend_details = {{"backend", "systemd-delegated"},
                         {"controllers_missing", json::array()},
                         {"why", "allocations are cgroups of the delegated scope resmgr-allocations.scope (Delegate=yes, started by this resmgrd)"}};
    auto v = doctor_verdict(f);
    EXPECT_TRUE(any_has(v.enforced, "(systemd-delegated backend: allocations are cgroups of the delegated scope"));
    EXPECT_TRUE(any_has(v.enforced, "memory limits"));
    EXPECT_FALSE(any_has(v.recommendations, "transient slice and scope"));

    f.backend = "systemd";
    f.backend_details = {{"backend", "systemd"},
                         {"why", "the delegated scope could not be had (keeper: fork: Resource temporarily unavailable): one transient "
                                 "slice and scope per allocation, each a systemd job"}};
    v = doctor_verdict(f);
    EXPECT_TRUE(any_has(v.enforced, "(systemd backend: the delegated scope could not be had"));
    EXPECT_TRUE(any_has(v.recommendations, "because the delegated scope could not be had (keeper: fork: Resource temporarily unavailable); "
                                           "once that is fixed"));
}

TEST(Doctor, BpfLsmMissingFromTheLsmListIsNamedWithTheBootParameter) {
    DoctorFacts f = complete_host();
    f.bpf_lsm = "not loaded: no bpf in the kernel's LSM list";
    f.lsm_list = "lockdown,capability,apparmor";
    const auto v = doctor_verdict(f);
    EXPECT_TRUE(any_has(v.recommendations, "lsm=lockdown,capability,apparmor,bpf"));
    EXPECT_TRUE(any_has(v.not_enforced, "renames, unlinks and truncates"));
}

TEST(Doctor, NoGuardAndNoCgroupsAreExplained) {
    DoctorFacts f;
    f.host = {{"cgroup_mode", "none"}, {"cgroup2_mount", ""}, {"auto_reason", "no cgroup2 hierarchy is mounted"}};
    f.backend = "accounting";
    f.guard_reason = "fanotify_init: Operation not permitted";
    f.ebpf = "not loaded: permission denied";
    const auto v = doctor_verdict(f);
    EXPECT_NE(v.verdict.find("This host enforces nothing"), std::string::npos) << v.verdict;
    EXPECT_TRUE(any_has(v.not_enforced, "exclusive files on open: fanotify_init: Operation not permitted"));
    EXPECT_TRUE(any_has(v.recommendations, "mount -t cgroup2"));
    EXPECT_TRUE(any_has(v.recommendations, "CONFIG_FANOTIFY_ACCESS_PERMISSIONS"));
    EXPECT_TRUE(any_has(v.recommendations, "BTF"));
}

TEST(Doctor, ACompleteHostSaysNothingIsMissing) {
    const auto v = doctor_verdict(complete_host());
    EXPECT_TRUE(v.not_enforced.empty());
    EXPECT_TRUE(v.recommendations.empty());
    EXPECT_NE(v.verdict.find("nothing is missing"), std::string::npos) << v.verdict;
    EXPECT_TRUE(any_has(v.enforced, "memory limits"));
}

TEST(Doctor, WithoutSystemdsWatchdogAStoppedDaemonHoldsOpenersAndDoctorSaysSo) {
    DoctorFacts f = complete_host();
    EXPECT_TRUE(any_has(doctor_verdict(f).enforced, "restarted by systemd's watchdog within 30 s"));
    f.watchdog_usec = 0;
    const auto v = doctor_verdict(f);
    EXPECT_TRUE(any_has(v.recommendations, "while resmgrd is stopped (SIGSTOP, a debugger) processes opening held files wait"));
}

TEST(Doctor, SaysWhetherPressureSignalsAreTriggersOrPolling) {
    DoctorFacts f = complete_host();
    f.pressure_signals = "trigger 'some 200000 1000000' on /proc/pressure/memory";
    auto v = doctor_verdict(f);
    EXPECT_TRUE(any_has(v.enforced, "sub-second memory pressure signals (PSI trigger 'some 200000 1000000'"));
    EXPECT_TRUE(v.not_enforced.empty());
    f.pressure_signals = "polling avg10 of /proc/pressure/memory: the kernel refused the trigger 'some 200000 1000000' (EINVAL: "
                         "Invalid argument); avg10 read every 30s";
    v = doctor_verdict(f);
    EXPECT_TRUE(any_has(v.not_enforced, "sub-second memory pressure signals: polling avg10"));
    EXPECT_TRUE(any_has(v.recommendations, "PSI triggers need a kernel that takes them"));
    f.pressure_signals = "none: the pressure responder is off";
    v = doctor_verdict(f);
    EXPECT_FALSE(any_has(v.enforced, "pressure"));
    EXPECT_FALSE(any_has(v.not_enforced, "pressure"));
}
