// Per-allocation temporary directories (see temp_dirs.hpp).
#include "lifecycle/temp_dirs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/quota.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "core/temp_dirs.hpp"

namespace resmgr::lifecycle {

using nlohmann::json;

namespace {

constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// quotactl_fd(2) (Linux 5.14): the quota of the filesystem `fd` is on, with no device path.
long quota_call(int fd, int cmd, std::uint32_t id, void* addr) {
#ifdef __NR_quotactl_fd
    return ::syscall(__NR_quotactl_fd, fd, QCMD(cmd, PRJQUOTA), id, addr);
#else
    (void)fd, (void)cmd, (void)id, (void)addr;
    errno = ENOSYS;
    return -1;
#endif
}

// Closes a directory stream however a walk leaves it.
struct DirStream {
    DIR* dir;
    explicit DirStream(int fd) : dir(::fdopendir(fd)) {
        if (!dir) ::close(fd);
    }
    ~DirStream() {
        if (dir) ::closedir(dir);
    }
    DirStream(const DirStream&) = delete;
    DirStream& operator=(const DirStream&) = delete;
    int fd() const { return ::dirfd(dir); }
    // The next name other than "." and "..", or nullptr.
    const char* next() {
        while (dirent* e = ::readdir(dir))
            if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) return e->d_name;
        return nullptr;
    }
};

void walk(int fd, int depth, DirUsage& usage) {
    DirStream d(fd);
    if (!d.dir) return;
    while (const char* name = d.next()) {
        if (usage.entries >= TempDirs::kMeasureEntries) {
            usage.complete = false;
            return;
        }
        ++usage.entries;
        struct stat st{};
        if (::fstatat(d.fd(), name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue; // gone meanwhile
        usage.bytes += static_cast<std::uint64_t>(st.st_blocks) * 512;
        if (!S_ISDIR(st.st_mode)) continue;
        if (depth >= TempDirs::kMaxDepth) {
            usage.complete = false;
            continue;
        }
        if (int sub = ::openat(d.fd(), name, kDirFlags); sub >= 0) walk(sub, depth + 1, usage);
    }
}

// A project id for `id`: FNV-1a of the name, in [2^24, 2^31) so it stays clear of the small ids
// an administrator hands out by hand; `attempt` probes onwards on a collision.
std::uint32_t project_for(const std::string& id, std::uint32_t attempt) {
    std::uint32_t h = 2166136261u;
    for (unsigned char c : id) h = (h ^ c) * 16777619u;
    return (1u << 24) + (h + attempt) % ((1u << 31) - (1u << 24));
}

} // namespace

json StorageEnforcement::to_json() const {
    json j{{"enforced", enforced}};
    if (enforced) j["method"] = "project_quota", j["project_id"] = project_id;
    else j["reason"] = reason;
    return j;
}

TempDirs::TempDirs(std::string root, std::uint64_t round_budget) : root_(std::move(root)), round_budget_(std::max<std::uint64_t>(round_budget, 1)) {
    if (root_.empty() || root_[0] != '/') throw TempDirError("temp root '" + root_ + "' must be an absolute path");
    while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(root_).parent_path(), ec);
    if (ec) throw TempDirError("cannot create the parent of temp root " + root_ + ": " + ec.message());
    if (::mkdir(root_.c_str(), 0711) < 0 && errno != EEXIST) throw TempDirError(errno_text("cannot create temp root " + root_));
    root_fd_ = ::open(root_.c_str(), kDirFlags);
    if (root_fd_ < 0) throw TempDirError(errno_text("cannot open temp root " + root_ + " (a symlink is refused)"));
    struct stat st{};
    if (::fstat(root_fd_, &st) < 0 || st.st_uid != ::geteuid() || ::fchmod(root_fd_, 0711) < 0) {
        ::close(root_fd_);
        throw TempDirError("temp root " + root_ + " must be a directory of resmgrd's own user (uid " + std::to_string(::geteuid()) + ")");
    }
    // Project quotas: on where the filesystem both carries project ids and accounts them.
    struct fsxattr fsx{};
    struct if_dqinfo info{};
    if (::ioctl(root_fd_, FS_IOC_FSGETXATTR, &fsx) < 0)
        quota_support_.reason = errno_text("the filesystem of " + root_ + " has no project ids (FS_IOC_FSGETXATTR)");
    else if (quota_call(root_fd_, Q_GETINFO, 0, &info) < 0)
        quota_support_.reason = errno == ESRCH || errno == ENOENT
                                    ? "project quotas are not turned on for the filesystem of " + root_ +
                                          " (ext4: mkfs/tune2fs -O project,quota and mount -o prjquota; XFS: mount -o prjquota)"
                                    : errno_text("quotactl_fd(Q_GETINFO, PRJQUOTA) on " + root_);
    else quota_support_.enforced = true;
    // The removal areas: resmgrd's own, so no user can reach a released tree through them.
    try {
        removal_fd_ = open_own_dir(kRemovalArea);
        deleting_fd_ = open_own_dir(kDeletingArea);
        spare_fd_ = open_own_dir(kSpareArea);
    } catch (const TempDirError&) {
        for (int fd : {deleting_fd_, removal_fd_, root_fd_})
            if (fd >= 0) ::close(fd);
        throw;
    }
    if (int flags = 0; ::ioctl(spare_fd_, FS_IOC_GETFLAGS, &flags) == 0) fresh_flags_ = flags;
    if (struct fsxattr fsx{}; ::ioctl(spare_fd_, FS_IOC_FSGETXATTR, &fsx) == 0) fresh_fsx_ = fsx;
    // Spares a previous run left go to be checked again (and deleted, or kept as root's own):
    // their users are not known any more, and this run's root may have other attributes.
    for (const auto& name : names_in(spare_fd_)) ::renameat2(spare_fd_, name.c_str(), deleting_fd_, name.c_str(), RENAME_NOREPLACE);
    try {
        thread_ = std::thread([this] { remover(); });
    } catch (const std::system_error& e) {
        for (int fd : {spare_fd_, deleting_fd_, removal_fd_, root_fd_}) ::close(fd);
        throw TempDirError(std::string("cannot start the remover thread: ") + e.what());
    }
}

TempDirs::~TempDirs() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
    ::close(spare_fd_);
    ::close(deleting_fd_);
    ::close(removal_fd_);
    ::close(root_fd_);
}

