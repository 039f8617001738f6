// The allocation operations: allocate, reserve, release, reallocate, status, attach, detach.
// Each parses and authorizes its request, asks the lifecycle for the change, and shapes the
// seed's reply; none of them changes the ledger, a cgroup or the state itself.
#include <iterator>
#include <optional>

#include <spdlog/spdlog.h>

#include "core/deadlines.hpp"
#include "server/ops/authorize.hpp"
#include "server/ops/sizing.hpp"
#include "history/history.hpp"

namespace resmgr::server {

using nlohmann::json;

namespace {

// allocate's "attach": the first process of the group, or (spawn) a leaf its caller starts it in.
const ParamSpec kFirstProcess[] = {
    {"pid", ParamType::integer, false, 1}, {"leaf", ParamType::string}, {"agent", ParamType::string}, {"spawn", ParamType::boolean}};

lifecycle::AttachTarget first_process(const Context& ctx, const json& attach, const Owner& peer) {
    check_params(attach, kFirstProcess);
    const bool has_pid = attach.contains("pid") && !attach["pid"].is_null();
    if (!param_flag(attach, "spawn")) {
        if (!has_pid)
            throw ApiError(ErrorCode::INVALID_REQUEST, "'attach' needs a 'pid', or \"spawn\": true", {}, {"attach.pid"});
        return attach_target(ctx, attach, peer);
    }
    // The kernel checks the caller's right to start a process there (clone3 CLONE_INTO_CGROUP),
    // so this grants nothing. Agents take a slot with their pid, through attach.
    const std::string leaf = param_string(attach, "leaf");
    if (has_pid || !param_string(attach, "agent").empty() || (!leaf.empty() && leaf != "main"))
        throw ApiError(ErrorCode::INVALID_REQUEST, "\"spawn\": true takes no 'pid' or 'agent', and only the leaf \"main\"", {},
                       {"attach.spawn"}, {"Give \"pid\" to attach a running process, or attach an agent after allocate"});
    lifecycle::AttachTarget target;
    target.spawn = true;
    target.leaf = "main";
    return target;
}

SuccessBody queued_reply(const Context& ctx, const Allocation& a) {
    SuccessBody body;
    const auto position = core::queue_position(ctx.ledger(), a.allocation_id);
    body.result = {{"allocation_id", a.allocation_id}, {"allocation", ctx.lifecycle.describe(a)}, {"queue_position", position},
                   {"capacity", ctx.ledger().admission().availability().to_json()}};
    body.recommendations.push_back("Queued: it starts when capacity frees, in priority order, then arrival order");
    return body;
}

// "resources": "auto": the sizing of the caller's runs of its workflow_type (else workflow), or,
// with too few runs, no caps (the policy's default), saying how many runs there are.
json auto_resources(const Call& call, json& params, std::vector<std::string>& notes) {
    const std::string type = param_string(params, "workflow_type"), workflow = param_string(params, "workflow_id");
    json resources = json::object();
    if (!call.ctx.history || !call.ctx.history->store()) {
        notes.push_back("resources \"auto\": no history database, so no caps (see resmgr doctor)");
        params["resources"] = resources;
        return {{"sized_from", nullptr}, {"reason", "no history database"}};
    }
    const SizedFromHistory sized = size_from_history(*call.ctx.history->store(), call.peer.uid, type, workflow, call.ctx.clock());
    const analytics::Sizing& s = sized.sizing;
    if (s.cpu_cores) resources["cpu_cores"] = *s.cpu_cores;
    if (s.memory_bytes) resources["memory"] = std::to_string(*s.memory_bytes);
    params["resources"] = resources;
    if (!s.reason.empty()) notes.push_back("resources \"auto\" from " + sized.basis + ": " + s.reason + "; left uncapped where no figure");
    json out = sizing_json(s);
    out["sized_from"] = sized.basis;
    out["resources"] = resources;
    return out;
}

SuccessBody allocate(const Call& call) {
    Context& ctx = call.ctx;
    json params = call.params();
    const json booking = params.value("booking", json(nullptr));
    params.erase("booking");
    std::vector<std::string> notes;
    json sizing = nullptr;
    if (auto it = params.find("resources"); it != params.end() && it->is_string()) {
        if (*it != "auto")
            throw ApiError(ErrorCode::INVALID_REQUEST, "'resources' must be an object or \"auto\"", "got " + it->dump(), {"resources"});
        sizing = auto_resources(call, params, notes);
    }
    AllocationRequest req = parse_allocation_request(params);
    vet_allocation_request(ctx, req, call.peer, AllocationStatus::active);
    std::optional<lifecycle::AttachTarget> first;
    if (auto it = call.params().find("attach"); it != call.params().end() && !it->is_null()) {
        first = first_process(ctx, *it, call.peer);
        // An agent placed by allocate cannot wait for a slot: while starts are held it is refused.
        if (const std::string held = ctx.pressure.agent_starts_held(); !first->agent.empty() && !held.empty())
            throw ApiError(ErrorCode::RESOURCE_EXHAUSTED, "New agent starts are held by the pressure responder (queue_agents)", held, {"agents"},
                           {"Allocate without \"attach\", then attach the agent with \"wait_slot\" (resmgr-run --agent does)"});
    }
    // A placement's booking is checked in etcd, and the room other bookings hold is kept free.
    const std::optional<cluster::Booking> booked = redeem_booking(ctx, req, booking);
    // Cluster-scoped files and the cluster's agent slots are taken in etcd first: no node admits
    // what another holds.
    const bool wait = param_flag(call.params(), "wait");
    const ClusterShare share = take_cluster_share(ctx, req, wait);
    const Allocation* admitted = nullptr;
    try {
        admitted = &ctx.lifecycle.allocate(req, call.peer, param_flag(call.params(), "supervised"), wait, first,
                                           [&] { check_user_limit(ctx.ledger(), call.peer, AllocationStatus::queued, 1); },
                                           !share.held_elsewhere.empty());
    } catch (...) {
        bind_cluster_share(ctx, share, nullptr); // given back
        throw;
    }
    const Allocation& a = *admitted;
    bind_cluster_share(ctx, share, &a);
    if (a.status == AllocationStatus::queued) {
        SuccessBody body = queued_reply(ctx, a);
        if (!share.held_elsewhere.empty())
            body.recommendations.push_back(share.held_elsewhere + ": queued until it is free here (the claims are read once a second), then claimed");
        return body;
    }
    if (booked) booking_admitted(ctx, *booked);
    const std::string& id = a.allocation_id;
    const std::string group = ctx.lifecycle.backend().group_path(id);
    const cgroup::Enforcement* enf = ctx.lifecycle.enforcement(id);
    json described = ctx.lifecycle.describe(a);
    json limits = described["limits"];
    SuccessBody body;
    // Filled key by key, as to_json(Allocation) is (see there).
    json& result = body.result;
    result["allocation_id"] = id;
    result["allocation"] = std::move(described);
    result["cgroup_path"] = group;
    result["enforcement"] = enf ? enf->to_json() : json(nullptr);
    json& response = result["allocation_response"];
    response["response_id"] = random_id("resp");
    response["status"] = "approved";
    response["timestamp"] = format_timestamp(a.timestamp);
    response["allocated_resources"] = to_json(a.resources);
    response["restrictions"]["limits"] = std::move(limits);
    response["restrictions"]["expires_at"] = a.expires_at ? json(format_timestamp(*a.expires_at)) : json(nullptr);
    response["alternatives"] = json::array();
    result["capacity"] = ctx.ledger().admission().availability().to_json();
    if (first && !first->spawn) body.result["attached"] = {{"pid", first->pid}, {"leaf", first->leaf}};
    if (first && !first->spawn_dir.empty()) body.result["spawn_into"] = first->spawn_dir;
    // Its temporary directory (resmgr-run makes it the command's TMPDIR) and what storage_gb got.
    if (const json& d = body.result["allocation"]; d.contains("tmpdir")) {
        body.result["tmpdir"] = d["tmpdir"];
        body.result["storage"] = d["storage"];
        if (a.resources.storage_bytes && !d["storage"].value("enforced", false))
            body.recommendations.push_back("storage_gb is admitted but not enforced here: " + d["storage"].value("reason", std::string()));
    }
    if (!sizing.is_null()) body.result["sizing"] = sizing;
    if (booked) body.result["booking_id"] = booked->booking_id;
    for (auto& note : notes) body.recommendations.push_back(note);
    body.resources_affected = 1;
    if (enf && !enf->unenforced.empty())
        body.recommendations.push_back("Some limits are not enforced on this host (" + std::to_string(enf->unenforced.size()) +
                                       "); see result.enforcement and `resmgr doctor`");
    return body;
}

SuccessBody reserve(const Call& call) {
    Context& ctx = call.ctx;
    json params = call.params();
    const std::string id = param_string(params, "reservation_id");
    if (!id.empty() && (id.size() > 64 || id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != std::string::npos))
        throw ApiError(ErrorCode::INVALID_REQUEST, "'reservation_id' may hold only letters, digits and _ (at most 64)", {}, {"reservation_id"});
    const std::string start_text = param_string(params, "start_time");
    auto start = parse_timestamp(start_text);
    if (!start) throw ApiError(ErrorCode::INVALID_REQUEST, "'start_time' must be an RFC 3339 timestamp such as 2025-01-15T15:00:00Z",
                               "got " + start_text, {"start_time"});
    params.erase("reservation_id");
    params.erase("start_time");
    if (!params.contains("workflow_id") || params["workflow_id"].is_null()) params["workflow_id"] = id.empty() ? "reservation" : id;
    AllocationRequest req = parse_allocation_request(params);
    vet_allocation_request(ctx, req, call.peer, AllocationStatus::reserved);
    refuse_cluster_share_in_reservation(ctx, req);
    const Allocation& a = ctx.lifecycle.reserve(req, id, *start, call.peer);
    SuccessBody body;
    body.result = {{"reservation_id", a.allocation_id}, {"allocation_id", a.allocation_id}, {"allocation", ctx.lifecycle.describe(a)},
                   {"capacity", ctx.ledger().admission().availability().to_json()}};
    body.resources_affected = 1;
    body.recommendations.push_back("At start_time the reservation becomes an active allocation with its own cgroup; join it with "
                                   "resmgr-run --allocation " + a.allocation_id);
    return body;
}

SuccessBody release(const Call& call) {
    std::optional<int> exit_status;
    if (auto status = param_integer(call.params(), "exit_status")) exit_status = static_cast<int>(*status);
    return call.ctx.lifecycle.release(param_string(call.params(), "allocation_id"), call.peer, exit_status, call.param("force").get<bool>());
}

SuccessBody reallocate(const Call& call) {
    Context& ctx = call.ctx;
    const std::string id = param_string(call.params(), "allocation_id");
    const Allocation& current = ctx.ledger().authorize(id, call.peer);
    // Fields not named keep their current value.
    const json& changes = call.params()["resources"];
    json merged = to_json(current.resources);
    merged.erase("memory_gb");
    merged["memory"] = std::to_string(current.resources.memory_bytes);
    merged.erase("memory_bytes");
    // The temporary directory's quota is set once, at allocate.
    if (changes.contains("storage_gb"))
        throw ApiError(ErrorCode::INVALID_REQUEST, "'resources.storage_gb' cannot be changed by reallocate",
                       "the temporary directory's size is admitted and its quota set at allocate", {"resources.storage_gb"},
                       {"Release and allocate again with the new storage_gb"});
    if (current.resources.storage_bytes) merged["storage_gb"] = std::to_string(current.resources.storage_bytes);
    merged.erase("storage_bytes");
    if (changes.contains("memory_gb")) merged.erase("memory");
    merged.update(changes);
    if (merged.contains("pids") && merged["pids"].is_null()) merged.erase("pids");
    const Resources wanted = parse_resources(merged, "resources");
    const Allocation before = ctx.lifecycle.reallocate(id, wanted, call.peer);
    const cgroup::Enforcement* enf = ctx.lifecycle.enforcement(id);
    SuccessBody body;
    body.result = {{"allocation_id", id}, {"previous_resources", to_json(before.resources)},
                   {"allocation", ctx.lifecycle.describe(*ctx.ledger().find(id))}, {"enforcement", enf ? enf->to_json() : json(nullptr)},
                   {"capacity", ctx.ledger().admission().availability().to_json()}};
    body.resources_affected = 1;
    return body;
}

SuccessBody status(const Call& call) {
    Context& ctx = call.ctx;
    const std::string id = param_string(call.params(), "allocation_id");
    const std::string workflow = param_string(call.params(), "workflow_id");
    if (!id.empty() && !ctx.ledger().find(id)) throw ApiError(ErrorCode::NOT_FOUND, "No allocation with id '" + id + "'");
    auto& backend = ctx.lifecycle.backend();
    // One allocation by id, or a page in id order: {"after": the last id seen, "limit": N}
    // (without them, every allocation, as before). Each costs what it answers (issue 12).
    const auto& all = ctx.ledger().allocations();
    const std::string after = param_string(call.params(), "after");
    const auto limit = call.params().contains("limit") ? call.params().at("limit").get<size_t>() : all.size() + 1;
    auto it = !id.empty() ? all.find(id) : after.empty() ? all.begin() : all.upper_bound(after);
    const auto end = !id.empty() ? std::next(it) : all.end();
    json list = json::array();
    std::optional<std::string> more_after;
    for (; it != end; ++it) {
        const auto& [aid, a] = *it;
        if (!workflow.empty() && a.workflow_id != workflow) continue;
        if (list.size() == limit) {
            more_after = list.back()["allocation_id"].get<std::string>();
            break;
        }
        json d = ctx.lifecycle.describe(a);
        try {
            d["pids"] = backend.pids(aid).size();
        } catch (const cgroup::BackendError& e) {
            d["pids"] = nullptr;
            d["pids_error"] = e.what();
        }
        list.push_back(d);
    }
    SuccessBody body;
    body.result = {{"allocations", list}, {"capacity", ctx.ledger().admission().availability().to_json()},
                   {"backend", {{"name", backend.name()}, {"enforces_limits", backend.enforces_limits()}}}};
    // The next page starts after this id; absent on the last page.
    if (more_after) body.result["next_after"] = *more_after;
    // Live adjustments in progress: tune's loops and whether balance is lending.
    if (json loops = ctx.tuner.to_json(); !loops.empty()) body.result["tuning"] = loops;
    if (const auto& on = ctx.lending.settings()) body.result["balancing"] = {{"since", format_timestamp(on->since)}, {"strategy", on->strategy_name}};
    if (!backend.enforces_limits())
        body.recommendations.push_back("Backend " + backend.name() +
                                       " enforces no limits on this host: they are recorded, not applied (see `resmgr doctor`)");
    return body;
}

SuccessBody attach(const Call& call) {
    Context& ctx = call.ctx;
    const std::string id = param_string(call.params(), "allocation_id");
    const lifecycle::AttachTarget target = attach_target(ctx, call.params(), call.peer);
    ctx.ledger().authorize(id, call.peer);
    SuccessBody body;
    body.result = json::object();
    if (target.agent.empty()) {
        ctx.lifecycle.attach(id, target);
    } else {
        const core::SlotDecision slot = ctx.agent_starts.start(id, target, call.peer.uid, param_duration(call.params(), "wait_slot"),
                                                                       param_duration(call.params(), "wait_held"));
        if (slot.verdict == core::SlotVerdict::queued) {
            body.result = {{"allocation_id", id}, {"agent", target.agent}, {"queued", true}, {"queue_position", slot.position},
                           {"waited_seconds", static_cast<double>(slot.waited.count()) / 1000.0}};
            body.recommendations.push_back("Queued for an agent slot: ask again (the same request) until it starts");
            return body;
        }
        body.result["slot_wait_seconds"] = static_cast<double>(slot.waited.count()) / 1000.0;
    }
    auto& backend = ctx.lifecycle.backend();
    body.result.update({{"allocation_id", id}, {"pid", target.pid}, {"leaf", target.leaf}, {"cgroup_path", backend.group_path(id)},
                        {"enforces_limits", backend.enforces_limits()}});
    if (!target.agent.empty()) body.result["agent"] = target.agent;
    if (json d = ctx.lifecycle.describe(*ctx.ledger().find(id)); d.contains("tmpdir")) body.result["tmpdir"] = d["tmpdir"];
    body.resources_affected = 1;
    return body;
}

SuccessBody detach(const Call& call) {
    const std::string id = param_string(call.params(), "allocation_id");
    const std::string agent = param_string(call.params(), "agent");
    call.ctx.ledger().authorize(id, call.peer);
    std::optional<int> status;
    if (auto given = param_integer(call.params(), "exit_status")) status = static_cast<int>(*given);
    if (!call.ctx.require_monitoring().agents().exited(id, agent, status))
        throw ApiError(ErrorCode::NOT_FOUND, "No agent '" + agent + "' in allocation '" + id + "'", {}, {"agent"});
    SuccessBody body;
    body.result = {{"allocation_id", id}, {"agent", agent}, {"exit_status", status ? json(*status) : json(nullptr)}};
    body.resources_affected = 1;
    return body;
}

} // namespace

void register_allocation_operations(Router& router) {
    router.add("allocate", "", allocate);
    router.add("reserve", "", reserve);
    router.add("release", "", release);
    router.add("reallocate", "", reallocate);
    router.add("status", "", status);
    router.add("attach", "", attach);
    router.add("detach", "", detach);
}

} // namespace resmgr::server
