// PSI triggers: spec parsing and registration (see psi_trigger.hpp).
#include "monitor/psi_trigger.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <utility>

#include "monitor/node.hpp"

namespace resmgr::monitor {
namespace {

using std::chrono::microseconds;

// The kernel's limits on a trigger's window (kernel/sched/psi.c).
constexpr microseconds kMinWindow{500'000};
constexpr microseconds kMaxWindow{10'000'000};

void check(const PsiTriggerSpec& s) {
    if (s.kind != "some" && s.kind != "full") throw PsiSpecError("the kind must be some or full, got '" + detail::printable(s.kind) + "'");
    if (s.window < kMinWindow || s.window > kMaxWindow)
        throw PsiSpecError("the window must be 500000 to 10000000 µs, got " + std::to_string(s.window.count()));
    if (s.stall.count() <= 0 || s.stall > s.window)
        throw PsiSpecError("the stall must be above 0 and at most the window (" + std::to_string(s.window.count()) + " µs), got " +
                           std::to_string(s.stall.count()));
}

std::string errno_name(int e) {
    switch (e) {
    case EINVAL: return "EINVAL";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EBUSY: return "EBUSY";
    default: return "errno " + std::to_string(e);
    }
}

} // namespace

std::string PsiTriggerSpec::text() const { return kind + " " + std::to_string(stall.count()) + " " + std::to_string(window.count()); }

double PsiTriggerSpec::percent() const {
    return window.count() > 0 ? 100.0 * static_cast<double>(stall.count()) / static_cast<double>(window.count()) : 0;
}

PsiTriggerSpec parse_psi_trigger(std::string_view text) {
    auto fields = detail::split_fields(text);
    if (fields.size() != 3) throw PsiSpecError("expected 'some|full <stall µs> <window µs>', got '" + detail::printable(text) + "'");
    auto stall = detail::parse_u64(fields[1]);
    auto window = detail::parse_u64(fields[2]);
    if (!stall || !window || *stall > 3'600'000'000ULL || *window > 3'600'000'000ULL)
        throw PsiSpecError("the stall and the window are whole microseconds, got '" + detail::printable(text) + "'");
    PsiTriggerSpec s{std::string(fields[0]), microseconds(*stall), microseconds(*window)};
    check(s);
    return s;
}

PsiTriggerSpec psi_trigger_for(const std::string& kind, double threshold_percent, Millis window) {
    if (!std::isfinite(threshold_percent) || threshold_percent <= 0 || threshold_percent > 100)
        throw PsiSpecError("the threshold must be above 0 and at most 100 %, got " + std::to_string(threshold_percent));
    PsiTriggerSpec s{kind, microseconds(0), std::chrono::duration_cast<microseconds>(window)};
    s.stall = microseconds(std::max<std::int64_t>(1, std::llround(static_cast<double>(s.window.count()) * threshold_percent / 100)));
    check(s);
    return s;
}

PsiTrigger::PsiTrigger(std::string path, PsiTriggerSpec spec) : path_(std::move(path)), spec_(std::move(spec)) {
    int fd = ::open(path_.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        errno_ = errno;
        reason_ = "cannot open " + path_ + " for writing (" + errno_name(errno_) + ": " + std::strerror(errno_) + ")";
        return;
    }
    // Only the kernel's own files take triggers; anything else (a test fixture, a file put in the
    // way) would just be overwritten.
    struct statfs fs{};
    if (::fstatfs(fd, &fs) != 0 || (fs.f_type != PROC_SUPER_MAGIC && fs.f_type != CGROUP2_SUPER_MAGIC)) {
        errno_ = EOPNOTSUPP;
        reason_ = path_ + " is not a kernel pressure file (procfs or cgroup2)";
        ::close(fd);
        return;
    }
    // With the terminating NUL: /proc/pressure/* overwrites the last byte written with one, so
    // without it "1000000" would read as a 100 ms window and be refused.
    std::string text = spec_.text();
    if (::write(fd, text.c_str(), text.size() + 1) < 0) {
        errno_ = errno;
        reason_ = "the kernel refused the trigger '" + text + "' (" + errno_name(errno_) + ": " + std::strerror(errno_) + ")";
        ::close(fd);
        return;
    }
    fd_ = fd;
}

PsiTrigger::~PsiTrigger() {
    if (fd_ >= 0) ::close(fd_);
}

PsiTrigger::PsiTrigger(PsiTrigger&& other) noexcept
    : path_(std::move(other.path_)), spec_(std::move(other.spec_)), fd_(std::exchange(other.fd_, -1)), errno_(other.errno_),
      reason_(std::move(other.reason_)) {}

PsiTrigger& PsiTrigger::operator=(PsiTrigger&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        path_ = std::move(other.path_);
        spec_ = std::move(other.spec_);
        fd_ = std::exchange(other.fd_, -1);
        errno_ = other.errno_;
        reason_ = std::move(other.reason_);
    }
    return *this;
}

std::string PsiTrigger::describe() const {
    if (mode() == Mode::trigger) return "trigger '" + spec_.text() + "' on " + path_;
    return "polling avg10 of " + path_ + ": " + reason_;
}

} // namespace resmgr::monitor
