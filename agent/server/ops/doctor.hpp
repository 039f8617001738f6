// The doctor's verdict: from what the probe found and what the running daemon has (backend,
// file guard, eBPF), one line saying what this host enforces, and for each missing piece the
// concrete change that would bring it. Pure: facts in, words out; tested on JSON literals.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace resmgr::server {

struct DoctorFacts {
    nlohmann::json host;     // agent/cgroup/probe's HostReport::to_json()
    std::string backend;     // "systemd", "cgroupfs", "accounting", ...
    bool enforces_limits = false;
    nlohmann::json backend_details; // the backend's describe()
    bool guard_available = false;
    std::string guard_reason; // why not, when unavailable
    std::string bpf_lsm;      // the guard's BPF LSM status ("enforcing ...", "not loaded: ...")
    std::string ebpf;         // the monitor probes' status ("loaded ...", "not loaded: ...")
    std::string lsm_list;     // /sys/kernel/security/lsm, empty when securityfs is not mounted
    std::uint64_t watchdog_usec = 0; // systemd's WatchdogSec= for this process (0: none)
    std::string pressure_signals; // Monitoring::pressure_signals(): "trigger ...", "polling ...", or empty
};

struct DoctorVerdict {
    std::string verdict;                      // one line
    std::vector<std::string> enforced;        // what the kernel enforces here
    std::vector<std::string> not_enforced;    // what it does not, each with its reason
    std::vector<std::string> recommendations; // how to get each missing piece
};

DoctorVerdict doctor_verdict(const DoctorFacts& facts);

} // namespace resmgr::server
