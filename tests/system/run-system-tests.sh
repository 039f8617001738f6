#!/usr/bin/env bash
# The system tier: copies a build's binaries, the units and the guest tests into a share, boots
# the VM (vm.sh) and runs tests/system/guest-tests.sh inside it.
#   run-system-tests.sh BUILD_DIR
# Exit 0 all passed, 1 a check failed, 77 (with the reason printed) when the tier cannot run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: run-system-tests.sh BUILD_DIR}" && pwd)

command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: system tier: qemu-system-x86_64 is not installed"; exit 77; }
command -v cc >/dev/null || { echo "SKIP: system tier: no C compiler for the guest helpers"; exit 77; }

share=$build/vm-share
rm -rf "$share"
mkdir -p "$share/bin" "$share/units"
cp "$build/agent/resmgrd" "$build/agent/cli/resmgr" "$build/agent/cli/resmgr-run" "$share/bin/"
cp "$here/../../units/resmgrd.service" "$here/../../units/resmgr.slice" "$here/../../units/resmgr.catalog" "$share/units/"
cp "$here/guest-tests.sh" "$share/"
# Static, so they run in the guest whatever its libc.
cc -static -O2 -o "$share/bin/hog" "$here/hog.c"
cc -static -O2 -o "$share/bin/spin" "$here/spin.c"
cc -static -O2 -o "$share/bin/spawn-time" "$here/spawn-time.c"

set +e
"$here/vm.sh" run "$share" guest-tests.sh | tee "$build/system-tests.log"
rc=${PIPESTATUS[0]}
set -e
exit "$rc"
