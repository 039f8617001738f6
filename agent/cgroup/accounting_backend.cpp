// Accounting-only backend (see accounting_backend.hpp).
#include "cgroup/accounting_backend.hpp"

namespace resmgr::cgroup {

Enforcement AccountingBackend::create(const std::string&, const Limits& l) {
    Enforcement e;
    const std::string why = ": accounting-only mode (" + reason_ + ")";
    if (l.cpu_quota_us) e.unenforced.push_back("cpu.max=" + std::to_string(*l.cpu_quota_us) + " " + std::to_string(l.cpu_period_us) + why);
    if (l.cpu_weight != 100) e.unenforced.push_back("cpu.weight=" + std::to_string(l.cpu_weight) + why);
    if (l.memory_max) e.unenforced.push_back("memory.max=" + std::to_string(*l.memory_max) + why);
    if (l.memory_high) e.unenforced.push_back("memory.high=" + std::to_string(*l.memory_high) + why);
    if (l.pids_max) e.unenforced.push_back("pids.max=" + std::to_string(*l.pids_max) + why);
    return e;
}

void AccountingBackend::freeze(const std::string&, bool) { throw BackendError("freeze is not supported in accounting-only mode"); }
void AccountingBackend::signal(const std::string&, int) { throw BackendError("signalling a group is not supported in accounting-only mode"); }

nlohmann::json AccountingBackend::describe() {
    return {{"backend", "accounting"}, {"reason", reason_},
            {"note", "processes started by resmgr-run run unconfined; limits are recorded, not enforced"}};
}

} // namespace resmgr::cgroup
