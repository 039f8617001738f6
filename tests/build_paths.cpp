#include "build_paths.hpp"

namespace build_paths {
const char* const source_dir = RESMGR_SOURCE_DIR;
const char* const resmgrd = RESMGRD_PATH;
const char* const resmgr_cli = RESMGR_CLI_PATH;
const char* const resmgr_run = RESMGR_RUN_PATH;
} // namespace build_paths
