// The router's table against the catalog: every operation has one row, the seed's included,
// and parameters are checked in the same words everywhere.
#include <gtest/gtest.h>

#include <set>

#include "fake_backend.hpp"
#include "server/service.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using nlohmann::json;

namespace {

struct Node {
    TempDir dir;
    FakeBackend backend;
    state::StateStore store{dir.path()};
    core::Ledger ledger{core::NodeCapacity{4, 8 * kGiB}, core::Policy::defaults()};
    server::Service service{ledger, backend, store, [] { return *parse_timestamp("2025-01-15T11:30:00Z"); }, json::object(), json::object()};
    json call(const json& request) { return service.router().handle_line(request.dump(), Owner{1000, 100}); }
};

} // namespace

TEST(Router, EverySeedOperationAndEveryCatalogRowHasExactlyOneHandler) {
    Node node;
    std::map<const OperationSpec*, int> rows;
    for (const auto& op : node.service.router().operations()) ++rows[op.spec];
    for (const auto& spec : operation_catalog()) {
        if (spec.by_socket) continue;
        EXPECT_EQ(rows[&spec], 1) << spec.name << " " << spec.resource_type;
    }
    std::set<std::string> routed;
    for (const auto& op : node.service.router().operations()) routed.insert(op.spec->name);
    for (const auto& name : seed_operations()) EXPECT_TRUE(routed.count(name)) << name;
    EXPECT_EQ(seed_operations().size(), 20u); // the seed names twenty
}

TEST(Router, AnOperationOutsideTheCatalogCannotBeRegistered) {
    Node node;
    EXPECT_THROW(node.service.router().add("frobnicate", "", [](const server::Call&) { return SuccessBody{}; }), std::logic_error);
}

TEST(Router, ParametersAreCheckedFromTheSpecInOneWording) {
    Node node;
    json unknown = node.call({{"operation", "release"}, {"params", {{"allocation_id", "a"}, {"forse", true}}}});
    EXPECT_EQ(unknown["error"]["code"], "INVALID_REQUEST");
    EXPECT_EQ(unknown["error"]["message"], "unknown parameter 'forse'");
    EXPECT_NE(unknown["error"]["details"].get<std::string>().find("force"), std::string::npos) << unknown.dump(2);

    json type = node.call({{"operation", "events"}, {"params", {{"limit", "ten"}}}});
    EXPECT_EQ(type["error"]["message"], "'limit' must be a whole number >= 1");
    json range = node.call({{"operation", "detach"}, {"params", {{"allocation_id", "a"}, {"agent", "x"}, {"exit_status", 300}}}});
    EXPECT_EQ(range["error"]["message"], "'exit_status' must be a whole number 0..255");
    json missing = node.call({{"operation", "resolve-conflicts"}, {"params", {{"conflict_id", "conf_1"}}}});
    EXPECT_EQ(missing["error"]["message"], "missing required field 'strategy'");
    json duration = node.call({{"operation", "check-conflicts"}, {"params", {{"proposed_allocation", json::object()}, {"time_horizon", "soon"}}}});
    EXPECT_EQ(duration["error"]["message"], "'time_horizon' must be a duration such as \"4h\"");
    json none = node.call({{"operation", "capacity"}, {"params", {{"x", 1}}}});
    EXPECT_EQ(none["error"]["details"], "this operation takes no parameters");
}

TEST(Router, EverySeedOperationIsBuiltAndAnUnknownOneNamesThem) {
    Node node;
    for (const auto& spec : operation_catalog()) EXPECT_TRUE(spec.built) << spec.name;
    json unknown = node.call({{"operation", "frobnicate"}});
    EXPECT_EQ(unknown["error"]["code"], "INVALID_REQUEST");
    for (const auto& name : seed_operations()) EXPECT_NE(unknown["error"]["details"].get<std::string>().find(name), std::string::npos) << name;
}

TEST(Router, ABackendFailureBecomesBackendErrorWithWhatWasBeingDone) {
    Node node;
    node.backend.fail.insert("create");
    json r = node.call({{"operation", "allocate"}, {"params", {{"workflow_id", "wf"}, {"resources", {{"cpu_cores", 1}}}}}});
    EXPECT_EQ(r["error"]["code"], "BACKEND_ERROR") << r.dump(2);
    EXPECT_EQ(r["error"]["message"], "Could not create the cgroup for the allocation");
    EXPECT_TRUE(node.ledger.allocations().empty());
}
