#include "monitor/stall_share.hpp"

#include <algorithm>

namespace resmgr::monitor {

std::optional<double> StallShare::share(const std::string& key, std::uint64_t total_usec, TimePoint now, Millis max_gap,
                                        std::optional<TimePoint> born) {
    auto it = last_.find(key);
    std::optional<Reading> base;
    if (it != last_.end()) base = it->second;
    else if (born) base = Reading{*born, 0};
    std::optional<double> out;
    if (base && now > base->at && now - base->at <= max_gap && total_usec >= base->total_usec) {
        const double elapsed_usec = static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(now - base->at).count());
        out = std::min(100.0, 100.0 * static_cast<double>(total_usec - base->total_usec) / elapsed_usec);
    }
    last_[key] = {now, total_usec};
    return out;
}

void StallShare::retain(const std::function<bool(const std::string& key)>& keep) {
    std::erase_if(last_, [&](const auto& entry) { return !keep(entry.first); });
}

} // namespace resmgr::monitor
