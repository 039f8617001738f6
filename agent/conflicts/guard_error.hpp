// The error every part of the file guard throws when the kernel refuses it; what() says why.
#pragma once

#include <stdexcept>

namespace resmgr::conflicts {

struct GuardError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

} // namespace resmgr::conflicts
