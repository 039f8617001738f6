// Chooses and builds the backend named by --backend (auto: the probe's choice).
#pragma once

#include <memory>
#include <string>

#include "cgroup/backend.hpp"
#include "cgroup/probe.hpp"

namespace resmgr::cgroup {

struct BackendOptions {
    std::string kind = "auto"; // auto | systemd (the delegated scope, else units) | systemd-units | cgroupfs | accounting
    std::string cgroup_root;   // cgroupfs only; empty = the probe's default root
};

// Throws BackendError with a clear message when the forced kind is impossible on this host.
std::unique_ptr<CgroupBackend> make_backend(const BackendOptions& options, const HostReport& host);

} // namespace resmgr::cgroup
