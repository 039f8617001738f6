// Enforcement report serialisation, and the backends' shared create-then-attach.
#include "cgroup/backend.hpp"

#include <spdlog/spdlog.h>

namespace resmgr::cgroup {

nlohmann::json Enforcement::to_json() const {
    return {{"enforced", unenforced.empty()}, {"applied", applied}, {"unenforced", unenforced}};
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

void CgroupBackend::destroy_after_failed_attach(const std::string& id) noexcept {
    try {
        destroy(id);
    } catch (const std::exception& e) {
        spdlog::warn("{}: removing the group after a failed attach: {}", id, e.what());
    }
}

} // namespace resmgr::cgroup
