// Backend selection (see factory.hpp).
#include "cgroup/factory.hpp"

#include "cgroup/accounting_backend.hpp"
#include "cgroup/cgroupfs_backend.hpp"
#include "cgroup/systemd_backend.hpp"

namespace resmgr::cgroup {

std::unique_ptr<CgroupBackend> make_backend(const BackendOptions& options, const HostReport& host) {
    std::string kind = options.kind == "auto" ? host.auto_backend : options.kind;
    if (kind == "systemd") {
        if (!host.systemd) throw BackendError("systemd backend: systemd is not running as PID 1 (no /run/systemd/system)");
        if (host.cgroup_mode != "v2")
            throw BackendError("systemd backend: needs a pure cgroup v2 hierarchy, this host is " + host.cgroup_mode);
        return std::make_unique<SystemdBackend>(host.cgroup2_mount);
    }
    if (kind == "cgroupfs") {
        std::string root = options.cgroup_root.empty() ? host.default_cgroup_root : options.cgroup_root;
        if (root.empty()) throw BackendError("cgroupfs backend: no cgroup2 hierarchy is mounted (see `resmgr doctor`)");
        return std::make_unique<CgroupfsBackend>(root);
    }
    if (kind == "accounting") return std::make_unique<AccountingBackend>(options.kind == "auto" ? host.auto_reason : "chosen with --backend accounting");
    throw BackendError("unknown backend '" + options.kind + "'");
}

} // namespace resmgr::cgroup
