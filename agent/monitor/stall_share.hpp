// The share of time tasks stalled since the previous reading of the same PSI file, from its
// cumulative `total=` (microseconds): what the last sampling interval saw. avg10 is a 10 s moving
// average that keeps a stall that ended (a hog the OOM killer just removed) visible for tens of
// seconds; the responder judges pressure by this instead. Pure: readings and times in, shares out.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "resmgr/model.hpp"

namespace resmgr::monitor {

class StallShare {
public:
    // Percent of the time since `key`'s previous reading that `total_usec` grew by; nullopt on the
    // first reading, when that reading is older than max_gap (the share over a long gap would
    // dilute a stall), or when the total went backwards (the group was re-created). `born`: when
    // the group was made, if known; a group's PSI totals start at 0 then, so a first reading
    // within max_gap of it has that base (a step that began a moment ago is judged at once).
    std::optional<double> share(const std::string& key, std::uint64_t total_usec, TimePoint now, Millis max_gap,
                                std::optional<TimePoint> born = std::nullopt);
    // Forget the keys `keep` says no to (groups that are gone).
    void retain(const std::function<bool(const std::string& key)>& keep);
    std::size_t size() const { return last_.size(); }

private:
    struct Reading {
        TimePoint at{};
        std::uint64_t total_usec = 0;
    };
    std::map<std::string, Reading> last_;
};

} // namespace resmgr::monitor
