// agent/cgroup owns turning an allocation into a kernel-enforced group and back:
// one small interface (CgroupBackend) with three implementations chosen at start
// (systemd over sd-bus, direct cgroupfs, accounting-only), plus the host probe that
// picks between them and feeds `resmgr doctor`.
//
// Layout every backend follows, so the rest of the agent never cares which one runs:
//   group  = one per allocation, carries the limits (systemd: resmgr-<id>.slice under
//            resmgr.slice; cgroupfs: <root>/<id>)
//   leaf   = where processes live, a child of the group (systemd: a transient scope in the
//            slice; cgroupfs: <root>/<id>/<leaf>), so the group itself never holds processes
//            (cgroup v2's no-internal-process rule) and later agents get sibling leaves.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace resmgr::cgroup {

// Kernel-facing limits of one group. Absent = no limit ("max").
struct Limits {
    std::optional<std::uint64_t> cpu_quota_us; // per cpu_period_us; cpu.max / CPUQuotaPerSecUSec
    std::uint64_t cpu_period_us = 100000;
    std::uint64_t cpu_weight = 100;            // cpu.weight / CPUWeight, 1..10000
    std::optional<std::uint64_t> memory_max;   // bytes; memory.max / MemoryMax
    std::optional<std::uint64_t> memory_high;  // bytes; memory.high / MemoryHigh
    std::optional<std::uint64_t> pids_max;     // pids.max / TasksMax
    bool operator==(const Limits&) const = default;
};

// What a backend could and could not make real. Every limit that was asked for and not
// applied is listed with the reason, so status/doctor can say it plainly.
struct Enforcement {
    std::vector<std::string> applied;   // e.g. "cpu.max=200000 100000"
    std::vector<std::string> unenforced; // e.g. "memory.max: controller 'memory' not available ..."
    nlohmann::json to_json() const;
    auto operator<=>(const Enforcement&) const = default;
};

// One copy of each distinct Enforcement, shared by the allocations that got it: most groups of a
// node get the same few (the same limits, the same controllers missing), and a copy each was
// ~490 bytes of strings an allocation (heaptrack, 10,000 live). A copy lives while an allocation
// holds it; forgotten ones are swept as the pool is used.
class EnforcementPool {
public:
    std::shared_ptr<const Enforcement> share(Enforcement e);
    // `shared` with `reasons` added to what it did not enforce (itself when there are none).
    std::shared_ptr<const Enforcement> with_unenforced(const std::shared_ptr<const Enforcement>& shared, std::vector<std::string> reasons);
    std::size_t size() const { return pool_.size(); }

private:
    static constexpr unsigned kSweepEvery = 1024;
    std::map<Enforcement, std::weak_ptr<const Enforcement>> pool_;
    unsigned shared_since_sweep_ = 0;
};

struct BackendError : std::runtime_error {
    using std::runtime_error::runtime_error;
    // What resmgrd was doing, in the user's words ("Could not create the cgroup ..."): set by the
    // lifecycle as the error passes, read by the router, which alone turns it into BACKEND_ERROR.
    std::string action;
};

class CgroupBackend {
public:
    virtual ~CgroupBackend() = default;

    virtual std::string name() const = 0; // "systemd" | "cgroupfs" | "accounting"
    virtual bool enforces_limits() const = 0;

    // Creates the group for allocation `id` with `limits`. Idempotent: an existing group is
    // adopted and its limits rewritten. Throws BackendError when the group cannot exist at all.
    virtual Enforcement create(const std::string& id, const Limits& limits) = 0;
    // create() and then attach() of its first process, as one step: a backend that can overlap
    // the two does (systemd queues both jobs at once). When the attach fails the new group is
    // removed again and the attach's error is thrown.
    virtual Enforcement create_attached(const std::string& id, const Limits& limits, const std::string& leaf, pid_t pid);
    // create() and an empty leaf `leaf` whose caller starts its process there itself (clone3 with
    // CLONE_INTO_CGROUP: the child is born in the group, where a move through cgroup.procs costs
    // a wait for an RCU grace period). Sets `spawn_dir` to the leaf's directory, or leaves it
    // empty when this backend's leaves cannot be entered that way (a systemd scope needs its
    // process first); the caller then attaches a pid as before.
    Enforcement create_for_spawn(const std::string& id, const Limits& limits, const std::string& leaf, std::string& spawn_dir);
    // Changes the limits of a live group.
    virtual Enforcement update(const std::string& id, const Limits& limits) = 0;
    // Moves `pid` into leaf `leaf` of group `id` (created on demand).
    virtual void attach(const std::string& id, const std::string& leaf, pid_t pid) = 0;
    // Freezes (true) or thaws (false) every process of the group. The kernel may finish after the
    // call returns (a task in the middle of reclaim stops when it leaves the kernel).
    virtual void freeze(const std::string& id, bool frozen) = 0;
    // Sends `signal` to every process of the group (SIGKILL uses cgroup.kill where present).
    virtual void signal(const std::string& id, int signal) = 0;
    // Kills what is left and removes the group. Missing group is not an error.
    virtual void destroy(const std::string& id) = 0;
    // Ids of the groups this backend created that still exist (for adoption and cleanup).
    virtual std::vector<std::string> list_groups() = 0;
    // Absolute cgroupfs path of the group (e.g. /sys/fs/cgroup/resmgr.slice/resmgr-<id>.slice),
    // or empty when there is none (accounting).
    virtual std::string group_path(const std::string& id) = 0;
    // Pids currently in the group, all leaves included.
    virtual std::vector<pid_t> pids(const std::string& id) = 0;
    // What this backend reports about itself for status/doctor.
    virtual nlohmann::json describe() = 0;
    // The processes of group `id` that a previous resmgrd left in the other layout under systemd
    // (the kind changed across a restart: an upgrade from per-allocation units, or the delegated
    // scope could not be had once): moved, leaf by leaf, into this backend's group `id` (which
    // exists: create() came first), and the old group removed. Returns how many moved; 0 when
    // there was none (the default: a backend with no other layout). Throws BackendError.
    virtual std::size_t take_over_elsewhere(const std::string& id);

protected:
    // The directory of leaf `leaf` of the existing group `id`, made when missing, for
    // create_for_spawn; empty when there is none to start a process in (the default).
    virtual std::string make_spawn_leaf(const std::string& id, const std::string& leaf);
    // take_over_elsewhere's move: every process in the leaves (subdirectories) of `old_group`
    // attached to leaf `leaf_of(subdirectory name)` of group `id` here ("" = not an allocation's
    // leaf: left alone). Returns how many moved; one that exited meanwhile is not counted.
    std::size_t attach_processes_of(const std::string& id, const std::string& old_group,
                                    const std::function<std::string(const std::string&)>& leaf_of);
    // cgroup.events of `dir` says a process is in it or below (true when it cannot be read and
    // the directory is there).
    static bool populated_dir(const std::string& dir);
    // create_attached's undo: destroy(id), logging (not throwing) when even that fails; the
    // group is then an orphan, removed at the next start.
    void destroy_after_failed_attach(const std::string& id) noexcept;
};

} // namespace resmgr::cgroup
