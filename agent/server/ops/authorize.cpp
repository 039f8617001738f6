#include "server/ops/authorize.hpp"

#include <algorithm>
#include <cctype>

namespace resmgr::server {

using nlohmann::json;

namespace {

void check_agent_name(const std::string& name) {
    bool ok = !name.empty() && name.size() <= 64 && name.front() != '.' && name.front() != '-' &&
              std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; });
    if (!ok)
        throw ApiError(ErrorCode::INVALID_REQUEST, "invalid agent name '" + name + "'",
                       "1-64 characters of A-Z a-z 0-9 _ - ., not starting with '.' or '-'", {"agent"});
}

void check_files_limit(const core::Ledger& ledger, const AllocationRequest& request) {
    const int most = ledger.policy().limits.files_per_allocation;
    if (static_cast<int>(request.constraints.exclusive_access.size()) <= most) return;
    throw ApiError(ErrorCode::POLICY_VIOLATION, "Too many exclusive files: " + std::to_string(request.constraints.exclusive_access.size()),
                   "the policy's limits.files_per_allocation is " + std::to_string(most), {"exclusive_files"});
}

} // namespace

bool may_use_any_priority(const Context& ctx, const Owner& peer) {
    return peer.uid == 0 || (ctx.lookup_user && core::may_use_any_priority(ctx.ledger().policy().priority_privileges, ctx.lookup_user(peer.uid)));
}

void check_priority_privilege(const Context& ctx, const Priority& priority, const Owner& peer) {
    const int cap = ctx.ledger().policy().priority_privileges.max_priority;
    if (priority.value <= cap || may_use_any_priority(ctx, peer)) return;
    const Priority allowed{cap};
    throw ApiError(ErrorCode::PERMISSION_DENIED,
                   "Priority " + std::to_string(priority.value) + " (" + priority.band_name() + ") is for root and the users and groups in priority_privileges",
                   "uid " + std::to_string(peer.uid) + " may ask for at most " + std::to_string(cap) + " (" + allowed.band_name() + ")",
                   {"priority"}, {"Ask with \"priority\": \"" + allowed.band_name() + "\" or lower"});
}

void check_user_limit(const core::Ledger& ledger, const Owner& peer, AllocationStatus status, int counted_already) {
    const auto& limits = ledger.policy().limits;
    if (peer.uid == 0 && !limits.include_root) return;
    const bool queued = status == AllocationStatus::queued, reserved = status == AllocationStatus::reserved;
    const int most = queued ? limits.queued_per_user : reserved ? limits.reservations_per_user : limits.allocations_per_user;
    const char* what = queued ? "queued_per_user" : reserved ? "reservations_per_user" : "allocations_per_user";
    // A scan, not a counter: at the 10,000 allocations a node holds it costs microseconds.
    int held = 0;
    for (const auto& [_, a] : ledger.allocations()) {
        const bool same_kind = queued ? a.status == AllocationStatus::queued
                             : reserved ? a.status == AllocationStatus::reserved
                                        : core::holds_capacity(a) || a.status == AllocationStatus::expired;
        held += a.owner.uid == peer.uid && same_kind;
    }
    held -= counted_already;
    if (held < most) return;
    throw ApiError(ErrorCode::RESOURCE_EXHAUSTED, "uid " + std::to_string(peer.uid) + " already holds " + std::to_string(held) + " " +
                                                      (queued ? "queued requests" : reserved ? "reservations" : "allocations"),
                   std::string("the policy's limits.") + what + " is " + std::to_string(most), {std::string("limits.") + what},
                   {"Release some first (resmgr status lists them)"});
}

void vet_allocation_request(const Context& ctx, AllocationRequest& request, const Owner& peer, AllocationStatus kind) {
    check_priority_privilege(ctx, request.priority, peer);
    check_files_limit(ctx.ledger(), request);
    check_user_limit(ctx.ledger(), peer, kind);
    ctx.files.normalize(request, peer);
    if (request.requester.empty()) request.requester = "uid:" + std::to_string(peer.uid) + " pid:" + std::to_string(peer.pid);
}

lifecycle::AttachTarget attach_target(const Context& ctx, const json& params, const Owner& peer) {
    lifecycle::AttachTarget target;
    target.leaf = param_string(params, "leaf");
    target.agent = param_string(params, "agent");
    if (!target.agent.empty()) {
        check_agent_name(target.agent);
        if (!target.leaf.empty()) throw ApiError(ErrorCode::INVALID_REQUEST, "give 'leaf' or 'agent', not both", {}, {"leaf", "agent"});
        // Each agent in its own child group, so its CPU, memory and OOM kills are its own.
        target.leaf = "agent-" + target.agent;
    }
    if (target.leaf.empty()) target.leaf = "main";
    target.pid = *param_integer(params, "pid");
    // pid 0: the process that connected is gone, so its pid may be anyone's by now.
    if (peer.pid <= 0)
        throw ApiError(ErrorCode::PERMISSION_DENIED, "The process that opened this connection has exited; it can attach nothing",
                       "a connection handed to another process does not carry its first owner's pid", {"pid"},
                       {"Connect from the process to be attached, or from its parent"});
    // Itself, or its own child, not yet anyone else: while the peer waits for this answer it
    // cannot reap the child, so the pid cannot have been reused. Same user either way, so no
    // set-uid program is caught.
    const auto process = ctx.identify ? ctx.identify(static_cast<long>(target.pid)) : std::nullopt;
    const bool same_user = process && (peer.uid == 0 || (process->real_uid == peer.uid && process->effective_uid == peer.uid));
    const bool own = target.pid == peer.pid || (process && process->ppid == peer.pid);
    if (!own || !same_user)
        throw ApiError(ErrorCode::PERMISSION_DENIED, "A process may only attach itself or its own child",
                       "pid " + std::to_string(target.pid) + " is not peer pid " + std::to_string(peer.pid) +
                           " nor a child of it running as uid " + std::to_string(peer.uid),
                       {}, {"Connect from the process to be attached, or from its parent (resmgr-run does this)"});
    return target;
}

} // namespace resmgr::server
