#!/usr/bin/env bash
# resmgrd's own CPU use while it samples every second: N allocations (default 100), each a real
# group under this host's cgroup2 hierarchy with a sleeping process in it, the eBPF probes
# attached where they load. Measured from /proc/PID/stat (utime+stime) over WINDOW seconds.
# Baseline, side by side: the same daemon with no allocations.
# Usage: bench/daemon_cpu.sh BUILD_DIR [N] [WINDOW]   (root; prints figures, changes nothing lasting)
# With RESMGR_PERF=FILE, the N-allocation window is also recorded with `perf record -g` into FILE.
# RESMGR_PRESSURE_MODE=off|advisory|enforce sets pressure_response.mode (default: the policy's).
# The pressure responder's own cost is the difference between "off" and "advisory" (which runs
# every pass of the responder but takes nothing).
set -euo pipefail
build=${1:?usage: daemon_cpu.sh BUILD_DIR [N] [WINDOW]}
n=${2:-100}
window=${3:-60}
mount=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
[ -n "$mount" ] || { echo "daemon_cpu.sh: no cgroup2 mount" >&2; exit 77; }
work=$(mktemp -d /tmp/resmgr-bench-XXXXXX)
root=$mount/resmgr-bench-$$
hz=$(getconf CLK_TCK)
daemon=
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    # Killed processes leave their groups a moment after they die: retry for up to 10 s.
    for _ in $(seq 100); do
        [ -d "$root" ] || break
        find "$root" -depth -type d -exec rmdir {} + 2>/dev/null && break
        sleep 0.1
    done
    rm -rf "$work"
}
trap cleanup EXIT
echo '{"resource_policies":{"monitoring_intervals":{"resource_check":"1s"},
       "allocation_limits":{"max_cpu_per_workflow":4096,"max_memory_per_workflow":1048576,"max_agents_per_workflow":100000},
       "system_reserve":{"cpu_cores":0,"memory_gb":0}'"${RESMGR_PRESSURE_MODE:+,\"pressure_response\":{\"mode\":\"$RESMGR_PRESSURE_MODE\"\}}"'}}' > "$work/policy.json"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
start_daemon() {
    "$build/agent/resmgrd" --config "$work/policy.json" --state-dir "$work/state" --socket "$work/sock" \
        --backend cgroupfs --cgroup-root "$root" --log-level warn 2>> "$work/resmgrd.log" &
    daemon=$!
    for _ in $(seq 100); do [ -S "$work/sock" ] && return; sleep 0.1; done
    echo "resmgrd did not start: $(cat "$work/resmgrd.log")" >&2; exit 1
}
measure() { # label
    local t0 t1
    sleep 2
    t0=$(ticks "$daemon")
    if [ -n "${RESMGR_PERF:-}" ] && [ "$1" != "idle (0 allocations)" ]; then
        perf record -q -g -o "$RESMGR_PERF" -p "$daemon" -- sleep "$window" 2>/dev/null
    else
        sleep "$window"
    fi
    t1=$(ticks "$daemon")
    awk -v l="$1" -v d=$((t1 - t0)) -v hz="$hz" -v w="$window" \
        'BEGIN {printf "%-28s %6.3f %% of one core (%d ticks in %d s)\n", l, 100 * d / hz / w, d, w}'
}

start_daemon
grep -h "eBPF\|bpf" "$work/resmgrd.log" || true
measure "idle (0 allocations)"
cli=("$build/agent/cli/resmgr" --socket "$work/sock" --json)
runners=()
for i in $(seq "$n"); do
    "$build/agent/cli/resmgr-run" --socket "$work/sock" -q --workflow "bench$i" --cpu 0.01 -- sleep $((window + 30)) 2>> "$work/runs.log" &
    runners+=($!)
done
for _ in $(seq 300); do
    live=$("${cli[@]}" status | grep -c '"allocation_id"' || true)
    [ "$live" -ge "$n" ] && break; sleep 0.2
done
echo "allocations live: $live"
measure "$n allocations, 1 s sampling"
"${cli[@]}" monitor system | grep -A6 '"tool_instances"' | head -8 || true
# The runners first (each releases its allocation), then the daemon (in cleanup).
kill "${runners[@]}" 2>/dev/null || true
for r in "${runners[@]}"; do wait "$r" 2>/dev/null || true; done
