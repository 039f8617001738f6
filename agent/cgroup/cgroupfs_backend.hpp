// cgroup v2 through files under a root directory we own (a delegated subtree, or a directory
// under a hybrid host's cgroup2 mount). Nothing above the root is ever written.
#pragma once

#include <functional>
#include <set>

#include "cgroup/backend.hpp"

namespace resmgr::cgroup {

// Enables cpu, memory, pids and io in `dir`/cgroup.subtree_control, one at a time (a controller
// the kernel refuses must not block the others), as far as `dir`/cgroup.controllers offers them.
// Returns the controllers enabled; the others are added to `missing`.
std::set<std::string> enable_controllers(const std::string& dir, std::set<std::string>& missing);

// Moves `pid` into the cgroup `dir`, creating it when missing. Throws BackendError.
void move_process(const std::string& dir, pid_t pid);

class CgroupfsBackend : public CgroupBackend {
public:
    // Removes one group directory. Real cgroupfs: rmdir. Test fixtures on a plain temp dir
    // (which holds regular files where the kernel has control files) pass a recursive remove.
    using RemoveDir = std::function<int(const std::string& path)>;

    explicit CgroupfsBackend(std::string root, RemoveDir remove_dir = nullptr);

    std::string name() const override { return "cgroupfs"; }
    bool enforces_limits() const override { return !enabled_.empty(); }
    Enforcement create(const std::string& id, const Limits& limits) override;
    Enforcement update(const std::string& id, const Limits& limits) override;
    void attach(const std::string& id, const std::string& leaf, pid_t pid) override;
    void freeze(const std::string& id, bool frozen) override;
    void signal(const std::string& id, int signal) override;
    void destroy(const std::string& id) override;
    std::vector<std::string> list_groups() override;
    std::string group_path(const std::string& id) override;
    std::vector<pid_t> pids(const std::string& id) override;
    nlohmann::json describe() override;

    const std::set<std::string>& enabled_controllers() const { return enabled_; }

protected:
    std::string make_spawn_leaf(const std::string& id, const std::string& leaf) override;

private:
    // Writes each limit file. In a group this call has just created (`fresh`), a value equal to
    // the kernel's default for a new group is in force already and is not written (fewer system
    // calls on every allocation; still reported as applied).
    Enforcement apply(const std::string& dir, const Limits& limits, bool fresh);
    std::vector<std::string> group_dirs(const std::string& id); // leaves first, then the group

    std::string root_;
    RemoveDir remove_dir_;
    std::set<std::string> enabled_, missing_;
};

} // namespace resmgr::cgroup
