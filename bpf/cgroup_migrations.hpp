// A count of task migrations between cgroups, kept by an eBPF program (cgroup_migrations.bpf.c)
// and read from mapped memory. The file guard trusts a cgroup it read for a thread while the
// count has not moved since. load() never throws; it says why it cannot run.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace resmgr::bpf {

class CgroupMigrations {
public:
    struct LoadResult {
        std::unique_ptr<CgroupMigrations> counter; // null when it cannot run here
        std::string error;
    };
    static LoadResult load();
    ~CgroupMigrations();
    CgroupMigrations(const CgroupMigrations&) = delete;
    CgroupMigrations& operator=(const CgroupMigrations&) = delete;

    // Tasks moved between cgroups since load(), as far as the kernel has finished moving them.
    std::uint64_t count() const;

    struct State;

private:
    explicit CgroupMigrations(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

} // namespace resmgr::bpf
