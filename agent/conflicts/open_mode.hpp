// The mode of an open the guard is asked about. fanotify does not report it, but while a
// FAN_OPEN_PERM event holds the opener, /proc/<tid>/syscall shows the in-progress call and its
// arguments (verified on the host for openat; see ../shared/VENUE.md). Anything not understood
// is OpenMode::unknown, which the decision treats as a write.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "conflicts/decision.hpp"

namespace resmgr::conflicts {

// Write access: O_WRONLY, O_RDWR, O_TRUNC or O_APPEND (creat is O_WRONLY|O_CREAT|O_TRUNC).
OpenMode mode_of_open_flags(std::uint64_t flags);

struct SyscallOpen {
    OpenMode mode = OpenMode::unknown;
    // openat2 keeps its flags in a struct open_how in the opener's memory, at this address.
    std::optional<std::uint64_t> open_how_address;
};

// Parses /proc/<tid>/syscall text ("nr arg0 .. arg5 sp pc", hex arguments) for this build's
// architecture. "running", "-1 ...", other syscalls and garbage give OpenMode::unknown.
SyscallOpen parse_syscall_open(std::string_view text);

// The text of /proc/<tid>/syscall through `read` (into the buffer, returning the length),
// asked again while it says "running": the opener has queued its permission event but is not
// yet asleep waiting for the answer, and the kernel shows the call only of a task off the CPU.
// That lasts microseconds; after ~5 ms it gives up (the caller then sees "running": unknown).
ssize_t read_syscall_text(const std::function<ssize_t(char* buffer, size_t size)>& read, char* buffer, size_t size);

// Reads /proc/<tid>/syscall (and, for openat2, the open_how flags from /proc/<tid>/mem).
// Never blocks on disk: both are served by the kernel from the stopped task.
OpenMode read_open_mode(pid_t tid);

// Who is opening: command name, cgroup and mode, read from /proc afresh (no cache). A gone
// process gives an empty cgroup: an outsider as far as the guard can tell.
Opener describe_from_proc(pid_t tid);

// What the guard's decision thread reads about an opener, through cached /proc/<tid>/ fds: a
// process opening many files costs one pread per file read instead of open+read+close. A /proc
// fd stays bound to its task (reads fail once it exits, never see a new task with the same id),
// so a cached fd cannot answer for the wrong process. Not thread-safe: one thread owns it.
class TaskProcReader {
public:
    explicit TaskProcReader(size_t capacity = 64) : capacity_(capacity) {}
    ~TaskProcReader() { clear(); }
    TaskProcReader(const TaskProcReader&) = delete;
    TaskProcReader& operator=(const TaskProcReader&) = delete;

    OpenMode open_mode(pid_t tid);
    // As /proc/<tid>/cgroup's "0::" line says; empty when unknown. `migrations`: the caller's
    // count of cgroup moves, taken before this read, remembered with the answer.
    std::string cgroup(pid_t tid, std::uint64_t migrations = 0);
    // What cgroup() last read for this thread, while its cached fds still read (the same
    // thread, not a reused tid); null when never read. Stale if the thread has moved since.
    struct CgroupSeen {
        std::string cgroup;
        std::uint64_t migrations = 0;
    };
    const CgroupSeen* last_cgroup(pid_t tid) const;
    std::string comm(pid_t tid);   // empty when unknown
    void clear();                  // closes every cached fd (the guard does so when idle)
    size_t cached() const { return tasks_.size(); }

private:
    enum File { syscall_file, cgroup_file, comm_file, file_count };
    struct Task {
        pid_t tid;
        std::array<int, file_count> fds;
        std::optional<CgroupSeen> cgroup; // the last cgroup() answer
    };
    ssize_t read(pid_t tid, File file, char* buffer, size_t size);

    size_t capacity_;
    std::vector<Task> tasks_; // newest last
};

} // namespace resmgr::conflicts
