// systemd backend: transient units over D-Bus (sd-bus), the way systemd-run does it.
// group = slice resmgr-<id>.slice (systemd's dash naming puts it under resmgr.slice), limits as
// slice properties; leaf = transient scope resmgr-<id>-<leaf>-<pid>.scope in that slice.
// May call: cgroup/delegated_scope's layout (where the fast path kept a group it takes over).
#pragma once

#include <systemd/sd-bus.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cgroup/backend.hpp"

namespace resmgr::cgroup {

// Unit property of D-Bus type "t" (uint64); UINT64_MAX is systemd's "infinity".
struct UnitProperty {
    std::string name;
    std::uint64_t value;
    bool operator==(const UnitProperty&) const = default;
};

std::vector<UnitProperty> slice_properties(const Limits& limits);
std::string slice_name(const std::string& id);
std::string scope_name(const std::string& id, const std::string& leaf, pid_t pid);
// "resmgr-alloc_1.slice" -> "alloc_1"; empty when `unit` is not one of ours.
std::string id_from_slice(const std::string& unit);
// scope_name's leaf: ("alloc_1", "resmgr-alloc_1-main-42.scope") -> "main"; empty when `unit` is
// not a scope of allocation `id`.
std::string leaf_of_scope(const std::string& id, const std::string& unit);

class SystemdBackend : public CgroupBackend {
public:
    // Connects to the system bus; throws BackendError when systemd cannot be reached. `why` says
    // why this backend runs rather than the delegated fast path (delegated_scope.hpp), for doctor.
    explicit SystemdBackend(std::string cgroup2_mount, std::string why = {});
    ~SystemdBackend() override;
    SystemdBackend(const SystemdBackend&) = delete;
    SystemdBackend& operator=(const SystemdBackend&) = delete;

    std::string name() const override { return "systemd"; }
    bool enforces_limits() const override { return true; }
    Enforcement create(const std::string& id, const Limits& limits) override;
    Enforcement create_attached(const std::string& id, const Limits& limits, const std::string& leaf, pid_t pid) override;
    Enforcement update(const std::string& id, const Limits& limits) override;
    void attach(const std::string& id, const std::string& leaf, pid_t pid) override;
    void freeze(const std::string& id, bool frozen) override;
    void signal(const std::string& id, int signal) override;
    void destroy(const std::string& id) override;
    std::vector<std::string> list_groups() override;
    std::string group_path(const std::string& id) override;
    std::vector<pid_t> pids(const std::string& id) override;
    nlohmann::json describe() override;
    // From the delegated scope's group (delegated_scope.hpp) a previous resmgrd used: each
    // process gets a scope of its leaf here, and the emptied cgroups are removed.
    std::size_t take_over_elsewhere(const std::string& id) override;

    // Starts transient scope `unit` in resmgr.slice holding `pid`, with Delegate=yes (the
    // subtree is then the caller's to write), and waits until systemd has made it.
    void start_delegated_scope(const std::string& unit, pid_t pid);

private:
    static int on_job_removed(sd_bus_message* m, void* self, sd_bus_error* error);
    // Calls a Manager method that returns a job object path (taking `call`), returns the path;
    // nullopt when systemd answered the D-Bus error `tolerated_error`, which is then no failure.
    std::optional<std::string> start_job(const std::string& unit, sd_bus_message* call, const char* tolerated_error = nullptr);
    // start_job, then waits for the job to finish. False when `tolerated_error` came instead.
    bool call_and_wait(const std::string& unit, sd_bus_message* call, const char* tolerated_error = nullptr);
    // Waits until every (unit, job path) has finished; throws unless each finished "done".
    void wait_jobs(const std::vector<std::pair<std::string, std::string>>& jobs);
    // StartTransientUnit calls for the allocation's slice and for a scope of `pid` in it.
    sd_bus_message* slice_start_call(const std::string& id, const Limits& limits);
    sd_bus_message* scope_start_call(const std::string& unit, const std::string& slice, pid_t pid, const std::string& description,
                                     bool delegate);
    sd_bus_message* allocation_scope_call(const std::string& id, const std::string& leaf, pid_t pid); // leaf of an allocation
    sd_bus_message* new_manager_call(const char* method);
    Enforcement applied(const Limits& limits) const;

    std::string mount_, why_;
    sd_bus* bus_ = nullptr;
    sd_bus_slot* job_slot_ = nullptr;
    std::map<std::string, std::string> finished_jobs_; // job path -> result
};

} // namespace resmgr::cgroup
