#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs dependencies, then for two builds (warnings as
# errors; ASan+UBSan) runs the unit and host tiers with ctest, then the system tier in a VM, then
# the package tier (the .deb built, checked by lintian, installed and purged in the VM).
# A tier that cannot run here says why and is counted as skipped, never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${RESMGR_JOBS:-2}

if [ "$(id -u)" = 0 ]; then ./scripts/install-deps.sh; else echo "test.sh: not root, not installing packages" >&2; fi

# Compiler cache: CI builds a fresh clone each time; with the cache kept in /var/cache (like the
# VM image) only the files a change touched are compiled again. Paths are made relative to the
# checkout so that another clone's directory still hits.
launcher=()
if command -v ccache >/dev/null; then
    export CCACHE_DIR=${CCACHE_DIR:-$([ "$(id -u)" = 0 ] && echo /var/cache/resmgr-ccache || echo "$HOME/.cache/ccache")}
    export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
    launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

failed=0
summary=()
timings=() # wall time of each stage, printed at the end: the whole suite must stay under 30 minutes
total_passed=0
total_failed=0
count_ctest() { # ctest's "NN% tests passed, F tests failed out of T" line from a log
    local line
    line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$1" | tail -1)
    [ -n "$line" ] || return 0
    local f t
    f=$(sed -E 's/.*passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    t=$(sed -E 's/.*passed, ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
    total_passed=$((total_passed + t - f))
    total_failed=$((total_failed + f))
}
count_unit() { # the unit tier is one ctest entry (one process): count its tests from gtest's XML
    local xml=$1/tests/unit-tests.xml tests failures errors
    [ -f "$xml" ] || return 0
    read -r tests failures errors < <(sed -nE 's/^<testsuites tests="([0-9]+)" failures="([0-9]+)" disabled="[0-9]+" errors="([0-9]+)".*/\1 \2 \3/p' "$xml") || true
    [ -n "${tests:-}" ] || return 0
    # ctest counted the entry once already, as passed or failed
    if grep -qE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: unit \.+ +Passed' "$1/ctest.log"; then total_passed=$((total_passed - 1)); else total_failed=$((total_failed - 1)); fi
    total_passed=$((total_passed + tests - failures - errors))
    total_failed=$((total_failed + failures + errors))
}
build_and_test() { # name, ctest exclude regex ("" for none), extra cmake args...
    local name=$1 exclude=$2 started=$SECONDS; shift 2
    echo "=== build $name"
    cmake -S . -B "build-$name" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRESMGR_WERROR=ON "${launcher[@]}" "$@" >/dev/null
    cmake --build "build-$name" -j"$jobs"
    timings+=("build $name: $((SECONDS - started)) s"); started=$SECONDS
    rm -f "build-$name/tests/unit-tests.xml" # never count a previous run's results
    echo "=== test $name (unit + host)${exclude:+, leaving out tests matching '$exclude' (see below)}"
    if (cd "build-$name" && ctest --output-on-failure --timeout 300 ${exclude:+-E "$exclude"}) | tee "build-$name/ctest.log"; [ "${PIPESTATUS[0]}" = 0 ]; then
        summary+=("$name: ok")
    else
        summary+=("$name: FAILED"); failed=1
    fi
    count_ctest "build-$name/ctest.log"
    count_unit "build-$name"
    timings+=("test $name: $((SECONDS - started)) s")
}

# The release tier is built with the package's flags (Debian's hardening), so the package tier
# below reuses its objects from ccache instead of compiling everything a third time.
. ./scripts/debian-flags.sh
build_and_test release "" "${debian_cmake_flags[@]}"
# Scale tests (suites named *AtScale) run in the release build only: under the sanitizers each
# change costs ~10x, so they outrun the timeout; their code paths run under ASan at small scale.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build_and_test asan 'AtScale\.' -DRESMGR_SANITIZE=ON -DRESMGR_BUILD_BENCH=OFF

started=$SECONDS
echo "=== system tier (VM)"
rm -f build-release/system-tests.log # never count a previous run's results
set +e
./tests/system/run-system-tests.sh build-release
rc=$?
set -e
if [ -f build-release/system-tests.log ] && line=$(grep -E '^system: [0-9]+ passed, [0-9]+ failed' build-release/system-tests.log | tail -1); then
    total_passed=$((total_passed + $(sed -E 's/system: ([0-9]+) passed.*/\1/' <<<"$line")))
    total_failed=$((total_failed + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
fi
case $rc in
    0) summary+=("system: ok") ;;
    77) summary+=("system: skipped (reason printed above)") ;;
    *) summary+=("system: FAILED"); failed=1 ;;
esac
timings+=("system tier: $((SECONDS - started)) s"); started=$SECONDS

echo "=== package tier: lintian-clean .deb, installed and purged in the VM"
set +e
RESMGR_JOBS=$jobs RESMGR_WERROR=ON ./scripts/package.sh build-pkg
prc=$?
if [ $prc = 0 ]; then
    rm -f build-pkg/package-tests.log
    ./tests/system/package-test.sh build-pkg
    prc=$?
    if [ -f build-pkg/package-tests.log ] && line=$(grep -E '^system: [0-9]+ passed, [0-9]+ failed' build-pkg/package-tests.log | tail -1); then
        total_passed=$((total_passed + $(sed -E 's/system: ([0-9]+) passed.*/\1/' <<<"$line")))
        total_failed=$((total_failed + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
    fi
else
    total_failed=$((total_failed + 1)) # the package did not build or lintian found errors/warnings
fi
set -e
case $prc in
    0) summary+=("package: ok") ;;
    77) summary+=("package: skipped (reason printed above)") ;;
    *) summary+=("package: FAILED"); failed=1 ;;
esac
timings+=("package tier: $((SECONDS - started)) s")

echo "=== summary"
printf '%s\n' "${summary[@]}"
echo "total: $total_passed passed, $total_failed failed"
printf '%s\n' "${timings[@]}"
echo "whole suite: $SECONDS s"
exit $failed
