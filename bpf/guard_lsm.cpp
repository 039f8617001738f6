#include "bpf/guard_lsm.hpp"

#if RESMGR_HAVE_BPF

#include <sys/sysmacros.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "bpf/guard_lsm.h"
#include "bpf/libbpf_log.hpp"
#include "guard_lsm.skel.h"

namespace resmgr::bpf {
namespace {

// stat(2)'s st_dev is the userspace encoding; the kernel's sb->s_dev is MKDEV (major << 20 | minor).
std::uint64_t kernel_dev(std::uint64_t st_dev) { return (static_cast<std::uint64_t>(major(st_dev)) << 20) | minor(st_dev); }
std::uint64_t user_dev(std::uint64_t kdev) { return makedev(static_cast<unsigned>(kdev >> 20), static_cast<unsigned>(kdev & 0xfffff)); }

const char* op_name(std::uint32_t op) {
    switch (op) {
    case GUARD_LSM_OPEN_WRITE: return "open_write";
    case GUARD_LSM_OPEN_READ: return "open_read";
    case GUARD_LSM_RENAME: return "rename";
    case GUARD_LSM_UNLINK: return "unlink";
    case GUARD_LSM_TRUNCATE: return "truncate";
    default: return "unknown";
    }
}

// Why BPF LSM programs cannot run here, or empty.
std::string lsm_unavailable() {
    std::ifstream in("/sys/kernel/security/lsm");
    std::string list;
    if (!in || !std::getline(in, list)) return "cannot read /sys/kernel/security/lsm (securityfs not mounted?)";
    std::stringstream words(list);
    for (std::string lsm; std::getline(words, lsm, ',');)
        if (lsm == "bpf") return {};
    return "the kernel does not run BPF LSM programs (active LSMs: " + list + "; boot with lsm=...,bpf)";
}

} // namespace

struct GuardLsm::State {
    resmgr_guard_lsm* skeleton = nullptr;
    ring_buffer* ring = nullptr;
    std::vector<LsmDenial>* sink = nullptr; // set for the duration of consume()

    ~State() {
        ring_buffer__free(ring);
        resmgr_guard_lsm__destroy(skeleton);
    }
    static int on_sample(void* ctx, void* data, std::size_t size) {
        auto* self = static_cast<State*>(ctx);
        guard_lsm_denial raw{};
        std::memcpy(&raw, data, std::min(size, sizeof raw));
        if (self->sink)
            self->sink->push_back({user_dev(raw.dev), raw.ino, raw.cgroup_id, static_cast<pid_t>(raw.tgid), static_cast<pid_t>(raw.tid),
                                   op_name(raw.op), std::string(raw.comm, ::strnlen(raw.comm, sizeof raw.comm))});
        return 0;
    }
};

GuardLsm::GuardLsm(std::unique_ptr<State> state) : state_(std::move(state)) {}
GuardLsm::~GuardLsm() = default;

GuardLsm::LoadResult GuardLsm::load(pid_t daemon_tgid) {
    if (auto why = lsm_unavailable(); !why.empty()) return {nullptr, why};
    LibbpfLogCapture capture;
    auto state = std::make_unique<State>();
    state->skeleton = resmgr_guard_lsm__open_and_load();
    if (!state->skeleton) return {nullptr, "loading the BPF LSM programs failed: " + describe_errno(errno) + capture.excerpt()};
    state->skeleton->bss->daemon_tgid = static_cast<__u32>(daemon_tgid);
    if (int err = resmgr_guard_lsm__attach(state->skeleton))
        return {nullptr, "attaching the BPF LSM programs failed: " + describe_errno(err) + capture.excerpt()};
    state->ring = ring_buffer__new(bpf_map__fd(state->skeleton->maps.denials), &State::on_sample, state.get(), nullptr);
    if (!state->ring) return {nullptr, "opening the BPF LSM ring buffer failed: " + describe_errno(errno)};
    spdlog::info("bpf: LSM file guard attached (file_open, inode_rename, inode_unlink, path_truncate)");
    return {std::unique_ptr<GuardLsm>(new GuardLsm(std::move(state))), {}};
}

bool GuardLsm::hold(std::uint64_t st_dev, std::uint64_t ino, std::uint64_t owner_cgroup_id, unsigned owner_level, LsmHoldFlags flags,
                    std::string* error) {
    guard_lsm_key key{kernel_dev(st_dev), ino};
    guard_lsm_hold value{owner_cgroup_id, owner_level,
                         (flags.deny_write_open ? GUARD_LSM_DENY_OPEN_WRITE : 0u) | (flags.deny_read_open ? GUARD_LSM_DENY_OPEN_READ : 0u) |
                             (flags.deny_changes ? GUARD_LSM_DENY_CHANGES : 0u)};
    if (int err = bpf_map__update_elem(state_->skeleton->maps.held, &key, sizeof key, &value, sizeof value, BPF_ANY)) {
        if (error) *error = "BPF LSM map: " + describe_errno(err);
        return false;
    }
    return true;
}

void GuardLsm::release(std::uint64_t st_dev, std::uint64_t ino) {
    guard_lsm_key key{kernel_dev(st_dev), ino};
    bpf_map__delete_elem(state_->skeleton->maps.held, &key, sizeof key, 0);
}

int GuardLsm::ring_fd() const { return ring_buffer__epoll_fd(state_->ring); }

std::vector<LsmDenial> GuardLsm::consume() {
    std::vector<LsmDenial> out;
    state_->sink = &out;
    ring_buffer__consume(state_->ring);
    state_->sink = nullptr;
    return out;
}

} // namespace resmgr::bpf

#else // built without BPF

namespace resmgr::bpf {

struct GuardLsm::State {};
GuardLsm::GuardLsm(std::unique_ptr<State> state) : state_(std::move(state)) {}
GuardLsm::~GuardLsm() = default;
GuardLsm::LoadResult GuardLsm::load(pid_t) { return {nullptr, RESMGR_NO_BPF_REASON}; }
bool GuardLsm::hold(std::uint64_t, std::uint64_t, std::uint64_t, unsigned, LsmHoldFlags, std::string*) { return false; }
void GuardLsm::release(std::uint64_t, std::uint64_t) {}
int GuardLsm::ring_fd() const { return -1; }
std::vector<LsmDenial> GuardLsm::consume() { return {}; }

} // namespace resmgr::bpf

#endif
