// A bounded JSON-lines file (monitoring/alerts.jsonl, monitoring/usage_history.jsonl): one
// record per line, appended whole with O_APPEND so a reader tailing it never sees half a line,
// and rotated to <file>.1 (one old generation kept) once it is too large or too old.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "resmgr/model.hpp"

namespace resmgr::events {

class JsonlLog {
public:
    using ClockFn = std::function<TimePoint()>;
    // max_age 0: rotated by size only.
    JsonlLog(std::string path, std::uint64_t max_bytes, Seconds max_age = Seconds(0), ClockFn clock = [] { return Clock::now(); });

    // Throws std::runtime_error when the file cannot be written.
    void append(const nlohmann::json& record);
    const std::string& path() const { return path_; }

private:
    void rotate_if_due();

    std::string path_;
    std::uint64_t max_bytes_;
    Seconds max_age_;
    ClockFn clock_;
    // When the current file was started: its birth time where the filesystem keeps one.
    std::optional<TimePoint> started_;
};

} // namespace resmgr::events
