#include "conflicts/file_access.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/magic.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace resmgr::conflicts {
namespace {

// Takes on `who`'s file credentials in the calling thread only. The raw system calls, because
// glibc's setgroups() changes every thread of the process; setfsuid/setfsgid say no error, so
// the result is read back.
bool become(const Credentials& who) {
    std::vector<gid_t> groups(who.groups.begin(), who.groups.end());
    if (::syscall(SYS_setgroups, groups.size(), groups.data()) != 0) return false;
    ::syscall(SYS_setfsgid, who.gid);
    if (static_cast<std::uint32_t>(::syscall(SYS_setfsgid, -1)) != who.gid) return false;
    ::syscall(SYS_setfsuid, who.uid); // from 0 to another uid, this also drops CAP_DAC_OVERRIDE and the like
    return static_cast<std::uint32_t>(::syscall(SYS_setfsuid, -1)) == who.uid;
}

std::optional<std::string> real_path(const std::string& path) {
    char buffer[PATH_MAX];
    if (!::realpath(path.c_str(), buffer)) return std::nullopt;
    return std::string(buffer);
}

// Everything is asked of an O_PATH fd, so what is checked is what was resolved.
void look_at_fd(int fd, PathFacts& facts, int access_mode) {
    struct stat st {};
    struct statfs fs {};
    if (::fstat(fd, &st) != 0 || ::fstatfs(fd, &fs) != 0) {
        facts.error = errno;
        return;
    }
    facts.type = st.st_mode & S_IFMT;
    facts.fs_type = static_cast<long>(fs.f_type);
    facts.writable = ::faccessat(fd, "", access_mode, AT_EACCESS | AT_EMPTY_PATH) == 0;
}

PathFacts look_at(const std::string& path) {
    PathFacts facts;
    if (auto resolved = real_path(path)) {
        facts.resolved = *resolved;
        facts.exists = true;
        int fd = ::open(resolved->c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            facts.error = errno;
            return facts;
        }
        look_at_fd(fd, facts, W_OK);
        ::close(fd);
        return facts;
    }
    if (errno != ENOENT) {
        facts.error = errno;
        return facts;
    }
    // Nothing there (yet): its directory must exist; the file is held by name until it appears.
    const auto slash = path.find_last_of('/');
    const std::string parent = slash == 0 ? "/" : path.substr(0, slash), name = path.substr(slash + 1);
    auto dir = real_path(parent);
    if (!dir) {
        facts.error = errno;
        return facts;
    }
    facts.resolved = (*dir == "/" ? "" : *dir) + "/" + name;
    struct stat st {};
    if (::lstat(facts.resolved.c_str(), &st) == 0) {
        facts.dangling_link = S_ISLNK(st.st_mode);
        if (!facts.dangling_link) facts.error = ENOENT; // it vanished between the two looks: ask again
        return facts;
    }
    if (errno != ENOENT) {
        facts.error = errno;
        return facts;
    }
    int fd = ::open(dir->c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        facts.error = errno;
        return facts;
    }
    look_at_fd(fd, facts, W_OK | X_OK);
    facts.type = 0; // the directory's; the file has none yet
    ::close(fd);
    return facts;
}

} // namespace

PathFacts probe_path(const std::string& path, const std::optional<Credentials>& as) {
    if (!as) return look_at(path);
    PathFacts facts;
    // Changing a thread's fsuid makes the whole process non-dumpable (no core dumps); undone after.
    const int dumpable = ::prctl(PR_GET_DUMPABLE);
    std::thread([&] {
        if (become(*as)) facts = look_at(path);
        else facts.error = EACCES;
    }).join();
    if (dumpable > 0 && ::prctl(PR_GET_DUMPABLE) != dumpable) ::prctl(PR_SET_DUMPABLE, dumpable);
    return facts;
}

bool kernel_filesystem(long fs_type, const std::string& path) {
    static constexpr long kKernel[] = {PROC_SUPER_MAGIC, SYSFS_MAGIC,   CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC,
                                       DEBUGFS_MAGIC,    TRACEFS_MAGIC, SECURITYFS_MAGIC,   BPF_FS_MAGIC};
    for (long magic : kKernel)
        if (fs_type == magic) return true;
    for (const char* top : {"/proc", "/sys"})
        if (path.rfind(top, 0) == 0 && (path.size() == std::string(top).size() || path[std::string(top).size()] == '/')) return true;
    return false;
}

Holdability holdable(const std::string& asked, const PathFacts& facts, bool privileged) {
    using Verdict = Holdability::Verdict;
    const std::string quoted = "'" + asked + "'";
    if (facts.error == ENOENT || facts.error == ENOTDIR) return {Verdict::invalid, {}, quoted + ": its directory does not exist", "Create the directory first; the file itself may be created later"};
    // The same words whatever stopped the requester, so a refusal tells nothing of what is there.
    const Holdability denied{Verdict::denied, {}, "you may hold only files you could open for writing (or create) yourself",
                             "Hold a file you can write, or ask root to add you to file_conflicts.hold_any_file"};
    if (facts.error == EACCES || facts.error == EPERM) return denied;
    if (facts.error != 0) return {Verdict::invalid, {}, quoted + " cannot be resolved: " + std::strerror(facts.error), "Name a regular file"};
    if (facts.dangling_link) return {Verdict::invalid, {}, quoted + " is a symbolic link to nothing", "Name the file it should point to"};
    if (kernel_filesystem(facts.fs_type, facts.resolved))
        return {Verdict::invalid, {}, quoted + " is a kernel file (procfs, sysfs, cgroupfs)", "Name a regular file on disk"};
    if (facts.exists && facts.type != S_IFREG) {
        const char* what = facts.type == S_IFDIR    ? "a directory"
                           : facts.type == S_IFIFO  ? "a FIFO"
                           : facts.type == S_IFCHR  ? "a character device"
                           : facts.type == S_IFBLK  ? "a block device"
                           : facts.type == S_IFSOCK ? "a socket"
                                                    : "not a regular file";
        return {Verdict::invalid, {}, quoted + " is " + what,
                facts.type == S_IFDIR ? "Exclusive access is held on files; list the files inside it" : "Name a regular file"};
    }
    if (!privileged && !facts.writable) return denied;
    return {Verdict::ok, facts.resolved, {}, {}};
}

} // namespace resmgr::conflicts
