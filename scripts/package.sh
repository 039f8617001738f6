#!/usr/bin/env bash
# Builds the Debian package in BUILD_DIR (default build-pkg) with Debian's hardening flags and
# checks it with lintian: resmgr_<version>_<arch>.deb and resmgr-dbgsym_<version>_<arch>.ddeb.
# Exit 0 only when lintian reports no error and no warning. Needs help2man and lintian
# (install-deps.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-pkg}
. "$(dirname "$0")/debian-flags.sh"
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# RESMGR_WERROR=ON (test.sh) builds with warnings as errors, like its release tier, whose objects
# are then the same and come from ccache.
cmake "${launcher[@]}" -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
          "${debian_cmake_flags[@]}" -DRESMGR_WERROR="${RESMGR_WERROR:-OFF}" \
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