int TempDirs::open_own_dir(const char* name) const {
    struct stat st{};
    if (::mkdirat(root_fd_, name, 0700) < 0 && errno != EEXIST) throw TempDirError(errno_text("cannot create " + path_of(name)));
    const int fd = ::openat(root_fd_, name, kDirFlags);
    if (fd < 0 || ::fstat(fd, &st) < 0 || st.st_uid != ::geteuid() || ::fchmod(fd, 0700) < 0) {
        if (fd >= 0) ::close(fd);
        throw TempDirError(path_of(name) + " must be a directory of resmgrd's own user");
    }
    return fd;
}

std::optional<std::uint32_t> TempDirs::project_of(int fd) const {
    struct fsxattr fsx{};
    if (!quota_support_.enforced || ::ioctl(fd, FS_IOC_FSGETXATTR, &fsx) < 0 || fsx.fsx_projid == 0) return std::nullopt;
    return fsx.fsx_projid;
}

StorageEnforcement TempDirs::create(const std::string& id, std::uint32_t uid, std::uint64_t bytes) {
    if (!core::valid_temp_dir_name(id)) throw TempDirError("'" + id + "' cannot name a temporary directory");
    const bool recycled = take_spare(id, uid);
    const bool made = recycled || ::mkdirat(root_fd_, id.c_str(), 0700) == 0;
    if (!made && errno != EEXIST) throw TempDirError(errno_text("cannot create " + path_of(id)));
    const int fd = ::openat(root_fd_, id.c_str(), kDirFlags);
    if (fd < 0) throw TempDirError(errno_text("cannot open " + path_of(id) + " (a symlink is refused)"));
    struct stat st{};
    bool ok = ::fstat(fd, &st) == 0;
    // Made just now: its own user's, 0700 (a umask may have taken bits; root's own needs no chown).
    if (ok && made)
        ok = (st.st_uid == uid || ::fchown(fd, uid, static_cast<gid_t>(-1)) == 0) && ((st.st_mode & 07777) == 0700 || ::fchmod(fd, 0700) == 0) &&
             (!recycled || ::futimens(fd, nullptr) == 0); // a recycled one's times say now, as a new one's
    else if (ok) ok = st.st_uid == uid; // adopted after a restart: only its own user's
    if (!ok) {
        ::close(fd);
        throw TempDirError(path_of(id) + " exists and is not a directory of uid " + std::to_string(uid));
    }
    StorageEnforcement out;
    if (bytes == 0) out.reason = "no storage_gb asked, so no quota";
    else if (!quota_support_.enforced) out.reason = quota_support_.reason;
    else if (auto had = project_of(fd)) out.enforced = true, out.project_id = *had;
    else {
        // A project id no other directory uses (nothing charged to it, no limit set).
        for (std::uint32_t attempt = 0; attempt < 16 && !out.project_id; ++attempt) {
            if_dqblk q{};
            const std::uint32_t p = project_for(id, attempt);
            if (quota_call(fd, Q_GETQUOTA, p, &q) < 0 || (q.dqb_curspace == 0 && q.dqb_curinodes == 0 && q.dqb_bhardlimit == 0)) out.project_id = p;
        }
        struct fsxattr fsx{};
        if (!out.project_id) out.reason = "no free project id found near " + std::to_string(project_for(id, 0));
        else if (::ioctl(fd, FS_IOC_FSGETXATTR, &fsx) < 0) out.reason = errno_text("FS_IOC_FSGETXATTR");
        else {
            fsx.fsx_projid = out.project_id;
            fsx.fsx_xflags |= FS_XFLAG_PROJINHERIT; // what is made inside is charged to it too
            if_dqblk q{};
            q.dqb_bhardlimit = (bytes + 1023) / 1024; // in 1 KiB quota blocks
            q.dqb_valid = QIF_BLIMITS;
            if (::ioctl(fd, FS_IOC_FSSETXATTR, &fsx) < 0) out.reason = errno_text("FS_IOC_FSSETXATTR (project id)");
            else if (quota_call(fd, Q_SETQUOTA, out.project_id, &q) < 0) out.reason = errno_text("quotactl_fd(Q_SETQUOTA, PRJQUOTA)");
            else out.enforced = true;
        }
        if (!out.enforced) out.project_id = 0;
    }
    ::close(fd);
    return out;
}

