// Per-allocation temporary directories on disk: one root (root-owned, 0711) holding one directory
// per allocation (its id; owned by the requesting uid, 0700), made at allocate, measured, and
// removed at release. Every step works relative to the root's fd with O_NOFOLLOW and never by
// path, so a user who plants symlinks (or swaps a directory for one) in their own directory
// cannot make resmgrd read or remove anything outside it.
// Release moves the directory into the root's removal area (.resmgr-removing, root's alone, 0700)
// with one rename, so its path is gone when release returns whatever the tree holds, and a remover
// thread moves it on to .resmgr-deleting and deletes it there. Why a thread: deleting a tree costs
// a syscall per entry, and on a filesystem mounted with `discard` even an empty directory's rmdir
// waits for the device to discard its block (measured on the build host: ~74 % of the event loop's
// waits under 16 busy clients); on the loop that stalled every other request. The remover works in
// rounds (a budget of entries each) and flattens trees deeper than a few dozen levels by renaming
// their deep parts up to the top, so no tree shape exhausts fds or the stack; it touches nothing
// but the removal areas (the loop only renames into the first), and what a stop or crash leaves
// there is deleted at the next start.
// A released directory that its user left empty, and changed in no other way, is recycled
// rather than deleted, for the same user only: the remover first takes it back (chown to
// resmgrd, 0700, so nothing more can be added to it through a descriptor or a working directory
// still inside), then checks it is empty, small, without extended attributes (an ACL is one),
// and with the inode flags and the FS_IOC_FSGETXATTR attributes (project id, extent size hints)
// of a fresh directory; then it waits in the spare area (.resmgr-spare) under its user's uid.
// create() renames one of that uid's spares into place instead of a mkdir, then hands it over as
// a new one (owner, mode, and its times set to now). Never across users: a descriptor its former
// user kept open still lists it and an inotify watch still reports its names (the kernel checks
// permission at open, not after). Why recycle: on ext4 a mkdir allocates an inode (18.6 us of
// CPU on the build host) where a rename moves a name (8-12 us), and the rmdir that recycling
// saves is the remover's costliest step on a `discard` mount. Anything else is deleted as before;
// spares a stop leaves are checked again at the next start (their users are not kept).
// storage_gb is enforced with a project quota (project id on the directory, inherited, and a
// block hard limit through quotactl_fd) where the root's filesystem has project quotas on
// (ext4 with `-O project,quota` mounted prjquota, XFS with prjquota); elsewhere each answer says
// it is not enforced and why. Usage is the quota's own count where there is one, else a walk of
// at most kMeasureEntries entries (and then says it is incomplete).
// Used by the lifecycle (the one writer); orphans are decided by core/temp_dirs.
// May call: core, model.
#pragma once

#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
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
    static constexpr std::uint64_t kRemoveBudget = 20000; // entries the remover deletes in a round
    static constexpr const char* kRemovalArea = ".resmgr-removing"; // the loop renames into it
    static constexpr const char* kDeletingArea = ".resmgr-deleting"; // the remover deletes in it
    static constexpr const char* kSpareArea = ".resmgr-spare"; // recycled directories, for create()
    static constexpr std::size_t kMaxSpares = 64;
    // A directory whose size shows it once held many entries (ext4 never shrinks one) is deleted,
    // not handed on: every readdir of the next user would walk its empty blocks.
    static constexpr off_t kMaxSpareSize = 4096;
    static constexpr std::chrono::milliseconds kPassPause{100}; // between passes that leave work
    // The remover gathers the releases of this moment into one pass: one wakeup and one listing
    // of the areas for many directories (a wakeup per release was 1.2 % of the event loop's CPU
    // under 16 busy clients).
    static constexpr std::chrono::milliseconds kGather{10};

    // Opens the root, creating it (root:root 0711) and any missing parent (0755), and its removal
    // area; starts the remover, which first deletes what an earlier run left there. Throws
    // TempDirError when it cannot, or when the root is a symlink, not a directory, or writable
    // by anyone but its owner root. `round_budget`: entries a removal round may delete.
    explicit TempDirs(std::string root, std::uint64_t round_budget = kRemoveBudget);
    // Stops the remover between two rounds (what it leaves is deleted at the next start).
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
    // Moves `id`'s directory into the removal area (its path is gone on return) for the remover
    // to delete. A move that fails leaves it pending for sweep().
    void release(const std::string& id);
    // Queues `id` for sweep() without moving anything now.
    void pending_removal(const std::string& id) { pending_.insert(id); }
    // Tries the pending moves again; returns how many are still pending.
    size_t sweep();
    const std::set<std::string>& pending() const { return pending_; }
    // Entries of the root (names only), without the removal areas.
    std::vector<std::string> list() const;
    // Free bytes of the root's filesystem for unprivileged users (statvfs f_bavail).
    std::optional<std::uint64_t> free_bytes() const;

    // Entries left in the removal areas after the remover's last pass, and the rounds it has run.
    size_t removal_backlog() const { return backlog_; }
    // Directories waiting in the spare area, and those create() has taken from it so far.
    size_t spares() const;
    std::uint64_t recycled() const { return recycled_; }
    std::uint64_t removal_rounds() const { return rounds_; }
    // Waits until the remover has emptied the removal areas after the last release, or stopped
    // trying (what it cannot delete waits for the next release); false after `timeout`. For tests.
    bool wait_removed(std::chrono::milliseconds timeout);

