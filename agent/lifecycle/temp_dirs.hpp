// Per-allocation temporary directories on disk: one root (root-owned, 0711) holding one directory
// per allocation (its id; owned by the requesting uid, 0700), made at allocate, measured, and
// removed at release. Every step works relative to the root's fd with O_NOFOLLOW and never by
// path, so a user who plants symlinks (or swaps a directory for one) in their own directory
// cannot make resmgrd read or remove anything outside it. Removal is bounded per call (a budget
// of entries) and flattens trees deeper than a few dozen levels by renaming their deep parts up
// to the top, so no tree shape exhausts fds or the stack; what a call leaves is finished by the
// next sweep.
// storage_gb is enforced with a project quota (project id on the directory, inherited, and a
// block hard limit through quotactl_fd) where the root's filesystem has project quotas on
// (ext4 with `-O project,quota` mounted prjquota, XFS with prjquota); elsewhere each answer says
// it is not enforced and why. Usage is the quota's own count where there is one, else a walk of
// at most kMeasureEntries entries (and then says it is incomplete).
// Used by the lifecycle (the one writer); orphans are decided by core/temp_dirs.
// May call: core, model.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace resmgr::lifecycle {

struct TempDirError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// What storage_gb got on this host.
struct StorageEnforcement {
    bool enforced = false;
    std::string reason;          // why not, when not
    std::uint32_t project_id = 0; // the project quota's id, when enforced
    nlohmann::json to_json() const;
};

struct DirUsage {
    std::uint64_t bytes = 0;   // allocated on disk (st_blocks), or the quota's count
    std::uint64_t entries = 0; // walked (0 with a quota's count)
    bool complete = true;      // false: the walk stopped at its cap; bytes is a lower bound
    std::string method;        // "project_quota" or "walk"
};

class TempDirs {
public:
    static constexpr std::uint64_t kMeasureEntries = 100000;
    static constexpr int kMaxDepth = 32; // deeper parts are moved up to the top, then removed

    // Opens the root, creating it (root:root 0711) and any missing parent (0755). Throws
    // TempDirError when it cannot, or when the root is a symlink, not a directory, or writable
    // by anyone but its owner root.
    explicit TempDirs(std::string root);
    ~TempDirs();
    TempDirs(const TempDirs&) = delete;
    TempDirs& operator=(const TempDirs&) = delete;

    const std::string& root() const { return root_; }
    std::string path_of(const std::string& id) const { return root_ + "/" + id; }
    // Whether the root's filesystem has project quotas on, and why not.
    const StorageEnforcement& quota_support() const { return quota_support_; }

    // Makes (or, after a restart, adopts) the directory of `id` for `uid`; a quota of `bytes`
    // (0: none asked). Throws TempDirError on a hostile id or when the directory cannot be made;
    // an existing entry that is not a plain directory of `uid` is refused, never adopted.
    StorageEnforcement create(const std::string& id, std::uint32_t uid, std::uint64_t bytes);
    DirUsage measure(const std::string& id) const;
    // Removes a part of `id`'s tree: at most `budget` entries (decremented). True when the
    // directory is gone (or was never there); false leaves it pending for sweep().
    bool remove(const std::string& id, std::uint64_t& budget);
    // remove() of `id` now, with kRemoveBudget; what is left is queued for sweep().
    void release(const std::string& id);
    // Queues `id` for sweep() without removing anything now.
    void pending_removal(const std::string& id) { pending_.insert(id); }
    // Carries on with the queued removals within `budget` entries; returns how many are left.
    size_t sweep(std::uint64_t budget);
    const std::set<std::string>& pending() const { return pending_; }
    // The entries of the root (names only).
    std::vector<std::string> list() const;
    // Free bytes of the root's filesystem for unprivileged users (statvfs f_bavail).
    std::optional<std::uint64_t> free_bytes() const;

    static constexpr std::uint64_t kRemoveBudget = 20000;

private:
    // Removes the contents of the directory open at `fd` (which it closes), `depth` levels below
    // the top, within budget; directories at kMaxDepth are renamed up to `top_fd` (flattened).
    bool empty_tree(int fd, int top_fd, int depth, std::uint64_t& budget, std::uint64_t& flattened);
    void clear_quota(std::uint32_t project_id) const;
    std::optional<std::uint32_t> project_of(int fd) const;

    std::string root_;
    int root_fd_ = -1;
    StorageEnforcement quota_support_;
    std::set<std::string> pending_;
    std::uint64_t flat_seq_ = 0; // names of flattened parts: .resmgr-flat-N
};

} // namespace resmgr::lifecycle
