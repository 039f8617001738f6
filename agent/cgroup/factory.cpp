// Backend selection (see factory.hpp).
#include "cgroup/factory.hpp"

#include <spdlog/spdlog.h>

#include "cgroup/accounting_backend.hpp"
#include "cgroup/cgroupfs_backend.hpp"
#include "cgroup/delegated_scope.hpp"
#include "cgroup/systemd_backend.hpp"

namespace resmgr::cgroup {

std::unique_ptr<CgroupBackend> make_backend(const BackendOptions& options, const HostReport& host) {
    std::string kind = options.kind == "auto" ? host.auto_backend : options.kind;
    if (kind == "systemd" || kind == "systemd-units") {
        if (!host.systemd) throw BackendError(kind + " backend: systemd is not running as PID 1 (no /run/systemd/system)");
        if (host.cgroup_mode != "v2")
            throw BackendError(kind + " backend: needs a pure cgroup v2 hierarchy, this host is " + host.cgroup_mode);
        if (kind == "systemd-units") return std::make_unique<SystemdBackend>(host.cgroup2_mount, "chosen with --backend systemd-units");
        try {
            return make_delegated_backend(host.cgroup2_mount);
        } catch (const BackendError& e) {
            spdlog::warn("systemd fast path unavailable ({}); one transient slice and scope per allocation instead", e.what());
            return std::make_unique<SystemdBackend>(host.cgroup2_mount,
                                                    std::string("the delegated scope could not be had (") + e.what() +
                                                        "): one transient slice and scope per allocation, each a systemd job");
        }
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
