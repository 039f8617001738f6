// Accounting-only: no writable cgroup v2 hierarchy. Admission and bookkeeping still work;
// every limit is reported unenforced, and processes run unconfined.
#pragma once

#include "cgroup/backend.hpp"

namespace resmgr::cgroup {

class AccountingBackend : public CgroupBackend {
public:
    explicit AccountingBackend(std::string reason) : reason_(std::move(reason)) {}
    std::string name() const override { return "accounting"; }
    bool enforces_limits() const override { return false; }
    Enforcement create(const std::string& id, const Limits& limits) override;
    Enforcement update(const std::string& id, const Limits& limits) override { return create(id, limits); }
    void attach(const std::string&, const std::string&, pid_t) override {}
    void freeze(const std::string&, bool) override;
    void signal(const std::string&, int) override;
    void destroy(const std::string&) override {}
    std::vector<std::string> list_groups() override { return {}; }
    std::string group_path(const std::string&) override { return {}; }
    std::vector<pid_t> pids(const std::string&) override { return {}; }
    nlohmann::json describe() override;

private:
    std::string reason_;
};

} // namespace resmgr::cgroup
