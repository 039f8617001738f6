// Helpers the file guard's source files share (file_guard.cpp: threads, decisions;
// file_guard_holds.cpp: holds, watches, status; and the parts it is built of). Not part of the
// guard's interface.
#pragma once

#include <sys/fanotify.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>

namespace resmgr::conflicts::detail {

using SteadyClock = std::chrono::steady_clock;

std::string errno_text(const std::string& what);
void signal_eventfd(int fd);
void drain_eventfd(int fd);
// A thread of resmgrd itself (its own opens are never held).
bool own_thread(pid_t tid);
// An O_PATH fd of what stands at `path`, refusing symbolic links anywhere in it.
int open_held_path(const std::string& path);
// The path fanotify_mark resolves to exactly the inode behind an O_PATH fd, even after a rename.
std::string fd_path(int fd);
// The file name an fanotify directory event carries (FAN_REPORT_DFID_NAME), "" without one.
std::string event_name(const char* event, const fanotify_event_metadata& meta);
// The first 4 KiB of a /proc file, "" when it cannot be read.
std::string read_proc_line(const std::string& path);

// The held files' directories on the notification group, counted: a directory is watched while
// some held path is in it. Not thread-safe: the guard calls it under its lock.
class DirectoryWatches {
public:
    explicit DirectoryWatches(int notify_fd) : notify_fd_(notify_fd) {}
    void add(const std::string& dir); // throws GuardError when the kernel refuses the mark
    void remove(const std::string& dir);

private:
    int notify_fd_;
    std::map<std::string, int> count_; // directory -> holds in it
};

} // namespace resmgr::conflicts::detail
