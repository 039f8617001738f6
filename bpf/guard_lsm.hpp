// The BPF LSM file guard (guard_lsm.bpf.c): where the kernel runs BPF LSM programs ("bpf" in
// /sys/kernel/security/lsm), held files are protected before the fact: write opens refused
// (file_locking), renames away or over, unlinks and truncates refused, for every process outside
// the holder's cgroup subtree. GuardLsm::load() never throws; it says why it cannot run.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace resmgr::bpf {

// What the hold refuses (the program's GUARD_LSM_DENY_* flags).
struct LsmHoldFlags {
    bool deny_write_open = false; // file_locking: the LSM refuses, fanotify never asks
    bool deny_read_open = false;  // strict
    bool deny_changes = false;    // rename, unlink, truncate
};

struct LsmDenial {
    std::uint64_t st_dev = 0; // as stat(2) reports it
    std::uint64_t ino = 0;
    std::uint64_t cgroup_id = 0;
    pid_t tgid = 0;
    pid_t tid = 0;
    std::string op; // open_write, open_read, rename, unlink, truncate
    std::string comm;
};

class GuardLsm {
public:
    struct LoadResult {
        std::unique_ptr<GuardLsm> lsm; // null when it cannot run here
        std::string error;
    };
    // Loads and attaches the programs; `daemon_tgid` is always let through.
    static LoadResult load(pid_t daemon_tgid);
    ~GuardLsm();
    GuardLsm(const GuardLsm&) = delete;
    GuardLsm& operator=(const GuardLsm&) = delete;

    // The inode (st_dev and st_ino as stat(2) gives them) is held by the cgroup with this id at
    // this depth ("/a/b" is 2). False (and `error`) when the map is full or refuses.
    bool hold(std::uint64_t st_dev, std::uint64_t ino, std::uint64_t owner_cgroup_id, unsigned owner_level, LsmHoldFlags flags,
              std::string* error);
    void release(std::uint64_t st_dev, std::uint64_t ino);
    int ring_fd() const;
    std::vector<LsmDenial> consume(); // what was refused since the last call

    struct State;

private:
    explicit GuardLsm(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

} // namespace resmgr::bpf
