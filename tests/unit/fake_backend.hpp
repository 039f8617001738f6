// An in-memory CgroupBackend that records what it was asked, and fails on command.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cgroup/backend.hpp"

namespace resmgr {

class FakeBackend : public cgroup::CgroupBackend {
public:
    std::map<std::string, cgroup::Limits> groups;
    std::map<std::string, std::vector<pid_t>> attached;
    std::vector<std::string> destroyed;
    std::vector<std::pair<std::string, int>> signals;
    std::string root = "/fake"; // a test pointing this at a temp dir can write cgroup.events there
    std::set<std::string> fail; // operation names that throw: "create", "update", "destroy", "attach", "take_over"
    // Called with the group's directory as it is made (a test writes the fresh group's files).
    std::function<void(const std::string& dir)> on_create;

    std::string name() const override { return "fake"; }
    bool enforces_limits() const override { return true; }
    cgroup::Enforcement create(const std::string& id, const cgroup::Limits& limits) override {
        maybe_fail("create");
        groups[id] = limits;
        if (on_create) on_create(root + "/" + id);
        return {{"cpu.max"}, {}};
    }
    cgroup::Enforcement update(const std::string& id, const cgroup::Limits& limits) override {
        maybe_fail("update");
        groups.at(id) = limits;
        return {{"cpu.max"}, {}};
    }
    void attach(const std::string& id, const std::string&, pid_t pid) override {
        maybe_fail("attach");
        attached[id].push_back(pid);
    }
    std::map<std::string, bool> frozen;
    void freeze(const std::string& id, bool f) override {
        maybe_fail("freeze");
        frozen[id] = f;
    }
    void signal(const std::string& id, int sig) override { signals.emplace_back(id, sig); }
    void destroy(const std::string& id) override {
        maybe_fail("destroy");
        groups.erase(id);
        destroyed.push_back(id);
    }
    std::vector<std::string> list_groups() override {
        std::vector<std::string> out;
        for (auto& [id, _] : groups) out.push_back(id);
        return out;
    }
    std::string group_path(const std::string& id) override { return groups.count(id) ? root + "/" + id : ""; }
    std::vector<pid_t> pids(const std::string& id) override { return attached[id]; }
    nlohmann::json describe() override { return {{"backend", "fake"}}; }
    // Processes a previous resmgrd left in another layout, by group; taken over once.
    std::map<std::string, std::size_t> elsewhere;
    std::size_t take_over_elsewhere(const std::string& id) override {
        maybe_fail("take_over");
        auto it = elsewhere.find(id);
        if (it == elsewhere.end()) return 0;
        const std::size_t moved = it->second;
        elsewhere.erase(it);
        return moved;
    }

private:
    void maybe_fail(const std::string& op) {
        if (fail.count(op)) throw cgroup::BackendError("injected " + op + " failure");
    }
};

} // namespace resmgr