private:
    // Deletes a part of the entry `name` of the directory `parent_fd`: at most `budget` entries
    // (decremented). True when it is gone (or was never there). The remover's thread, or the
    // caller's when a move into the removal area is refused.
    bool remove_entry(int parent_fd, const std::string& name, std::uint64_t& budget);
    // Removes the contents of the directory open at `fd` (which it closes), `depth` levels below
    // the top, within budget; directories at kMaxDepth are renamed up to `top_fd` (flattened).
    bool empty_tree(int fd, int top_fd, int depth, std::uint64_t& budget, std::uint64_t& flattened);
    void clear_quota(std::uint32_t project_id) const;
    std::optional<std::uint32_t> project_of(int fd) const;
    bool move_to_removal_area(const std::string& id);
    // create()'s first try: one of `uid`'s spares renamed to `id`. False when there is none, or
    // `id` exists.
    bool take_spare(const std::string& id, std::uint32_t uid);
    // The remover's: `name` of the deleting area moved to the spare area when it may be handed
    // on (see the top); false leaves it to be deleted.
    bool recycle(const std::string& name);
    bool reusable(int fd, const struct stat& st) const;
    // Makes (or opens) the root's entry `name` as a directory of resmgrd's own, 0700.
    int open_own_dir(const char* name) const;
    static std::vector<std::string> names_in(int dir_fd);
    void unlink_counted(int dir_fd, const char* name, int flags, bool& all);
    void remover();
    // One round for each entry of the removal areas; true when some are left and the pass
    // deleted something (false: done, stuck, or stopped).
    bool removal_pass();

    std::string root_;
    int root_fd_ = -1;
    int removal_fd_ = -1;
    int deleting_fd_ = -1;
    int spare_fd_ = -1;
    // FS_IOC_GETFLAGS and FS_IOC_FSGETXATTR of a directory resmgrd made in the root (the spare
    // area): what a recycled one must show. Unset where the filesystem has no such attributes.
    std::optional<int> fresh_flags_;
    std::optional<struct fsxattr> fresh_fsx_;
    std::uint64_t round_budget_;
    StorageEnforcement quota_support_;
    std::set<std::string> pending_; // the loop's: releases whose move failed
    std::atomic<std::uint64_t> flat_seq_{0}; // names of flattened parts, .resmgr-flat-N

    // Shared by the loop and the remover.
    mutable std::mutex mutex_;
    std::condition_variable wake_, idle_;
    bool work_ = true, busy_ = false; // work_: look at the removal area
    // Set under mutex_ (so no wait misses it), read without it inside a round.
    std::atomic<bool> stopping_{false};
    std::atomic<size_t> backlog_{0};
    std::atomic<std::uint64_t> rounds_{0};
    std::atomic<std::uint64_t> deleted_{0}; // entries unlinked, by whichever thread
    std::map<std::uint32_t, std::vector<std::string>> spares_; // by uid: names in the spare area, under mutex_
    size_t spare_count_ = 0;                 // under mutex_
    std::uint64_t spare_seq_ = 0;            // the remover's: the next spare's name is UID-SEQ
    std::atomic<std::uint64_t> recycled_{0};
    std::thread thread_;
};

} // namespace resmgr::lifecycle
