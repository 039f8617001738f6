#include "analytics/scaling.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace resmgr::analytics {
namespace {

std::string cores_text(double cores) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", cores);
    return buf;
}

std::string bytes_text(std::uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
    return buf;
}

// One limit's plan, the same for CPU (cores) and memory (bytes, as a double until the end).
struct Limit {
    const char* name;
    double now, floor_live, floor_min, free;
    std::optional<double> recommended;
};

// nullopt: keep it, with `why` said.
std::optional<double> next_size(const Limit& l, ScaleDirection direction, const ScaleOptions& o, std::string& why) {
    const double floor = std::max(l.floor_live, l.floor_min);
    switch (direction) {
    case ScaleDirection::up: {
        if (l.free <= 0) {
            why = std::string(l.name) + ": the node has none free";
            return std::nullopt;
        }
        return std::min(l.now * o.factor, l.now + l.free);
    }
    case ScaleDirection::down: {
        const double to = std::max(l.now / o.factor, floor);
        if (to >= l.now) {
            why = std::string(l.name) + ": already at what the group uses now plus the margin";
            return std::nullopt;
        }
        return to;
    }
    case ScaleDirection::automatic:
        if (!l.recommended) {
            why = std::string(l.name) + ": too few recorded runs to size it";
            return std::nullopt;
        }
        return std::min(std::max(*l.recommended, floor), l.now + std::max(l.free, 0.0));
    }
    return std::nullopt;
}

} // namespace

ScalePlan plan_scale(const ScaleInput& in, ScaleDirection direction, ScaleResource resource, const ScaleOptions& o) {
    ScalePlan plan{in.cpu_cores, in.memory_bytes, {}, {}};
    const char* how = direction == ScaleDirection::up ? "up" : direction == ScaleDirection::down ? "down" : "to the recommendation";
    if (resource != ScaleResource::memory) {
        const Limit cpu{"cpu_cores", in.cpu_cores, in.cpu_used.value_or(0) * (1 + o.margin), o.min_cpu_cores, in.cpu_free, in.recommended_cpu};
        std::string why;
        if (auto to = next_size(cpu, direction, o, why)) {
            const double rounded = std::round(*to * 1000) / 1000; // cpu.max is set in millicores
            if (std::abs(rounded - in.cpu_cores) >= 0.001) {
                plan.cpu_cores = rounded;
                plan.changes.push_back("cpu_cores " + cores_text(in.cpu_cores) + " -> " + cores_text(rounded) + " (" + how + ")");
            } else {
                plan.kept.push_back("cpu_cores: already at that size");
            }
        } else {
            plan.kept.push_back(why);
        }
    }
    if (resource != ScaleResource::cpu) {
        if (in.memory_bytes == 0) {
            plan.kept.push_back("memory: uncapped; scale does not add a cap (reallocate does)");
        } else {
            const Limit memory{"memory", static_cast<double>(in.memory_bytes), static_cast<double>(in.memory_used.value_or(0)) * (1 + o.margin),
                               static_cast<double>(o.min_memory_bytes), static_cast<double>(in.memory_free),
                               in.recommended_memory ? std::optional<double>(static_cast<double>(*in.recommended_memory)) : std::nullopt};
            std::string why;
            if (auto to = next_size(memory, direction, o, why)) {
                const auto bytes = static_cast<std::uint64_t>(*to) & ~std::uint64_t{4095}; // whole pages
                if (bytes != in.memory_bytes) {
                    plan.memory_bytes = bytes;
                    plan.changes.push_back("memory " + bytes_text(in.memory_bytes) + " -> " + bytes_text(bytes) + " (" + how + ")");
                } else {
                    plan.kept.push_back("memory: already at that size");
                }
            } else {
                plan.kept.push_back(why);
            }
        }
    }
    return plan;
}

std::optional<ScaleDirection> scale_direction_from_string(const std::string& text) {
    if (text == "up") return ScaleDirection::up;
    if (text == "down") return ScaleDirection::down;
    if (text == "auto") return ScaleDirection::automatic;
    return std::nullopt;
}

std::optional<ScaleResource> scale_resource_from_string(const std::string& text) {
    if (text == "cpu") return ScaleResource::cpu;
    if (text == "memory") return ScaleResource::memory;
    if (text.empty() || text == "all") return ScaleResource::all;
    return std::nullopt;
}

} // namespace resmgr::analytics
