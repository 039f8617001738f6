# Sourced by package.sh and test.sh: Debian's compile and link flags with every hardening feature,
# as CMake arguments in the array debian_cmake_flags. test.sh builds its release tier with the
# same flags as the package, so the package build finds every object in ccache and only links.
# Given to CMake explicitly: it reads the environment only on a first configure, and no CPPFLAGS
# at all (_FORTIFY_SOURCE goes in the compile flags).
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
debian_cppflags=$(dpkg-buildflags --get CPPFLAGS)
debian_cmake_flags=(
    -DCMAKE_C_FLAGS="$(dpkg-buildflags --get CFLAGS) $debian_cppflags"
    -DCMAKE_CXX_FLAGS="$(dpkg-buildflags --get CXXFLAGS) $debian_cppflags"
    -DCMAKE_EXE_LINKER_FLAGS="$(dpkg-buildflags --get LDFLAGS)"
)
