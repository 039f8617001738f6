// The pressure responder through the lifecycle, with a fake backend and a fake clock: steps taken
// in the ladder's order and recorded before they are taken, undo puts the previous values back,
// a restart keeps what was held (a frozen group stays frozen until its signal clears) and gives
// it back after, advisory mode touches nothing, off gives everything back, a critical group is
// never touched, unenforced steps say why, and kill only under the hard floor.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "fake_backend.hpp"
#include "server/service.hpp"
#include "tests_support.hpp"

using namespace resmgr;
using nlohmann::json;
using std::chrono::seconds;

namespace {

const Owner kAlice{1000, 100};
const Owner kRoot{0, 0}; // critical is above priority_privileges' default

// Reads the responder's state file each time the kernel is asked to change a group, so a test
// can tell that a step was on disk before it was taken.
class RecordingBackend : public FakeBackend {
public:
    std::filesystem::path state_file;
    std::vector<std::string> seen_on_disk; // the file's text at each update/freeze
    std::set<std::string> refuse;          // limit files reported as unenforced ("cpu.weight")
    cgroup::Enforcement update(const std::string& id, const cgroup::Limits& limits) override {
        snapshot();
        FakeBackend::update(id, limits);
        cgroup::Enforcement e{{"cpu.max"}, {}};
        if (refuse.count("cpu.weight") && limits.cpu_weight != 100)
            e.unenforced.push_back("cpu.weight=" + std::to_string(limits.cpu_weight) + ": controller 'cpu' is not available");
        return e;
    }
    void freeze(const std::string& id, bool f) override {
        snapshot();
        FakeBackend::freeze(id, f);
    }

private:
    void snapshot() {
        std::ifstream in(state_file);
        std::stringstream text;
        text << in.rdbuf();
        seen_on_disk.push_back(text.str());
    }
};

core::Policy responder_policy(const std::string& mode = "enforce") {
    core::Policy p = core::Policy::defaults();
    auto& r = p.pressure_response;
    r.mode = mode;
    auto& cpu = r.signals.at("cpu_protected");
    cpu.hold = Millis(0);
    cpu.clear_hold = Millis(1000);
    r.escalate_after = Millis(2000);
    r.undo_interval = Millis(1000);
    return p;
}

struct Node {
    TempDir dir;
    TempDir groups;
    RecordingBackend backend;
    core::Policy policy;
    std::unique_ptr<state::StateStore> store;
    std::unique_ptr<core::Ledger> ledger;
    std::unique_ptr<server::Service> service;
    TimePoint now = *parse_timestamp("2025-01-15T11:30:00Z");

    explicit Node(core::Policy p = responder_policy()) : policy(std::move(p)) {
        backend.root = groups.path().string();
        start();
    }
    // A start of resmgrd on the same state: the responder's file is read before reconcile.
    void start() {
        service.reset();
        store = std::make_unique<state::StateStore>(dir.path() / "state");
        ledger = std::make_unique<core::Ledger>(core::NodeCapacity{8, 16 * kGiB}, policy);
        for (auto& a : store->load_allocations()) ledger->restore(a);
        service = std::make_unique<server::Service>(*ledger, backend, *store, [this] { return now; }, json::object(), json::object());
        backend.state_file = responder().state_path();
        responder().load();
        service->completion().reconcile();
    }
    lifecycle::PressureResponder& responder() { return service->pressure(); }
    std::string allocate(int priority, const Owner& peer = kAlice) {
        json params{{"workflow_id", "wf-" + std::to_string(priority)}, {"priority", priority}, {"resources", {{"cpu_cores", 1}, {"memory_gb", 1}}}};
        json r = service->router().handle_line(json{{"operation", "allocate"}, {"params", params}}.dump(), peer);
        EXPECT_EQ(r["status"], "success") << r.dump(2);
        return r["result"].value("allocation_id", "");
    }
    // One pass: the protected group stalls `stall` % on CPU, the low one uses a core.
    void pass(const std::string& protected_id, double stall, const std::string& low_id) {
        core::PressureGroup crit, low;
        crit.allocation_id = protected_id;
        crit.cpu_pressure_some = stall;
        crit.cpu_cores_used = 1;
        low.allocation_id = low_id;
        low.cpu_cores_used = 1;
        low.memory_current = 512ULL << 20;
        responder().respond(core::PressureSample{}, {crit, low});
    }
    std::vector<events::Event> events_of(events::EventType type) const {
        std::vector<events::Event> out;
        for (const auto& e : service->events().recent())
            if (e.type == type) out.push_back(e);
        return out;
    }
};

} // namespace

