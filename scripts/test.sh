#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs dependencies, then for two builds (warnings as
# errors; ASan+UBSan) runs the unit and host tiers with ctest, then the system tier in a VM.
# A tier that cannot run here says why and is counted as skipped, never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${RESMGR_JOBS:-2}

if [ "$(id -u)" = 0 ]; then ./scripts/install-deps.sh; else echo "test.sh: not root, not installing packages" >&2; fi

failed=0
summary=()
build_and_test() { # name, extra cmake args...
    local name=$1; shift
    echo "=== build $name"
    cmake -S . -B "build-$name" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRESMGR_WERROR=ON "$@" >/dev/null
    cmake --build "build-$name" -j"$jobs"
    echo "=== test $name (unit + host)"
    if (cd "build-$name" && ctest --output-on-failure --timeout 300); then
        summary+=("$name: ok")
    else
        summary+=("$name: FAILED"); failed=1
    fi
}

build_and_test release
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build_and_test asan -DRESMGR_SANITIZE=ON -DRESMGR_BUILD_BENCH=OFF

echo "=== system tier (VM)"
set +e
./tests/system/run-system-tests.sh build-release
rc=$?
set -e
case $rc in
    0) summary+=("system: ok") ;;
    77) summary+=("system: skipped (reason printed above)") ;;
    *) summary+=("system: FAILED"); failed=1 ;;
esac

echo "=== summary"
printf '%s\n' "${summary[@]}"
exit $failed
