// Scaling one allocation: the size `scale` asks the lifecycle for. Pure: the current size, what
// the group uses now, the node's free capacity and (for "auto") the recommender's figures in;
// the new size and the reasons out. No I/O.
//
// Rules:
//   - up: each named limit grows by `factor`, capped at what the node has free (a request the
//     node cannot grant at all is refused, not queued: scale is a live resize);
//   - down: each shrinks by `factor`, never below what the group uses now plus `margin` (memory
//     below memory.current would force reclaim or an OOM kill) nor below the floors;
//   - auto: each goes to the recommender's figure (sizing.hpp), with the same live-usage floor;
//     a figure the history cannot give yet is left as it is and said so.
// An uncapped limit (memory 0 = no memory.max) is never capped or raised here.
// May call: sizing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace resmgr::analytics {

enum class ScaleDirection { up, down, automatic };
enum class ScaleResource { cpu, memory, all };

struct ScaleInput {
    double cpu_cores = 0;           // the allocation's size now
    std::uint64_t memory_bytes = 0; // 0: uncapped
    std::optional<double> cpu_used;           // cores used over the latest sampling interval
    std::optional<std::uint64_t> memory_used; // memory.current now
    double cpu_free = 0;                      // node capacity not held by any allocation
    std::uint64_t memory_free = 0;
    std::optional<double> recommended_cpu; // for automatic
    std::optional<std::uint64_t> recommended_memory;
};

struct ScaleOptions {
    double factor = 1.5;
    double margin = 0.15; // over live usage, for down and automatic
    double min_cpu_cores = 0.01;
    std::uint64_t min_memory_bytes = 16ULL << 20;
};

struct ScalePlan {
    double cpu_cores = 0;
    std::uint64_t memory_bytes = 0;
    std::vector<std::string> changes; // "cpu_cores 2 -> 3 (x1.5)"
    std::vector<std::string> kept;    // why a named limit did not change
    bool changed() const { return !changes.empty(); }
};

ScalePlan plan_scale(const ScaleInput& input, ScaleDirection direction, ScaleResource resource, const ScaleOptions& options = {});

std::optional<ScaleDirection> scale_direction_from_string(const std::string& text);
std::optional<ScaleResource> scale_resource_from_string(const std::string& text);

} // namespace resmgr::analytics
