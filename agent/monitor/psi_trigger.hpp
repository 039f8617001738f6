// PSI triggers, thin and kernel-facing: a trigger spec ("some 150000 1000000": wake me when tasks
// stalled for 150 ms within any 1 s window) is parsed and checked against the kernel's rules,
// then written to /proc/pressure/<resource> or a group's <resource>.pressure; the open fd then
// raises POLLPRI (EPOLLPRI) each time the stall crosses, which the event loop watches (no
// polling). Kernels that refuse triggers (EINVAL: this project's build host), files that do not
// exist (ENOENT: no PSI, no such group), files that are not the kernel's (EOPNOTSUPP: never
// written) or no permission leave the trigger in polling mode: the
// caller reads avg10 at the sampling interval instead, and says so (doctor).
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>

#include "monitor/proc.hpp"
#include "resmgr/model.hpp"

namespace resmgr::monitor {

struct PsiTriggerSpec {
    std::string kind = "some"; // some | full
    std::chrono::microseconds stall{0};
    std::chrono::microseconds window{0};
    std::string text() const; // "some 150000 1000000", as the kernel takes it
    // The stall as a share of the window, percent: the value a crossing stands for.
    double percent() const;
};

struct PsiSpecError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// "some|full <stall µs> <window µs>"; throws PsiSpecError with the reason when the kernel would
// refuse it: window 500 ms to 10 s, 0 < stall <= window.
PsiTriggerSpec parse_psi_trigger(std::string_view text);
// The trigger for a threshold in percent over `window` (policy: signal threshold, trigger_window).
// Throws PsiSpecError as above (a threshold of 0 % has no trigger).
PsiTriggerSpec psi_trigger_for(const std::string& kind, double threshold_percent, Millis window);

class PsiTrigger {
public:
    enum class Mode { trigger, polling };
    // Registers `spec` on `path` (e.g. /proc/pressure/memory). Never throws for the kernel's
    // refusals: the result is then in polling mode with the reason ("EINVAL: ...").
    PsiTrigger(std::string path, PsiTriggerSpec spec);
    ~PsiTrigger();
    PsiTrigger(const PsiTrigger&) = delete;
    PsiTrigger& operator=(const PsiTrigger&) = delete;
    PsiTrigger(PsiTrigger&& other) noexcept;
    PsiTrigger& operator=(PsiTrigger&& other) noexcept;

    Mode mode() const { return fd_ >= 0 ? Mode::trigger : Mode::polling; }
    int fd() const { return fd_; } // -1 in polling mode; watch it for EPOLLPRI
    int error() const { return errno_; } // why polling: the errno of the refusal (0 when a trigger)
    const std::string& reason() const { return reason_; }
    const std::string& path() const { return path_; }
    const PsiTriggerSpec& spec() const { return spec_; }
    // The file's current figures (both modes; the fallback's sample). Throws ParseError.
    Pressure read() const { return read_pressure(path_); }
    // "trigger some 150000 1000000 on /proc/pressure/memory" or
    // "polling avg10 of /proc/pressure/memory: the kernel refused the trigger (EINVAL ...)".
    std::string describe() const;

private:
    std::string path_;
    PsiTriggerSpec spec_;
    int fd_ = -1;
    int errno_ = 0;
    std::string reason_;
};

} // namespace resmgr::monitor
