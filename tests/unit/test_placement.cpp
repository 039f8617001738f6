// Placement (issue 17, item 4): the pure core's choice (best fit, bookings, reservations,
// pressure) on struct literals; bookings and node records read field by field; and the placer's
// booking transaction against a scripted etcd (a lost race is read again, never booked twice).
#include <gtest/gtest.h>

#include <deque>

#include "cluster/placement.hpp"
#include "cluster/placer.hpp"
#include "resmgr/protocol.hpp"
#include "scripted_etcd.hpp"
#include "tests_support.hpp"

namespace resmgr::cluster {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const TimePoint kNow = *parse_timestamp("2026-12-06T10:00:00Z");

NodeStatus node(const std::string& name, double cpu_free, double mem_free, double cpu_cap = 8, double mem_cap = 32) {
    NodeStatus s;
    s.node_name = name;
    s.capacity = {cpu_cap, mem_cap, 10};
    s.free = {cpu_free, mem_free, 10};
    s.allocated = {cpu_cap - cpu_free, mem_cap - mem_free, 0};
    s.started_at = s.updated_at = kNow;
    return s;
}

Booking booking(const std::string& id, const std::string& on, double cpu, double mem) {
    Booking b;
    b.booking_id = id;
    b.node = on;
    b.workflow_id = "wf";
    b.placed_by = "x";
    b.amounts = {cpu, mem, 0};
    b.placed_at = kNow;
    b.expires_at = kNow + 30s;
    return b;
}

PlacementAsk ask(double cpu, double mem, PriorityBand band = PriorityBand::medium) { return {{cpu, mem, 0}, Priority::of_band(band), 1h}; }

TEST(PlacementCore, BestFitTakesTheNodeThatIsLeftWithTheLeastRoomAndTiesGoByName) {
    const std::vector<NodeStatus> nodes{node("big", 6, 24), node("tight", 2.5, 6), node("same", 2.5, 6)};
    const Placement p = decide(nodes, {}, ask(2, 4), kNow);
    ASSERT_TRUE(p.node);
    EXPECT_EQ(*p.node, "same"); // "same" and "tight" leave equal room: by name
    ASSERT_EQ(p.candidates.size(), 3u);
    EXPECT_EQ(p.candidates[1].node, "tight");
    EXPECT_EQ(p.candidates[2].node, "big");
    EXPECT_LT(p.candidates[0].left_over, p.candidates[2].left_over);
    EXPECT_TRUE(p.candidates[2].fits);
}

TEST(PlacementCore, BookingsNotYetAdmittedHoldRoomAndAdmittedOnesAreAlreadyInAllocated) {
    std::vector<NodeStatus> nodes{node("a", 4, 16)};
    std::map<std::string, std::vector<Booking>> bookings{{"a", {booking("bk_0000000000000001", "a", 3, 1)}}};
    Placement p = decide(nodes, bookings, ask(2, 1), kNow);
    EXPECT_FALSE(p.node);
    EXPECT_DOUBLE_EQ(p.candidates[0].room.cpu_cores, 1);
    EXPECT_EQ(p.candidates[0].reason, "cpu_cores: 2.00 wanted, 1.00 free");
    nodes[0].bookings_admitted = {"bk_0000000000000001"};
    p = decide(nodes, bookings, ask(2, 1), kNow);
    ASSERT_TRUE(p.node);
    EXPECT_DOUBLE_EQ(p.candidates[0].room.cpu_cores, 4);
}

TEST(PlacementCore, AReservationOpeningWithinTheWindowTakesItsRoomOneAfterItDoesNot) {
    std::vector<NodeStatus> nodes{node("a", 4, 16), node("b", 3, 16)};
    nodes[0].reservations = {{kNow + 30min, kNow + 2h, {3, 2, 0}}};
    // Within the hour asked for, a's window opens: 1 core left then, so b (3 free) is chosen.
    Placement p = decide(nodes, {}, ask(2, 1), kNow);
    ASSERT_TRUE(p.node);
    EXPECT_EQ(*p.node, "b");
    EXPECT_DOUBLE_EQ(p.candidates[1].room.cpu_cores, 1);
    // A 10-minute request ends before it opens: both fit, b the tighter (1 core left, a 2).
    PlacementAsk short_ask = ask(2, 1);
    short_ask.duration = 10min;
    p = decide(nodes, {}, short_ask, kNow);
    EXPECT_TRUE(p.candidates[0].fits && p.candidates[1].fits);
    EXPECT_DOUBLE_EQ(p.candidates[1].room.cpu_cores, 4);
    // One that has ended takes nothing; one that is open now takes its room now.
    nodes[0].reservations = {{kNow - 2h, kNow - 1h, {4, 2, 0}}, {kNow - 1h, std::nullopt, {1, 2, 0}}};
    p = decide(nodes, {}, ask(2, 1), kNow);
    ASSERT_EQ(p.candidates[0].node, "a"); // 3 cores each now: by name
    EXPECT_DOUBLE_EQ(p.candidates[0].room.cpu_cores, 3);
}

TEST(PlacementCore, ANodeUnderPressureTakesOnlyHighOrCriticalWorkAndOnlyWhenNoCalmNodeHasRoom) {
    std::vector<NodeStatus> nodes{node("calm", 2, 8), node("hot", 6, 24)};
    nodes[1].pressure_raised = {"memory"};
    Placement p = decide(nodes, {}, ask(1, 1, PriorityBand::high), kNow);
    EXPECT_EQ(*p.node, "calm"); // the calm one first, though hot would fit more loosely either way
    p = decide(nodes, {}, ask(4, 1, PriorityBand::low), kNow);
    EXPECT_FALSE(p.node);
    EXPECT_EQ(p.candidates[0].node, "calm");
    EXPECT_EQ(p.candidates[1].reason, "under pressure (memory): takes only high or critical priority work");
    p = decide(nodes, {}, ask(4, 1, PriorityBand::critical), kNow);
    ASSERT_TRUE(p.node);
    EXPECT_EQ(*p.node, "hot");
    EXPECT_EQ(p.candidates[0].reason, "under pressure (memory): used only when no calm node has room");
}

TEST(PlacementCore, NoLiveNodeOrNoRoomAnywhereIsNoNodeWithEachNodesReason) {
    EXPECT_FALSE(decide({}, {}, ask(1, 1), kNow).node);
    const Placement p = decide({node("a", 1, 1), node("b", 8, 0.5)}, {}, ask(2, 1), kNow);
    EXPECT_FALSE(p.node);
    for (const auto& c : p.candidates) {
        EXPECT_FALSE(c.fits);
        EXPECT_FALSE(c.reason.empty());
    }
    PlacementAsk agents = ask(0, 0);
    agents.wanted.agents = 11;
    EXPECT_EQ(decide({node("a", 1, 1)}, {}, agents, kNow).candidates[0].reason, "agents: 11.00 wanted, 10.00 free");
}

TEST(PlacementRecords, BookingsAreReadFieldByFieldAndAKeyMustNameItsNodeAndId) {
    const Booking b = booking("bk_00000000000000ab", "a", 1.5, 2);
    EXPECT_EQ(Booking::from_json(b.to_json()).to_json(), b.to_json());
    auto bad = [&](const std::function<void(json&)>& change) {
        json j = b.to_json();
        change(j);
        EXPECT_THROW(Booking::from_json(j), std::invalid_argument) << j.dump();
    };
    bad([](json& j) { j["booking_id"] = "../../nodes/a"; });
    bad([](json& j) { j["resources"]["cpu_cores"] = -1; });
    bad([](json& j) { j["resources"]["memory_gb"] = 1e300; });
    bad([](json& j) { j["priority"] = 101; });
    bad([](json& j) { j.erase("expires_at"); });
    EXPECT_THROW(Booking::from_json(json::array()), std::invalid_argument);
    std::vector<std::string> rejected;
    const auto by_node = bookings_by_node({{std::string(kBookingsPrefix) + "a/" + b.booking_id, b.to_json().dump(), 1, 5},
                                           {std::string(kBookingsPrefix) + "b/" + b.booking_id, b.to_json().dump(), 1, 6},
                                           {std::string(kBookingsPrefix) + "c/x", "not json", 1, 7}},
                                          rejected);
    EXPECT_EQ(by_node.size(), 1u);
    EXPECT_EQ(by_node.at("a").size(), 1u);
    EXPECT_EQ(rejected.size(), 2u);
    EXPECT_TRUE(valid_booking_id("bk_0123456789abcdef"));
    EXPECT_FALSE(valid_booking_id("bk_0123456789ABCDEF"));
    EXPECT_FALSE(valid_booking_id("bk_0123"));
}

TEST(PlacementRecords, NodeRecordsCarryReservationsAndAdmittedBookingsAndOlderRecordsWithoutThemStillParse) {
    NodeStatus s = node("a", 1, 2);
    s.reservations = {{kNow + 1h, kNow + 2h, {1, 2, 3}}, {kNow + 3h, std::nullopt, {0.5, 1, 0}}};
    s.bookings_admitted = {"bk_0000000000000001"};
    const NodeStatus back = NodeStatus::from_json(s.to_json());
    EXPECT_EQ(back.reservations, s.reservations);
    EXPECT_EQ(back.bookings_admitted, s.bookings_admitted);
    json old = s.to_json();
    old.erase("reservations");
    old.erase("bookings_admitted");
    EXPECT_TRUE(NodeStatus::from_json(old).reservations.empty());
    json many = s.to_json();
    many["reservations"] = json::array();
    for (int i = 0; i < 65; ++i) many["reservations"].push_back(s.to_json()["reservations"][0]);
    EXPECT_THROW(NodeStatus::from_json(many), std::invalid_argument);
    json wrong = s.to_json();
    wrong["bookings_admitted"] = {1};
    EXPECT_THROW(NodeStatus::from_json(wrong), std::invalid_argument);
}

// The placer against a scripted etcd: what each transaction asked, and what came back.
struct PlacerRig {
    ClusterConfig config;
    ScriptedTransport* etcd = nullptr;
    std::unique_ptr<ClusterPlacer> placer;
    PlacerRig() {
        config.endpoints = {"http://e:1"};
        config.node_name = "asker";
        auto transport = std::make_unique<ScriptedTransport>();
        etcd = transport.get();
        placer = std::make_unique<ClusterPlacer>(config, std::move(transport));
    }
    static json kv(const std::string& key, const std::string& value, int revision) {
        return {{"key", base64_encode(key)}, {"value", base64_encode(value)}, {"mod_revision", std::to_string(revision)}};
    }
    // The one-revision read of nodes, bookings and booking sequences, as etcd 3.4's gateway writes it.
    static HttpAnswer snapshot(const std::vector<NodeStatus>& nodes, const std::vector<Booking>& bookings, int seq_revision) {
        json node_kvs = json::array(), booking_kvs = json::array(), seq_kvs = json::array();
        int revision = 10;
        for (const auto& n : nodes) node_kvs.push_back(kv(kNodesPrefix + n.node_name, n.to_json().dump(), revision++));
        for (const auto& b : bookings) booking_kvs.push_back(kv(kBookingsPrefix + b.node + "/" + b.booking_id, b.to_json().dump(), revision++));
        if (seq_revision) seq_kvs.push_back(kv(std::string(kBookingSeqPrefix) + "a", "bk_0000000000000009", seq_revision));
        json answer{{"header", json::object()}, {"succeeded", true}, {"responses", json::array()}};
        for (const json& kvs : {node_kvs, booking_kvs, seq_kvs}) {
            json range{{"header", json::object()}};
            if (!kvs.empty()) range["kvs"] = kvs;
            answer["responses"].push_back({{"response_range", range}});
        }
        return {200, answer.dump()};
    }
    static HttpAnswer lease() { return {200, R"({"ID":"77","TTL":"30"})"}; }
    static HttpAnswer txn(bool succeeded) { return {200, succeeded ? R"({"succeeded":true})" : R"({"header":{}})"}; }
};

TEST(ClusterPlacerTest, BooksWithATransactionOnTheNodesRecordAndSequenceAndReadsAgainAfterALostRace) {
    PlacerRig rig;
    const NodeStatus a = node("a", 2, 8);
    // The first booking loses to another placer's (its sequence key moved); the second read sees
    // that booking, and the room it leaves still fits.
    rig.etcd->script = {PlacerRig::snapshot({a}, {}, 0), PlacerRig::lease(), PlacerRig::txn(false),
                        PlacerRig::snapshot({a}, {booking("bk_0000000000000009", "a", 1, 1)}, 40), PlacerRig::txn(true)};
    const auto placed = rig.placer->place(ask(1, 1), "wf", 30s, false, kNow);
    EXPECT_EQ(placed.attempts, 2);
    ASSERT_TRUE(placed.booking);
    EXPECT_EQ(placed.booking->node, "a");
    EXPECT_TRUE(valid_booking_id(placed.booking->booking_id));
    EXPECT_EQ(placed.booking->expires_at, kNow + 30s);
    EXPECT_DOUBLE_EQ(placed.placement.candidates[0].room.cpu_cores, 1);
    ASSERT_EQ(rig.etcd->bodies.size(), 5u);
    // One lease for the placement, granted once; the last transaction compares what it read.
    EXPECT_EQ(std::count(rig.etcd->urls.begin(), rig.etcd->urls.end(), "http://e:1/v3/lease/grant"), 1);
    const json last = json::parse(rig.etcd->bodies.back());
    ASSERT_EQ(last["compare"].size(), 2u);
    EXPECT_EQ(*base64_decode(last["compare"][0]["key"].get<std::string>()), "/resmgr/nodes/a");
    EXPECT_EQ(last["compare"][0]["target"], "MOD");
    EXPECT_EQ(last["compare"][0]["mod_revision"], "10");
    EXPECT_EQ(*base64_decode(last["compare"][1]["key"].get<std::string>()), "/resmgr/booking-seq/a");
    EXPECT_EQ(last["compare"][1]["mod_revision"], "40");
    EXPECT_EQ(*base64_decode(last["success"][0]["request_put"]["key"].get<std::string>()), "/resmgr/bookings/a/" + placed.booking->booking_id);
    EXPECT_EQ(last["success"][0]["request_put"]["lease"], "77");
}

TEST(ClusterPlacerTest, NoRoomIsResourceExhaustedWithoutALeaseAndEndlessRacesAreAConflict) {
    PlacerRig rig;
    rig.etcd->script = {PlacerRig::snapshot({node("a", 0.5, 8)}, {}, 0)};
    EXPECT_EQ(code_of([&] { rig.placer->place(ask(1, 1), "wf", 30s, false, kNow); }), ErrorCode::RESOURCE_EXHAUSTED);
    EXPECT_EQ(rig.etcd->urls.size(), 1u); // no lease granted for nothing
    rig.etcd->script.clear();
    rig.etcd->script.push_back(PlacerRig::snapshot({node("a", 4, 8)}, {}, 0));
    rig.etcd->script.push_back(PlacerRig::lease());
    rig.etcd->script.push_back(PlacerRig::txn(false));
    for (int i = 1; i < ClusterPlacer::kMaxAttempts; ++i) {
        rig.etcd->script.push_back(PlacerRig::snapshot({node("a", 4, 8)}, {}, 0));
        rig.etcd->script.push_back(PlacerRig::txn(false));
    }
    EXPECT_EQ(code_of([&] { rig.placer->place(ask(1, 1), "wf", 30s, false, kNow); }), ErrorCode::CONFLICT);
    EXPECT_TRUE(rig.etcd->script.empty());
}

TEST(ClusterPlacerTest, ADryRunBooksNothingAndNoEtcdIsClusterUnavailable) {
    PlacerRig rig;
    rig.etcd->script = {PlacerRig::snapshot({node("a", 4, 8)}, {}, 0)};
    const auto placed = rig.placer->place(ask(1, 1), "wf", 30s, true, kNow);
    EXPECT_EQ(*placed.placement.node, "a");
    EXPECT_FALSE(placed.booking);
    EXPECT_EQ(rig.etcd->urls.size(), 1u);
    rig.etcd->script = {std::nullopt};
    EXPECT_EQ(code_of([&] { rig.placer->place(ask(1, 1), "wf", 30s, false, kNow); }), ErrorCode::CLUSTER_UNAVAILABLE);
    // A hostile answer (not a range where one was read) is refused, not crashed on.
    rig.etcd->script = {HttpAnswer{200, R"({"responses":[{"response_put":{}}]})"}};
    EXPECT_EQ(code_of([&] { rig.placer->place(ask(1, 1), "wf", 30s, false, kNow); }), ErrorCode::CLUSTER_UNAVAILABLE);
}

TEST(ClusterPlacerTest, ABookingIsRedeemedOnlyOnItsNodeWhileEtcdHoldsItAndAdmittedOnesStopHoldingRoom) {
    PlacerRig rig;
    rig.config.node_name = "a";
    EXPECT_EQ(code_of([&] { rig.placer->redeem("../nodes/a"); }), ErrorCode::INVALID_REQUEST);
    rig.etcd->script = {HttpAnswer{200, R"({"header":{}})"}};
    EXPECT_EQ(code_of([&] { rig.placer->redeem("bk_0000000000000001"); }), ErrorCode::NOT_FOUND);
    EXPECT_EQ(*base64_decode(json::parse(rig.etcd->bodies.back())["key"].get<std::string>()), "/resmgr/bookings/a/bk_0000000000000001");
    const Booking b = booking("bk_0000000000000001", "a", 1, 2);
    rig.etcd->script = {HttpAnswer{200, json{{"kvs", {PlacerRig::kv("/resmgr/bookings/a/bk_0000000000000001", b.to_json().dump(), 3)}}}.dump()}};
    EXPECT_EQ(rig.placer->redeem("bk_0000000000000001").to_json(), b.to_json());
    // A value that names another booking than its key is not redeemed (nor listed as admitted).
    rig.etcd->script = {HttpAnswer{200, json{{"kvs", {PlacerRig::kv("/resmgr/bookings/a/bk_0000000000000001",
                                                                    booking("bk_0000000000000003", "a", 1, 2).to_json().dump(), 3)}}}.dump()}};
    EXPECT_EQ(code_of([&] { rig.placer->redeem("bk_0000000000000001"); }), ErrorCode::INTERNAL_ERROR);
    const std::vector<Booking> here{b, booking("bk_0000000000000002", "a", 0.5, 1)};
    EXPECT_DOUBLE_EQ(rig.placer->held(here, "", kNow).cpu_cores, 1.5);
    EXPECT_DOUBLE_EQ(rig.placer->held(here, "bk_0000000000000002", kNow).cpu_cores, 1); // the one being redeemed
    EXPECT_DOUBLE_EQ(rig.placer->held(here, "", b.expires_at + 1min).cpu_cores, 0);     // past expiry: etcd dropped them
    rig.placer->admitted(b);
    EXPECT_DOUBLE_EQ(rig.placer->held(here, "", kNow).cpu_cores, 0.5);
    EXPECT_EQ(rig.placer->admitted_ids(), std::vector<std::string>{"bk_0000000000000001"});
    EXPECT_EQ(code_of([&] { rig.placer->redeem("bk_0000000000000001"); }), ErrorCode::CONFLICT); // redeemed once
    // Settled once a published record lists it: its key is deleted, then it is forgotten; etcd
    // away, it waits for the next tick.
    rig.etcd->script = {std::nullopt};
    rig.placer->settle({"bk_0000000000000001"});
    EXPECT_EQ(rig.placer->admitted_ids().size(), 1u);
    rig.etcd->script = {HttpAnswer{200, R"({"header":{},"deleted":"1"})"}};
    rig.placer->settle({"bk_0000000000000001", "bk_00000000000000ff"});
    EXPECT_TRUE(rig.placer->admitted_ids().empty());
    EXPECT_EQ(rig.etcd->urls.back(), "http://e:1/v3/kv/deleterange");
    EXPECT_EQ(*base64_decode(json::parse(rig.etcd->bodies.back())["key"].get<std::string>()), "/resmgr/bookings/a/bk_0000000000000001");
}

// etcd whose member applies the booking transaction and loses its answer; the next member
// refuses the retry (the sequence moved) and reads the sequence back: this booking's id.
struct LostAnswerEtcd : Transport {
    std::deque<HttpAnswer> script; // reads and the lease grant
    int bookings_applied = 0;
    std::string applied_id;
    HttpAnswer post(const std::string& url, const std::string& body, Millis) override {
        const json request = json::parse(body);
        if (request.contains("compare")) {
            if (bookings_applied++ == 0) {
                const json put = request["success"][0]["request_put"];
                applied_id = json::parse(*base64_decode(put["value"].get<std::string>()))["booking_id"];
                throw EtcdUnavailable(url + ": Operation timed out");
            }
            return {200, json{{"responses", {{{"response_range", {{"kvs", {PlacerRig::kv("/resmgr/booking-seq/a", applied_id, 12)}}}}}}}}.dump()};
        }
        HttpAnswer next = script.front();
        script.pop_front();
        return next;
    }
};

TEST(ClusterPlacerTest, AnAppliedBookingWhoseAnswerWasLostIsRecognisedNotBookedAgain) {
    ClusterConfig config;
    config.endpoints = {"http://e:1", "http://e:2"};
    config.node_name = "asker";
    auto transport = std::make_unique<LostAnswerEtcd>();
    LostAnswerEtcd& etcd = *transport;
    etcd.script = {PlacerRig::snapshot({node("a", 4, 8)}, {}, 0), PlacerRig::lease()};
    ClusterPlacer placer(config, std::move(transport));
    const auto placed = placer.place(ask(1, 1), "wf", 30s, false, kNow);
    ASSERT_TRUE(placed.booking);
    EXPECT_EQ(placed.booking->booking_id, etcd.applied_id);
    EXPECT_EQ(placed.attempts, 1);
    EXPECT_EQ(etcd.bookings_applied, 2); // the transaction and its retry on the next member, no second booking
}

TEST(EtcdAnswersForPlacement, ATransactionsRangesAreReadInOrderWithTheirRevisions) {
    const auto ranges = parse_txn_ranges(json::parse(
        R"({"header":{"revision":"9"},"succeeded":true,"responses":[{"response_range":{"header":{},"kvs":[{"key":"L2E=","value":"MQ==","mod_revision":"8","create_revision":"2","version":"3"}],"count":"1"}},{"response_range":{"header":{}}}]})"));
    ASSERT_EQ(ranges.size(), 2u);
    ASSERT_EQ(ranges[0].size(), 1u);
    EXPECT_EQ(ranges[0][0].key, "/a");
    EXPECT_EQ(ranges[0][0].mod_revision, 8);
    EXPECT_TRUE(ranges[1].empty());
    EXPECT_THROW(parse_txn_ranges(json::parse(R"({"responses":[{"response_range":[]}]})")), EtcdError);
}

} // namespace
} // namespace resmgr::cluster
