// A bounded JSON-lines file (monitoring/alerts.jsonl, monitoring/usage_history.jsonl): one
// record per line, appended whole with O_APPEND so a reader tailing it never sees half a line,
// and rotated to <file>.1 (one old generation kept) once it is too large or too old.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include "resmgr/model.hpp"

namespace resmgr::events {

class JsonlLog {
public:
    using ClockFn = std::function<TimePoint()>;
    // max_age 0: rotated by size only.
    JsonlLog(std::string path, std::uint64_t max_bytes, Seconds max_age = Seconds(0), ClockFn clock = [] { return Clock::now(); });
    ~JsonlLog();
    JsonlLog(const JsonlLog&) = delete;
    JsonlLog& operator=(const JsonlLog&) = delete;

    // Throws std::runtime_error when the file cannot be written.
    void append(const nlohmann::json& record);
    // One record already serialized (one line of JSON, without the newline).
    void append_line(std::string line);
    const std::string& path() const { return path_; }

private:
    void rotate_if_due();
    void close_file();

    std::string path_;
    std::uint64_t max_bytes_;
    Seconds max_age_;
    ClockFn clock_;
    // When the current file was started: its birth time where the filesystem keeps one.
    std::optional<TimePoint> started_;
    // The file stays open between records (one stat and one write a record, not four calls); a
    // file removed or replaced under its name is followed by its inode.
    int fd_ = -1;
    ino_t inode_ = 0;
};

} // namespace resmgr::events