DirUsage TempDirs::measure(const std::string& id) const {
    DirUsage usage;
    usage.method = "walk";
    if (!core::valid_temp_dir_name(id)) return usage;
    const int fd = ::openat(root_fd_, id.c_str(), kDirFlags);
    if (fd < 0) return usage;
    if (auto project = project_of(fd)) {
        if_dqblk q{};
        if (quota_call(fd, Q_GETQUOTA, *project, &q) == 0) {
            ::close(fd);
            usage.bytes = q.dqb_curspace;
            usage.method = "project_quota";
            return usage;
        }
    }
    walk(fd, 0, usage);
    return usage;
}

void TempDirs::unlink_counted(int dir_fd, const char* name, int flags, bool& all) {
    if (::unlinkat(dir_fd, name, flags) == 0) ++deleted_;
    else if (errno != ENOENT) all = false;
}

bool TempDirs::empty_tree(int fd, int top_fd, int depth, std::uint64_t& budget, std::uint64_t& flattened) {
    DirStream d(fd);
    if (!d.dir) return false;
    bool all = true;
    while (const char* name = d.next()) {
        if (budget == 0 || stopping_) return false;
        --budget;
        struct stat st{};
        if (::fstatat(d.fd(), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT) all = false;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) { // files, symlinks (the link itself), fifos, sockets
            unlink_counted(d.fd(), name, 0, all);
            continue;
        }
        if (depth + 1 >= kMaxDepth) {
            // Too deep to hold an fd per level: moved up to the top, removed by a later round.
            for (int tries = 0; tries < 8; ++tries) {
                const std::string flat = ".resmgr-flat-" + std::to_string(flat_seq_++);
                if (::renameat2(d.fd(), name, top_fd, flat.c_str(), RENAME_NOREPLACE) == 0) {
                    ++flattened;
                    break;
                }
                if (errno != EEXIST) break;
            }
            all = false;
            continue;
        }
        const int sub = ::openat(d.fd(), name, kDirFlags);
        if (sub < 0) { // swapped for a symlink or a file since the stat: unlinked as it is now
            unlink_counted(d.fd(), name, 0, all);
            continue;
        }
        if (empty_tree(sub, top_fd, depth + 1, budget, flattened)) unlink_counted(d.fd(), name, AT_REMOVEDIR, all);
        else all = false;
    }
    return all;
}

