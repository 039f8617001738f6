#include "metrics/metrics.hpp"

#include <algorithm>
#include <cctype>

#include <prometheus/text_serializer.h>

namespace resmgr::metrics {

using nlohmann::json;

std::string requested_band(const json& params) {
    const json* v = params.is_object() && params.contains("priority") ? &params["priority"] : nullptr;
    if (!v || v->is_null()) return Priority{}.band_name();
    std::optional<Priority> p;
    if (v->is_string()) p = Priority::parse(v->get<std::string>());
    else if (v->is_number_integer()) p = Priority::parse(std::to_string(v->get<long long>()));
    return p ? p->band_name() : "invalid";
}

std::string admission_outcome(const json& envelope) {
    if (envelope.value("status", "") == "success") {
        const json& result = envelope.contains("result") ? envelope["result"] : json();
        return result.is_object() && result.contains("queue_position") ? "queued" : "allocated";
    }
    std::string code = envelope.contains("error") && envelope["error"].is_object() ? envelope["error"].value("code", "") : "";
    if (code.empty()) code = "unknown_error";
    std::transform(code.begin(), code.end(), code.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return code;
}

void Metrics::on_pass(PassFigures figures) {
    auto pass = std::make_shared<const PassFigures>(std::move(figures));
    std::lock_guard lock(mutex_);
    pass_ = std::move(pass);
    ended_.clear();
    ++counts_.sampling_passes;
}

void Metrics::on_event(const events::Event& event) {
    using events::EventType;
    std::lock_guard lock(mutex_);
    switch (event.type) {
    case EventType::released:
    case EventType::expired:
        ended_.insert(event.allocation);
        break;
    case EventType::conflict: {
        const json& d = event.details;
        if (d.contains("event") && d["event"].is_string()) { // the guard saw an open or a change from outside the holder
            const auto n = static_cast<std::uint64_t>(std::max<long long>(1, d.value("count", 1LL)));
            counts_.conflicts["guard"] += n;
            counts_.guard_decisions[d["event"].get<std::string>()] += n;
        } else if (d.contains("code")) { // an allocate refused: a held file, or conflict_avoidance
            ++counts_.conflicts["admission"];
        } // resolutions and predictions are not conflicts that happened
        break;
    }
    case EventType::oom_kill: ++counts_.oom_kill_events; break;
    case EventType::preempted: ++counts_.preemptions; break;
    default: break;
    }
}

void Metrics::on_request(const Request& request, const json& envelope, std::chrono::microseconds elapsed) {
    if (request.operation != "allocate") return;
    std::string outcome, band;
    try { // the request is the client's: whatever it holds, counting it never fails the answer
        outcome = admission_outcome(envelope);
        band = requested_band(request.params);
    } catch (const json::exception&) {
        outcome = outcome.empty() ? "unknown_error" : outcome;
        band = "invalid";
    }
    const std::string latency_class = outcome == "allocated" || outcome == "queued" ? outcome : "refused";
    std::lock_guard lock(mutex_);
    ++counts_.admissions[{band, outcome}];
    counts_.admission_latency.try_emplace(latency_class, Counts::latency_bounds()).first->second.observe(
        std::chrono::duration<double>(elapsed).count());
}

std::vector<prometheus::MetricFamily> Metrics::Collect() const {
    std::shared_ptr<const PassFigures> pass;
    std::set<std::string> ended;
    Counts counts;
    {
        std::lock_guard lock(mutex_);
        pass = pass_;
        ended = ended_;
        counts = counts_;
    }
    return families(*pass, counts, ended);
}

std::string Metrics::text() const {
    return prometheus::TextSerializer().Serialize(Collect());
}

} // namespace resmgr::metrics
