// systemd backend (see systemd_backend.hpp).
#include "cgroup/systemd_backend.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <utility>

#include <spdlog/spdlog.h>

#include "cgroup/delegated_scope.hpp"

namespace resmgr::cgroup {
namespace {

constexpr const char* kDest = "org.freedesktop.systemd1";
constexpr const char* kPath = "/org/freedesktop/systemd1";
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";
constexpr std::uint64_t kInfinity = std::numeric_limits<std::uint64_t>::max();
// Below WatchdogSec=30s in resmgrd.service: a stuck job must not get the daemon killed.
constexpr auto kJobTimeout = std::chrono::seconds(15);

struct MessageUnref {
    void operator()(sd_bus_message* m) const { sd_bus_message_unref(m); }
};
using Message = std::unique_ptr<sd_bus_message, MessageUnref>;

struct BusError {
    sd_bus_error e = SD_BUS_ERROR_NULL;
    ~BusError() { sd_bus_error_free(&e); }
};

void check(int r, const std::string& what) {
    if (r < 0) throw BackendError(what + ": " + std::strerror(-r));
}

bool valid_name(const std::string& name) {
    if (name.empty() || name.size() > 100) return false;
    for (char c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false; // '-' would nest slices
    return true;
}

void check_name(const std::string& kind, const std::string& name) {
    if (!valid_name(name)) throw BackendError("invalid " + kind + " name '" + name + "' for a systemd unit (allowed: letters, digits, _)");
}

} // namespace

std::vector<UnitProperty> slice_properties(const Limits& l) {
    auto opt = [](const std::optional<std::uint64_t>& v) { return v ? *v : kInfinity; };
    std::uint64_t quota_per_sec = l.cpu_quota_us ? *l.cpu_quota_us * 1'000'000 / l.cpu_period_us : kInfinity;
    return {{"CPUQuotaPerSecUSec", quota_per_sec},
            {"CPUWeight", l.cpu_weight},
            {"MemoryMax", opt(l.memory_max)},
            {"MemoryHigh", opt(l.memory_high)},
            {"TasksMax", opt(l.pids_max)}};
}

std::string slice_name(const std::string& id) { return "resmgr-" + id + ".slice"; }

std::string scope_name(const std::string& id, const std::string& leaf, pid_t pid) {
    return "resmgr-" + id + "-" + leaf + "-" + std::to_string(pid) + ".scope";
}

std::string id_from_slice(const std::string& unit) {
    const std::string prefix = "resmgr-", suffix = ".slice";
    if (unit.size() <= prefix.size() + suffix.size() || unit.compare(0, prefix.size(), prefix) != 0 ||
        unit.compare(unit.size() - suffix.size(), suffix.size(), suffix) != 0)
        return {};
    std::string id = unit.substr(prefix.size(), unit.size() - prefix.size() - suffix.size());
    return valid_name(id) ? id : std::string{};
}

std::string leaf_of_scope(const std::string& id, const std::string& unit) {
    const std::string prefix = "resmgr-" + id + "-", suffix = ".scope";
    if (unit.size() <= prefix.size() + suffix.size() || !unit.starts_with(prefix) || !unit.ends_with(suffix)) return {};
    const std::string leaf_and_pid = unit.substr(prefix.size(), unit.size() - prefix.size() - suffix.size());
    const auto dash = leaf_and_pid.rfind('-');
    if (dash == std::string::npos || dash == 0 || leaf_and_pid.find_first_not_of("0123456789", dash + 1) != std::string::npos ||
        dash + 1 == leaf_and_pid.size())
        return {};
    std::string leaf = leaf_and_pid.substr(0, dash);
    return valid_name(leaf) ? leaf : std::string{};
}

SystemdBackend::SystemdBackend(std::string cgroup2_mount, std::string why) : mount_(std::move(cgroup2_mount)), why_(std::move(why)) {
    check(sd_bus_open_system(&bus_), "cannot connect to the system bus");
    check(sd_bus_match_signal(bus_, &job_slot_, kDest, kPath, kManager, "JobRemoved", on_job_removed, this),
          "cannot watch systemd jobs");
    BusError error;
    // Without Subscribe systemd does not send JobRemoved to us.
    if (sd_bus_call_method(bus_, kDest, kPath, kManager, "Subscribe", &error.e, nullptr, "") < 0)
        throw BackendError(std::string("systemd Subscribe: ") + error.e.name + ": " + error.e.message);
}

SystemdBackend::~SystemdBackend() {
    sd_bus_slot_unref(job_slot_);
    sd_bus_flush_close_unref(bus_);
}

int SystemdBackend::on_job_removed(sd_bus_message* m, void* self, sd_bus_error*) {
    std::uint32_t id = 0;
    const char *path = nullptr, *unit = nullptr, *result = nullptr;
    if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) >= 0)
        static_cast<SystemdBackend*>(self)->finished_jobs_[path] = result;
    return 0;
}

