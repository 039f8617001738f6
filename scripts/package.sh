#!/usr/bin/env bash
# Builds the Debian package in BUILD_DIR (default build-pkg) with Debian's hardening flags and
# checks it with lintian: resmgr_<version>_<arch>.deb and resmgr-dbgsym_<version>_<arch>.ddeb.
# Exit 0 only when lintian reports no error and no warning. Needs help2man and lintian
# (install-deps.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-pkg}
# Debian's flags with every hardening feature, given to CMake explicitly (it reads the
# environment only on a first configure, and no CPPFLAGS at all: _FORTIFY_SOURCE goes in the
# compile flags).
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
cppflags=$(dpkg-buildflags --get CPPFLAGS)
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake "${launcher[@]}" -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
          -DCMAKE_C_FLAGS="$(dpkg-buildflags --get CFLAGS) $cppflags" -DCMAKE_CXX_FLAGS="$(dpkg-buildflags --get CXXFLAGS) $cppflags" \
          -DCMAKE_EXE_LINKER_FLAGS="$(dpkg-buildflags --get LDFLAGS)" \
          -DRESMGR_BUILD_TESTS=OFF -DRESMGR_BUILD_BENCH=OFF > /dev/null
cmake --build "$build" -j"${RESMGR_JOBS:-2}"
rm -f "$build"/resmgr*.deb "$build"/resmgr*.ddeb
(cd "$build" && cpack -G DEB > /dev/null)
deb=$(ls "$build"/resmgr_*.deb)
ddeb=$(ls "$build"/resmgr-dbgsym_*.ddeb)
# CPack 3.25 builds the -dbgsym package with its md5sums naming absolute build paths, the .debug
# files executable and no /usr/share/doc: rebuild it as dh_strip would (md5sums relative to /,
# files 0644, usr/share/doc/resmgr-dbgsym -> resmgr, allowed since it depends on resmgr (= version)).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb --raw-extract "$ddeb" "$tmp/pkg"
(
    cd "$tmp/pkg"
    find usr -type f -exec chmod 0644 {} +
    mkdir -p usr/share/doc
    ln -s resmgr usr/share/doc/resmgr-dbgsym
    find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum > DEBIAN/md5sums
)
dpkg-deb --root-owner-group --build "$tmp/pkg" "$ddeb" > /dev/null
echo "package: $deb"
dpkg-deb --info "$deb" | sed -n '/Architecture:/,$p'
echo "debug symbols: $ddeb"
lintian --fail-on error,warning --display-info "$deb" "$ddeb"
echo "lintian: no errors, no warnings"
