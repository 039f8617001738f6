#include "bpf/cgroup_migrations.hpp"

#if RESMGR_HAVE_BPF

#include <bpf/libbpf.h>

#include <cerrno>

#include "bpf/libbpf_log.hpp"
#include "cgroup_migrations.skel.h"

namespace resmgr::bpf {

struct CgroupMigrations::State {
    resmgr_cgroup_migrations* skeleton = nullptr;
    ~State() { resmgr_cgroup_migrations__destroy(skeleton); }
};

CgroupMigrations::CgroupMigrations(std::unique_ptr<State> state) : state_(std::move(state)) {}
CgroupMigrations::~CgroupMigrations() = default;

CgroupMigrations::LoadResult CgroupMigrations::load() {
    LibbpfLogCapture capture;
    auto state = std::make_unique<State>();
    state->skeleton = resmgr_cgroup_migrations__open_and_load();
    if (!state->skeleton) return {nullptr, "loading the cgroup migration counter failed: " + describe_errno(errno) + capture.excerpt()};
    // Without a mapped .bss (kernels before 5.5) every read would be a system call: not worth it.
    if (!state->skeleton->bss) return {nullptr, "the kernel cannot map BPF global data into memory"};
    if (int err = resmgr_cgroup_migrations__attach(state->skeleton))
        return {nullptr, "attaching the cgroup migration counter failed: " + describe_errno(err) + capture.excerpt()};
    return {std::unique_ptr<CgroupMigrations>(new CgroupMigrations(std::move(state))), {}};
}

std::uint64_t CgroupMigrations::count() const { return __atomic_load_n(&state_->skeleton->bss->migrations, __ATOMIC_ACQUIRE); }

} // namespace resmgr::bpf

#else // built without BPF

namespace resmgr::bpf {

struct CgroupMigrations::State {};
CgroupMigrations::CgroupMigrations(std::unique_ptr<State> state) : state_(std::move(state)) {}
CgroupMigrations::~CgroupMigrations() = default;
CgroupMigrations::LoadResult CgroupMigrations::load() { return {nullptr, RESMGR_NO_BPF_REASON}; }
std::uint64_t CgroupMigrations::count() const { return 0; }

} // namespace resmgr::bpf

#endif