sd_bus_message* SystemdBackend::new_manager_call(const char* method) {
    sd_bus_message* m = nullptr;
    check(sd_bus_message_new_method_call(bus_, &m, kDest, kPath, kManager, method), std::string("D-Bus ") + method);
    return m;
}

std::optional<std::string> SystemdBackend::start_job(const std::string& unit, sd_bus_message* raw, const char* tolerated_error) {
    Message call(raw);
    BusError error;
    sd_bus_message* reply_raw = nullptr;
    if (sd_bus_call(bus_, call.get(), 0, &error.e, &reply_raw) < 0) {
        if (tolerated_error && sd_bus_error_has_name(&error.e, tolerated_error)) return std::nullopt;
        throw BackendError(unit + ": " + (error.e.name ? error.e.name : "D-Bus error") + ": " + (error.e.message ? error.e.message : ""));
    }
    Message reply(reply_raw);
    const char* job = nullptr;
    check(sd_bus_message_read(reply.get(), "o", &job), unit + ": reading job path");
    return job;
}

bool SystemdBackend::call_and_wait(const std::string& unit, sd_bus_message* call, const char* tolerated_error) {
    auto job = start_job(unit, call, tolerated_error);
    if (job) wait_jobs({{unit, *job}});
    return job.has_value();
}

void SystemdBackend::wait_jobs(const std::vector<std::pair<std::string, std::string>>& jobs) {
    auto deadline = std::chrono::steady_clock::now() + kJobTimeout;
    auto all_finished = [&] {
        return std::all_of(jobs.begin(), jobs.end(), [&](const auto& job) { return finished_jobs_.count(job.second) > 0; });
    };
    while (!all_finished()) {
        const std::string& unit = jobs.front().first;
        int r = sd_bus_process(bus_, nullptr);
        check(r, unit + ": D-Bus");
        if (r > 0) continue;
        auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) throw BackendError(unit + ": systemd job " + jobs.front().second + " did not finish within 15s");
        check(sd_bus_wait(bus_, static_cast<std::uint64_t>(left.count())), unit + ": D-Bus wait");
    }
    std::map<std::string, std::string> results = std::exchange(finished_jobs_, {}); // only the jobs waited for matter
    for (const auto& [unit, job] : jobs)
        if (results[job] != "done") throw BackendError(unit + ": systemd job finished with result '" + results[job] + "'");
}

Enforcement SystemdBackend::applied(const Limits& limits) const {
    Enforcement e;
    for (auto& p : slice_properties(limits)) e.applied.push_back(p.name + "=" + (p.value == kInfinity ? "infinity" : std::to_string(p.value)));
    return e;
}

sd_bus_message* SystemdBackend::slice_start_call(const std::string& id, const Limits& limits) {
    const std::string unit = slice_name(id);
    sd_bus_message* m = new_manager_call("StartTransientUnit");
    Message guard(m);
    check(sd_bus_message_append(m, "ss", unit.c_str(), "fail"), unit);
    check(sd_bus_message_open_container(m, 'a', "(sv)"), unit);
    check(sd_bus_message_append(m, "(sv)", "Description", "s", ("resmgr allocation " + id).c_str()), unit);
    for (auto& p : slice_properties(limits)) check(sd_bus_message_append(m, "(sv)", p.name.c_str(), "t", p.value), unit);
    check(sd_bus_message_close_container(m), unit);
    check(sd_bus_message_append(m, "a(sa(sv))", 0), unit);
    return guard.release();
}

sd_bus_message* SystemdBackend::scope_start_call(const std::string& unit, const std::string& slice, pid_t pid,
                                                 const std::string& description, bool delegate) {
    sd_bus_message* m = new_manager_call("StartTransientUnit");
    Message guard(m);
    check(sd_bus_message_append(m, "ss", unit.c_str(), "fail"), unit);
    check(sd_bus_message_open_container(m, 'a', "(sv)"), unit);
    check(sd_bus_message_append(m, "(sv)", "PIDs", "au", 1, static_cast<std::uint32_t>(pid)), unit);
    check(sd_bus_message_append(m, "(sv)", "Slice", "s", slice.c_str()), unit);
    check(sd_bus_message_append(m, "(sv)", "CollectMode", "s", "inactive-or-failed"), unit);
    check(sd_bus_message_append(m, "(sv)", "Description", "s", description.c_str()), unit);
    if (delegate) check(sd_bus_message_append(m, "(sv)", "Delegate", "b", 1), unit);
    check(sd_bus_message_close_container(m), unit);
    check(sd_bus_message_append(m, "a(sa(sv))", 0), unit);
    return guard.release();
}

