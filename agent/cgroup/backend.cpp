// Enforcement report serialisation, and the backends' shared create-then-attach.
#include "cgroup/backend.hpp"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

namespace resmgr::cgroup {

nlohmann::json Enforcement::to_json() const {
    nlohmann::json j = nlohmann::json::object(); // key by key: see resmgr::to_json(Allocation)
    j["enforced"] = unenforced.empty();
    j["applied"] = applied;
    j["unenforced"] = unenforced;
    return j;
}

std::shared_ptr<const Enforcement> EnforcementPool::share(Enforcement e) {
    if (++shared_since_sweep_ >= kSweepEvery) {
        std::erase_if(pool_, [](const auto& entry) { return entry.second.expired(); });
        shared_since_sweep_ = 0;
    }
    auto& kept = pool_[e];
    if (auto alive = kept.lock()) return alive;
    auto made = std::make_shared<const Enforcement>(std::move(e));
    kept = made;
    return made;
}

std::shared_ptr<const Enforcement> EnforcementPool::with_unenforced(const std::shared_ptr<const Enforcement>& shared,
                                                                    std::vector<std::string> reasons) {
    if (reasons.empty()) return shared;
    Enforcement more = *shared;
    more.unenforced.insert(more.unenforced.end(), std::make_move_iterator(reasons.begin()), std::make_move_iterator(reasons.end()));
    return share(std::move(more));
}

Enforcement CgroupBackend::create_attached(const std::string& id, const Limits& limits, const std::string& leaf, pid_t pid) {
    Enforcement enforcement = create(id, limits);
    try {
        attach(id, leaf, pid);
    } catch (const BackendError&) {
        destroy_after_failed_attach(id);
        throw;
    }
    return enforcement;
}

Enforcement CgroupBackend::create_for_spawn(const std::string& id, const Limits& limits, const std::string& leaf, std::string& spawn_dir) {
    Enforcement enforcement = create(id, limits);
    try {
        spawn_dir = make_spawn_leaf(id, leaf);
    } catch (const BackendError&) {
        destroy_after_failed_attach(id);
        throw;
    }
    return enforcement;
}

std::string CgroupBackend::make_spawn_leaf(const std::string&, const std::string&) { return {}; }

std::size_t CgroupBackend::take_over_elsewhere(const std::string&) { return 0; }

std::size_t CgroupBackend::attach_processes_of(const std::string& id, const std::string& old_group,
                                               const std::function<std::string(const std::string&)>& leaf_of) {
    namespace fs = std::filesystem;
    std::size_t moved = 0;
    std::error_code list_error;
    for (fs::directory_iterator it(old_group, list_error), end; !list_error && it != end; it.increment(list_error)) {
        std::error_code type_error;
        const std::string leaf = it->is_directory(type_error) ? leaf_of(it->path().filename().string()) : "";
        if (leaf.empty()) continue;
        const std::string leaf_dir = it->path().string();
        // A process may fork while its siblings move: the leaf is read again until it is empty.
        for (int round = 0; round < 10; ++round) {
            std::ifstream procs(leaf_dir + "/cgroup.procs");
            std::vector<pid_t> pids;
            for (long pid; procs >> pid;) pids.push_back(static_cast<pid_t>(pid));
            if (pids.empty()) break;
            for (pid_t pid : pids) {
                // Still in this leaf as /proc says ("0::<path under the mount>"): a pid that
                // exited since the listing and was given to another process is not moved.
                std::ifstream proc_cgroup("/proc/" + std::to_string(pid) + "/cgroup");
                std::string line, now_in;
                while (std::getline(proc_cgroup, line))
                    if (line.starts_with("0::")) now_in = line.substr(3);
                if (now_in.empty() || !leaf_dir.ends_with(now_in)) continue;
                try {
                    attach(id, leaf, pid);
                    ++moved;
                } catch (const BackendError&) {
                    if (::kill(pid, 0) == 0) throw; // it is still there: the move itself failed
                }
            }
        }
    }
    if (list_error) throw BackendError("cannot list " + old_group + ": " + list_error.message());
    return moved;
}

bool CgroupBackend::populated_dir(const std::string& dir) {
    std::ifstream events(dir + "/cgroup.events");
    for (std::string key, value; events >> key >> value;)
        if (key == "populated") return value != "0";
    return ::access(dir.c_str(), F_OK) == 0; // unreadable: something may still run there, unless it is gone
}

void CgroupBackend::destroy_after_failed_attach(const std::string& id) noexcept {
    try {
        destroy(id);
    } catch (const std::exception& e) {
        spdlog::warn("{}: removing the group after a failed attach: {}", id, e.what());
    }
}

} // namespace resmgr::cgroup
