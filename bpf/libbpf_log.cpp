#include "bpf/libbpf_log.hpp"

#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <spdlog/spdlog.h>

namespace resmgr::bpf {
namespace {

std::mutex capture_mutex;
std::string* capture_target = nullptr;

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args) {
    char line[1024];
    int n = std::vsnprintf(line, sizeof line, format, args);
    if (n <= 0) return n;
    std::string_view text(line, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof line - 1));
    while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    spdlog::debug("libbpf: {}", text);
    if (capture_target && level == LIBBPF_WARN) capture_target->append(text).append("\n");
    return n;
}

} // namespace

LibbpfLogCapture::LibbpfLogCapture() : lock_(capture_mutex) {
    capture_target = &log_;
    libbpf_set_print(libbpf_print);
}

LibbpfLogCapture::~LibbpfLogCapture() { capture_target = nullptr; }

std::string LibbpfLogCapture::excerpt() const {
    constexpr std::size_t keep = 1500;
    if (log_.empty()) return {};
    return "; libbpf: " + (log_.size() <= keep ? log_ : "..." + log_.substr(log_.size() - keep));
}

std::string describe_errno(int err) {
    err = std::abs(err);
    std::string text = std::strerror(err);
    if (err == EPERM || err == EACCES) text += " (BPF needs root, or CAP_BPF with CAP_PERFMON)";
    return text;
}

} // namespace resmgr::bpf
