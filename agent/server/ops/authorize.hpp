// Checks the operation groups share before they ask the lifecycle for a change: priority
// privileges, the policy's per-user limits, and who may put which process into a group.
#pragma once

#include "resmgr/json.hpp"
#include "server/router.hpp"

namespace resmgr::server {

bool may_use_any_priority(const Context& ctx, const Owner& peer);
// PERMISSION_DENIED when `priority` is above what priority_privileges lets the peer ask for.
void check_priority_privilege(const Context& ctx, const Priority& priority, const Owner& peer);
// Policy `limits`: RESOURCE_EXHAUSTED when the peer already holds as many of `status` as one
// user may (live allocations, queued requests or reservations).
void check_user_limit(const core::Ledger& ledger, const Owner& peer, AllocationStatus status, int counted_already = 0);
// What allocate and reserve check of a request before the ledger sees it (privilege, limits,
// exclusive files as the requester sees them), and the requester filled in.
void vet_allocation_request(const Context& ctx, AllocationRequest& request, const Owner& peer, AllocationStatus kind);
// Authorizes a process to attach (params already checked against their spec): the pid is the peer itself, or a child of the
// peer running as the peer's user (resmgr-run has its forked child placed before it execs).
lifecycle::AttachTarget attach_target(const Context& ctx, const nlohmann::json& params, const Owner& peer);

} // namespace resmgr::server
