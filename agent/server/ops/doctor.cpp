#include "server/ops/doctor.hpp"

#include <algorithm>

namespace resmgr::server {
namespace {

using nlohmann::json;

std::vector<std::string> strings(const json& j) {
    std::vector<std::string> out;
    if (j.is_array())
        for (const auto& v : j)
            if (v.is_string()) out.push_back(v.get<std::string>());
    return out;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
    return out;
}

std::string text(const json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// What each controller lets resmgr enforce.
const char* limit_of(const std::string& controller) {
    if (controller == "cpu") return "CPU limits (cpu.max, cpu.weight)";
    if (controller == "memory") return "memory limits (memory.max, memory.high)";
    if (controller == "pids") return "task limits (pids.max)";
    return "IO accounting (io.stat)";
}

void controllers(const DoctorFacts& f, DoctorVerdict& v) {
    const std::vector<std::string> all{"cpu", "memory", "pids", "io"};
    const std::string mount = text(f.host, "cgroup2_mount");
    const std::string mode = text(f.host, "cgroup_mode");
    std::vector<std::string> missing = f.backend_details.is_object() ? strings(f.backend_details.value("controllers_missing", json::array())) : std::vector<std::string>{};
    if (f.backend == "systemd") missing.clear();
    if (f.backend == "accounting" || !f.enforces_limits) missing = all;
    for (const auto& c : all)
        if (!contains(missing, c)) v.enforced.push_back(limit_of(c));
    if (missing.empty()) return;

    const json host = f.host.is_object() ? f.host : json::object();
    const std::vector<std::string> available = strings(host.value("controllers_available", json::array()));
    const std::vector<std::string> v1 = strings(host.value("v1_controllers", json::array()));
    std::vector<std::string> held_by_v1, undelegated, absent;
    // cgroup v1 calls the io controller blkio.
    auto in_v1 = [&](const std::string& c) { return contains(v1, c) || (c == "io" && contains(v1, "blkio")); };
    for (const auto& c : missing) {
        if (in_v1(c)) held_by_v1.push_back(c);
        else if (contains(available, c)) undelegated.push_back(c);
        else absent.push_back(c);
    }
    for (const auto& c : missing) {
        std::string why = in_v1(c) ? "the " + c + " controller is held by cgroup v1 (" + mode + " layout)"
                          : contains(available, c) ? "the " + c + " controller is not enabled for resmgr's groups"
                          : mount.empty() ? std::string("no cgroup2 hierarchy is mounted")
                                          : "the kernel offers no " + c + " controller in " + mount + "/cgroup.controllers";
        v.not_enforced.push_back(std::string(limit_of(c)) + ": " + why);
    }
    if (mount.empty())
        v.recommendations.push_back("Mount cgroup v2: boot with systemd.unified_cgroup_hierarchy=1, or `mount -t cgroup2 none /sys/fs/cgroup` "
                                    "on a host without systemd; then restart resmgrd");
    if (!held_by_v1.empty())
        v.recommendations.push_back("Move " + join(held_by_v1) + " to cgroup v2: add systemd.unified_cgroup_hierarchy=1 to "
                                    "GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub and reboot");
    if (!undelegated.empty()) {
        std::string plus;
        for (const auto& c : undelegated) plus += (plus.empty() ? "+" : " +") + c;
        v.recommendations.push_back(host.value("systemd", false)
                                        ? "Delegate " + join(undelegated) + " to resmgrd: its scope resmgr-allocations.scope is started "
                                              "with Delegate=yes, which hands systemd's controllers to it (systemd.resource-control(5)); "
                                              "a controller the kernel has but systemd does not delegate cannot be had"
                                        : "Enable " + join(undelegated) + " for resmgr's groups: `echo '" + plus + "' > " + mount +
                                              "/cgroup.subtree_control` (and in every group above resmgr's root)");
    }
    if (!absent.empty() && !mount.empty()) {
        std::vector<std::string> configs;
        for (const auto& c : absent)
            configs.push_back(c == "cpu" ? "CONFIG_CGROUP_SCHED" : c == "memory" ? "CONFIG_MEMCG" : c == "pids" ? "CONFIG_CGROUP_PIDS" : "CONFIG_BLK_CGROUP");
        v.recommendations.push_back("This kernel has no " + join(absent) + " controller: use a kernel built with " + join(configs));
    }
}

void files(const DoctorFacts& f, DoctorVerdict& v) {
    if (!f.guard_available) {
        v.not_enforced.push_back("exclusive files on open: " + f.guard_reason + " (they are still exclusive at admission)");
        v.recommendations.push_back("Run resmgrd as root, without --no-file-guard, on a kernel with fanotify permission events "
                                    "(CONFIG_FANOTIFY_ACCESS_PERMISSIONS=y)");
        return;
    }
    v.enforced.push_back("exclusive files on open (fanotify)");
    // Held opens wait for resmgrd's answer: stopped (SIGSTOP, a debugger), it answers nothing.
    if (f.watchdog_usec == 0)
        v.recommendations.push_back("Run resmgrd as resmgrd.service: while resmgrd is stopped (SIGSTOP, a debugger) processes opening held "
                                    "files wait; under the service's WatchdogSec a stopped resmgrd is restarted and the kernel lets "
                                    "those opens through");
    else
        v.enforced.push_back("a stopped resmgrd is restarted by systemd's watchdog within " + std::to_string(f.watchdog_usec / 1000000) +
                             " s, and the kernel then lets held opens through");
    if (f.bpf_lsm.rfind("enforcing", 0) == 0) {
        v.enforced.push_back("renames, unlinks and truncates of exclusive files (BPF LSM)");
        return;
    }
    v.not_enforced.push_back("refusing renames, unlinks and truncates of exclusive files (they are seen after the fact and the new "
                             "file is held again): BPF LSM " + f.bpf_lsm);
    if (f.lsm_list.empty())
        v.recommendations.push_back("Mount securityfs (`mount -t securityfs securityfs /sys/kernel/security`) so the active LSMs can "
                                    "be read, then boot with bpf in the lsm= list (kernel CONFIG_BPF_LSM=y)");
    else if (f.lsm_list.find("bpf") == std::string::npos)
        v.recommendations.push_back("Boot with lsm=" + f.lsm_list + ",bpf (add it to GRUB_CMDLINE_LINUX, run update-grub, reboot; "
                                    "the kernel needs CONFIG_BPF_LSM=y)");
}

} // namespace

DoctorVerdict doctor_verdict(const DoctorFacts& f) {
    DoctorVerdict v;
    // Which way allocations become groups, and why that one (the backend's describe() says).
    const std::string why = f.backend_details.is_object() ? text(f.backend_details, "why") : std::string();
    if (f.backend != "accounting") v.enforced.push_back("process groups, freeze and kill (" + f.backend + " backend" + (why.empty() ? "" : ": " + why) + ")");
    if (f.backend == "systemd" && why.find("delegated scope could not be had") != std::string::npos)
        v.recommendations.push_back("Each allocation costs a transient slice and scope (systemd jobs) because " + why.substr(0, why.find("):") + 1) +
                                    "; once that is fixed, `systemctl restart resmgrd` switches to the delegated scope");
    if (f.backend == "accounting") v.not_enforced.push_back("process groups: " + text(f.host, "auto_reason"));
    controllers(f, v);
    files(f, v);
    if (f.ebpf.rfind("loaded", 0) != 0 && !f.ebpf.empty()) {
        v.not_enforced.push_back("kernel probes (exec counts, tool classes, run-queue latency): " + f.ebpf);
        v.recommendations.push_back("The probes need root and a kernel with BTF (/sys/kernel/btf/vmlinux)");
    }
    if (f.pressure_signals.rfind("trigger", 0) == 0) {
        v.enforced.push_back("sub-second memory pressure signals (PSI " + f.pressure_signals + ")");
    } else if (f.pressure_signals.rfind("polling", 0) == 0) {
        v.not_enforced.push_back("sub-second memory pressure signals: " + f.pressure_signals);
        v.recommendations.push_back("PSI triggers need a kernel that takes them (Linux 5.2 or later with CONFIG_PSI=y, not booted with "
                                    "psi=0); meanwhile the pressure responder acts on avg10 once per sampling pass "
                                    "(monitoring_intervals.resource_check)");
    }
    v.verdict = "This host enforces " + (v.enforced.empty() ? std::string("nothing") : join(v.enforced)) +
                (v.not_enforced.empty() ? "; nothing is missing"
                                        : "; " + std::to_string(v.not_enforced.size()) + " missing (see not_enforced and recommendations)");
    return v;
}

} // namespace resmgr::server
