// Who may hold which exclusive file: a path looked at with the requester's own credentials (the
// kernel side, probe_path) and the rule that turns what was seen into "may hold it" or a refusal
// (holdable, pure). Admission asks both before a file reaches the ledger or the guard, so holding
// a file never grants more than the requester could do to it anyway.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace resmgr::conflicts {

// The identity file permissions are checked against (fsuid, fsgid, supplementary groups).
struct Credentials {
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    std::vector<std::uint32_t> groups;
};

// What the kernel showed of a path, resolved (symlinks followed) as someone.
struct PathFacts {
    int error = 0;             // resolving failed with this errno (EACCES: a directory on the way was not searchable)
    std::string resolved;      // the canonical path, when error is 0
    bool exists = false;       // false: nothing is there yet, resolved names a file to be created
    bool dangling_link = false; // the path is a symbolic link to nothing
    mode_t type = 0;           // S_IFMT of what exists
    long fs_type = 0;          // statfs f_type of the file, or of its directory when it does not exist
    bool writable = false;     // the file may be opened for writing, or (not there yet) created in its directory
};

// Resolves `path` (absolute) and looks at what is there with `as`'s credentials, in a short-lived
// thread of their own (file credentials are per thread on Linux); nullopt: with the daemon's.
// Fails closed: credentials that cannot be taken on give EACCES.
PathFacts probe_path(const std::string& path, const std::optional<Credentials>& as);
using PathProbe = std::function<PathFacts(const std::string& path, const std::optional<Credentials>& as)>;

// The answer for one file.
struct Holdability {
    enum class Verdict { ok, invalid, denied };
    Verdict verdict = Verdict::ok;
    std::string path;   // what to hold (canonical) when ok
    std::string reason; // why not, for the error message
    std::string hint;   // what to do instead
};

// True for the kernel's own files: procfs, sysfs, cgroupfs and the like (by statfs magic), and
// anything under /proc or /sys (on hybrid hosts /sys/fs/cgroup is a tmpfs).
bool kernel_filesystem(long fs_type, const std::string& path);

// Whether a requester may hold `asked` given what was seen as them. Only regular files (or a
// file not there yet, in a directory) off the kernel's filesystems, for everyone; and, unless
// `privileged` (root, the policy's file_conflicts.hold_any_file), only one the requester could
// open for writing or create. A denial reads the same whether or not the file exists.
Holdability holdable(const std::string& asked, const PathFacts& facts, bool privileged);

} // namespace resmgr::conflicts