TEST(PressureResponder, ClimbsTheCpuLadderRecordingEachStepBeforeTakingIt) {
    Node n;
    const std::string crit = n.allocate(95, kRoot);
    const std::string low = n.allocate(10);
    const cgroup::Limits crit_before = n.backend.groups.at(crit);
    const cgroup::Limits low_before = n.backend.groups.at(low);
    n.backend.seen_on_disk.clear();

    n.pass(crit, 50, low); // cpu_weight on every victim at once
    EXPECT_LT(n.backend.groups.at(low).cpu_weight, low_before.cpu_weight);
    ASSERT_EQ(n.backend.seen_on_disk.size(), 1u);
    EXPECT_NE(n.backend.seen_on_disk[0].find("\"cpu_weight\""), std::string::npos) << "the step was not on disk when it was taken";

    n.now += seconds(1);
    n.pass(crit, 50, low); // escalate_after (2 s) has not passed: nothing more
    EXPECT_EQ(n.responder().state().held.size(), 1u);

    n.now += seconds(1);
    n.pass(crit, 50, low); // cpu_max: half the cores it uses
    ASSERT_TRUE(n.backend.groups.at(low).cpu_quota_us);
    EXPECT_EQ(*n.backend.groups.at(low).cpu_quota_us, 50000u);
    EXPECT_NE(n.backend.seen_on_disk.back().find("\"cpu_max\""), std::string::npos);

    n.now += seconds(2);
    n.pass(crit, 50, low); // freeze, the last rung
    EXPECT_TRUE(n.backend.frozen[low]);
    EXPECT_NE(n.backend.seen_on_disk.back().find("\"freeze\""), std::string::npos);

    // The critical group is never touched.
    EXPECT_EQ(n.backend.groups.at(crit), crit_before);
    EXPECT_FALSE(n.backend.frozen[crit]);
    for (const auto& s : n.responder().state().held) EXPECT_NE(s.allocation_id, crit);

    // One RESOURCE_PRESSURE event per step, naming signal, value, threshold, victim and action.
    auto taken = n.events_of(events::EventType::pressure);
    ASSERT_EQ(taken.size(), 3u);
    EXPECT_EQ(taken[0].allocation, low);
    EXPECT_EQ(taken[0].metric, "cpu_protected");
    EXPECT_EQ(taken[0].value, 50);
    EXPECT_EQ(taken[0].threshold, 20);
    EXPECT_EQ(taken[0].details["action"], "cpu_weight");
    EXPECT_EQ(taken[1].details["action"], "cpu_max");
    EXPECT_EQ(taken[2].details["action"], "freeze");
    EXPECT_EQ(taken[2].details["enforced"], true);
    EXPECT_EQ(taken[2].workflow, "wf-10");
}

