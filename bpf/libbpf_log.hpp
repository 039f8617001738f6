// Shared by the BPF loaders (probes.cpp, guard_lsm.cpp), built only with BPF: libbpf's one
// process-wide print hook, and errno text that says what a BPF failure usually means.
#pragma once

#include <mutex>
#include <string>

namespace resmgr::bpf {

// While alive (one at a time), libbpf's warnings, which carry the verifier log, are kept for the
// error message; everything libbpf prints goes to spdlog at debug level.
class LibbpfLogCapture {
public:
    LibbpfLogCapture();
    ~LibbpfLogCapture();
    LibbpfLogCapture(const LibbpfLogCapture&) = delete;
    LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;
    // "; libbpf: <the end of the log>", bounded; empty when libbpf said nothing.
    std::string excerpt() const;

private:
    std::lock_guard<std::mutex> lock_;
    std::string log_;
};

std::string describe_errno(int err);

} // namespace resmgr::bpf