bool TempDirs::remove_entry(int parent_fd, const std::string& name, std::uint64_t& budget) {
    // Most directories are left empty: one unlinkat. With quotas on, the full path below reads the
    // project id first so its limit can be cleared.
    if (!quota_support_.enforced) {
        if (::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) == 0) {
            ++deleted_;
            return true;
        }
        if (errno == ENOENT) return true;
    }
    const int top = ::openat(parent_fd, name.c_str(), kDirFlags);
    if (top < 0) {
        if (errno == ENOENT) return true;
        return ::unlinkat(parent_fd, name.c_str(), 0) == 0; // not a directory: resmgrd never made it so
    }
    const std::optional<std::uint32_t> project = project_of(top);
    // Rounds: flattening moves deep parts to the top, which the next round removes.
    bool emptied = false;
    while (!emptied && budget > 0) {
        std::uint64_t flattened = 0;
        const int fd = ::dup(top);
        if (fd < 0) break;
        ::lseek(fd, 0, SEEK_SET);
        emptied = empty_tree(fd, top, 0, budget, flattened);
        if (!emptied && flattened == 0 && budget > 0) break; // something could not be removed
    }
    ::close(top);
    if (!emptied || ::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) < 0) return false;
    ++deleted_;
    if (project) clear_quota(*project);
    return true;
}

void TempDirs::clear_quota(std::uint32_t project_id) const {
    if_dqblk q{};
    q.dqb_valid = QIF_BLIMITS;
    quota_call(root_fd_, Q_SETQUOTA, project_id, &q);
}

bool TempDirs::take_spare(const std::string& id, std::uint32_t uid) {
    std::string spare;
    {
        std::lock_guard lock(mutex_);
        const auto pool = spares_.find(uid);
        if (pool == spares_.end() || pool->second.empty()) return false;
        spare = std::move(pool->second.back());
        pool->second.pop_back();
        --spare_count_;
    }
    if (::renameat2(spare_fd_, spare.c_str(), root_fd_, id.c_str(), RENAME_NOREPLACE) == 0) {
        ++recycled_;
        return true;
    }
    if (errno == EEXIST) { // `id` is there already (adopted after a restart): the spare stays one
        std::lock_guard lock(mutex_);
        spares_[uid].push_back(std::move(spare));
        ++spare_count_;
    }
    errno = 0;
    return false;
}

size_t TempDirs::spares() const {
    std::lock_guard lock(mutex_);
    return spare_count_;
}

bool TempDirs::reusable(int fd, const struct stat& st) const {
    if (st.st_size > kMaxSpareSize) return false;
    int flags = 0;
    const bool has_flags = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
    if (has_flags != fresh_flags_.has_value() || (has_flags && flags != *fresh_flags_)) return false; // e.g. nodump, an encryption policy
    struct fsxattr fsx{};
    const bool has_fsx = ::ioctl(fd, FS_IOC_FSGETXATTR, &fsx) == 0;
    if (has_fsx != fresh_fsx_.has_value() ||
        (has_fsx && (fsx.fsx_xflags != fresh_fsx_->fsx_xflags || fsx.fsx_projid != fresh_fsx_->fsx_projid ||
                     fsx.fsx_extsize != fresh_fsx_->fsx_extsize || fsx.fsx_cowextsize != fresh_fsx_->fsx_cowextsize)))
        return false; // a project id or an extent size hint its user set
    const ssize_t xattrs = ::flistxattr(fd, nullptr, 0);
    return xattrs == 0 || (xattrs < 0 && errno == ENOTSUP); // else an ACL, a user.* attribute, a security label
}

bool TempDirs::recycle(const std::string& name) {
    {
        std::lock_guard lock(mutex_);
        if (spare_count_ >= kMaxSpares) return false;
    }
    DirStream d(::openat(deleting_fd_, name.c_str(), kDirFlags));
    struct stat st{}, now{};
    if (!d.dir || ::fstat(d.fd(), &st) < 0) return false;
    // Taken back first: from here on only root can add to it (a create checks the directory's
    // owner under the directory's lock, which the chown takes too, so none slips past it).
    // Emptiness last: once taken back, nothing can be added to it.
    if (::fchown(d.fd(), ::geteuid(), ::getegid()) < 0 || ::fchmod(d.fd(), 0700) < 0 || ::fstat(d.fd(), &now) < 0 ||
        !reusable(d.fd(), now) || d.next() != nullptr)
        return false;
    const std::uint32_t uid = st.st_uid;
    for (int tries = 0; tries < 8; ++tries) {
        std::string spare = std::to_string(uid) + "-" + std::to_string(spare_seq_++);
        if (::renameat2(deleting_fd_, name.c_str(), spare_fd_, spare.c_str(), RENAME_NOREPLACE) == 0) {
            std::lock_guard lock(mutex_);
            spares_[uid].push_back(std::move(spare));
            ++spare_count_;
            return true;
        }
        if (errno != EEXIST) return false;
    }
    return false;
}