TEST(PressureResponder, GivesBackInReverseToThePreviousValues) {
    Node n;
    const std::string crit = n.allocate(95, kRoot);
    const std::string low = n.allocate(10);
    const cgroup::Limits before = n.backend.groups.at(low);
    for (int i = 0; i < 3; ++i, n.now += seconds(2)) n.pass(crit, 50, low);
    ASSERT_TRUE(n.backend.frozen[low]);

    n.pass(crit, 0, low); // below clear: clear_hold (1 s) starts
    EXPECT_TRUE(n.backend.frozen[low]);
    n.now += seconds(1);
    n.pass(crit, 0, low); // cleared: the top rung goes first
    EXPECT_FALSE(n.backend.frozen[low]);
    EXPECT_TRUE(n.backend.groups.at(low).cpu_quota_us);
    n.now += seconds(1);
    n.pass(crit, 0, low);
    EXPECT_EQ(n.backend.groups.at(low).cpu_quota_us, before.cpu_quota_us);
    EXPECT_NE(n.backend.groups.at(low).cpu_weight, before.cpu_weight);
    n.now += seconds(1);
    n.pass(crit, 0, low);
    EXPECT_EQ(n.backend.groups.at(low), before);
    EXPECT_TRUE(n.responder().state().held.empty());

    auto given_back = n.events_of(events::EventType::pressure_relieved);
    ASSERT_EQ(given_back.size(), 3u);
    EXPECT_EQ(given_back[0].details["action"], "freeze");
    EXPECT_EQ(given_back[1].details["action"], "cpu_max");
    EXPECT_EQ(given_back[2].details["action"], "cpu_weight");
    EXPECT_EQ(given_back[2].details["value"], json(static_cast<double>(before.cpu_weight)));
}

TEST(PressureResponder, RestartKeepsWhatIsHeldThenGivesItBack) {
    Node n;
    const std::string crit = n.allocate(95, kRoot);
    const std::string low = n.allocate(10);
    const cgroup::Limits before = n.backend.groups.at(low);
    for (int i = 0; i < 3; ++i, n.now += seconds(2)) n.pass(crit, 50, low);
    ASSERT_TRUE(n.backend.frozen[low]);
    const auto lowered = n.backend.groups.at(low);

    // A crash: the kernel's groups stay, resmgrd starts again on the same state directory.
    n.backend.frozen[low] = false; // as if the crash split them: reconcile must freeze it again
    n.start();
    EXPECT_TRUE(n.backend.frozen[low]) << "a group the responder froze is frozen again after the restart";
    EXPECT_EQ(n.backend.groups.at(low), lowered);
    EXPECT_EQ(n.responder().state().held.size(), 3u);

    // The pressure is gone: everything comes back, so nothing stays frozen forever.
    for (int i = 0; i < 5; ++i, n.now += seconds(1)) n.pass(crit, 0, low);
    EXPECT_FALSE(n.backend.frozen[low]);
    EXPECT_EQ(n.backend.groups.at(low), before);
    EXPECT_TRUE(n.responder().state().held.empty());
}

TEST(PressureResponder, StepRecordedButNotTakenBeforeACrashIsTakenAtRestart) {
    Node n;
    const std::string crit = n.allocate(95, kRoot);
    const std::string low = n.allocate(10);
    for (int i = 0; i < 3; ++i, n.now += seconds(2)) n.pass(crit, 50, low);
    // The freeze was recorded, and the crash came before cgroup.freeze was written.
    n.backend.frozen.clear();
    n.start();
    EXPECT_TRUE(n.backend.frozen[low]);
}

TEST(PressureResponder, UnreadableStateStartsWithNothingHeldAndThawsTheGroups) {
    Node n;
    const std::string crit = n.allocate(95, kRoot);
    const std::string low = n.allocate(10);
    for (int i = 0; i < 3; ++i, n.now += seconds(2)) n.pass(crit, 50, low);
    ASSERT_TRUE(n.backend.frozen[low]);
    std::ofstream(n.responder().state_path()) << "{\"signals\": {}, \"held\": [{\"action\": \"melt\"}], \"last_change\": {}}";
    n.start();
    EXPECT_FALSE(n.backend.frozen[low]);
    EXPECT_TRUE(n.responder().state().held.empty());
    json status = n.responder().to_json(nullptr);
    EXPECT_NE(status.value("load_error", "").find("pressure.json: field 'action'"), std::string::npos) << status.dump(2);
}

