// predict, forecast, analyze-trends and plan-capacity through the router, on generated series imported
// into a real history database: known seasons, trends and spikes give known answers; too little
// history says how much there is and how much is needed; bad parameters get the error envelope.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <sstream>

#include "fake_backend.hpp"
#include "history/history.hpp"
#include "server/service.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using nlohmann::json;

namespace {

constexpr std::int64_t kMonday = 1799020800; // 2027-01-04 00:00 UTC
constexpr double kPi = 3.14159265358979323846;

struct Node {
    TempDir dir;
    FakeBackend backend;
    state::StateStore store{dir.path()};
    core::Ledger ledger{core::NodeCapacity{4, 8 * kGiB}, core::Policy::defaults()};
    history::History history{(dir.path() / "history.db").string()};
    server::Service service{ledger, backend, store, [] { return *parse_timestamp("2027-02-01T00:00:00Z"); }, json::object(), json::object()};
    Node() { service.set_history(&history); }
    json call(const std::string& op, const json& params) {
        return service.router().handle_line(json{{"operation", op}, {"params", params}}.dump(), Owner{1000, 100});
    }
    // `days` of 5-minute values f(t in steps) imported as `series`.
    void import(const std::string& series, double days, const std::function<double(std::size_t)>& f) {
        std::ostringstream csv;
        csv << "timestamp,value\n";
        for (std::size_t t = 0; t < static_cast<std::size_t>(days * 288); ++t) csv << kMonday + static_cast<std::int64_t>(t) * 300 << ',' << f(t) << '\n';
        std::istringstream in(csv.str());
        history.store()->import_csv(in, series);
    }
};

double daily_wave(std::size_t t) { return 20 * std::sin(2 * kPi * static_cast<double>(t % 288) / 288); } // highest at 06:00 UTC

std::function<double(std::size_t)> with_noise(std::function<double(std::size_t)> f, double sigma, std::uint64_t seed) {
    auto rng = std::make_shared<std::mt19937_64>(seed);
    return [f, sigma, rng](std::size_t t) { return f(t) + std::normal_distribution<double>(0, sigma)(*rng); };
}

TEST(PlanningOps, ForecastContinuesTheDailySeasonWithBoundsPeaksAndMeasuredAccuracy) {
    Node node;
    node.import("imported/load", 10, with_noise([](std::size_t t) { return 50 + daily_wave(t); }, 1, 1));
    json r = node.call("forecast", {{"metric", "imported/load"}, {"period", "24h"}, {"confidence_interval", 0.9}, {"include_peaks", true}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    const json& res = r["result"];
    ASSERT_EQ(res["forecast"].size(), 288u);
    EXPECT_EQ(res["forecast"][0]["timestamp"], "2027-01-14T00:00:00Z"); // right after the last value
    for (std::size_t j = 0; j < 288; j += 12) {
        const json& pt = res["forecast"][j];
        const double truth = 50 + daily_wave(j);
        EXPECT_NEAR(pt["value"].get<double>(), truth, 3.0) << pt.dump();
        ASSERT_TRUE(pt["lower"].is_number()) << pt.dump();
        EXPECT_LE(pt["lower"].get<double>(), pt["value"].get<double>());
        EXPECT_GE(pt["upper"].get<double>(), pt["value"].get<double>());
    }
    const json& acc = res["accuracy"];
    EXPECT_GT(acc["folds"].get<int>(), 20);
    ASSERT_TRUE(acc["out_of_sample"]["mase"].is_number()) << acc.dump(2);
    EXPECT_LT(acc["out_of_sample"]["mase"].get<double>(), 1.5);
    EXPECT_NEAR(acc["out_of_sample"]["interval_coverage"].get<double>(), 0.9, 0.06) << acc.dump(2);
    EXPECT_EQ(acc["out_of_sample"]["interval_nominal"], 0.9);
    EXPECT_EQ(acc["models"].size(), 5u);
    EXPECT_FALSE(res["model"]["name"].get<std::string>().empty());
    EXPECT_EQ(res["history"]["points"], 2880);
    ASSERT_EQ(res["peaks"].size(), 3u);
    EXPECT_FALSE(res.contains("threshold_crossing"));
    json crossing = node.call("forecast", {{"metric", "imported/load"}, {"period", "12h"}, {"threshold", 65}})["result"]["threshold_crossing"];
    EXPECT_EQ(crossing["reached"], true) << crossing.dump(2);
    const std::string at = crossing["at"].get<std::string>().substr(0, 15);
    EXPECT_TRUE(at >= "2027-01-14T02:5" && at <= "2027-01-14T03:3") << crossing.dump(2); // the wave passes 65 at 03:14
    EXPECT_GT(crossing["prediction_confidence"].get<double>(), 0.8) << crossing.dump(2);
    const std::string top = res["peaks"][0]["timestamp"];
    EXPECT_TRUE(top.rfind("2027-01-14T05:", 0) == 0 || top.rfind("2027-01-14T06:", 0) == 0) << res["peaks"].dump(2);
}

TEST(PlanningOps, TooLittleHistoryForAForecastSaysHowMuchThereIsAndIsNeeded) {
    Node node;
    node.import("imported/short", 0.5, [](std::size_t t) { return static_cast<double>(t % 7); });
    json r = node.call("forecast", {{"metric", "imported/short"}, {"period", "next_day"}});
    EXPECT_EQ(r["error"]["code"], "INSUFFICIENT_HISTORY") << r.dump(2);
    const std::string message = r["error"]["message"];
    EXPECT_NE(message.find("144 points"), std::string::npos) << message;
    EXPECT_NE(message.find("needed"), std::string::npos) << message;
    json none = node.call("forecast", {{"metric", "cpu_usage"}}); // nothing sampled at all
    EXPECT_EQ(none["error"]["code"], "INSUFFICIENT_HISTORY") << none.dump(2);
    EXPECT_NE(none["error"]["message"].get<std::string>().find("0 points"), std::string::npos) << none.dump(2);
}

TEST(PlanningOps, BadPlanningParametersGetTheErrorEnvelopeWithTheField) {
    Node node;
    auto code_and_field = [&](const std::string& op, const json& params, const std::string& field) {
        json r = node.call(op, params);
        EXPECT_EQ(r["status"], "error") << r.dump(2);
        EXPECT_EQ(r["error"]["code"], "INVALID_REQUEST") << r.dump(2);
        EXPECT_NE(r["error"]["affected_resources"].dump().find(field), std::string::npos) << r.dump(2);
    };
    code_and_field("forecast", {{"period", "yesterday"}}, "period");
    code_and_field("forecast", {{"period", "30d"}}, "period");
    code_and_field("forecast", {{"confidence_interval", 1.5}}, "confidence_interval");
    code_and_field("forecast", {{"confidence_interval", "high"}}, "confidence_interval");
    code_and_field("forecast", {{"metric", "no/such/series"}}, "metric");
    code_and_field("analyze-trends", {{"timeframe", "30_fortnights"}}, "timeframe");
    code_and_field("analyze-trends", {{"timeframe", "99999_days"}}, "timeframe");
    code_and_field("analyze-trends", {{"metrics", {1, 2}}}, "metrics");
    code_and_field("plan-capacity", {{"growth_assumptions", {{"workflow_increase", "lots"}}}}, "growth_assumptions");
    code_and_field("plan-capacity", {{"growth_assumptions", {{"budget", 3}}}}, "growth_assumptions");
    code_and_field("plan-capacity", {{"time_horizon", "-3_months"}}, "time_horizon");
}

TEST(PlanningOps, AnalyzeTrendsFindsTheSlopeTheSeasonThePeakHourAndAnInjectedSpike) {
    Node node;
    // 21 days: rising one unit a day, a daily wave peaking at 06:00, noise, and one spike on day 15 at 12:00.
    const std::size_t spike = 15 * 288 + 144;
    node.import("imported/rising", 21, with_noise([&](std::size_t t) {
        return 40 + static_cast<double>(t) / 288 + daily_wave(t) + (t == spike ? 60 : 0);
    }, 0.5, 2));
    json r = node.call("analyze-trends", {{"timeframe", "30_days"}, {"metrics", {"imported/rising"}}, {"detect_anomalies", true}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    const json& m = r["result"]["metrics"]["imported/rising"];
    EXPECT_NEAR(m["trend"]["slope_per_day"].get<double>(), 1.0, 0.1) << m["trend"].dump(2);
    EXPECT_NEAR(m["trend"]["slope_per_week"].get<double>(), 7.0, 0.7);
    EXPECT_EQ(m["trend"]["direction"], "rising");
    EXPECT_GT(m["trend"]["growth_percent"].get<double>(), 30); // ≈ 20 on a start near 40
    EXPECT_EQ(m["seasonality"]["seasons"][0]["name"], "1d");
    EXPECT_EQ(m["seasonality"]["seasons"][0]["found"], true) << m["seasonality"].dump(2);
    EXPECT_GT(m["seasonality"]["seasons"][0]["autocorrelation"].get<double>(), 0.8);
    const int hour = m["peaks"]["daily"]["hour_utc"];
    EXPECT_TRUE(hour == 5 || hour == 6) << m["peaks"].dump(2);
    EXPECT_TRUE(m["peaks"]["weekly"].contains("weekday")) << m["peaks"].dump(2);
    ASSERT_GE(m["anomalies"]["count"].get<int>(), 1) << m["anomalies"].dump(2);
    EXPECT_EQ(m["anomalies"]["highest"][0]["timestamp"], "2027-01-19T12:00:00Z") << m["anomalies"].dump(2);
    EXPECT_GT(m["anomalies"]["highest"][0]["score"].get<double>(), 6);
}

TEST(PlanningOps, AnalyzeTrendsWithTooLittleHistorySaysSoPerMetricOrForAll) {
    Node node;
    node.import("imported/hours", 0.5, [](std::size_t t) { return static_cast<double>(t); });
    json r = node.call("analyze-trends", {{"metrics", {"imported/hours"}}});
    EXPECT_EQ(r["error"]["code"], "INSUFFICIENT_HISTORY") << r.dump(2);
    EXPECT_NE(r["error"]["details"].get<std::string>().find("12 hourly buckets, a trend needs 24"), std::string::npos) << r.dump(2);
    node.import("imported/days", 3, [](std::size_t t) { return static_cast<double>(t % 288); });
    json mixed = node.call("analyze-trends", {{"metrics", {"imported/hours", "imported/days"}}, {"detect_anomalies", false}});
    ASSERT_EQ(mixed["status"], "success") << mixed.dump(2);
    EXPECT_EQ(mixed["result"]["metrics"]["imported/hours"]["insufficient_history"]["needed"], 24);
    EXPECT_TRUE(mixed["result"]["metrics"]["imported/days"].contains("trend"));
    EXPECT_FALSE(mixed["result"]["metrics"]["imported/days"].contains("anomalies"));
}

TEST(PlanningOps, PlanCapacityDatesTheThresholdFromTheTrendOfDailyPeaks) {
    Node node;
    // CPU: daily peaks 40, 41, 42, ... over 30 days (≈ 69 on the last): 80 % about 11 days on.
    node.import("node/cpu_percent", 30, [](std::size_t t) { return 30 + static_cast<double>(t / 288) + 10 * (1 + std::sin(2 * kPi * static_cast<double>(t % 288) / 288)) / 2; });
    node.import("node/memory_percent", 30, [](std::size_t t) { return 50 + static_cast<double>(t % 12); }); // flat
    json r = node.call("plan-capacity", {{"time_horizon", "3_months"}, {"include_recommendations", true}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    const json& plan = r["result"]["capacity_plan"];
    EXPECT_EQ(plan["current_capacity"]["cpu_cores"], 4);
    const json& cpu = plan["exhaustion"]["cpu"];
    EXPECT_NEAR(cpu["trend"]["slope_per_day"].get<double>(), 1.0, 0.05) << cpu.dump(2);
    const double days = cpu["time_to_threshold"]["expected"]["days"];
    EXPECT_NEAR(days, 11, 1.5) << cpu.dump(2);
    EXPECT_LE(cpu["time_to_threshold"]["earliest"]["days"].get<double>(), days);
    EXPECT_GE(cpu["time_to_threshold"]["latest"]["days"].get<double>(), days);
    EXPECT_NEAR(cpu["time_to_exhaustion"]["expected"]["days"].get<double>(), 31, 2);
    EXPECT_TRUE(plan["exhaustion"]["memory"]["time_to_threshold"]["expected"].is_null()) << plan["exhaustion"]["memory"].dump(2);
    EXPECT_EQ(plan["exhaustion"]["agents"]["insufficient_history"]["needed"], 7);
    EXPECT_NEAR(plan["forecasted_needs"]["next_month"]["cpu"]["cpu_increase"].get<double>(), 30.0 / 70 * 100, 5);
    EXPECT_NEAR(plan["forecasted_needs"]["next_month"]["memory"]["memory_increase"].get<double>(), 0, 1);
    ASSERT_EQ(plan["recommendations"].size(), 1u) << plan["recommendations"].dump(2);
    const json& rec = plan["recommendations"][0];
    EXPECT_EQ(rec["action"], "cpu_upgrade");
    EXPECT_EQ(rec["type"], "immediate");
    EXPECT_EQ(rec["date"].get<std::string>().substr(0, 8), "2027-02-"); // 11 days after 2027-02-03
    EXPECT_GT(plan["utilization_analysis"]["peak_cpu_usage"].get<double>(), 68);

    // 200 % more work over the quarter brings the flat memory to 85 % within it.
    json grown = node.call("plan-capacity", {{"growth_assumptions", {{"workflow_increase", 200}}}});
    ASSERT_EQ(grown["status"], "success") << grown.dump(2);
    const json& mem = grown["result"]["capacity_plan"]["exhaustion"]["memory"];
    ASSERT_TRUE(mem["time_to_threshold"]["expected"].is_object()) << mem.dump(2);
    EXPECT_LT(mem["time_to_threshold"]["expected"]["days"].get<double>(), 90);
    EXPECT_LT(grown["result"]["capacity_plan"]["exhaustion"]["cpu"]["time_to_threshold"]["expected"]["days"].get<double>(), days);
}

TEST(PlanningOps, PlanCapacityWithoutAWeekOfHistorySaysHowMuchIsNeeded) {
    Node node;
    node.import("node/cpu_percent", 3, [](std::size_t t) { return static_cast<double>(t % 100); });
    json r = node.call("plan-capacity", json::object());
    EXPECT_EQ(r["error"]["code"], "INSUFFICIENT_HISTORY") << r.dump(2);
    EXPECT_NE(r["error"]["details"].get<std::string>().find("3 days of daily peaks"), std::string::npos) << r.dump(2);
}

TEST(PlanningOps, PredictGivesTheNextRunFromTheCallersRunsWithRisks) {
    Node node;
    auto add = [&](const std::string& id, std::uint32_t uid, std::int64_t ended, double seconds, double gib, analytics::RunOutcome outcome) {
        analytics::RunRecord r;
        r.allocation_id = id;
        r.workflow_id = "wf-" + id;
        r.workflow_type = "build";
        r.owner_uid = uid;
        r.started_at = ended - static_cast<std::int64_t>(seconds);
        r.ended_at = ended;
        r.wall_seconds = seconds;
        r.cpu_seconds = 2 * seconds;
        r.memory_peak_bytes = static_cast<std::uint64_t>(gib * kGiB);
        r.outcome = outcome;
        node.history.store()->add_run(r);
    };
    const std::int64_t now = kMonday + 28 * 86400;
    for (int i = 0; i < 12; ++i)
        add("r" + std::to_string(i), 1000, now - 3600 * (12 - i), 600 + 10 * i, 2 + 0.1 * (i % 3),
            i == 4 ? analytics::RunOutcome::oom_killed : analytics::RunOutcome::completed);
    add("other", 2000, now - 60, 99999, 99, analytics::RunOutcome::completed); // another owner's: not counted
    json r = node.call("predict", {{"workflow_type", "build"}, {"time_horizon", "1h"}, {"confidence_level", 0.8}, {"include_risk_analysis", true}});
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    const json& res = r["result"];
    EXPECT_EQ(res["runs"], 12);
    EXPECT_NEAR(res["predicted_resources"]["cpu_cores"]["value"].get<double>(), 2, 1e-6);
    const json& mem = res["predicted_resources"]["memory_gb"];
    EXPECT_NEAR(mem["value"].get<double>(), 2.1, 1e-6);
    EXPECT_LE(mem["lower"].get<double>(), 2.0 + 1e-9);
    EXPECT_GE(mem["upper"].get<double>(), 2.2 - 1e-9);
    const json& meta = res["prediction_metadata"];
    // 600, 610, ..., 710: a drift, so the next run is the line's (log-linear: 722.6), not the median 655.
    EXPECT_NEAR(meta["duration_seconds"]["value"].get<double>(), 720, 5) << meta["duration_seconds"].dump();
    EXPECT_EQ(meta["duration_seconds"]["interval_method"], "log_linear_trend");
    EXPECT_LT(meta["duration_seconds"]["lower"].get<double>(), meta["duration_seconds"]["value"].get<double>());
    EXPECT_GT(meta["duration_seconds"]["upper"].get<double>(), meta["duration_seconds"]["value"].get<double>());
    EXPECT_TRUE(meta["confidence_score"].is_number()) << meta.dump(2);
    EXPECT_EQ(meta["runs_replayed"], 27); // 9 per quantity
    const std::string risks = meta["risk_factors"].dump();
    EXPECT_NE(risks.find("oom_history"), std::string::npos) << risks;
    EXPECT_NE(risks.find("growing_duration_seconds"), std::string::npos) << risks; // +10 s a run
    EXPECT_EQ(risks.find("growing_memory_gb"), std::string::npos) << risks;
    EXPECT_EQ(res["predicted_resources"]["agents"], nullptr);

    json few = node.call("predict", {{"workflow_type", "deploy"}});
    EXPECT_EQ(few["error"]["code"], "INSUFFICIENT_HISTORY") << few.dump(2);
    EXPECT_NE(few["error"]["message"].get<std::string>().find("0 recorded, 3 needed"), std::string::npos) << few.dump(2);
    json missing = node.call("predict", json::object());
    EXPECT_EQ(missing["error"]["code"], "INVALID_REQUEST");
    json level = node.call("predict", {{"workflow_type", "build"}, {"confidence_level", 0.999}});
    EXPECT_EQ(level["error"]["code"], "INVALID_REQUEST");
}

} // namespace
