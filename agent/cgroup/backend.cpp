// Enforcement report serialisation.
#include "cgroup/backend.hpp"

namespace resmgr::cgroup {

nlohmann::json Enforcement::to_json() const {
    return {{"enforced", unenforced.empty()}, {"applied", applied}, {"unenforced", unenforced}};
}

} // namespace resmgr::cgroup
