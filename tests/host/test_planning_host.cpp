// The planning operations on a real resmgrd: a NAB trace imported with `history import`, then
// forecast and analyze-trends over the socket answer with the accuracy block and sane numbers.
#include "build_paths.hpp"
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "daemon_fixture.hpp"

using namespace resmgr;
using namespace resmgr::host;
using nlohmann::json;

TEST_F(DaemonHost, ForecastAndTrendsOfAnImportedTraceCarryTheirMeasuredAccuracy) {
    const std::string relative = "/../shared/data/nab/realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv";
    const std::string nab = std::string(build_paths::source_dir) + relative;
    const std::string file = std::filesystem::exists(nab) ? nab : "/work/shared/data/nab/realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv";
    if (!std::filesystem::exists(file)) GTEST_SKIP() << "NAB trace not found at " << nab << " (../shared/data/nab is absent)";
    json imported = cli_json({"history", "import", "--csv", file, "--metric", "imported/ec2_cpu"});
    ASSERT_EQ(imported["status"], "success") << imported.dump(2);

    json f = cli_json({"forecast", R"({"metric":"imported/ec2_cpu","period":"24h","confidence_interval":0.95,"include_peaks":true})"});
    ASSERT_EQ(f["status"], "success") << f.dump(2).substr(0, 2000);
    const json& r = f["result"];
    ASSERT_EQ(r["forecast"].size(), 288u);
    EXPECT_EQ(r["forecast"][0]["timestamp"].get<std::string>().substr(0, 10), "2014-02-28") << r["forecast"][0]; // where the trace ends
    for (const json& p : r["forecast"]) {
        EXPECT_GT(p["value"].get<double>(), -5) << p;   // a CPU percentage, give or take the model
        EXPECT_LT(p["value"].get<double>(), 105) << p;
        if (p["lower"].is_number()) {
            EXPECT_LE(p["lower"].get<double>(), p["value"].get<double>()) << p;
            EXPECT_GE(p["upper"].get<double>(), p["value"].get<double>()) << p;
        }
    }
    const json& acc = r["accuracy"];
    EXPECT_GT(acc["folds"].get<int>(), 10) << acc.dump(2);
    ASSERT_TRUE(acc["out_of_sample"]["mase"].is_number()) << acc.dump(2);
    EXPECT_GT(acc["out_of_sample"]["mase"].get<double>(), 0);
    EXPECT_LT(acc["out_of_sample"]["mase"].get<double>(), 10);
    ASSERT_TRUE(acc["out_of_sample"]["interval_coverage"].is_number()) << acc.dump(2);
    EXPECT_GT(acc["out_of_sample"]["interval_coverage"].get<double>(), 0.6);
    EXPECT_FALSE(acc["method"].get<std::string>().empty());
    EXPECT_EQ(r["peaks"].size(), 3u);
    std::cout << "[ INFO     ] forecast of " << r["history"]["points"] << " 5-minute values: model " << r["model"]["name"] << ", "
              << acc["folds"] << " folds, MASE " << acc["out_of_sample"]["mase"] << ", relative MAE " << acc["out_of_sample"]["relative_mae"]
              << ", 95 % coverage " << acc["out_of_sample"]["interval_coverage"] << ", answered in " << f["metrics"]["execution_time"] << "\n";
    for (const json& model : acc["models"])
        std::cout << "[ INFO     ]   " << model["model"] << ": MASE " << model["mase"] << ", relative MAE " << model["relative_mae"] << ", coverage "
                  << model["interval_coverage"] << "\n";

    // --svg: the chart of the recent history, the forecast and its band, from the same answer
    // (history_points asked by the client), in a file a real XML parser accepts.
    const std::string svg = (std::filesystem::temp_directory_path() / ("resmgr-forecast-" + std::to_string(::getpid()) + ".svg")).string();
    json drawn = cli_json({"--svg", svg, "forecast", R"({"metric":"imported/ec2_cpu","period":"24h"})"});
    ASSERT_EQ(drawn["status"], "success") << drawn.dump(2).substr(0, 2000);
    EXPECT_EQ(drawn["result"]["history"]["recent"]["values"].size(), 864u) << drawn["result"]["history"].dump().substr(0, 500);
    ASSERT_TRUE(std::filesystem::exists(svg));
    {
        std::ifstream in(svg);
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        EXPECT_NE(text.find("<polygon"), std::string::npos) << "no interval band";
        EXPECT_NE(text.find("imported/ec2_cpu: forecast 24h"), std::string::npos);
        EXPECT_GE(std::count(text.begin(), text.end(), '\n'), 20);
    }
    if (std::filesystem::exists("/usr/bin/xmllint")) {
        RunResult x = run({"/usr/bin/xmllint", "--noout", svg});
        EXPECT_EQ(x.status, 0) << "xmllint: " << x.out << x.err;
    } else {
        std::cout << "[ SKIPPED  ] the XML check of the SVG: xmllint is not installed (scripts/install-deps.sh installs libxml2-utils)\n";
    }
    std::filesystem::remove(svg);
    // Without --svg, --json gets the envelope as asked: no recent history.
    EXPECT_FALSE(f["result"]["history"].contains("recent"));

    json t = cli_json({"analyze-trends", R"({"timeframe":"30_days","metrics":["imported/ec2_cpu"],"detect_anomalies":true})"});
    ASSERT_EQ(t["status"], "success") << t.dump(2).substr(0, 2000);
    const json& m = t["result"]["metrics"]["imported/ec2_cpu"];
    EXPECT_EQ(m["history"]["points"], 337) << m["history"]; // 14 days of hourly buckets, both ends included
    ASSERT_TRUE(m["trend"]["slope_per_day"].is_number()) << m.dump(2);
    EXPECT_LT(std::abs(m["trend"]["slope_per_day"].get<double>()), 10) << m["trend"];
    EXPECT_TRUE(m["seasonality"]["seasons"].is_array());
    EXPECT_TRUE(m["anomalies"]["count"].is_number()) << m["anomalies"];
    EXPECT_LE(m["peaks"]["daily"]["hour_utc"].get<int>(), 23);
    std::cout << "[ INFO     ] analyze-trends: slope " << m["trend"]["slope_per_day"] << "/day, " << m["anomalies"]["count"]
              << " anomalies, answered in " << t["metrics"]["execution_time"] << "\n";

    // Too little history for the node's own series: said with the counts, not a made-up forecast.
    json none = cli_json({"forecast", R"({"metric":"memory_usage","period":"next_week"})"}, 1);
    EXPECT_EQ(none["error"]["code"], "INSUFFICIENT_HISTORY") << none.dump(2);
    EXPECT_NE(none["error"]["message"].get<std::string>().find("needed"), std::string::npos) << none.dump(2);
}
