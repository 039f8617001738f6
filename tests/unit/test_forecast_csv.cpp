// Time series from CSV: the rows read (header, formats, extra columns), the errors with their
// line, the grid (duplicates averaged, gaps filled and reported), and `resmgr backtest` on a file:
// exit codes, the report and the forecasts CSV.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "analytics/series_csv.hpp"
#include "cli/backtest.hpp"
#include "tests_support.hpp"

namespace resmgr::analytics {
namespace {

std::vector<CsvSample> read(const std::string& text) {
    std::istringstream in(text);
    return read_series_csv(in);
}

std::size_t error_line(const std::string& text) {
    try {
        to_regular_series(read(text));
    } catch (const SeriesCsvError& e) {
        EXPECT_NE(std::string(e.what()).find("line " + std::to_string(e.line)), std::string::npos) << e.what();
        return e.line;
    }
    ADD_FAILURE() << "accepted: " << text;
    return 0;
}

TEST(SeriesCsv, ReadsTheFormatsMonitorsExportIgnoringExtraColumns) {
    auto rows = read("timestamp,value,label\n2014-02-14 14:30:00,1.5,0\n2014-02-14T14:35:00Z, 2 ,1\n1392389100,3\n\n"
                     "2014-02-14T15:50:00+01:00,4\n");
    ASSERT_EQ(rows.size(), 4u);
    EXPECT_EQ(rows[0].ts, 1392388200);
    EXPECT_EQ(rows[0].line, 2u);
    EXPECT_EQ(rows[1].ts, 1392388500);
    EXPECT_DOUBLE_EQ(rows[1].value, 2);
    EXPECT_EQ(rows[2].ts, 1392389100);
    EXPECT_EQ(rows[3].ts, 1392389400);
    EXPECT_EQ(rows[3].line, 6u);
}

TEST(SeriesCsv, ABadRowIsRefusedNamingItsLine) {
    EXPECT_EQ(error_line("timestamp,value\n1800000000,1\n1800000300,abc\n"), 3u);
    EXPECT_EQ(error_line("timestamp,value\n1800000000,1\n1800000300,nan\n"), 3u);
    EXPECT_EQ(error_line("timestamp,value\n1800000000,1\n1800000300,\n"), 3u);
    EXPECT_EQ(error_line("timestamp,value\n1800000000,1\n1800000300,1\nyesterday,4\n"), 4u);
    EXPECT_EQ(error_line("timestamp,value\n1800000000,1\n1800000300\n"), 3u);
    EXPECT_EQ(error_line("timestamp,value\n2014-02-30 00:00:00,1\n"), 2u); // no such day
    // Unordered: refused at the row that goes back in time.
    EXPECT_EQ(error_line("timestamp,value\n1800000000,1\n1800000600,2\n1800000300,3\n1800000900,4\n"), 4u);
    EXPECT_EQ(error_line("timestamp,value\n1800000000,1\n"), 2u); // one row is not a series
    EXPECT_EQ(error_line("timestamp,value\n"), 1u);
}

TEST(SeriesCsv, DuplicatesAreAveragedAndGapsFilledAndReported) {
    RegularSeries s = to_regular_series(read("timestamp,value\n1800000000,1\n1800000300,2\n1800000300,4\n1800000600,5\n"
                                             "1800001500,8\n1800001800,9\n1800002100,10\n"));
    EXPECT_EQ(s.step, 300);
    EXPECT_EQ(s.samples, 7u);
    ASSERT_EQ(s.values.size(), 8u);
    EXPECT_DOUBLE_EQ(s.values[1], 3); // 2 and 4 at the same time
    EXPECT_EQ(s.duplicate_timestamps, 1u);
    EXPECT_EQ(s.first_duplicate_line, 4u);
    EXPECT_EQ(s.merged, 1u);
    // 1800000900 and 1800001200 were missing: filled on the line from 5 to 8.
    EXPECT_TRUE(s.filled[3] && s.filled[4]);
    EXPECT_FALSE(s.filled[2] || s.filled[5]);
    EXPECT_DOUBLE_EQ(s.values[3], 6);
    EXPECT_DOUBLE_EQ(s.values[4], 7);
    EXPECT_EQ(s.gaps, 1u);
    EXPECT_EQ(s.gap_points, 2u);
    EXPECT_EQ(s.longest_gap, 2u);
    EXPECT_EQ(s.ts(7), 1800002100);
}

class BacktestCli : public ::testing::Test {
protected:
    int run(std::vector<std::string> args) {
        args.insert(args.begin(), "backtest");
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        std::ostringstream out, err;
        auto* old_out = std::cout.rdbuf(out.rdbuf());
        auto* old_err = std::cerr.rdbuf(err.rdbuf());
        const int rc = cli::backtest_main(static_cast<int>(argv.size()), argv.data());
        std::cout.rdbuf(old_out);
        std::cerr.rdbuf(old_err);
        out_ = out.str(), err_ = err.str();
        return rc;
    }
    std::string write(const std::string& name, const std::string& text) {
        const std::string path = (dir_.path() / name).string();
        std::ofstream(path) << text;
        return path;
    }
    TempDir dir_;
    std::string out_, err_;
};

TEST_F(BacktestCli, ReportsTheChoiceAndEveryModelAndWritesTheForecasts) {
    std::string csv = "timestamp,value\n";
    for (int t = 0; t < 3 * 288; ++t)
        csv += std::to_string(1800000000 + t * 300) + "," + std::to_string(50 + 20 * std::sin(t * 2 * M_PI / 288) + (t % 7) * 0.3) + "\n";
    const std::string file = write("series.csv", csv), forecasts = (dir_.path() / "folds.csv").string();
    ASSERT_EQ(run({"--csv", file, "--horizon", "6h", "--step", "2h", "--forecasts-out", forecasts, "--anomalies", "--json"}), 0) << err_;
    auto report = nlohmann::json::parse(out_);
    EXPECT_EQ(report["series"]["points"], 864);
    EXPECT_EQ(report["backtest"]["horizon_steps"], 72);
    EXPECT_EQ(report["backtest"]["step_steps"], 24);
    EXPECT_TRUE(report["seasons"][0]["found"].get<bool>());
    EXPECT_EQ(report["models"].size(), 5u);
    EXPECT_TRUE(report["chosen"]["model"].is_string());
    EXPECT_TRUE(report["selection"]["mase"].is_number());
    EXPECT_TRUE(report["anomalies"].is_array());
    const int folds = report["backtest"]["folds"];
    std::ifstream in(forecasts);
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "origin,timestamp,actual,forecast,lower,upper");
    int rows = 0;
    while (std::getline(in, line)) ++rows;
    EXPECT_EQ(rows, folds * 72);
}

TEST_F(BacktestCli, BadDataIsExitOneWithTheLineAndBadOptionsExitTwo) {
    EXPECT_EQ(run({"--csv", write("bad.csv", "timestamp,value\n1800000000,1\n1800000300,x\n")}), 1);
    EXPECT_NE(err_.find("line 3"), std::string::npos) << err_;
    EXPECT_EQ(run({"--csv", write("short.csv", "timestamp,value\n1800000000,1\n1800000300,2\n")}), 1);
    EXPECT_NE(err_.find("too little data: 2 values"), std::string::npos) << err_;
    EXPECT_EQ(run({"--csv", (dir_.path() / "absent.csv").string()}), 1);
    EXPECT_EQ(run({"--csv", "x.csv", "--horizon", "soon"}), 2);
    EXPECT_EQ(run({"--csv", "x.csv", "--confidence", "1.5"}), 2);
    EXPECT_EQ(run({}), 2);
}

} // namespace
} // namespace resmgr::analytics
