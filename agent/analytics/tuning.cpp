#include "analytics/tuning.hpp"

#include <algorithm>

namespace resmgr::analytics {

TuneStep tune_step(std::optional<double> measured, double target, const TuneKnob& knob, const TuneOptions& o) {
    if (!measured) return {knob.value, TuneProgress::no_data};
    if (*measured > target) {
        if (knob.value >= knob.ceiling) return {knob.ceiling, TuneProgress::bound_reached};
        return {std::min(knob.ceiling, knob.value * o.step), TuneProgress::adjusting};
    }
    if (*measured < target * o.release_below && knob.value > knob.floor)
        return {std::max(knob.floor, knob.value / o.step), TuneProgress::adjusting};
    return {knob.value, TuneProgress::holding};
}

const char* to_string(TuneProgress progress) {
    switch (progress) {
    case TuneProgress::adjusting: return "adjusting";
    case TuneProgress::holding: return "holding";
    case TuneProgress::bound_reached: return "bound_reached";
    case TuneProgress::no_data: return "no_data";
    }
    return "no_data";
}

} // namespace resmgr::analytics
