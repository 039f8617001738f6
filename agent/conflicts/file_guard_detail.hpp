// Helpers the file guard's two source files share (file_guard.cpp: threads, decisions, queues;
// file_guard_holds.cpp: marks, holds, watches, status). Not part of the guard's interface.
#pragma once

#include <sys/fanotify.h>
#include <sys/types.h>

#include <chrono>
#include <string>

namespace resmgr::conflicts::detail {

using SteadyClock = std::chrono::steady_clock;

std::string errno_text(const std::string& what);
// A thread of resmgrd itself (its own opens are never held).
bool own_thread(pid_t tid);
// An O_PATH fd of what stands at `path`, refusing symbolic links anywhere in it.
int open_held_path(const std::string& path);
// The path fanotify_mark resolves to exactly the inode behind an O_PATH fd, even after a rename.
std::string fd_path(int fd);
// The file name an fanotify directory event carries (FAN_REPORT_DFID_NAME), "" without one.
std::string event_name(const char* event, const fanotify_event_metadata& meta);

} // namespace resmgr::conflicts::detail