TEST(PressureResponder, AdvisoryPlansAndReportsButTakesNothing) {
    Node n(responder_policy("advisory"));
    const std::string crit = n.allocate(95, kRoot);
    const std::string low = n.allocate(10);
    const cgroup::Limits before = n.backend.groups.at(low);
    for (int i = 0; i < 3; ++i, n.now += seconds(2)) n.pass(crit, 50, low);
    EXPECT_EQ(n.backend.groups.at(low), before);
    EXPECT_FALSE(n.backend.frozen[low]);
    auto planned = n.events_of(events::EventType::pressure);
    ASSERT_EQ(planned.size(), 3u);
    for (const auto& e : planned) {
        EXPECT_EQ(e.details["enforced"], false);
        EXPECT_NE(e.message.find("advisory"), std::string::npos);
    }
    EXPECT_EQ(n.responder().to_json(nullptr)["held"].size(), 3u);
}

TEST(PressureResponder, OffGivesEverythingBackAndThenDoesNothing) {
    Node n;
    const std::string crit = n.allocate(95, kRoot);
    const std::string low = n.allocate(10);
    const cgroup::Limits before = n.backend.groups.at(low);
    for (int i = 0; i < 3; ++i, n.now += seconds(2)) n.pass(crit, 50, low);
    ASSERT_TRUE(n.backend.frozen[low]);
    n.policy.pressure_response.mode = "off";
    n.start();
    n.pass(crit, 90, low);
    EXPECT_FALSE(n.backend.frozen[low]);
    EXPECT_EQ(n.backend.groups.at(low), before);
    n.now += seconds(5);
    n.pass(crit, 90, low);
    EXPECT_TRUE(n.responder().state().held.empty());
    EXPECT_EQ(n.events_of(events::EventType::pressure).size(), 0u);
}

TEST(PressureResponder, StepTheBackendCannotEnforceIsReportedAsUnenforced) {
    Node n;
    n.backend.refuse.insert("cpu.weight");
    const std::string crit = n.allocate(95, kRoot);
    const std::string low = n.allocate(10);
    n.pass(crit, 50, low);
    auto taken = n.events_of(events::EventType::pressure);
    ASSERT_EQ(taken.size(), 1u);
    EXPECT_NE(taken[0].details.value("unenforced", "").find("controller 'cpu' is not available"), std::string::npos);
    EXPECT_NE(taken[0].message.find("not enforced here"), std::string::npos);
    ASSERT_EQ(n.responder().state().held.size(), 1u);
    EXPECT_FALSE(n.responder().state().held[0].unenforced.empty()); // kept, with its reason, never dropped
    json status = n.responder().to_json(nullptr);
    EXPECT_NE(status["held"][0].value("unenforced", "").find("cpu.weight="), std::string::npos);
    EXPECT_EQ(status["held"][0]["workflow_id"], "wf-10");
}

TEST(PressureResponder, AFrozenAllocationAtItsMaxDurationIsEndedAtOnce) {
    // Frozen, it cannot act on the SIGTERM that starts its grace period: waiting for it would only
    // keep its memory and its slot for the whole grace period.
    Node n;
    const TimePoint started = n.now;
    const std::string crit = n.allocate(95, kRoot);
    const std::string low = n.allocate(10);
    for (int i = 0; i < 4; ++i, n.now += seconds(2)) n.pass(crit, 50, low); // cpu_weight, cpu_max, freeze
    ASSERT_TRUE(n.backend.frozen[low]);
    n.now = started + std::chrono::hours(6) + seconds(1); // both just past the policy's max_duration
    n.service->completion().on_timer();
    EXPECT_FALSE(n.ledger->find(low)) << "a frozen allocation waited out its grace period";
    ASSERT_TRUE(n.ledger->find(crit)) << "the running one gets its grace period to act on SIGTERM";
}

