// Host probe: what cgroup layout this host has, whether systemd runs it, and which backend
// `--backend auto` picks and why. Feeds `resmgr doctor`.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace resmgr::cgroup {

struct ProbePaths {
    std::string mountinfo = "/proc/self/mountinfo";
    std::string run_systemd = "/run/systemd/system";
    std::string pid1_comm = "/proc/1/comm";
};

struct HostReport {
    std::string cgroup_mode;          // "v2" | "hybrid" | "v1" | "none"
    std::string cgroup2_mount;        // empty when there is none
    std::vector<std::string> v1_controllers;
    std::vector<std::string> controllers; // of the cgroup2 root
    bool systemd = false;             // systemd is PID 1 and booted the system
    std::string pid1;
    std::string default_cgroup_root;  // where cgroupfs would create groups
    bool default_root_writable = false;
    std::vector<std::string> delegated; // controllers in the cgroup2 root's subtree_control
    std::string auto_backend, auto_reason;
    nlohmann::json to_json() const;
};

// Splits a mountinfo line; std::nullopt for lines that are not well formed.
struct MountEntry {
    std::string mount_point, fs_type, super_options;
};
std::vector<MountEntry> parse_mountinfo(const std::string& text);

HostReport probe_host(const ProbePaths& paths = {});

} // namespace resmgr::cgroup
