// PSI triggers on this kernel: each registration either succeeds (an fd the event loop can watch
// for POLLPRI) or gets the documented refusal (EINVAL on the project's build host, see VENUE.md),
// and then the fallback reads a real avg10 from the same file.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/stat.h>

#include "host_support.hpp"
#include "monitor/psi_trigger.hpp"

using namespace resmgr;
using namespace resmgr::host;
using namespace resmgr::monitor;

namespace {

// Registers `spec` on `path` and checks whichever way the kernel answered.
void expect_trigger_or_documented_refusal(const std::string& path, const std::string& spec) {
    PsiTrigger t(path, parse_psi_trigger(spec));
    std::cout << "[ info ] " << t.describe() << "\n";
    if (t.mode() == PsiTrigger::Mode::trigger) {
        ASSERT_GE(t.fd(), 0);
        pollfd p{t.fd(), POLLPRI, 0};
        ASSERT_GE(::poll(&p, 1, 0), 0) << std::strerror(errno);
        EXPECT_EQ(p.revents & (POLLERR | POLLNVAL), 0) << path;
    } else {
        EXPECT_EQ(t.error(), EINVAL) << "not the documented refusal: " << t.reason();
        EXPECT_EQ(t.fd(), -1);
    }
    // The fallback (and the sampler) read the same file: avg10 is a share of time, 0..100.
    Pressure p = t.read();
    EXPECT_GE(p.some.avg10, 0);
    EXPECT_LE(p.some.avg10, 100);
    if (p.full) {
        EXPECT_GE(p.full->avg10, 0);
        EXPECT_LE(p.full->avg10, 100);
    }
}

} // namespace

TEST(PsiHost, NodeMemoryAndCpuTriggers) {
    if (::geteuid() != 0) GTEST_SKIP() << "writing PSI triggers needs root (CAP_SYS_RESOURCE)";
    if (::access("/proc/pressure/memory", R_OK) != 0) GTEST_SKIP() << "this kernel has no PSI (/proc/pressure/memory)";
    expect_trigger_or_documented_refusal("/proc/pressure/memory", "some 150000 1000000");
    expect_trigger_or_documented_refusal("/proc/pressure/memory", "full 100000 1000000");
    expect_trigger_or_documented_refusal("/proc/pressure/cpu", "some 200000 1000000");
}

TEST(PsiHost, GroupPressureFiles) {
    std::string mount = cgroup2_mount();
    if (auto why = cgroup2_unavailable(mount)) GTEST_SKIP() << "cgroup2 host test skipped: " << *why;
    std::string dir = mount + "/resmgr-psitest-" + std::to_string(::getpid());
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << std::strerror(errno);
    struct Cleanup {
        std::string dir;
        ~Cleanup() { ::rmdir(dir.c_str()); }
    } cleanup{dir};
    if (::access((dir + "/memory.pressure").c_str(), R_OK) != 0) GTEST_SKIP() << "no memory.pressure in " << dir;
    expect_trigger_or_documented_refusal(dir + "/memory.pressure", "some 150000 1000000");
    expect_trigger_or_documented_refusal(dir + "/cpu.pressure", "some 200000 1000000");
}

TEST(PsiHost, MissingGroupFallsBackWithENOENT) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    PsiTrigger t(cgroup2_mount() + "/resmgr-no-such-group-" + std::to_string(::getpid()) + "/memory.pressure",
                 parse_psi_trigger("some 150000 1000000"));
    EXPECT_EQ(t.mode(), PsiTrigger::Mode::polling);
    EXPECT_EQ(t.error(), ENOENT);
}