sd_bus_message* SystemdBackend::allocation_scope_call(const std::string& id, const std::string& leaf, pid_t pid) {
    return scope_start_call(scope_name(id, leaf, pid), slice_name(id), pid, "resmgr allocation " + id + " " + leaf, false);
}

// systemd's answer to StartTransientUnit of a unit that is loaded already, and to a job for a
// unit it does not know. Asking and handling these costs one D-Bus round trip less than GetUnit first.
constexpr const char* kUnitExists = "org.freedesktop.systemd1.UnitExists";
constexpr const char* kNoSuchUnit = "org.freedesktop.systemd1.NoSuchUnit";

Enforcement SystemdBackend::create(const std::string& id, const Limits& limits) {
    check_name("group", id);
    if (!call_and_wait(slice_name(id), slice_start_call(id, limits), kUnitExists)) return update(id, limits); // adopting after a restart
    return applied(limits);
}

Enforcement SystemdBackend::create_attached(const std::string& id, const Limits& limits, const std::string& leaf, pid_t pid) {
    check_name("group", id);
    check_name("leaf", leaf);
    const std::string slice = slice_name(id), scope = scope_name(id, leaf, pid);
    // Both jobs queued before waiting: the scope's job runs right after the slice's (the scope
    // requires its slice), so the two cost about one job's wait, as `systemd-run --scope` pays.
    const std::optional<std::string> started = start_job(slice, slice_start_call(id, limits), kUnitExists);
    if (!started) return CgroupBackend::create_attached(id, limits, leaf, pid); // adopting: update, then attach
    const std::string slice_job = *started;
    std::string scope_job;
    try {
        scope_job = *start_job(scope, allocation_scope_call(id, leaf, pid));
        wait_jobs({{slice, slice_job}, {scope, scope_job}});
    } catch (const BackendError&) {
        try {
            if (scope_job.empty()) wait_jobs({{slice, slice_job}}); // so the stop below is not queued before the start
        } catch (const BackendError& e) {
            spdlog::debug("{}: {}", slice, e.what());
        }
        destroy_after_failed_attach(id);
        throw;
    }
    return applied(limits);
}

Enforcement SystemdBackend::update(const std::string& id, const Limits& limits) {
    check_name("group", id);
    const std::string unit = slice_name(id);
    sd_bus_message* m = new_manager_call("SetUnitProperties");
    Message call(m);
    check(sd_bus_message_append(m, "sb", unit.c_str(), 1), unit);
    check(sd_bus_message_open_container(m, 'a', "(sv)"), unit);
    for (auto& p : slice_properties(limits)) check(sd_bus_message_append(m, "(sv)", p.name.c_str(), "t", p.value), unit);
    check(sd_bus_message_close_container(m), unit);
    BusError error;
    if (sd_bus_call(bus_, call.get(), 0, &error.e, nullptr) < 0)
        throw BackendError(unit + ": SetUnitProperties: " + error.e.name + ": " + error.e.message);
    return applied(limits);
}

void SystemdBackend::attach(const std::string& id, const std::string& leaf, pid_t pid) {
    check_name("group", id);
    check_name("leaf", leaf);
    call_and_wait(scope_name(id, leaf, pid), allocation_scope_call(id, leaf, pid));
}

void SystemdBackend::start_delegated_scope(const std::string& unit, pid_t pid) {
    call_and_wait(unit, scope_start_call(unit, "resmgr.slice", pid, "resmgr allocations (delegated to resmgrd)", true));
}

void SystemdBackend::freeze(const std::string& id, bool frozen) {
    check_name("group", id);
    BusError error;
    const std::string unit = slice_name(id);
    if (sd_bus_call_method(bus_, kDest, kPath, kManager, frozen ? "FreezeUnit" : "ThawUnit", &error.e, nullptr, "s", unit.c_str()) < 0)
        throw BackendError(unit + ": " + (frozen ? "FreezeUnit: " : "ThawUnit: ") + error.e.name + ": " + error.e.message);
}

