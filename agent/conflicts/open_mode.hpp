// The mode of an open the guard is asked about. fanotify does not report it, but while a
// FAN_OPEN_PERM event holds the opener, /proc/<tid>/syscall shows the in-progress call and its
// arguments (verified on the host for openat; see ../shared/VENUE.md). Anything not understood
// is OpenMode::unknown, which the decision treats as a write.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>

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

// Reads /proc/<tid>/syscall (and, for openat2, the open_how flags from /proc/<tid>/mem).
// Never blocks on disk: both are served by the kernel from the stopped task.
OpenMode read_open_mode(pid_t tid);

} // namespace resmgr::conflicts
