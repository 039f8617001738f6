// agent/conflicts owns exclusive files: which allocation holds which file (the hold table), the
// allow / deny / queue decision for one open of a held file (pure, tested without a kernel), the
// open mode read from the opener's in-progress syscall, the fanotify guard that asks those
// questions of the kernel (file_guard.hpp) and the record of conflicts (registry.hpp).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/policy.hpp"

namespace resmgr::conflicts {

// An inode, the thing a fanotify inode mark is on (a path can be renamed over, an inode cannot).
struct FileKey {
    std::uint64_t dev = 0;
    std::uint64_t ino = 0;
    auto operator<=>(const FileKey&) const = default;
};

enum class OpenMode { read, write, unknown };
std::string_view to_string(OpenMode mode);

// The seed's file_conflicts strategies that the kernel can really enforce.
enum class Strategy {
    file_locking,        // a write open from outside the owner fails with EPERM
    queue_and_serialize, // it waits until the owner lets go (FIFO), up to the timeout, then EPERM
};
std::string_view to_string(Strategy strategy);
std::optional<Strategy> parse_strategy(std::string_view text);

// How the guard answers; the policy's file_conflicts block and `prevent-conflicts` set it.
struct GuardPolicy {
    Strategy strategy = Strategy::queue_and_serialize; // the seed's default
    std::chrono::milliseconds queue_timeout = std::chrono::minutes(10);
    bool advisory = false;  // report conflicts, deny nothing
    bool allow_reads = true; // the seed's read_only_operations exception; false is "strict"
    // Processes always let through: cgroup paths (with their subtrees) and command names.
    std::vector<std::string> exempt_cgroups;
    std::vector<std::string> exempt_comms;
    // Queued openers allowed to wait per uid and in all (each costs the daemon fds); past either,
    // an opener is denied at once.
    size_t max_queued_per_user = 64;
    size_t max_queued_total = 1024;
};

// The policy's file_conflicts block (validated by core::parse_file_conflicts) as the guard uses it.
GuardPolicy guard_policy(const core::Policy::FileConflicts& policy);

// One allocation's claim on one file.
struct Hold {
    std::string path;
    std::string allocation_id;
    std::string workflow_id;
    int priority = 0;
    std::string owner_cgroup; // as /proc/PID/cgroup shows it: "/resmgr.slice/..."; its subtree owns the file
    std::optional<Strategy> strategy; // per-hold override (resolve-conflicts queue_and_serialize)
};

// Who is opening, as far as the guard could find out.
struct Opener {
    pid_t pid = 0;
    std::string comm;
    std::string cgroup; // empty when it could not be read (the process is gone or /proc failed)
    OpenMode mode = OpenMode::unknown;
};

enum class Verdict { allow, deny, queue };
std::string_view to_string(Verdict verdict);

struct Decision {
    Verdict verdict = Verdict::allow;
    bool conflict = false; // a write (or strict read) from outside: reported even when allowed (advisory)
    std::string reason;
};

// True when `cgroup` is `owner` or below it ("/a/b" owns "/a/b" and "/a/b/c", not "/a/bc").
bool in_subtree(std::string_view cgroup, std::string_view owner);

// The holder's own processes and the policy's exceptions: they never conflict with the hold.
bool exempt(const Hold& hold, const Opener& opener, const GuardPolicy& policy, std::string* why = nullptr);

// The decision for one open of a held file. Pure.
Decision decide(const Hold& hold, const Opener& opener, const GuardPolicy& policy);

} // namespace resmgr::conflicts
