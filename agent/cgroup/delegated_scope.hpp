// The fast path under systemd: one transient scope that resmgrd owns, started with Delegate=yes,
// and every allocation a cgroup under it written directly (the cgroupfs backend), as container
// managers do. No systemd job per allocation: allocate, attach and release are a few cgroupfs
// writes. Layout (systemd-cgls shows it under resmgr.slice):
//   <mount>/resmgr.slice/resmgr-allocations.scope/keeper               the scope's keeper process
//   <mount>/resmgr.slice/resmgr-allocations.scope/groups/<id>/<leaf>   allocations
//
// Why a scope of its own and not Delegate=yes on resmgrd.service: systemd 252 (Debian 12) starts
// a service's main process in the unit's own cgroup, and a cgroup whose subtree_control has
// controllers enabled (the allocations below it need them) takes no process (cgroup v2's
// no-internal-process rule): after `systemctl restart resmgrd` with workflows still running the
// new resmgrd fails with status 219/CGROUP (EBUSY; seen in the system-test VM). systemd 254's
// DelegateSubgroup= solves that inside the service; until then the allocations live in a scope,
// which outlives resmgrd (stop and restart leave running workflows alone) and is re-adopted.
// A scope ends when it holds no process, which would take the idle allocations' groups (and their
// limits) with it: a keeper process (a forked resmgrd that only waits for a signal) holds it.
//
// Owns: the scope, its keeper, and the layout above. May call: cgroup/cgroupfs_backend,
// cgroup/systemd_backend (to start the scope, and to stop a slice whose workflow it took over).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "cgroup/cgroupfs_backend.hpp"

namespace resmgr::cgroup {

inline constexpr const char* kDelegatedScope = "resmgr-allocations.scope";

// The scope's cgroup directory under `cgroup2_mount`.
std::string delegated_scope_dir(const std::string& cgroup2_mount);

// Lays out a delegated scope's directory (real or a fake tree): moves `keeper` (0: the keeper is
// there already) into <scope>/keeper, enables the controllers in the scope's subtree_control, and
// returns the groups' root, <scope>/groups. Throws BackendError.
std::string prepare_delegated_scope(const std::string& scope_dir, pid_t keeper);

// True when <scope>/keeper holds a process.
bool keeper_alive(const std::string& scope_dir);

class DelegatedScopeBackend : public CgroupfsBackend {
public:
    // `scope_dir` laid out by prepare_delegated_scope; `how` says how it was had (started, adopted).
    DelegatedScopeBackend(const std::string& scope_dir, std::string how, RemoveDir remove_dir = nullptr);

    std::string name() const override { return "systemd-delegated"; }
    nlohmann::json describe() override;
    // From the per-allocation units' slice resmgr-<id>.slice beside the scope (an upgrade from a
    // resmgrd that had no fast path, or a start that had to fall back): its scopes' processes
    // move here, then systemd stops the emptied slice.
    std::size_t take_over_elsewhere(const std::string& id) override;

private:
    std::string scope_dir_, how_;
};

// Starts (or, after a restart, adopts) the delegated scope and returns its backend. Throws
// BackendError saying why the fast path is not available (the caller falls back to
// per-allocation transient units).
std::unique_ptr<CgroupBackend> make_delegated_backend(const std::string& cgroup2_mount);

} // namespace resmgr::cgroup
