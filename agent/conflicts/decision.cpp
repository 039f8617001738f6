#include "conflicts/decision.hpp"

#include <algorithm>

namespace resmgr::conflicts {

std::string_view to_string(OpenMode mode) {
    switch (mode) {
    case OpenMode::read: return "read";
    case OpenMode::write: return "write";
    case OpenMode::unknown: break;
    }
    return "unknown";
}

std::string_view to_string(Strategy strategy) {
    return strategy == Strategy::file_locking ? "file_locking" : "queue_and_serialize";
}

std::optional<Strategy> parse_strategy(std::string_view text) {
    if (text == "file_locking") return Strategy::file_locking;
    if (text == "queue_and_serialize") return Strategy::queue_and_serialize;
    return std::nullopt;
}

std::string_view to_string(Verdict verdict) {
    switch (verdict) {
    case Verdict::allow: return "allow";
    case Verdict::deny: return "deny";
    case Verdict::queue: break;
    }
    return "queue";
}

GuardPolicy guard_policy(const core::Policy::FileConflicts& policy) {
    GuardPolicy g;
    g.strategy = parse_strategy(policy.strategy).value_or(Strategy::queue_and_serialize);
    g.queue_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(policy.timeout);
    g.advisory = policy.enforcement == "advisory";
    g.allow_reads = policy.enforcement != "strict";
    g.exempt_cgroups = policy.exempt_cgroups;
    g.exempt_comms = policy.exempt_commands;
    g.max_queued_per_user = static_cast<size_t>(policy.max_queued_per_user);
    g.max_queued_total = static_cast<size_t>(policy.max_queued_total);
    return g;
}

bool in_subtree(std::string_view cgroup, std::string_view owner) {
    if (owner.empty() || cgroup.size() < owner.size() || cgroup.substr(0, owner.size()) != owner) return false;
    return cgroup.size() == owner.size() || owner == "/" || cgroup[owner.size()] == '/';
}

bool exempt(const Hold& hold, const Opener& opener, const GuardPolicy& policy, std::string* why) {
    auto because = [&](std::string text) {
        if (why) *why = std::move(text);
        return true;
    };
    if (!opener.cgroup.empty() && in_subtree(opener.cgroup, hold.owner_cgroup)) return because("owner");
    for (const auto& cgroup : policy.exempt_cgroups)
        if (!opener.cgroup.empty() && in_subtree(opener.cgroup, cgroup)) return because("exempt cgroup " + cgroup);
    if (!opener.comm.empty() && std::find(policy.exempt_comms.begin(), policy.exempt_comms.end(), opener.comm) != policy.exempt_comms.end())
        return because("exempt command " + opener.comm);
    return false;
}

Decision decide(const Hold& hold, const Opener& opener, const GuardPolicy& policy) {
    if (std::string why; exempt(hold, opener, policy, &why)) return {Verdict::allow, false, why};
    // An open whose mode could not be read counts as a write: the guard errs towards the holder.
    if (opener.mode == OpenMode::read && policy.allow_reads) return {Verdict::allow, false, "read"};
    const std::string what = opener.mode == OpenMode::read ? "read" : "write";
    if (policy.advisory) return {Verdict::allow, true, what + " from outside the holder (advisory)"};
    const Strategy strategy = hold.strategy.value_or(policy.strategy);
    if (strategy == Strategy::queue_and_serialize) return {Verdict::queue, true, what + " queued until " + hold.allocation_id + " lets go"};
    return {Verdict::deny, true, what + " from outside the holder"};
}

} // namespace resmgr::conflicts
