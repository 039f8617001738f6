// The cluster's pure parts (issue 17): the config section, etcd's answers (base64, int64 as
// strings, hostile values), node records, the view of live and gone nodes, when to publish, the
// lease's own clock, and the client's failover over a fake transport.
#include <gtest/gtest.h>

#include <deque>

#include "cluster/agent_pool.hpp"
#include "cluster/claims.hpp"
#include "cluster/config.hpp"
#include "cluster/curl_library.hpp"
#include "cluster/etcd.hpp"
#include "cluster/membership.hpp"
#include "core/policy.hpp"
#include "resmgr/protocol.hpp"
#include "scripted_etcd.hpp"
#include "tests_support.hpp"

namespace resmgr::cluster {
namespace {

using nlohmann::json;
using Steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ApiError& e) {
        EXPECT_EQ(e.code, ErrorCode::INVALID_REQUEST);
        return e.what();
    }
    ADD_FAILURE() << "no ApiError";
    return {};
}

TEST(ClusterConfig, ParsesTheSectionAndKeepsDefaults) {
    const ClusterConfig c = parse_cluster_config(json::parse(
        R"({"etcd":["http://127.0.0.1:2379/","http://10.0.0.2:2381"],"node_name":"build-1","lease_ttl":"15s","shared_paths":["/srv/repo"]})"));
    EXPECT_EQ(c.endpoints, (std::vector<std::string>{"http://127.0.0.1:2379", "http://10.0.0.2:2381"}));
    EXPECT_EQ(c.node_name, "build-1");
    EXPECT_EQ(c.lease_ttl, 15s);
    EXPECT_EQ(c.shared_paths, std::vector<std::string>{"/srv/repo"});
    EXPECT_TRUE(c.enabled());
    EXPECT_FALSE(parse_cluster_config(nullptr).enabled());
    EXPECT_EQ(parse_cluster_config(json::object()).lease_ttl, 10s);
}

TEST(ClusterConfig, RefusesWhatItCannotUseNamingTheField) {
    EXPECT_NE(error_of([] { parse_cluster_config(json::parse(R"({"etcd":["ftp://x:1"]})")); }).find("cluster.etcd[0]"), std::string::npos);
    EXPECT_NE(error_of([] { parse_cluster_config(json::parse(R"({"etcd":["https://x:1"]})")); }).find("https endpoints are not supported"),
              std::string::npos);
    EXPECT_NE(error_of([] { parse_cluster_config(json::parse(R"({"etcd":[]})")); }).find("non-empty"), std::string::npos);
    EXPECT_NE(error_of([] { parse_cluster_config(json::parse(R"({"etcd":["http://x:1/v3"]})")); }).find("without a path"), std::string::npos);
    EXPECT_NE(error_of([] { parse_cluster_config(json::parse(R"({"node_name":"a/b"})")); }).find("cluster.node_name"), std::string::npos);
    EXPECT_NE(error_of([] { parse_cluster_config(json::parse(R"({"lease_ttl":"1s"})")); }).find("from 2s to 1h"), std::string::npos);
    EXPECT_NE(error_of([] { parse_cluster_config(json::parse(R"({"lease_ttl":10})")); }).find("cluster.lease_ttl"), std::string::npos);
    EXPECT_NE(error_of([] { parse_cluster_config(json::parse(R"({"shared_paths":["relative"]})")); }).find("absolute"), std::string::npos);
    EXPECT_NE(error_of([] { parse_cluster_config(json::parse(R"({"etc":["http://x:1"]})")); }).find("unknown key"), std::string::npos);
    EXPECT_NE(error_of([] { parse_endpoints("http://a:1,,http://b:2"); }).find("empty endpoint"), std::string::npos);
    EXPECT_NE(error_of([] { parse_lease_ttl("5m", "--cluster-lease-ttl"); parse_lease_ttl("2h", "--cluster-lease-ttl"); }).find("--cluster-lease-ttl"),
              std::string::npos);
    EXPECT_EQ(parse_endpoints("http://a:1,http://b:2").size(), 2u);
    check_node_name(default_node_name());
}

TEST(ClusterConfig, ThePolicyFileKeepsTheClusterSectionForItsParser) {
    const core::Policy p = core::parse_policy(json::parse(R"({"resource_policies":{},"cluster":{"etcd":["http://127.0.0.1:2379"]}})"));
    EXPECT_EQ(parse_cluster_config(p.cluster).endpoints, std::vector<std::string>{"http://127.0.0.1:2379"});
    EXPECT_TRUE(core::parse_policy(json::parse(R"({"resource_policies":{}})")).cluster.is_null());
    EXPECT_NE(error_of([] { core::parse_policy(json::parse(R"({"cluster":5})")); }).find("cluster"), std::string::npos);
}

TEST(EtcdAnswers, Base64RoundTripsEveryByteAndRefusesWhatIsNotBase64) {
    std::string all;
    for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
    for (size_t n = 0; n < 8; ++n) EXPECT_EQ(base64_decode(base64_encode(all.substr(0, n))), all.substr(0, n)) << n;
    EXPECT_EQ(base64_decode(base64_encode(all)), all);
    EXPECT_EQ(base64_encode("/resmgr/nodes/"), "L3Jlc21nci9ub2Rlcy8=");
    EXPECT_FALSE(base64_decode("abc"));      // not a multiple of 4
    EXPECT_FALSE(base64_decode("ab=c"));     // padding in the middle
    EXPECT_FALSE(base64_decode("a!bc"));     // not in the alphabet
    EXPECT_FALSE(base64_decode("ab==abcd")); // padding before the end
}

TEST(EtcdAnswers, ReadsGrantKeepaliveAndRangeAsEtcdWritesThem) {
    // As etcd 3.4's gateway answered on this host (int64 fields as strings).
    EXPECT_EQ(parse_lease_grant(json::parse(R"({"header":{"revision":"1"},"ID":"8004763819943424772","TTL":"3"})")), 8004763819943424772LL);
    EXPECT_EQ(parse_keepalive(json::parse(R"({"result":{"header":{},"ID":"8004763819943424772","TTL":"3"}})")), 3);
    EXPECT_EQ(parse_keepalive(json::parse(R"({"result":{"header":{},"ID":"8004763819943424772"}})")), 0); // lease gone
    const auto kvs = parse_range(json::parse(R"({"header":{},"kvs":[{"key":"L2E=","value":"eA==","lease":"12","version":"1"},{"key":"L2I="}],"count":"2"})"));
    ASSERT_EQ(kvs.size(), 2u);
    EXPECT_EQ(kvs[0].key, "/a");
    EXPECT_EQ(kvs[0].value, "x");
    EXPECT_EQ(kvs[0].lease, 12);
    EXPECT_EQ(kvs[1].value, "");
    EXPECT_TRUE(parse_range(json::parse(R"({"header":{},"count":"0"})")).empty());
}

TEST(EtcdAnswers, HostileAnswersAreErrorsNotCrashes) {
    EXPECT_THROW(parse_lease_grant(json::parse(R"({"error":"etcdserver: too many requests"})")), EtcdError);
    EXPECT_THROW(parse_lease_grant(json::parse(R"({"ID":"12x"})")), EtcdError);
    EXPECT_THROW(parse_lease_grant(json::parse(R"({"ID":"0"})")), EtcdError);
    EXPECT_THROW(parse_lease_grant(json::parse(R"({"ID":[1]})")), EtcdError);
    EXPECT_THROW(parse_keepalive(json::parse(R"({"result":7})")), EtcdError);
    EXPECT_THROW(parse_range(json::parse(R"({"kvs":{"key":"L2E="}})")), EtcdError);
    EXPECT_THROW(parse_range(json::parse(R"({"kvs":[{"key":"not base64!"}]})")), EtcdError);
    EXPECT_THROW(parse_range(json::parse(R"({"kvs":[{"key":5}]})")), EtcdError);
    EXPECT_THROW(parse_range(json::parse(R"({"kvs":["L2E="]})")), EtcdError);
}

NodeStatus node(const std::string& name, double free_cpu = 2) {
    NodeStatus s;
    s.node_name = name;
    s.capacity = {4, 8, 10};
    s.allocated = {4 - free_cpu, 2, 1};
    s.free = {free_cpu, 6, 9};
    s.allocations = 1;
    s.pressure_raised = {"memory_some"};
    s.pressure_steps_held = 1;
    s.version = "0.1.0";
    s.pid = 42;
    s.started_at = *parse_timestamp("2026-12-05T10:00:00Z");
    s.updated_at = *parse_timestamp("2026-12-05T10:05:00Z");
    return s;
}

TEST(CurlLibraryTest, OpenedOnFirstUseAndAMissingOrWrongLibraryIsNamedWithItsPackage) {
    // resmgrd links no libcurl: a node without a cluster never maps it (curl_library.hpp says why).
    const cluster::CurlLibrary& lib = cluster::curl_library();
    EXPECT_NE(lib.easy_init, nullptr);
    EXPECT_NE(lib.easy_setopt, nullptr);
    EXPECT_NE(lib.slist_free_all, nullptr);
    EXPECT_EQ(&lib, &cluster::curl_library()); // once per process
    try {
        cluster::open_curl_library("libresmgr-no-such-curl.so.4");
        ADD_FAILURE() << "a missing library was opened";
    } catch (const cluster::EtcdUnavailable& e) {
        EXPECT_NE(std::string(e.what()).find("libresmgr-no-such-curl.so.4"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("install Debian's libcurl4 package"), std::string::npos) << e.what();
    }
    try {
        cluster::open_curl_library("libz.so.1"); // loads, but is not libcurl
        ADD_FAILURE() << "a library without libcurl's symbols was taken";
    } catch (const cluster::EtcdUnavailable& e) {
        EXPECT_STREQ(e.what(), "libz.so.1 has no curl_global_init");
    }
}

TEST(NodeRecords, RoundTripAndRefuseMalformedRecordsByField) {
    const NodeStatus s = node("a");
    const NodeStatus back = NodeStatus::from_json(s.to_json());
    EXPECT_TRUE(back.same_figures(s));
    EXPECT_EQ(back.updated_at, s.updated_at);
    auto why = [](json j) {
        try {
            NodeStatus::from_json(j);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    json j = s.to_json();
    EXPECT_EQ(why(json::array()), "not a JSON object");
    j.erase("capacity");
    EXPECT_EQ(why(j), "no \"capacity\"");
    j = s.to_json();
    j["free"]["cpu_cores"] = "2";
    EXPECT_EQ(why(j), "\"cpu_cores\" is not a number");
    j = s.to_json();
    j["allocations"] = -1;
    EXPECT_EQ(why(j), "\"allocations\" is out of range");
    j = s.to_json();
    j["updated_at"] = "yesterday";
    EXPECT_EQ(why(j), "\"updated_at\" is not an RFC 3339 time");
    j = s.to_json();
    j["pressure"]["raised"] = {1};
    EXPECT_EQ(why(j), "\"pressure.raised\" holds a non-string");
}

TEST(NodeRecords, TheViewListsLiveNodesAndGoneOnesWithWhyAndSkipsBadRecords) {
    NodeStatus left = node("c");
    left.left = true;
    NodeStatus impostor = node("someone-else");
    const std::vector<KeyValue> live{{std::string(kNodesPrefix) + "b", node("b").to_json().dump(), 7},
                                     {std::string(kNodesPrefix) + "a", node("a").to_json().dump(), 8},
                                     {std::string(kNodesPrefix) + "x", "{not json", 9},
                                     {std::string(kNodesPrefix) + "y", impostor.to_json().dump(), 9}};
    const std::vector<KeyValue> members{{std::string(kMembersPrefix) + "a", node("a").to_json().dump(), 0},
                                        {std::string(kMembersPrefix) + "c", left.to_json().dump(), 0},
                                        {std::string(kMembersPrefix) + "d", node("d").to_json().dump(), 0}};
    const ClusterView view = build_view(live, members, "a");
    ASSERT_EQ(view.nodes.size(), 4u);
    EXPECT_EQ(view.nodes[0].status.node_name, "a");
    EXPECT_EQ(view.nodes[0].state, NodeRow::State::live);
    EXPECT_TRUE(view.nodes[0].self);
    EXPECT_EQ(view.nodes[1].status.node_name, "b");
    EXPECT_FALSE(view.nodes[1].self);
    EXPECT_EQ(view.nodes[2].state, NodeRow::State::gone);
    EXPECT_EQ(view.nodes[2].gone_reason, "shut down");
    EXPECT_EQ(view.nodes[3].gone_reason, "lease expired");
    const json row = view.nodes[3].to_json();
    EXPECT_EQ(row["state"], "gone");
    EXPECT_EQ(row["last_seen"], "2026-12-05T10:05:00Z");
    EXPECT_FALSE(row.contains("updated_at"));
    ASSERT_EQ(view.rejected.size(), 2u);
    EXPECT_EQ(view.rejected[0].rfind("/resmgr/nodes/x: ", 0), 0u) << view.rejected[0];
    EXPECT_EQ(view.rejected[1], "/resmgr/nodes/y: names node \"someone-else\"");
}

TEST(Publishing, OnChangeAtMostOnceAnIntervalAndAtEveryHeartbeat) {
    const auto t0 = Steady::time_point{} + 1h;
    const NodeStatus a = node("a", 2), changed = node("a", 1);
    EXPECT_TRUE(should_publish(std::nullopt, std::nullopt, a, t0, 1s, 10s));             // never published
    EXPECT_FALSE(should_publish(a, t0, a, t0 + 5s, 1s, 10s));                            // unchanged
    EXPECT_FALSE(should_publish(a, t0, changed, t0 + 500ms, 1s, 10s));                   // changed, too soon
    EXPECT_TRUE(should_publish(a, t0, changed, t0 + 1s, 1s, 10s));                      // changed
    EXPECT_TRUE(should_publish(a, t0, a, t0 + 10s, 1s, 10s));                            // heartbeat
    NodeStatus later = a;
    later.updated_at += 1h;
    EXPECT_TRUE(a.same_figures(later)); // the time of writing is not a change
}

TEST(Publishing, TheLeaseIsCountedOnForTwoThirdsOfItsTtlAfterTheLastRenewalWasSent) {
    const auto t0 = Steady::time_point{} + 1h;
    LeaseClock clock{3s, std::nullopt};
    EXPECT_FALSE(clock.held(t0));
    EXPECT_TRUE(clock.renewal_due(t0));
    clock.renewed = t0;
    // Two thirds of the TTL: this node stops counting on its lease before etcd can expire it.
    EXPECT_TRUE(clock.held(t0 + 1999ms));
    EXPECT_FALSE(clock.held(t0 + 2s));
    EXPECT_FALSE(clock.renewal_due(t0 + 999ms));
    EXPECT_TRUE(clock.renewal_due(t0 + 1s));
}

// Answers from a script: an HttpAnswer, or nullopt for "no answer" (connection refused).
TEST(EtcdClientFailover, TriesTheNextMemberAndStaysWithTheOneThatAnswered) {
    auto transport = std::make_unique<ScriptedTransport>();
    ScriptedTransport& t = *transport;
    EtcdClient etcd({"http://a:1", "http://b:2", "http://c:3"}, std::move(transport), 1s);
    t.script = {std::nullopt, HttpAnswer{503, R"({"error":"etcdserver: no leader"})"}, HttpAnswer{200, R"({"ID":"5","TTL":"3"})"}};
    EXPECT_EQ(etcd.grant_lease(3s), 5);
    EXPECT_EQ(t.urls, (std::vector<std::string>{"http://a:1/v3/lease/grant", "http://b:2/v3/lease/grant", "http://c:3/v3/lease/grant"}));
    EXPECT_EQ(etcd.current_endpoint(), "http://c:3");
    t.script = {HttpAnswer{200, R"({"header":{}})"}};
    etcd.put("/k", "v", 5);
    EXPECT_EQ(t.urls.back(), "http://c:3/v3/kv/put");
}

TEST(EtcdClientFailover, NamesEveryMemberWhenNoneAnswersAndRefusalsAreNotRetried) {
    auto transport = std::make_unique<ScriptedTransport>();
    ScriptedTransport& t = *transport;
    EtcdClient etcd({"http://a:1", "http://b:2"}, std::move(transport), 1s);
    t.script = {std::nullopt, std::nullopt};
    try {
        etcd.range_prefix("/resmgr/nodes/");
        ADD_FAILURE() << "no EtcdUnavailable";
    } catch (const EtcdUnavailable& e) {
        EXPECT_NE(std::string(e.what()).find("http://a:1/v3/kv/range"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("http://b:2/v3/kv/range"), std::string::npos) << e.what();
    }
    t.script = {HttpAnswer{400, R"({"error":"etcdserver: requested lease not found","code":5})"}};
    EXPECT_THROW(etcd.keep_alive(9), EtcdError);
    EXPECT_EQ(t.urls.size(), 3u); // a refusal is an answer: the other member is not asked
    t.script = {HttpAnswer{200, "<html>proxy</html>"}};
    EXPECT_THROW(etcd.revoke(9), EtcdError);
}

TEST(ClusterClaimScope, AllFilesWithTheClusterScopeElseThoseUnderASharedPath) {
    const std::vector<std::string> files{"/srv/repo/a", "/srv/repository/b", "/srv/repo", "/home/u/c"};
    EXPECT_EQ(cluster_scoped(files, true, {}), files);
    EXPECT_EQ(cluster_scoped(files, false, {"/srv/repo"}), (std::vector<std::string>{"/srv/repo/a", "/srv/repo"}));
    EXPECT_EQ(cluster_scoped(files, false, {"/"}), files);
    EXPECT_TRUE(cluster_scoped(files, false, {}).empty());
}

TEST(ClusterClaimScope, AClaimsHolderIsReadFieldByField) {
    const ClaimHolder h{"node-a", "wf", *parse_timestamp("2026-12-05T10:00:00Z")};
    EXPECT_EQ(ClaimHolder::from_json(h.to_json()).node, "node-a");
    EXPECT_THROW(ClaimHolder::from_json(json::parse(R"({"node":"a","workflow_id":"w"})")), std::invalid_argument);
    EXPECT_THROW(ClaimHolder::from_json(json::parse(R"({"node":1,"workflow_id":"w","since":"2026-12-05T10:00:00Z"})")), std::invalid_argument);
    EXPECT_THROW(ClaimHolder::from_json(json::parse(R"({"node":"a","workflow_id":"w","since":"soon"})")), std::invalid_argument);
}

TEST(EtcdAnswers, ReadsATransactionsOutcomeAsEtcdWritesIt) {
    // As etcd 3.4's gateway answered on this host: taken, then refused with the key read back.
    EXPECT_TRUE(parse_txn(json::parse(R"({"header":{},"succeeded":true,"responses":[{"response_put":{"header":{}}}]})")).succeeded);
    const TxnOutcome refused = parse_txn(json::parse(
        R"({"header":{},"responses":[{"response_range":{"header":{},"kvs":[{"key":"L3Jlc21nci9jbGFpbXMveA==","value":"djE=","lease":"7"}],"count":"1"}}]})"));
    EXPECT_FALSE(refused.succeeded);
    ASSERT_TRUE(refused.current);
    EXPECT_EQ(refused.current->key, "/resmgr/claims/x");
    EXPECT_EQ(refused.current->value, "v1");
    EXPECT_FALSE(parse_txn(json::parse(R"({"header":{},"responses":[{"response_range":{"header":{}}}]})")).current); // gone meanwhile
    EXPECT_THROW(parse_txn(json::parse(R"({"succeeded":"yes"})")), EtcdError);
    EXPECT_THROW(parse_txn(json::parse(R"({"responses":{"response_range":{}}})")), EtcdError);
    EXPECT_THROW(parse_txn(json::parse(R"({"responses":[{"response_range":[]}]})")), EtcdError);
}

// ClusterClaims against a scripted etcd and a lease the test sets.
struct ClaimsRig {
    ClusterConfig config;
    std::int64_t lease = 7;
    ScriptedTransport* etcd = nullptr;
    std::unique_ptr<ClusterClaims> claims;
    ClaimsRig() {
        config.endpoints = {"http://e:1"};
        config.node_name = "a";
        auto transport = std::make_unique<ScriptedTransport>();
        etcd = transport.get();
        claims = std::make_unique<ClusterClaims>(config, ClusterClaims::Lease{[this] { return lease; }, [] { return std::string("etcd away"); }},
                                                 std::move(transport));
    }
    static HttpAnswer taken() { return {200, R"({"succeeded":true})"}; }
    static HttpAnswer held_by(const std::string& node) {
        const std::string value = ClaimHolder{node, "wf-" + node, *parse_timestamp("2026-12-05T10:00:00Z")}.to_json().dump();
        return {200, json{{"responses", {{{"response_range", {{"kvs", {{{"key", base64_encode("/resmgr/claims/f")}, {"value", base64_encode(value)}}}}}}}}}}.dump()};
    }
};

TEST(ClusterClaimsTest, AllOrNoneAFileHeldElsewhereUndoesTheClaimsJustMade) {
    ClaimsRig rig;
    rig.etcd->script = {ClaimsRig::taken(), ClaimsRig::held_by("b"), ClaimsRig::taken() /* the undo's delete */};
    try {
        rig.claims->claim({"/f1", "/f"}, "wf", *parse_timestamp("2026-12-05T11:00:00Z"));
        ADD_FAILURE() << "no CONFLICT";
    } catch (const ApiError& e) {
        EXPECT_EQ(e.code, ErrorCode::CONFLICT);
        EXPECT_EQ(std::string(e.what()), "File /f is held across the cluster by node b (workflow wf-b, since 2026-12-05T10:00:00Z)");
    }
    ASSERT_EQ(rig.etcd->urls.size(), 3u);
    EXPECT_EQ(rig.etcd->urls[2], "http://e:1/v3/kv/txn"); // /f1's claim deleted again
    EXPECT_TRUE(rig.claims->status()["claims"].empty());
}

TEST(ClusterClaimsTest, NoLeaseOrNoEtcdIsClusterUnavailableAndLocalFilesNeedNothing) {
    ClaimsRig rig;
    rig.lease = 0;
    EXPECT_EQ(code_of([&] { rig.claims->claim({"/f"}, "wf", Clock::now()); }), ErrorCode::CLUSTER_UNAVAILABLE);
    rig.claims->claim({}, "wf", Clock::now()); // nothing cluster-scoped: no lease needed
    rig.lease = 7;
    rig.etcd->script = {std::nullopt};
    EXPECT_EQ(code_of([&] { rig.claims->claim({"/f"}, "wf", Clock::now()); }), ErrorCode::CLUSTER_UNAVAILABLE);
    EXPECT_TRUE(rig.etcd->script.empty());
}

TEST(ClusterClaimsTest, AnAllocationWaitingForAFileClaimsItOnlyWhenItMayStartAndTheReadClaimsShowItFree) {
    ClaimsRig rig;
    rig.claims->wait_for({"/f"}, "alloc_w", "wf-w");
    EXPECT_TRUE(rig.claims->waits("alloc_w"));
    EXPECT_FALSE(rig.claims->waits("alloc_other"));
    EXPECT_TRUE(rig.claims->claim_waiting("alloc_other", Clock::now(), {})); // not waiting: may start
    std::map<std::string, ClaimHolder> others{{"/f", ClaimHolder{"b", "wf-b", Clock::now()}}};
    EXPECT_FALSE(rig.claims->waiting_may_claim(others));
    // Held by the last read: not tried (etcd is not asked).
    EXPECT_FALSE(rig.claims->claim_waiting("alloc_w", Clock::now(), others));
    EXPECT_TRUE(rig.etcd->urls.empty());
    // Still held though the read said free (it was late): refused, and it waits on without a claim.
    rig.etcd->script = {ClaimsRig::held_by("b")};
    EXPECT_FALSE(rig.claims->claim_waiting("alloc_w", Clock::now(), {}));
    EXPECT_TRUE(rig.claims->files_of("alloc_w").empty());
    others.clear();
    EXPECT_TRUE(rig.claims->waiting_may_claim(others));
    rig.etcd->script = {ClaimsRig::taken()};
    EXPECT_TRUE(rig.claims->claim_waiting("alloc_w", Clock::now(), {}));
    EXPECT_EQ(rig.claims->files_of("alloc_w"), std::vector<std::string>{"/f"});
    EXPECT_FALSE(rig.claims->waits("alloc_w"));
    EXPECT_TRUE(rig.claims->claim_waiting("alloc_w", Clock::now(), {})); // waits no more: etcd not asked again
    EXPECT_TRUE(rig.etcd->script.empty());
    EXPECT_TRUE(rig.claims->status()["waiting"].empty());
    // Released while it waited: forgotten.
    rig.claims->wait_for({"/g"}, "alloc_gone", "wf-g");
    EXPECT_EQ(rig.claims->status()["waiting"].size(), 1u);
    rig.claims->forget_waiting([](const std::string& id) { return id != "alloc_gone"; });
    EXPECT_TRUE(rig.claims->status()["waiting"].empty());
}

TEST(ClusterClaimsTest, ThisNodesOwnClaimOfARunBeforeARestartIsTakenOverNotAConflict) {
    ClaimsRig rig;
    rig.config.node_name = "b";
    // etcd holds b's claim of before the restart (no allocation here holds it): replaced.
    rig.etcd->script = {ClaimsRig::held_by("b"), ClaimsRig::taken()};
    rig.claims->claim({"/f"}, "wf", Clock::now());
    EXPECT_EQ(rig.etcd->urls.size(), 2u);
    const json replace = json::parse(rig.etcd->bodies.back());
    EXPECT_EQ(replace["compare"][0]["target"], "VALUE");
    // Another node's is a CONFLICT as ever.
    rig.etcd->script = {ClaimsRig::held_by("a")};
    EXPECT_EQ(code_of([&] { rig.claims->claim({"/g"}, "wf", Clock::now()); }), ErrorCode::CONFLICT);
}

TEST(ClusterClaimsTest, AClaimOfThisNodeIsAConflictUntilItsEndingHolderLetsItBeTakenOver) {
    ClaimsRig rig;
    rig.etcd->script = {ClaimsRig::taken()};
    rig.claims->claim({"/f"}, "wf", Clock::now());
    rig.claims->bind({"/f"}, "alloc_1");
    EXPECT_EQ(code_of([&] { rig.claims->claim({"/f"}, "wf2", Clock::now()); }), ErrorCode::CONFLICT);
    rig.claims->unbind("/f"); // alloc_1 was released and is ending
    rig.claims->claim({"/f"}, "wf2", Clock::now()); // taken over: etcd is not asked
    EXPECT_EQ(rig.etcd->urls.size(), 1u);
    rig.claims->bind({"/f"}, "alloc_2");
    EXPECT_TRUE(rig.claims->files_of("alloc_1").empty());
    EXPECT_EQ(rig.claims->files_of("alloc_2"), std::vector<std::string>{"/f"});
}

TEST(ClusterClaimsTest, AReleaseEtcdDidNotTakeIsRetriedAtTheNextTick) {
    ClaimsRig rig;
    rig.etcd->script = {ClaimsRig::taken()};
    rig.claims->claim({"/f"}, "wf", Clock::now());
    rig.claims->bind({"/f"}, "alloc_1");
    EXPECT_EQ(rig.claims->files_of("alloc_1"), std::vector<std::string>{"/f"});
    EXPECT_TRUE(rig.claims->unconfirmed().empty());
    rig.etcd->script = {std::nullopt}; // the delete finds no etcd
    rig.claims->release("/f");
    EXPECT_EQ(rig.claims->status()["drops_pending"], json::array({"/f"}));
    rig.etcd->script = {ClaimsRig::taken()};
    rig.claims->tick();
    EXPECT_TRUE(rig.claims->status()["drops_pending"].empty());
}

TEST(ClusterClaimsTest, ANewLeaseClaimsAgainTakingOverItsOwnAndFencingWhatAnotherNodeTookUntilItIsBack) {
    ClaimsRig rig;
    const auto now = *parse_timestamp("2026-12-05T11:00:00Z");
    rig.claims->adopt({"/f"}, "alloc_1", "wf", now);
    rig.claims->adopt({"/g"}, "alloc_2", "wf2", now);
    rig.lease = 0;
    EXPECT_EQ(rig.claims->unconfirmed(), (std::set<std::string>{"alloc_1", "alloc_2"})); // fenced until claimed again
    rig.claims->tick(); // no lease: nothing tried
    EXPECT_TRUE(rig.etcd->urls.empty());
    rig.lease = 9;
    // /f: still there from before the restart, ours: taken over (create refused, replace taken).
    // /g: another node holds it now: alloc_2 stays fenced, still holding it here.
    rig.etcd->script = {ClaimsRig::held_by("a"), ClaimsRig::taken(), ClaimsRig::held_by("b")};
    rig.claims->tick();
    EXPECT_EQ(rig.claims->unconfirmed(), std::set<std::string>{"alloc_2"});
    EXPECT_EQ(rig.claims->holder("/f"), "alloc_1");
    EXPECT_EQ(rig.claims->holder("/g"), "alloc_2");
    EXPECT_NE(rig.claims->status()["claims"][1]["problem"].get<std::string>().find("held by node b"), std::string::npos);
    // b let go: claimed at the next tick, alloc_2 no longer fenced.
    rig.etcd->script = {ClaimsRig::taken()};
    rig.claims->tick();
    EXPECT_TRUE(rig.claims->unconfirmed().empty());
}

TEST(ClusterAgentPoolTest, FreeSlotsAreThoseBelowThePoolsSizeThatNoKeyHolds) {
    const std::vector<KeyValue> taken{{"/resmgr/agent-slots/0", "", 1}, {"/resmgr/agent-slots/2", "", 1},
                                      {"/resmgr/agent-slots/9", "", 1},  // beyond the pool (a larger one before)
                                      {"/resmgr/agent-slots/x", "", 1},  // not a slot: ignored
                                      {"/resmgr/agent-slots/", "", 1}};
    EXPECT_EQ(free_slots(taken, 4), (std::vector<int>{1, 3}));
    EXPECT_TRUE(free_slots(taken, 0).empty());
}

// A pool of `size` over a scripted etcd (the pool's size already in etcd), lease 7.
struct PoolRig {
    ClusterConfig config;
    std::int64_t lease = 7;
    ScriptedTransport* etcd = nullptr;
    std::unique_ptr<ClusterAgentPool> pool;
    explicit PoolRig(int size) {
        config.endpoints = {"http://e:1"};
        config.node_name = "a";
        config.max_agents = size;
        auto transport = std::make_unique<ScriptedTransport>();
        etcd = transport.get();
        pool = std::make_unique<ClusterAgentPool>(config, ClusterClaims::Lease{[this] { return lease; }, [] { return std::string("etcd away"); }},
                                                  std::move(transport));
    }
    static HttpAnswer slots_taken(std::vector<int> taken) {
        json kvs = json::array();
        for (int i : taken) kvs.push_back({{"key", base64_encode(kAgentSlotsPrefix + std::to_string(i))}, {"value", base64_encode("{}")}});
        return {200, json{{"kvs", kvs}}.dump()};
    }
    static HttpAnswer size_in_etcd(int size) {
        return {200, json{{"responses", {{{"response_range", {{"kvs", {{{"key", base64_encode(kMaxAgentsKey)}, {"value", base64_encode(std::to_string(size))}}}}}}}}}}.dump()};
    }
};

TEST(ClusterAgentPoolTest, TakesFreeSlotsInOneTransactionAndSaysHowFullThePoolIsWhenItCannot) {
    PoolRig rig(4);
    // The size is etcd's (the first node's), 3 here; slots 0 and 2 taken; 1 asked: slot 1.
    rig.etcd->script = {PoolRig::size_in_etcd(3), PoolRig::slots_taken({0, 2}), ClaimsRig::taken()};
    EXPECT_EQ(rig.pool->take(1, "wf"), std::vector<std::string>{"/resmgr/agent-slots/1"});
    rig.pool->bind({"/resmgr/agent-slots/1"}, "alloc_1");
    EXPECT_EQ(rig.pool->status()["max_agents"], 3);
    EXPECT_EQ(rig.pool->status()["agents_here"], 1);
    // Two more asked while only one is free: refused, naming the pool's use.
    rig.etcd->script = {PoolRig::slots_taken({0, 1})};
    try {
        rig.pool->take(2, "wf");
        ADD_FAILURE() << "no RESOURCE_EXHAUSTED";
    } catch (const ApiError& e) {
        EXPECT_EQ(e.code, ErrorCode::RESOURCE_EXHAUSTED);
        EXPECT_EQ(std::string(e.what()), "The cluster's agent pool is full: 2 of 3 agents in use across the nodes, 2 asked");
    }
    // A race lost (another node took the slot between the read and the transaction): the slot is
    // not ours (checked: a lost answer of an applied transaction would leave our value), read again.
    rig.etcd->script = {PoolRig::slots_taken({0, 1}), HttpAnswer{200, R"({"header":{}})"}, PoolRig::slots_taken({0, 1, 2}),
                        PoolRig::slots_taken({0, 1, 2})};
    EXPECT_EQ(code_of([&] { rig.pool->take(1, "wf"); }), ErrorCode::RESOURCE_EXHAUSTED);
    EXPECT_TRUE(rig.etcd->script.empty());
}

TEST(ClusterAgentPoolTest, WithoutALeaseItIsClusterUnavailableAndNoAgentsNeedNothing) {
    PoolRig rig(4);
    EXPECT_TRUE(rig.pool->take(0, "wf").empty());
    rig.lease = 0;
    EXPECT_EQ(code_of([&] { rig.pool->take(1, "wf"); }), ErrorCode::CLUSTER_UNAVAILABLE);
    EXPECT_EQ(code_of([&] { rig.pool->take(kMaxSlotsPerTake + 1, "wf"); }), ErrorCode::INVALID_REQUEST);
    PoolRig off(0);
    EXPECT_FALSE(off.pool->enabled());
    EXPECT_TRUE(off.pool->take(3, "wf").empty());
}

TEST(ClusterAgentPoolTest, ARestoredAllocationIsFencedUntilItHasItsSlotsAgain) {
    PoolRig rig(2);
    rig.pool->want("alloc_1", 2, "wf");
    EXPECT_EQ(rig.pool->unconfirmed(), std::set<std::string>{"alloc_1"});
    // The pool is full (the old run's slots have not expired yet): still without them.
    rig.etcd->script = {PoolRig::size_in_etcd(2), PoolRig::slots_taken({0, 1})};
    rig.pool->tick();
    EXPECT_EQ(rig.pool->unconfirmed(), std::set<std::string>{"alloc_1"});
    rig.etcd->script = {PoolRig::slots_taken({}), ClaimsRig::taken()};
    rig.pool->tick();
    EXPECT_TRUE(rig.pool->unconfirmed().empty());
    // Given back: both slots deleted (value-checked).
    rig.etcd->script = {ClaimsRig::taken(), ClaimsRig::taken()};
    rig.pool->give_back("alloc_1");
    EXPECT_TRUE(rig.etcd->script.empty());
    EXPECT_EQ(rig.pool->status()["agents_here"], 0);
}

} // namespace
} // namespace resmgr::cluster
