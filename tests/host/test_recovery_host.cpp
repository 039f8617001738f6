// Recovery procedures through a real resmgrd (cgroupfs backend under the test's cgroup root,
// leak detection every second): a group planted under the daemon's allocations parent with a
// process in it, and an orphan temporary directory, are both gone within a few passes, the
// process killed, a directory resmgrd never names left alone, and a RESOURCE_LEAK event says so.
#include "build_paths.hpp"
#include <signal.h>
#include <sys/stat.h>

#include "daemon_fixture.hpp"

namespace resmgr::host {
namespace {

class RecoveryHost : public DaemonHost {
protected:
    std::string temp_root() const { return dir + "/state-tmp"; } // resmgrd's default beside --state-dir

    // The fixture's daemon again, with leak detection every second.
    void restart_with_fast_leak_detection() {
        ASSERT_EQ(stop(SIGTERM), 0) << slurp(log);
        std::ofstream(dir + "/policy.json") << R"({"resource_policies":{"monitoring_intervals":{"resource_check":"1s"},)"
                                               R"("resource_leak_detection":{"monitoring_interval":"1s","leak_threshold":15,)"
                                               R"("auto_cleanup":true,"escalation_timeout":"30m"}}})";
        start(daemon_args());
    }
};

TEST_F(RecoveryHost, LeakedGroupAndOrphanTempDirAreRemovedAndReported) {
    restart_with_fast_leak_detection();
    const std::string leaked = root + "/alloc_leakedhost", foreign = root + "/foreign.dir";
    ASSERT_EQ(::mkdir(leaked.c_str(), 0755), 0) << std::strerror(errno);
    ASSERT_EQ(::mkdir(foreign.c_str(), 0755), 0) << std::strerror(errno);
    const pid_t sleeper = spawn({"/bin/sleep", "120"}, dir + "/sleeper.log");
    std::ofstream(leaked + "/cgroup.procs") << sleeper;
    ASSERT_NE(slurp(leaked + "/cgroup.procs").find(std::to_string(sleeper)), std::string::npos) << "the sleeper is not in the planted group";
    const std::string orphan = temp_root() + "/alloc_orphanhost";
    ASSERT_EQ(::mkdir(orphan.c_str(), 0700), 0) << std::strerror(errno);
    std::ofstream(orphan + "/left-behind") << "x";

    const bool gone = wait_until([&] { return !std::filesystem::exists(leaked) && !std::filesystem::exists(orphan); }, std::chrono::seconds(15));
    EXPECT_TRUE(gone) << "leaked group there: " << std::filesystem::exists(leaked) << ", orphan there: " << std::filesystem::exists(orphan)
                      << "\nlog:\n" << slurp(log);
    EXPECT_EQ(exit_within(sleeper, std::chrono::seconds(5)), 128 + SIGKILL) << "the leaked group's process was not killed";
    EXPECT_TRUE(std::filesystem::exists(foreign)) << "a directory resmgrd never names was removed";

    json events = cli_json({"events", R"({"types":["leak"]})"});
    ASSERT_EQ(events["status"], "success") << events.dump(2);
    bool group_reported = false, dir_reported = false;
    for (const auto& e : events["result"]["events"]) {
        EXPECT_EQ(e["event"], "RESOURCE_LEAK");
        const std::string message = e.value("message", "");
        group_reported = group_reported || message.find("unclaimed_group alloc_leakedhost") != std::string::npos;
        dir_reported = dir_reported || message.find("orphan_temp_dir alloc_orphanhost") != std::string::npos;
    }
    EXPECT_TRUE(group_reported) << events.dump(2);
    EXPECT_TRUE(dir_reported) << events.dump(2);

    json doctor = cli_json({"doctor"});
    const json& last = doctor["result"]["daemon"]["recovery"]["leak_detection"]["last_pass"];
    EXPECT_TRUE(last.contains("at")) << doctor["result"]["daemon"]["recovery"].dump(2);
}

} // namespace
} // namespace resmgr::host
