// The history operations: export the samples resmgrd keeps, the recent slots of a few series
// (sparklines), import another monitor's series.
// Thin: parse, ask the history store, shape the reply. May call: history, model.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "history/history.hpp"
#include "resmgr/json.hpp"
#include "server/router.hpp"

namespace resmgr::server {
namespace {

using nlohmann::json;

std::int64_t epoch_seconds(TimePoint t) { return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count(); }

// "24h" back from now, or an RFC 3339 time.
std::int64_t since_of(const Call& call, TimePoint now) {
    const std::string text = call.param("since").get<std::string>();
    if (auto t = parse_timestamp(text)) return epoch_seconds(*t);
    if (auto back = parse_duration(text)) return epoch_seconds(now - *back);
    throw ApiError(ErrorCode::INVALID_REQUEST, "'since' must be an RFC 3339 time or a duration such as 24h", "got '" + text + "'", {"since"});
}

SuccessBody export_history(const Call& call) {
    auto& store = call.ctx.require_history();
    const std::string format = call.param("format").get<std::string>();
    if (format != "json" && format != "csv")
        throw ApiError(ErrorCode::INVALID_REQUEST, "'format' must be json or csv", "got '" + format + "'", {"format"});
    const std::int64_t since = since_of(call, call.ctx.clock());
    std::ostringstream csv;
    store.export_csv(csv, since);
    SuccessBody body;
    body.result = {{"since", format_timestamp(TimePoint(std::chrono::seconds(since)))}};
    if (format == "csv") {
        body.result["csv"] = csv.str();
        return body;
    }
    json samples = json::array();
    std::istringstream rows(csv.str());
    std::string line;
    std::getline(rows, line); // the header
    while (std::getline(rows, line)) {
        const auto a = line.find(','), b = line.rfind(',');
        samples.push_back({line.substr(0, a), std::stoll(line.substr(a + 1, b - a - 1)), std::stod(line.substr(b + 1))});
    }
    body.result["columns"] = {"series", "timestamp", "value"};
    body.result["samples"] = samples;
    body.resources_affected = static_cast<int>(samples.size());
    return body;
}

constexpr std::size_t kMaxRecentSeries = 256; // bounds one request's work

// Each series over [now - since, now) cut into `points` equal slots, each the mean of the raw
// samples in it (null: none), with the count of samples the slots were made from.
SuccessBody recent_history(const Call& call) {
    const auto& store = call.ctx.require_history();
    const json& names = call.params()["series"];
    if (names.size() > kMaxRecentSeries)
        throw ApiError(ErrorCode::INVALID_REQUEST, "'series' names at most " + std::to_string(kMaxRecentSeries) + " series",
                       "got " + std::to_string(names.size()), {"series"});
    for (const auto& n : names)
        if (!n.is_string() || n.get_ref<const std::string&>().empty())
            throw ApiError(ErrorCode::INVALID_REQUEST, "each of 'series' must be a series name such as node/cpu_percent", "got " + n.dump(), {"series"});
    const std::int64_t until = epoch_seconds(call.ctx.clock()) + 1;
    const std::int64_t span = std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(call.duration_param("since")).count());
    const std::int64_t since = until - span;
    const auto points = static_cast<std::size_t>(call.param("points").get<long long>());
    json series = json::object();
    for (const auto& n : names) {
        const auto buckets = store.series(n.get<std::string>(), history::Resolution::raw, since, until);
        json values = json::array();
        for (const auto& v : history::slot_means(buckets, since, span, points)) values.push_back(v ? json(*v) : json(nullptr));
        series[n.get<std::string>()] = {{"samples", buckets.size()}, {"values", values}};
    }
    SuccessBody body;
    body.result = {{"since", format_timestamp(TimePoint(std::chrono::seconds(since)))},
                   {"until", format_timestamp(TimePoint(std::chrono::seconds(until)))},
                   {"slot_seconds", static_cast<double>(span) / static_cast<double>(points)},
                   {"method", "mean of the raw samples in each slot"},
                   {"series", series}};
    return body;
}

SuccessBody import_history(const Call& call) {
    auto& store = call.ctx.require_history();
    const std::string file = param_string(call.params(), "csv_file"), metric = param_string(call.params(), "metric");
    check_name(metric, "metric"); // series names reach logs and exports
    if (file.empty() || file.front() != '/')
        throw ApiError(ErrorCode::INVALID_REQUEST, "'csv_file' must be an absolute path", {}, {"csv_file"});
    std::ifstream in(file);
    if (!in) throw ApiError(ErrorCode::NOT_FOUND, "Cannot read " + file, std::strerror(errno), {"csv_file"});
    std::size_t imported = 0;
    try {
        imported = store.import_csv(in, metric);
    } catch (const history::HistoryError& e) {
        throw ApiError(ErrorCode::INVALID_REQUEST, file + ": " + e.what(), {}, {"csv_file"}, {"Fix the line named and import the file again"});
    }
    SuccessBody body;
    body.resources_affected = static_cast<int>(imported);
    body.result = {{"imported", imported}, {"metric", metric}, {"csv_file", file}};
    return body;
}

} // namespace

void register_history_operations(Router& router) {
    router.add("history", "export", export_history);
    router.add("history", "recent", recent_history);
    router.add("history", "import", import_history);
}

} // namespace resmgr::server
