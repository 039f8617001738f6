// `tune`: one feedback step of a loop that holds a measured metric at or below a target by
// moving one knob. Pure: the metric's latest value, the target and the knob in; the next knob and
// the loop's progress out. No I/O; the lifecycle's Tuner measures and writes each pass.
//
// Method (named in every answer as kTuneMethod): a multiplicative step with a dead band.
//   - above the target: the knob moves one step toward more room (x step), up to its bound;
//     at the bound with the metric still above, the loop says so (bound_reached) and holds;
//   - below `release_below` of the target: one step back (/ step), never under its floor, so
//     room taken for a burst is returned once the burst is over;
//   - in between: holding. The band keeps the loop from oscillating around the target;
//   - no measurement this pass: nothing moves (no_data), never a guess.
// May call: nothing.
#pragma once

#include <optional>
#include <string>

namespace resmgr::analytics {

inline constexpr const char* kTuneMethod =
    "multiplicative step (x1.5 per sampling pass) toward more room while the metric is above the target, one step back below "
    "half of it, holding in between; bounded by the knob's floor and ceiling";

enum class TuneProgress { adjusting, holding, bound_reached, no_data };

struct TuneKnob {
    double value = 1;
    double floor = 1;   // the knob's resting value (where the loop started)
    double ceiling = 1; // never beyond
};

struct TuneOptions {
    double step = 1.5;
    double release_below = 0.5; // of the target
};

struct TuneStep {
    double value = 0; // the knob for the next pass
    TuneProgress progress = TuneProgress::no_data;
};

TuneStep tune_step(std::optional<double> measured, double target, const TuneKnob& knob, const TuneOptions& options = {});

const char* to_string(TuneProgress progress);

} // namespace resmgr::analytics
