#!/usr/bin/env bash
# The package tier: boots the system-test VM with the Debian package built by scripts/package.sh
# (and its -dbgsym package) and runs package-guest.sh inside it: install, the service comes up and
# answers, a running workflow survives an upgrade, apt-get purge leaves nothing behind.
#   package-test.sh PACKAGE_BUILD_DIR
# Exit 0 all passed, 1 a check failed, 77 (with the reason printed) when the tier cannot run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: package-test.sh PACKAGE_BUILD_DIR}" && pwd)
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: package tier: qemu-system-x86_64 is not installed"; exit 77; }
deb=$(ls "$build"/resmgr_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { echo "package-test.sh: no resmgr_*.deb in $build (run scripts/package.sh first)" >&2; exit 1; }

share=$build/vm-share
rm -rf "$share"
mkdir -p "$share"
cp "$deb" "$share/resmgr.deb"
# The -dbgsym package, and the build id of the packaged resmgrd (the guest has no readelf).
ddeb=$(ls "$build"/resmgr-dbgsym_*.ddeb 2>/dev/null | head -1)
if [ -n "$ddeb" ]; then
    cp "$ddeb" "$share/resmgr-dbgsym.ddeb"
    dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/sbin/resmgrd > "$share/resmgrd"
    LC_ALL=C readelf -n "$share/resmgrd" | sed -n 's/.*Build ID: //p' > "$share/resmgrd.build-id"
    rm "$share/resmgrd"
fi
cp "$here/package-guest.sh" "$share/"
set +e
"$here/vm.sh" run "$share" package-guest.sh | tee "$build/package-tests.log"
rc=${PIPESTATUS[0]}
set -e
exit "$rc"
