// Where the tests find the source tree and the programs they run. Defined in one translation unit
// (build_paths.cpp, compiled with the checkout's paths) so that every other test file compiles to
// the same object in any clone: CI's compiler cache then hits for them.
#pragma once

namespace build_paths {
extern const char* const source_dir; // the checkout (fixtures, units/, ../shared/)
extern const char* const resmgrd;    // the programs of this build
extern const char* const resmgr_cli;
extern const char* const resmgr_run;
} // namespace build_paths