void SystemdBackend::signal(const std::string& id, int sig) {
    check_name("group", id);
    BusError error;
    const std::string unit = slice_name(id);
    if (sd_bus_call_method(bus_, kDest, kPath, kManager, "KillUnit", &error.e, nullptr, "ssi", unit.c_str(), "all", sig) < 0)
        throw BackendError(unit + ": KillUnit: " + error.e.name + ": " + error.e.message);
}

void SystemdBackend::destroy(const std::string& id) {
    check_name("group", id);
    const std::string unit = slice_name(id);
    // StopUnit alone would SIGTERM the scopes again and wait their stop timeout (90 s by
    // default) before SIGKILL; destroy means now, as cgroup.kill does in the cgroupfs backend.
    // An empty slice (the usual release: the command has exited) needs no kill.
    if (populated_dir(group_path(id))) {
        try {
            signal(id, SIGKILL);
        } catch (const BackendError& e) {
            spdlog::debug("{}: KillUnit before stop: {}", unit, e.what()); // e.g. nothing left to kill
        }
    }
    sd_bus_message* m = new_manager_call("StopUnit");
    Message guard(m);
    check(sd_bus_message_append(m, "ss", unit.c_str(), "replace"), unit);
    call_and_wait(unit, guard.release(), kNoSuchUnit); // a missing slice is gone already
}

std::vector<std::string> SystemdBackend::list_groups() {
    BusError error;
    sd_bus_message* raw = nullptr;
    if (sd_bus_call_method(bus_, kDest, kPath, kManager, "ListUnitsByPatterns", &error.e, &raw, "asas", 0, 1, "resmgr-*.slice") < 0)
        throw BackendError(std::string("ListUnitsByPatterns: ") + error.e.name + ": " + error.e.message);
    Message reply(raw);
    std::vector<std::string> out;
    check(sd_bus_message_enter_container(raw, 'a', "(ssssssouso)"), "ListUnitsByPatterns reply");
    const char *name, *description, *load, *active, *sub, *following, *object, *job_type, *job_path;
    std::uint32_t job_id;
    while (sd_bus_message_read(raw, "(ssssssouso)", &name, &description, &load, &active, &sub, &following, &object, &job_id,
                               &job_type, &job_path) > 0)
        if (auto id = id_from_slice(name); !id.empty()) out.push_back(id);
    return out;
}

std::size_t SystemdBackend::take_over_elsewhere(const std::string& id) {
    check_name("group", id);
    const std::string old = delegated_scope_dir(mount_) + "/groups/" + id;
    if (::access(old.c_str(), F_OK) != 0) return 0;
    const std::size_t moved = attach_processes_of(id, old, [](const std::string& leaf) { return valid_name(leaf) ? leaf : std::string{}; });
    if (populated_dir(old))
        throw BackendError(old + " still holds processes after " + std::to_string(moved) +
                           " moved (in a leaf whose name a systemd unit cannot carry, such as an agent named with '-' or '.', "
                           "or forking faster than they moved): left as it is");
    // The delegated subtree is resmgrd's to write: its emptied leaves and group go by rmdir.
    std::error_code ec;
    for (std::filesystem::directory_iterator it(old, ec), end; !ec && it != end; it.increment(ec))
        if (std::error_code type_error; it->is_directory(type_error)) ::rmdir(it->path().c_str());
    if (::rmdir(old.c_str()) < 0 && errno != ENOENT) throw BackendError("cannot remove the emptied group " + old + ": " + std::strerror(errno));
    return moved;
}

std::string SystemdBackend::group_path(const std::string& id) { return mount_ + "/resmgr.slice/" + slice_name(id); }

std::vector<pid_t> SystemdBackend::pids(const std::string& id) {
    check_name("group", id);
    std::vector<pid_t> out;
    std::error_code ec;
    std::string root = group_path(id);
    auto read_procs = [&](const std::string& dir) {
        std::ifstream in(dir + "/cgroup.procs");
        for (long pid; in >> pid;) out.push_back(static_cast<pid_t>(pid));
    };
    read_procs(root);
    for (auto& entry : std::filesystem::recursive_directory_iterator(root, ec))
        if (entry.is_directory(ec)) read_procs(entry.path().string());
    return out;
}

nlohmann::json SystemdBackend::describe() {
    return {{"backend", "systemd"}, {"parent_slice", "resmgr.slice"}, {"cgroup2_mount", mount_}, {"why", why_}};
}

} // namespace resmgr::cgroup