TEST(PressureResponder, KillsOnlyUnderTheMemoryFloor) {
    core::Policy p = responder_policy();
    p.pressure_response.signals.at("memory_some").hold = Millis(0);
    Node n(p);
    const std::string low = n.allocate(10);
    const std::string medium = n.allocate(50);
    core::PressureGroup g1, g2;
    g1.allocation_id = low;
    g1.memory_current = 900ULL << 20;
    g2.allocation_id = medium;
    g2.memory_current = 900ULL << 20;
    core::PressureSample s;
    s.memory_some = 60;
    s.memory_total_bytes = 16 * kGiB;
    s.memory_available_bytes = 8 * kGiB; // far above the floor
    // Both keep growing (a memory freeze and a kill only reach groups that still grow).
    auto grow = [&] {
        for (auto* g : {&g1, &g2}) g->memory_current = *g->memory_current + (8ULL << 20);
    };
    for (int i = 0; i < 6; ++i, n.now += seconds(2), grow()) n.responder().respond(s, {g1, g2});
    EXPECT_TRUE(n.ledger->find(low));
    EXPECT_TRUE(n.backend.frozen[low]);
    EXPECT_FALSE(n.backend.frozen[medium]) << "the last workflow still going is never paused for memory";
    ASSERT_TRUE(n.backend.groups.at(low).memory_high);
    EXPECT_LE(*n.backend.groups.at(low).memory_high, static_cast<std::uint64_t>(0.8 * (900ULL << 20)));

    s.memory_available_bytes = kGiB / 10; // under 3 %: the last rung, lowest priority first
    n.responder().respond(s, {g1, g2});
    EXPECT_FALSE(n.ledger->find(low));
    EXPECT_TRUE(n.ledger->find(medium));
    auto kills = n.events_of(events::EventType::pressure);
    ASSERT_FALSE(kills.empty());
    EXPECT_EQ(kills.back().details["action"], "kill");
    EXPECT_EQ(kills.back().workflow, "wf-10");
    EXPECT_EQ(kills.back().metric, "memory_available");
}

TEST(PressureResponder, StatusNamesModeSignalsAndWhatIsHeld) {
    Node n;
    const std::string crit = n.allocate(95, kRoot);
    const std::string low = n.allocate(10);
    n.pass(crit, 50, low);
    json r = n.service->router().handle_line(R"({"operation":"status","resource_type":"pressure"})", kAlice);
    ASSERT_EQ(r["status"], "success") << r.dump(2);
    const json& res = r["result"];
    EXPECT_EQ(res["mode"], "enforce");
    EXPECT_NE(res["signal_source"].get<std::string>().find("monitoring is not running"), std::string::npos);
    EXPECT_EQ(res["signals"]["cpu_protected"]["raised"], true);
    EXPECT_EQ(res["signals"]["cpu_protected"]["value"], 50);
    EXPECT_EQ(res["signals"]["cpu_protected"]["threshold"], 20);
    ASSERT_EQ(res["held"].size(), 1u);
    EXPECT_EQ(res["held"][0]["allocation_id"], low);
    EXPECT_EQ(res["held"][0]["action"], "cpu_weight");
    EXPECT_EQ(res["held"][0]["since"], format_timestamp(n.now));
}

TEST(PressureState, RoundTripsThroughJsonAndRefusesDamage) {
    core::PressureState s;
    core::PressureStep step;
    step.action = core::PressureAction::cpu_max;
    step.resource = "cpu";
    step.allocation_id = "alloc_1";
    step.priority = 10;
    step.value = 0.5;
    step.signal = "cpu_protected";
    step.seen = 42;
    step.threshold = 20;
    step.unenforced = "cpu.max=50000 100000: controller 'cpu' is not available";
    step.at = *parse_timestamp("2025-01-15T11:30:00Z");
    s.held.push_back(step);
    s.signals["cpu_protected"].raised = true;
    s.signals["cpu_protected"].raised_at = step.at;
    s.last_change["cpu"] = step.at;
    auto back = core::PressureState::from_json(s.to_json());
    EXPECT_EQ(back.to_json(), s.to_json());
    for (const char* bad : {R"({})", R"({"signals":{},"held":{},"last_change":{}})", R"({"signals":{},"held":[{"action":"cpu_max"}],"last_change":{}})",
                            R"({"signals":{"x":{"raised":"yes"}},"held":[],"last_change":{}})",
                            R"({"signals":{},"held":[],"last_change":{"cpu":"not a time"}})"})
        EXPECT_THROW(core::PressureState::from_json(json::parse(bad)), std::invalid_argument) << bad;
}
