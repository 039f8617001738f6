// The file guard's holds: marks on held inodes and their directories, hold/release, the BPF LSM
// map, path changes seen on the watch fd, and status(). See file_guard.hpp.
#include "conflicts/file_guard.hpp"
#include "conflicts/file_guard_detail.hpp"
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/openat2.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include "conflicts/open_mode.hpp"
#include "monitor/proc.hpp"
#include "resmgr/model.hpp"
#include <spdlog/spdlog.h>

namespace resmgr::conflicts {

using namespace detail;


bool FileGuard::mark_locked(Entry& entry) {
    int path_fd = open_held_path(entry.hold.path);
    if (path_fd < 0) return false;
    struct stat st {};
    if (::fstat(path_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        bool is_dir = S_ISDIR(st.st_mode);
        ::close(path_fd);
        if (is_dir) throw GuardError("'" + entry.hold.path + "' is a directory; exclusive access is held on files");
        return false;
    }
    const FileKey key{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
    if (auto other = by_key_.find(key); other != by_key_.end() && other->second != entry.hold.path) {
        ::close(path_fd);
        throw GuardError("'" + entry.hold.path + "' is the same file as '" + other->second + "', already held");
    }
    const std::string proc = fd_path(path_fd);
    if (fanotify_mark(perm_fd_, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, proc.c_str()) != 0) {
        std::string why = errno_text("fanotify_mark(FAN_OPEN_PERM) on " + entry.hold.path);
        ::close(path_fd);
        throw GuardError(why);
    }
    // Best effort: writes through fds opened before the hold, and truncate(2), show up as FAN_MODIFY.
    fanotify_mark(notify_fd_, FAN_MARK_ADD, FAN_MODIFY, AT_FDCWD, proc.c_str());
    entry.key = key;
    entry.path_fd = path_fd;
    by_key_[key] = entry.hold.path;
    lsm_sync_locked(entry);
    return true;
}

void FileGuard::lsm_sync_locked(const Entry& entry) {
    if (!lsm_ || !entry.key) return;
    struct stat group {};
    const std::string group_dir = options_.cgroup_mount + (entry.hold.owner_cgroup == "/" ? "" : entry.hold.owner_cgroup);
    if (::stat(group_dir.c_str(), &group) != 0) {
        spdlog::warn("file guard: {} not held by BPF LSM: holder cgroup {}: {}", entry.hold.path, group_dir, std::strerror(errno));
        lsm_->release(entry.key->dev, entry.key->ino);
        return;
    }
    unsigned level = 0;
    for (auto part : std::filesystem::path(entry.hold.owner_cgroup)) level += !part.empty() && part != "/";
    const bool enforce = !policy_.advisory;
    const bool locking = entry.hold.strategy.value_or(policy_.strategy) == Strategy::file_locking;
    bpf::LsmHoldFlags flags{enforce && locking, enforce && locking && !policy_.allow_reads, enforce};
    std::string error;
    if (!lsm_->hold(entry.key->dev, entry.key->ino, static_cast<std::uint64_t>(group.st_ino), level, flags, &error))
        spdlog::warn("file guard: {} not held by BPF LSM: {}", entry.hold.path, error);
}

void FileGuard::unmark_locked(Entry& entry) {
    if (entry.path_fd < 0) return;
    const std::string proc = fd_path(entry.path_fd);
    fanotify_mark(perm_fd_, FAN_MARK_REMOVE, FAN_OPEN_PERM, AT_FDCWD, proc.c_str());
    fanotify_mark(notify_fd_, FAN_MARK_REMOVE, FAN_MODIFY, AT_FDCWD, proc.c_str());
    if (lsm_ && entry.key) lsm_->release(entry.key->dev, entry.key->ino);
    ::close(entry.path_fd);
    entry.path_fd = -1;
    if (entry.key) by_key_.erase(*entry.key);
    entry.key.reset();
}

constexpr std::uint64_t kDirEvents = FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO;

void DirectoryWatches::add(const std::string& dir) {
    if (count_[dir]++ > 0) return;
    if (fanotify_mark(notify_fd_, FAN_MARK_ADD, kDirEvents, AT_FDCWD, dir.c_str()) != 0) {
        std::string why = errno_text("fanotify_mark on directory " + dir);
        count_.erase(dir);
        throw GuardError(why);
    }
}

void DirectoryWatches::remove(const std::string& dir) {
    auto it = count_.find(dir);
    if (it == count_.end() || --it->second > 0) return;
    fanotify_mark(notify_fd_, FAN_MARK_REMOVE, kDirEvents, AT_FDCWD, dir.c_str());
    count_.erase(it);
}

void FileGuard::hold(const Hold& hold) {
    if (hold.path.empty() || hold.path.front() != '/') throw GuardError("'" + hold.path + "' is not an absolute path");
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(hold.path); it != entries_.end()) {
        if (it->second.hold.allocation_id != hold.allocation_id)
            throw GuardError("'" + hold.path + "' is already held by " + it->second.hold.allocation_id);
        it->second.hold = hold;
        return;
    }
    Entry entry;
    entry.hold = hold;
    entry.dir = std::filesystem::path(hold.path).parent_path().string();
    watched_dirs_->add(entry.dir);
    try {
        mark_locked(entry);
    } catch (...) {
        watched_dirs_->remove(entry.dir);
        throw;
    }
    waiting_->open(hold);
    entries_.emplace(hold.path, std::move(entry));
}

void FileGuard::release(const std::string& allocation_id, const std::optional<std::string>& path) {
    std::lock_guard lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end();) {
        Entry& entry = it->second;
        if (entry.hold.allocation_id != allocation_id || (path && *path != it->first)) {
            ++it;
            continue;
        }
        unmark_locked(entry);
        watched_dirs_->remove(entry.dir);
        // Under the lock, so a new hold of the path never inherits these waiters; answering is
        // a non-blocking write to the fanotify fd.
        waiting_->close(it->first);
        it = entries_.erase(it);
    }
}

bool FileGuard::set_strategy(const std::string& path, Strategy strategy) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(path);
    if (it == entries_.end()) return false;
    it->second.hold.strategy = strategy;
    lsm_sync_locked(it->second);
    return true;
}

