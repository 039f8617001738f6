// The store a scrape reads: the last pass's figures and the counts since start, behind one
// mutex. The daemon's loop writes it (after each sampling pass, on each event, after each
// allocate answer); the HTTP server's threads and the textfile writer read it through Collect().
// An allocation's series go as soon as its end is reported (RESOURCE_RELEASED / _EXPIRED), and
// every pass replaces the whole set, so labels never outlive their allocation.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <nlohmann/json.hpp>
#include <prometheus/collectable.h>

#include "events/event.hpp"
#include "metrics/families.hpp"
#include "resmgr/protocol.hpp"

namespace resmgr::metrics {

class Metrics : public prometheus::Collectable {
public:
    // After each sampling pass.
    void on_pass(PassFigures figures);
    // Every event resmgrd publishes: conflicts, guard decisions, OOM kills, preemptions, ends.
    void on_event(const events::Event& event);
    // Every answer the router gives; only allocate's count (decision and latency).
    void on_request(const Request& request, const nlohmann::json& envelope, std::chrono::microseconds elapsed);

    std::vector<prometheus::MetricFamily> Collect() const override;
    // The text exposition format (what /metrics serves and the textfile holds).
    std::string text() const;

private:
    mutable std::mutex mutex_;
    // Replaced whole by each pass, so a scrape takes it without copying and builds its families
    // outside the lock: the loop never waits for a scrape of a thousand allocations.
    std::shared_ptr<const PassFigures> pass_ = std::make_shared<PassFigures>();
    std::set<std::string> ended_; // allocations that ended since the pass: left out at once
    Counts counts_;
};

// Hands the event bus's events to a Metrics it shares.
class MetricsEventSink : public events::EventSink {
public:
    explicit MetricsEventSink(std::shared_ptr<Metrics> metrics) : metrics_(std::move(metrics)) {}
    void publish(const events::Event& event) override { metrics_->on_event(event); }

private:
    std::shared_ptr<Metrics> metrics_;
};

// The priority band an allocate request asks for ("medium" when it names none, "invalid" when
// what it names is not a priority), and the outcome of its answer: "allocated", "queued" or the
// error code in lower case.
std::string requested_band(const nlohmann::json& params);
std::string admission_outcome(const nlohmann::json& envelope);

} // namespace resmgr::metrics
