// Who a uid is in the user database (name, groups), for priority_privileges. Thin and
// kernel-facing: the decision (core::may_use_any_priority) is pure and tested apart.
#pragma once

#include <cstdint>

#include "core/policy.hpp"

namespace resmgr::lifecycle {

// getpwuid_r and getgrouplist; a uid without a passwd entry has no name and no groups.
core::UserIdentity lookup_user(std::uint32_t uid);

} // namespace resmgr::lifecycle
