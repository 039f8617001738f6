#include "server/router.hpp"

#include <chrono>
#include <stdexcept>

#include <spdlog/spdlog.h>

namespace resmgr::server {

using nlohmann::json;

namespace {

std::string join(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

SuccessBody not_built(const Call& call) {
    throw ApiError(ErrorCode::UNSUPPORTED, "Operation '" + call.request.operation + "' is a seed operation that resmgrd does not implement yet",
                   "implemented: " + join(built_operation_names()), {},
                   {"No version of resmgrd implements it yet; use one of the implemented operations"});
}

} // namespace

monitor::Monitoring& Context::require_monitoring() const {
    if (!monitoring) throw ApiError(ErrorCode::UNSUPPORTED, "Monitoring is not running in this resmgrd");
    return *monitoring;
}

history::HistoryStore& Context::require_history() const {
    if (!history || !history->store())
        throw ApiError(ErrorCode::UNSUPPORTED, "The history database is off in this resmgrd",
                       history ? history->problem() : "resmgrd runs without one", {},
                       {"See `resmgr doctor` (history) for why; move a damaged monitoring/history.db away and restart resmgrd"});
    return *history->store();
}

Router::Router(Context& context) : ctx_(context) {
    for (const auto& spec : operation_catalog())
        if (!spec.built) table_.push_back({&spec, not_built});
}

void Router::add(const std::string& name, const std::string& resource_type, Handler handler) {
    for (const auto& spec : operation_catalog()) {
        if (spec.name != name || spec.resource_type != resource_type) continue;
        table_.push_back({&spec, handler});
        return;
    }
    throw std::logic_error("operation '" + name + "' (resource type '" + resource_type + "') is not in the catalog");
}

json Router::handle_line(std::string_view line, const Owner& peer) {
    Request request;
    try {
        request = parse_request_line(line);
    } catch (const ApiError& e) {
        return error_envelope("unknown", e);
    }
    return handle(request, peer);
}

SuccessBody Router::dispatch(const Request& request, const Owner& peer) {
    const OperationSpec* spec = find_operation(request.operation, request.resource_type);
    const Operation* op = nullptr;
    for (const auto& row : table_)
        if (row.spec == spec) op = &row;
    if (!spec || !op)
        throw ApiError(ErrorCode::INVALID_REQUEST, "Unknown operation '" + request.operation + "'", "operations: " + join(built_operation_names()), {},
                       {"Run `resmgr --help` for the list of operations"});
    if (spec->caller == Caller::root && peer.uid != 0)
        throw ApiError(ErrorCode::PERMISSION_DENIED, "Only root may use '" + spec->name + "'");
    if (!spec->open) check_params(request.params, spec->params);
    return op->handler(Call{request, peer, ctx_, *spec});
}

json Router::handle(const Request& request, const Owner& peer) {
    if (!observer_) return answer(request, peer);
    const auto started = std::chrono::steady_clock::now();
    json envelope = answer(request, peer);
    observer_(request, envelope, std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started));
    return envelope;
}

json Router::answer(const Request& request, const Owner& peer) {
    auto started = std::chrono::steady_clock::now();
    try {
        SuccessBody body = dispatch(request, peer);
        auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
        return success_envelope(request.operation, ctx_.clock(), std::move(body), elapsed.count());
    } catch (const ApiError& e) {
        report_denied_allocation(request, e);
        return error_envelope(request.operation, e);
    } catch (const cgroup::BackendError& e) {
        return error_envelope(request.operation,
                              ApiError(ErrorCode::BACKEND_ERROR, e.action.empty() ? "The cgroup backend failed" : e.action, e.what(), {"cgroup"},
                                       {"Check `resmgr doctor` and the resmgrd log", "Retry the operation"}));
    } catch (const nlohmann::json::exception& e) {
        // A parameter an operation read without checking its type: the client's mistake.
        return error_envelope(request.operation, invalid_json("invalid request parameters", e));
    } catch (const std::exception& e) {
        spdlog::error("{}: internal error: {}", request.operation, e.what());
        return error_envelope(request.operation, ApiError(ErrorCode::INTERNAL_ERROR, "Internal error in resmgrd", e.what()));
    }
}

void Router::report_denied_allocation(const Request& request, const ApiError& e) {
    if (request.operation != "allocate" ||
        (e.code != ErrorCode::RESOURCE_EXHAUSTED && e.code != ErrorCode::POLICY_VIOLATION && e.code != ErrorCode::CONFLICT))
        return;
    std::string workflow = request.params.is_object() && request.params.value("workflow_id", json()).is_string()
                               ? request.params["workflow_id"].get<std::string>() : "unknown";
    ctx_.events.emit(e.code == ErrorCode::CONFLICT ? events::EventType::conflict : events::EventType::denied,
                     "allocation for workflow " + workflow + " denied: " + e.what() + (e.details.empty() ? "" : " (" + e.details + ")"),
                     workflow, {}, {{"code", to_string(e.code)}, {"conflict_reason", e.details}, {"affected_resources", e.affected_resources}});
}

} // namespace resmgr::server