void FileGuard::set_policy(GuardPolicy policy) {
    std::lock_guard lock(mutex_);
    policy_ = std::move(policy);
    for (const auto& [path, entry] : entries_) lsm_sync_locked(entry);
}

int FileGuard::lsm_fd() const { return lsm_ ? lsm_->ring_fd() : -1; }

void FileGuard::on_lsm_ready() {
    if (!lsm_) return;
    std::vector<GuardReport> found;
    for (const auto& denial : lsm_->consume()) {
        Opener opener = describe_from_proc(denial.tid);
        opener.comm = denial.comm;
        opener.mode = denial.op == "open_read" ? OpenMode::read : OpenMode::write;
        if (opener.cgroup.empty()) opener.cgroup = "cgroup id " + std::to_string(denial.cgroup_id);
        GuardReport r{GuardReport::Kind::denied, {}, {}, {}, opener, "refused by the BPF LSM program (" + denial.op + ")", {}};
        if (denial.op == "rename") r.kind = GuardReport::Kind::rename_refused;
        else if (denial.op == "unlink") r.kind = GuardReport::Kind::unlink_refused;
        else if (denial.op == "truncate") r.kind = GuardReport::Kind::truncate_refused;
        {
            std::lock_guard lock(mutex_);
            auto it = by_key_.find(FileKey{denial.st_dev, denial.ino});
            if (it == by_key_.end()) continue; // released since
            const Hold& hold = entries_.at(it->second).hold;
            r.path = hold.path;
            r.allocation_id = hold.allocation_id;
            r.workflow_id = hold.workflow_id;
        }
        denied_++;
        found.push_back(std::move(r));
    }
    for (auto& r : found) reports_.push(std::move(r));
}

GuardPolicy FileGuard::policy() const {
    std::lock_guard lock(mutex_);
    return policy_;
}

std::vector<Hold> FileGuard::holds() const {
    std::lock_guard lock(mutex_);
    std::vector<Hold> out;
    for (const auto& [path, entry] : entries_) out.push_back(entry.hold);
    return out;
}

size_t FileGuard::open_fds() const {
    std::lock_guard lock(mutex_);
    size_t count = 0;
    for (const auto& [path, entry] : entries_) count += entry.path_fd >= 0 ? 1 : 0;
    return count + waiting_->open_fds();
}

