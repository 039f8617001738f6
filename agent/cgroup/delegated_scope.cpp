// The delegated scope (see delegated_scope.hpp).
#include "cgroup/delegated_scope.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "cgroup/systemd_backend.hpp"

namespace resmgr::cgroup {
namespace {

// The keeper: holds the scope and does nothing else. Only async-signal-safe calls (resmgrd may
// have threads when it forks). It leaves resmgrd's session (a Ctrl-C to a resmgrd run by hand does
// not reach it), its fds and its blocked signals: systemd's SIGTERM, when the scope is stopped,
// ends it.
[[noreturn]] void keep() {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) ::signal(sig, SIG_DFL);
    ::setsid();
    ::close_range(0, ~0U, 0);
    ::prctl(PR_SET_NAME, "resmgr-keeper");
    for (;;) ::pause();
}

// Forks the keeper twice removed, so it is the init's (or systemd's) child, never a zombie of
// resmgrd's; its pid comes back through a pipe.
pid_t spawn_keeper() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) throw BackendError(std::string("keeper: pipe: ") + std::strerror(errno));
    const pid_t child = ::fork();
    if (child < 0) {
        const int err = errno;
        ::close(fds[0]);
        ::close(fds[1]);
        throw BackendError(std::string("keeper: fork: ") + std::strerror(err));
    }
    if (child == 0) {
        const pid_t keeper = ::fork();
        if (keeper == 0) keep();
        const bool sent = ::write(fds[1], &keeper, sizeof keeper) == static_cast<ssize_t>(sizeof keeper);
        ::_exit(sent && keeper > 0 ? 0 : 1);
    }
    ::close(fds[1]);
    pid_t keeper = -1;
    ssize_t n;
    do n = ::read(fds[0], &keeper, sizeof keeper);
    while (n < 0 && errno == EINTR);
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (n != static_cast<ssize_t>(sizeof keeper) || keeper <= 0) throw BackendError("keeper: the keeper process could not be started");
    return keeper;
}

// systemd marks the cgroups it delegates with the xattr trusted.delegate=1 (systemd 251 and later).
bool delegated(const std::string& dir) {
    char value[8] = {};
    const ssize_t n = ::getxattr(dir.c_str(), "trusted.delegate", value, sizeof value - 1);
    return n == 1 && value[0] == '1';
}

} // namespace

std::string delegated_scope_dir(const std::string& cgroup2_mount) { return cgroup2_mount + "/resmgr.slice/" + kDelegatedScope; }

bool keeper_alive(const std::string& scope_dir) {
    std::ifstream procs(scope_dir + "/keeper/cgroup.procs");
    long pid = 0;
    return static_cast<bool>(procs >> pid) && pid > 0;
}

std::string prepare_delegated_scope(const std::string& scope_dir, pid_t keeper) {
    // The scope's own cgroup must be empty before controllers can be enabled below it.
    if (keeper > 0) move_process(scope_dir + "/keeper", keeper);
    std::set<std::string> missing;
    const std::set<std::string> enabled = enable_controllers(scope_dir, missing);
    if (enabled.empty())
        throw BackendError("no controller could be enabled in " + scope_dir + "/cgroup.subtree_control (is the scope delegated?)");
    return scope_dir + "/groups";
}

DelegatedScopeBackend::DelegatedScopeBackend(const std::string& scope_dir, std::string how, RemoveDir remove_dir)
    : CgroupfsBackend(scope_dir + "/groups", std::move(remove_dir)), scope_dir_(scope_dir), how_(std::move(how)) {}

nlohmann::json DelegatedScopeBackend::describe() {
    nlohmann::json j = CgroupfsBackend::describe();
    j["backend"] = name();
    j["scope"] = kDelegatedScope;
    j["scope_cgroup"] = scope_dir_;
    j["keeper_alive"] = keeper_alive(scope_dir_);
    j["why"] = "systemd is PID 1 on a pure cgroup v2 hierarchy: allocations are cgroups of the delegated scope " + std::string(kDelegatedScope) +
               " (Delegate=yes, " + how_ + "), written directly: no systemd job per allocation";
    return j;
}

std::size_t DelegatedScopeBackend::take_over_elsewhere(const std::string& id) {
    if (id_from_slice(slice_name(id)) != id) return 0; // no unit can have this name
    const std::filesystem::path slices = std::filesystem::path(scope_dir_).parent_path(); // <mount>/resmgr.slice
    const std::string old = (slices / slice_name(id)).string();
    if (::access(old.c_str(), F_OK) != 0) return 0;
    const std::size_t moved = attach_processes_of(id, old, [&](const std::string& unit) { return leaf_of_scope(id, unit); });
    // Stopping a slice that still holds processes would kill them (destroy's KillUnit): it stays
    // as it is, and the caller hears why.
    if (populated_dir(old))
        throw BackendError(old + " still holds processes after " + std::to_string(moved) +
                           " moved (in a cgroup that is not one of the allocation's scopes, or forking faster than they moved): left as it is");
    // The emptied slice is systemd's unit, stopped through systemd; where that fails the work
    // has moved all the same, and the slice stays, empty, until it is stopped or the next boot.
    try {
        SystemdBackend(slices.parent_path().string()).destroy(id);
    } catch (const BackendError& e) {
        spdlog::warn("{}: its processes moved here; the emptied {} stays: {}", id, slice_name(id), e.what());
    }
    return moved;
}

std::unique_ptr<CgroupBackend> make_delegated_backend(const std::string& cgroup2_mount) {
    const std::string dir = delegated_scope_dir(cgroup2_mount);
    pid_t keeper = 0;
    std::string how;
    if (::access(dir.c_str(), F_OK) == 0) {
        if (!delegated(dir)) throw BackendError(dir + " exists but is not delegated (no trusted.delegate=1 on it)");
        if (keeper_alive(dir)) {
            how = "adopted with its keeper";
        } else {
            keeper = spawn_keeper();
            how = "adopted; its keeper was gone and was started again";
        }
    } else {
        keeper = spawn_keeper();
        try {
            SystemdBackend(cgroup2_mount).start_delegated_scope(kDelegatedScope, keeper);
        } catch (const BackendError&) {
            ::kill(keeper, SIGKILL);
            throw;
        }
        how = "started by this resmgrd";
    }
    try {
        prepare_delegated_scope(dir, keeper);
        auto backend = std::make_unique<DelegatedScopeBackend>(dir, how);
        spdlog::info("systemd fast path: allocations under {} ({})", dir, how);
        return backend;
    } catch (const BackendError&) {
        if (keeper > 0) ::kill(keeper, SIGKILL);
        throw;
    }
}

} // namespace resmgr::cgroup