bool TempDirs::move_to_removal_area(const std::string& id) {
    if (!core::valid_temp_dir_name(id)) return true; // never made here, never removed here
    if (::renameat2(root_fd_, id.c_str(), removal_fd_, id.c_str(), RENAME_NOREPLACE) < 0) {
        if (errno == ENOENT) return true;
        // EXDEV: a root whose project id is inherited (set by hand: resmgrd never does) makes
        // ext4 and XFS refuse moves between project ids. Deleted in place, as a round would.
        // Anything else (EEXIST: the area's entry of that name goes first; EROFS, EIO) waits.
        if (errno != EXDEV) return false;
        std::uint64_t budget = round_budget_;
        return remove_entry(root_fd_, id, budget);
    }
    bool wake;
    {
        std::lock_guard lock(mutex_);
        wake = !work_; // else the remover has yet to look: it will see this one too
        work_ = true;
    }
    if (wake) wake_.notify_one();
    return true;
}

void TempDirs::release(const std::string& id) {
    if (move_to_removal_area(id)) pending_.erase(id);
    else pending_.insert(id);
}

size_t TempDirs::sweep() {
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (move_to_removal_area(*it)) it = pending_.erase(it);
        else ++it;
    }
    return pending_.size();
}

void TempDirs::remover() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return stopping_ || work_; });
        busy_ = true;
        wake_.wait_for(lock, kGather, [this] { return stopping_.load(); });
        bool more = true;
        while (more && !stopping_) {
            work_ = false;
            busy_ = true;
            lock.unlock();
            more = removal_pass();
            lock.lock();
            // Between passes that leave work, a pause that a release or a stop cuts short: a user
            // who keeps filling a released tree (through a descriptor still open) cannot keep a
            // core busy, and what cannot be deleted waits for the next release.
            if (more) wake_.wait_for(lock, kPassPause, [this] { return stopping_ || work_; });
        }
        busy_ = false;
        idle_.notify_all();
        if (stopping_) return;
    }
}

bool TempDirs::removal_pass() {
    // Out of the area the loop renames into, so that the loop's renames never wait for an rmdir
    // here (it holds its parent directory's lock while the device discards).
    size_t unmoved = 0;
    for (const auto& name : names_in(removal_fd_))
        unmoved += ::renameat2(removal_fd_, name.c_str(), deleting_fd_, name.c_str(), RENAME_NOREPLACE) < 0;
    const std::vector<std::string> names = names_in(deleting_fd_);
    const std::uint64_t deleted_before = deleted_;
    size_t gone = 0;
    for (const auto& name : names) {
        if (stopping_) return false;
        if (recycle(name)) {
            ++gone;
            continue;
        }
        std::uint64_t budget = round_budget_;
        gone += remove_entry(deleting_fd_, name, budget);
        ++rounds_;
    }
    backlog_ = names.size() - gone + unmoved;
    return backlog_ > 0 && deleted_ > deleted_before;
}

bool TempDirs::wait_removed(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return idle_.wait_for(lock, timeout, [this] { return !work_ && !busy_; });
}

std::vector<std::string> TempDirs::names_in(int dir_fd) {
    std::vector<std::string> names;
    const int fd = ::openat(dir_fd, ".", kDirFlags);
    if (fd < 0) return names;
    DirStream d(fd);
    if (!d.dir) return names;
    while (const char* name = d.next()) names.emplace_back(name);
    return names;
}

std::vector<std::string> TempDirs::list() const {
    std::vector<std::string> names = names_in(root_fd_);
    std::erase_if(names, [](const std::string& name) { return name == kRemovalArea || name == kDeletingArea || name == kSpareArea; });
    return names;
}

std::optional<std::uint64_t> TempDirs::free_bytes() const {
    struct statvfs vfs{};
    if (::fstatvfs(root_fd_, &vfs) < 0) return std::nullopt;
    return static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

} // namespace resmgr::lifecycle