void FileGuard::recheck_path(Entry& entry, const Opener& actor, std::vector<GuardReport>& out) {
    struct stat st {};
    const int fd = open_held_path(entry.hold.path);
    const bool exists = fd >= 0 && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    if (fd >= 0) ::close(fd);
    const FileKey now{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
    if (exists && entry.key && *entry.key == now) return; // an unrelated name in the directory
    if (!exists && !entry.key) return;
    const bool had_file = entry.key.has_value();
    unmark_locked(entry);
    std::string failure;
    if (exists) {
        try {
            mark_locked(entry);
        } catch (const GuardError& e) {
            failure = std::string("; could not mark the new file: ") + e.what();
        }
    }
    std::string why;
    if (exempt(entry.hold, actor, policy_, &why)) return; // the holder replaced its own file: marked again, nothing to report
    GuardReport r{exists ? GuardReport::Kind::replaced : GuardReport::Kind::removed, entry.hold.path, entry.hold.allocation_id,
                  entry.hold.workflow_id, actor, {}, {}};
    if (!exists) r.reason = "the held file was unlinked or renamed away by a process outside the holder";
    else if (had_file) r.reason = "another file was renamed over the held path by a process outside the holder; the new file is marked";
    else r.reason = "the held path was created by a process outside the holder; it is marked now";
    if (actor.cgroup.empty()) r.reason += " (the process had exited before it could be identified)";
    r.reason += failure;
    out.push_back(std::move(r));
}

void FileGuard::on_watch_ready() {
    char buffer[8192];
    std::vector<GuardReport> found;
    for (;;) {
        ssize_t n = ::read(notify_fd_, buffer, sizeof buffer);
        if (n <= 0) break;
        // FAN_EVENT_OK/NEXT would read the metadata in place; events here are only 4-byte aligned.
        fanotify_event_metadata meta{};
        for (size_t offset = 0; offset + sizeof meta <= static_cast<size_t>(n); offset += meta.event_len) {
            std::memcpy(&meta, buffer + offset, sizeof meta);
            if (meta.event_len < sizeof meta || offset + meta.event_len > static_cast<size_t>(n)) break;
            if (meta.vers != FANOTIFY_METADATA_VERSION) continue;
            if (meta.mask & FAN_Q_OVERFLOW) {
                overflows_++;
                found.push_back({GuardReport::Kind::overflow, {}, {}, {}, {},
                                 "the notification queue overflowed: renames and writes may have gone unseen; every held path was re-checked", {}});
                std::lock_guard lock(mutex_);
                for (auto& [path, entry] : entries_) recheck_path(entry, Opener{}, found);
                continue;
            }
            const std::string name = event_name(buffer + offset, meta);
            if (name.empty()) continue;
            Opener actor;
            if (meta.pid > 0 && !own_thread(meta.pid)) {
                actor = describe_from_proc(meta.pid);
                actor.mode = OpenMode::unknown;
            } else if (meta.pid > 0) {
                continue; // the daemon's own change
            }
            std::lock_guard lock(mutex_);
            for (auto& [path, entry] : entries_) {
                if (std::filesystem::path(path).filename() != name) continue;
                if (meta.mask & FAN_MODIFY) {
                    if (!exempt(entry.hold, actor, policy_))
                        found.push_back({GuardReport::Kind::modified, path, entry.hold.allocation_id, entry.hold.workflow_id, actor,
                                         "the held file was written by a process outside the holder (truncate(2), or an fd opened before the hold)",
                                         {}});
                } else {
                    recheck_path(entry, actor, found);
                }
            }
        }
    }
    for (auto& r : found) reports_.push(std::move(r));
}

nlohmann::json FileGuard::status() const {
    nlohmann::json holds = nlohmann::json::array();
    GuardPolicy policy;
    size_t waiting_now = 0;
    {
        std::lock_guard lock(mutex_);
        policy = policy_;
        waiting_now = waiting_->waiting();
        for (const auto& [path, entry] : entries_) {
            const nlohmann::json waiting = waiting_->describe(path);
            holds.push_back({{"path", path},
                             {"allocation_id", entry.hold.allocation_id},
                             {"workflow_id", entry.hold.workflow_id},
                             {"owner_cgroup", entry.hold.owner_cgroup},
                             {"strategy", to_string(entry.hold.strategy.value_or(policy.strategy))},
                             {"marked", entry.key.has_value()},
                             {"queued_openers", waiting.size()},
                             {"waiting_openers", waiting}});
        }
    }
    nlohmann::json counters = waiting_->counters();
    counters.update({{"permission_events", events_.load()},
                     {"allowed", allowed_.load()},
                     {"denied", denied_.load()},
                     {"stalled", stalled_.load()},
                     {"own_opens", own_opens_.load()},
                     {"overflows", overflows_.load()}});
    return {{"holds", holds},
            {"counters", counters},
            {"queue_limits", {{"per_user", policy.max_queued_per_user}, {"total", policy.max_queued_total}, {"waiting", waiting_now}}},
            {"decision_deadline_ms", options_.decision_deadline.count()},
            {"bpf_lsm", lsm_status_},
            {"cgroup_migrations", migrations_status_},
            {"fallback", options_.fallback_allow ? "allow" : "deny"}};
}

} // namespace resmgr::conflicts
