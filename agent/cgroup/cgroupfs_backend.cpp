// cgroupfs backend (see cgroupfs_backend.hpp).
#include "cgroup/cgroupfs_backend.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

namespace resmgr::cgroup {
namespace {

namespace fs = std::filesystem;

const char* const kControllers[] = {"cpu", "memory", "pids", "io"};

std::string errno_text(const std::string& what, const std::string& path) {
    return what + " " + path + ": " + std::strerror(errno);
}

// Returns 0 or an errno. O_CREAT is harmless on cgroupfs (the control file exists) and lets
// the unit tests' plain-directory fake tree receive the same writes.
int write_file(const std::string& path, const std::string& value) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errno;
    ssize_t n = ::write(fd, value.data(), value.size());
    int err = n < 0 ? errno : (static_cast<size_t>(n) == value.size() ? 0 : EIO);
    ::close(fd);
    return err;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

bool valid_name(const std::string& name) {
    if (name.empty() || name == "." || name == ".." || name.size() > 200) return false;
    for (char c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
    return true;
}

void check_name(const std::string& kind, const std::string& name) {
    if (!valid_name(name)) throw BackendError("invalid " + kind + " name '" + name + "' (allowed: letters, digits, _ . -)");
}

std::string max_or(const std::optional<std::uint64_t>& v) { return v ? std::to_string(*v) : "max"; }

bool events_say(const std::string& dir, const std::string& key, const std::string& value) {
    std::istringstream in(read_file(dir + "/cgroup.events"));
    for (std::string k, v; in >> k >> v;)
        if (k == key) return v == value;
    return false;
}

} // namespace

void move_process(const std::string& dir, pid_t pid) {
    if (::mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) throw BackendError(errno_text("cannot create cgroup", dir));
    if (int err = write_file(dir + "/cgroup.procs", std::to_string(pid)); err != 0) {
        errno = err;
        throw BackendError(errno_text("cannot move pid " + std::to_string(pid) + " into", dir));
    }
}

std::set<std::string> enable_controllers(const std::string& dir, std::set<std::string>& missing) {
    std::istringstream available(read_file(dir + "/cgroup.controllers"));
    std::set<std::string> have, enabled;
    for (std::string c; available >> c;) have.insert(c);
    for (const char* c : kControllers) {
        if (have.count(c) && write_file(dir + "/cgroup.subtree_control", std::string("+") + c) == 0) enabled.insert(c);
        else missing.insert(c);
    }
    return enabled;
}

CgroupfsBackend::CgroupfsBackend(std::string root, RemoveDir remove_dir)
    : root_(std::move(root)), remove_dir_(std::move(remove_dir)) {
    if (!remove_dir_) remove_dir_ = [](const std::string& p) { return ::rmdir(p.c_str()) == 0 ? 0 : errno; };
    if (::mkdir(root_.c_str(), 0755) < 0 && errno != EEXIST) throw BackendError(errno_text("cannot create cgroup root", root_));
    enabled_ = enable_controllers(root_, missing_);
    spdlog::info("cgroupfs backend at {}: controllers enabled [{}], missing [{}]", root_,
                 fmt::join(enabled_, " "), fmt::join(missing_, " "));
}

Enforcement CgroupfsBackend::apply(const std::string& dir, const Limits& l, bool fresh) {
    Enforcement e;
    // What a new cgroup starts with (cgroup-v2.rst): "max 100000", 100, "max", "max", "max".
    auto set = [&](const char* controller, const std::string& file, const std::string& value, bool requested,
                   const std::string& kernel_default) {
        if (!enabled_.count(controller)) {
            // Kept with the allocation while it lives, so short and sized exactly (10,000 live
            // allocations held ~10 MB of these at ~1 KB each); why the controller is missing is
            // the same for every group: the start's log line and `resmgr doctor` say it.
            if (requested) {
                std::string why = file + "=" + value + ": controller '" + controller + "' not available in the cgroup root (see resmgr doctor)";
                why.shrink_to_fit();
                e.unenforced.push_back(std::move(why));
            }
            return;
        }
        if (fresh && value == kernel_default) {
            e.applied.push_back(file + "=" + value);
            return;
        }
        if (int err = write_file(dir + "/" + file, value); err != 0) {
            e.unenforced.push_back(file + "=" + value + ": write failed: " + std::strerror(err));
            return;
        }
        e.applied.push_back(file + "=" + value);
    };
    set("cpu", "cpu.max", (l.cpu_quota_us ? std::to_string(*l.cpu_quota_us) : "max") + " " + std::to_string(l.cpu_period_us),
        l.cpu_quota_us.has_value(), "max 100000");
    set("cpu", "cpu.weight", std::to_string(l.cpu_weight), l.cpu_weight != 100, "100");
    // memory.high before memory.max when shrinking would briefly leave high > max; the kernel
    // accepts either order, so write max first to cap at once.
    set("memory", "memory.max", max_or(l.memory_max), l.memory_max.has_value(), "max");
    set("memory", "memory.high", max_or(l.memory_high), l.memory_high.has_value(), "max");
    set("pids", "pids.max", max_or(l.pids_max), l.pids_max.has_value(), "max");
    return e;
}

Enforcement CgroupfsBackend::create(const std::string& id, const Limits& limits) {
    check_name("group", id);
    std::string dir = group_path(id);
    const bool fresh = ::mkdir(dir.c_str(), 0755) == 0;
    if (!fresh && errno != EEXIST) throw BackendError(errno_text("cannot create group", dir));
    return apply(dir, limits, fresh);
}

Enforcement CgroupfsBackend::update(const std::string& id, const Limits& limits) {
    check_name("group", id);
    std::string dir = group_path(id);
    struct stat st{};
    if (::stat(dir.c_str(), &st) < 0) throw BackendError(errno_text("no group", dir));
    return apply(dir, limits, false);
}

void CgroupfsBackend::attach(const std::string& id, const std::string& leaf, pid_t pid) {
    check_name("group", id);
    check_name("leaf", leaf);
    move_process(group_path(id) + "/" + leaf, pid);
}

std::string CgroupfsBackend::make_spawn_leaf(const std::string& id, const std::string& leaf) {
    check_name("group", id);
    check_name("leaf", leaf);
    std::string dir = group_path(id) + "/" + leaf;
    if (::mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) throw BackendError(errno_text("cannot create cgroup", dir));
    return dir;
}

std::vector<std::string> CgroupfsBackend::group_dirs(const std::string& id) {
    std::vector<std::string> dirs;
    std::error_code ec;
    std::string group = group_path(id);
    for (auto& entry : fs::directory_iterator(group, ec))
        if (entry.is_directory(ec)) dirs.push_back(entry.path().string());
    dirs.push_back(group);
    return dirs;
}

void CgroupfsBackend::freeze(const std::string& id, bool frozen) {
    check_name("group", id);
    std::string dir = group_path(id);
    if (int err = write_file(dir + "/cgroup.freeze", frozen ? "1" : "0"); err != 0) {
        errno = err;
        throw BackendError(errno_text("cannot write cgroup.freeze in", dir));
    }
    // The kernel freezes asynchronously: each task stops when it next leaves the kernel, so one
    // stuck in reclaim (a hog at its memory.high, the very group the pressure responder pauses)
    // stops only once the reclaim returns. cgroup.freeze is written and stays; waiting longer here
    // would stall the whole daemon for one group, so a short wait covers the common case and the
    // rest completes in the kernel.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    while (!events_say(dir, "frozen", frozen ? "1" : "0")) {
        if (std::chrono::steady_clock::now() > deadline) {
            spdlog::debug("group {}: still {} after 100 ms; the kernel completes it", dir, frozen ? "freezing" : "thawing");
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

void CgroupfsBackend::signal(const std::string& id, int sig) {
    check_name("group", id);
    std::string dir = group_path(id);
    if (sig == SIGKILL && ::access((dir + "/cgroup.kill").c_str(), F_OK) == 0 && write_file(dir + "/cgroup.kill", "1") == 0) return;
    for (pid_t pid : pids(id)) ::kill(pid, sig);
}

void CgroupfsBackend::destroy(const std::string& id) {
    check_name("group", id);
    std::string dir = group_path(id);
    // Most groups are empty when released (the work ended, or never started): one rmdir, without
    // the kill, the listing of leaves and their rmdirs. The kernel refuses it (EBUSY) while a
    // process or a leaf is inside, and then the full path below runs.
    if (const int err = remove_dir_(dir); err == 0 || err == ENOENT) return;
    signal(id, SIGKILL);
    // Killed tasks leave the group shortly after; rmdir says EBUSY until they have.
    for (auto& d : group_dirs(id)) {
        int err = 0;
        for (int attempt = 0; attempt < 200; ++attempt) {
            err = remove_dir_(d);
            if (err == 0 || err == ENOENT) break;
            if (err != EBUSY) break;
            if (attempt % 20 == 19) signal(id, SIGKILL);
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        if (err != 0 && err != ENOENT) {
            errno = err;
            throw BackendError(errno_text("cannot remove group", d));
        }
    }
}

std::vector<std::string> CgroupfsBackend::list_groups() {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto& entry : fs::directory_iterator(root_, ec))
        if (entry.is_directory(ec) && valid_name(entry.path().filename().string())) out.push_back(entry.path().filename().string());
    if (ec) throw BackendError("cannot list " + root_ + ": " + ec.message());
    return out;
}

std::string CgroupfsBackend::group_path(const std::string& id) { return root_ + "/" + id; }

std::vector<pid_t> CgroupfsBackend::pids(const std::string& id) {
    check_name("group", id);
    std::vector<pid_t> out;
    for (auto& dir : group_dirs(id)) {
        std::istringstream in(read_file(dir + "/cgroup.procs"));
        for (long pid; in >> pid;) out.push_back(static_cast<pid_t>(pid));
    }
    return out;
}

nlohmann::json CgroupfsBackend::describe() {
    return {{"backend", "cgroupfs"},
            {"root", root_},
            {"controllers_enabled", std::vector<std::string>(enabled_.begin(), enabled_.end())},
            {"controllers_missing", std::vector<std::string>(missing_.begin(), missing_.end())}};
}

} // namespace resmgr::cgroup
