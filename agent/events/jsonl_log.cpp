// Bounded JSON-lines files.
#include "events/jsonl_log.hpp"
#include "resmgr/json.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace resmgr::events {
namespace {

// Birth time (statx) where the filesystem records one, else the last change: a file whose age
// is unknown must still rotate eventually.
std::optional<TimePoint> file_started(const std::string& path) {
    struct statx sx {};
    if (::statx(AT_FDCWD, path.c_str(), 0, STATX_BTIME | STATX_MTIME, &sx) != 0) return std::nullopt;
    const auto& t = (sx.stx_mask & STATX_BTIME) ? sx.stx_btime : sx.stx_mtime;
    return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(t.tv_sec) + std::chrono::nanoseconds(t.tv_nsec)));
}

} // namespace

JsonlLog::JsonlLog(std::string path, std::uint64_t max_bytes, Seconds max_age, ClockFn clock)
    : path_(std::move(path)), max_bytes_(max_bytes), max_age_(max_age), clock_(std::move(clock)) {
    started_ = file_started(path_);
}

JsonlLog::~JsonlLog() { close_file(); }

void JsonlLog::close_file() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

void JsonlLog::rotate_if_due() {
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) {
        started_.reset();
        close_file(); // removed under us: start a new file
        return;
    }
    if (st.st_ino != inode_) close_file(); // replaced under us (e.g. an outside rotation): follow the name
    bool too_big = static_cast<std::uint64_t>(st.st_size) >= max_bytes_;
    bool too_old = max_age_.count() > 0 && started_ && clock_() - *started_ >= max_age_;
    if (!too_big && !too_old) return;
    std::rename(path_.c_str(), (path_ + ".1").c_str());
    close_file();
    started_.reset();
}

void JsonlLog::append(const nlohmann::json& record) { append_line(dump_text(record)); }

void JsonlLog::append_line(std::string line) {
    rotate_if_due();
    line += '\n';
    if (fd_ < 0) {
        fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd_ < 0) throw std::runtime_error("cannot open " + path_ + ": " + std::strerror(errno));
        struct stat st {};
        inode_ = ::fstat(fd_, &st) == 0 ? st.st_ino : 0;
    }
    ssize_t n = ::write(fd_, line.data(), line.size());
    if (n != static_cast<ssize_t>(line.size())) {
        close_file(); // opened again at the next record
        throw std::runtime_error("short write to " + path_);
    }
    if (!started_) started_ = clock_();
}

} // namespace resmgr::events
