// Tool classification of exec'd command names (defaults, JSON override, malformed input), the
// per-cgroup tally, and the percentile estimate of a run-queue latency histogram. No kernel.
#include <gtest/gtest.h>

#include "bpf/probes.hpp"
#include "bpf/tool_classes.hpp"

using resmgr::bpf::RunqLatency;
using resmgr::bpf::ToolClasses;
using resmgr::bpf::ToolClassesError;
using resmgr::bpf::ToolTally;

namespace {

// The message ToolClasses::parse throws for `text`, or "" when it parses.
std::string parse_error(const std::string& text) {
    try {
        ToolClasses::parse(text);
    } catch (const ToolClassesError& e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST(BpfClassify, DefaultsCoverTheSeedCategories) {
    auto classes = ToolClasses::defaults();
    EXPECT_EQ(classes.categories(),
              (std::vector<std::string>{"bash_shells", "file_operations", "search_operations", "web_requests"}));
    for (auto comm : {"bash", "sh", "dash", "zsh", "fish"}) EXPECT_EQ(classes.classify(comm), "bash_shells") << comm;
    for (auto comm : {"grep", "rg", "ag", "find", "fd", "ack"}) EXPECT_EQ(classes.classify(comm), "search_operations") << comm;
    for (auto comm : {"curl", "wget", "http", "git-remote-http"}) EXPECT_EQ(classes.classify(comm), "web_requests") << comm;
    for (auto comm : {"cp", "mv", "rm", "cat", "tar", "rsync", "sed", "tee", "touch", "mkdir"})
        EXPECT_EQ(classes.classify(comm), "file_operations") << comm;
    EXPECT_EQ(classes.classify("python3"), std::nullopt);
    EXPECT_EQ(classes.classify(""), std::nullopt);
    EXPECT_EQ(classes.classify("Bash"), std::nullopt); // comm is case-sensitive
}

TEST(BpfClassify, JsonReplacesTheDefaultsAndRoundTrips) {
    auto classes = ToolClasses::parse(R"({"builds": ["make", "ninja", "cc1plus"], "bash_shells": ["bash"]})");
    EXPECT_EQ(classes.classify("ninja"), "builds");
    EXPECT_EQ(classes.classify("bash"), "bash_shells");
    EXPECT_EQ(classes.classify("grep"), std::nullopt); // defaults are gone, not merged
    EXPECT_EQ(classes.classify("sh"), std::nullopt);
    EXPECT_EQ(ToolClasses::from_json(classes.to_json()).to_json(), classes.to_json());
    EXPECT_EQ(ToolClasses::from_json(ToolClasses::defaults().to_json()).to_json(), ToolClasses::defaults().to_json());
    EXPECT_TRUE(ToolClasses::parse("{}").categories().empty());
}

TEST(BpfClassify, NamesLongerThanTheKernelsCommMatchByTheirFirst15Characters) {
    auto classes = ToolClasses::parse(R"({"web_requests": ["git-remote-https"]})");
    EXPECT_EQ(classes.classify("git-remote-http"), "web_requests"); // what the kernel reports
    EXPECT_EQ(classes.classify("git-remote-https"), "web_requests");
}

TEST(BpfClassify, MalformedJsonIsRejectedWithTheOffendingField) {
    EXPECT_NE(parse_error("{\"bash_shells\": [\"bash\""), "");
    EXPECT_TRUE(parse_error("{\"a\": [").starts_with("tool_classes: invalid JSON")) << parse_error("{\"a\": [");
    EXPECT_EQ(parse_error("[\"bash\"]"), "tool_classes: expected an object of category -> [command, ...]");
    EXPECT_EQ(parse_error(R"({"bash_shells": "bash"})"), "tool_classes.bash_shells: expected an array of command names");
    EXPECT_EQ(parse_error(R"({"bash_shells": ["bash", 3]})"), "tool_classes.bash_shells[1]: expected a string");
    EXPECT_EQ(parse_error(R"({"bash_shells": [""]})"), "tool_classes.bash_shells[0]: empty command name");
    EXPECT_EQ(parse_error(R"({"bash_shells": ["/bin/bash"]})"),
              "tool_classes.bash_shells[0]: \"/bin/bash\" is a path; use the command's basename");
    EXPECT_EQ(parse_error(R"({"a": ["make"], "b": ["make"]})"), "tool_classes.b[0]: \"make\" is already in category \"a\"");
    EXPECT_EQ(parse_error(R"({"": ["make"]})"), "tool_classes: empty category name");
    EXPECT_EQ(parse_error(R"({"a": ["make", "make"]})"), ""); // a repeat within one category is harmless
}

TEST(BpfClassify, TallyCountsExecsPerGroupAndCategory) {
    ToolTally tally;
    for (auto comm : {"bash", "bash", "sh", "grep", "rg", "curl", "python3"}) tally.record_exec(7, comm);
    tally.record_exec(8, "cp");

    auto seven = tally.counts(7);
    EXPECT_EQ(seven.by_category,
              (std::map<std::string, std::uint64_t>{{"bash_shells", 3}, {"search_operations", 2}, {"web_requests", 1}}));
    EXPECT_EQ(seven.unclassified, 1u);
    EXPECT_EQ(seven.to_json(), (nlohmann::json{{"bash_shells", 3}, {"search_operations", 2}, {"web_requests", 1}, {"unclassified", 1}}));
    EXPECT_EQ(tally.counts(8).by_category, (std::map<std::string, std::uint64_t>{{"file_operations", 1}}));

    tally.forget(7);
    EXPECT_TRUE(tally.counts(7).by_category.empty());
    EXPECT_EQ(tally.counts(7).unclassified, 0u);
    EXPECT_EQ(tally.counts(99).to_json(), (nlohmann::json{{"unclassified", 0}}));
}

TEST(BpfClassify, TallyUsesTheConfiguredClasses) {
    ToolTally tally(ToolClasses::parse(R"({"builds": ["make"]})"));
    tally.record_exec(1, "make");
    tally.record_exec(1, "bash");
    EXPECT_EQ(tally.counts(1).by_category, (std::map<std::string, std::uint64_t>{{"builds", 1}}));
    EXPECT_EQ(tally.counts(1).unclassified, 1u);
}

TEST(BpfRunqPercentile, InterpolatesInsideTheLog2Bucket) {
    RunqLatency empty;
    EXPECT_EQ(empty.p50_us(), 0.0);

    RunqLatency one_bucket; // 100 waits, all in [1024, 2048) us
    one_bucket.buckets[10] = 100;
    EXPECT_DOUBLE_EQ(one_bucket.p50_us(), 1024 + 0.5 * 1024);
    EXPECT_DOUBLE_EQ(one_bucket.p99_us(), 1024 + 0.99 * 1024);

    RunqLatency spread; // 90 fast waits in [0, 2) us, 10 slow ones in [4096, 8192) us
    spread.buckets[0] = 90;
    spread.buckets[12] = 10;
    EXPECT_DOUBLE_EQ(spread.p50_us(), 50.0 / 90 * 2);
    EXPECT_DOUBLE_EQ(spread.p99_us(), 4096 + 0.9 * 4096);

    RunqLatency overflow; // the last bucket has no upper bound: report its lower one
    overflow.buckets[RunqLatency::bucket_count - 1] = 5;
    EXPECT_DOUBLE_EQ(overflow.p99_us(), double(1u << 23));
}
