#!/usr/bin/env bash
# resmgr-run's start/stop cost under systemd, in the system-test VM (tests/system/vm.sh):
# resmgrd's own time per request (metrics.execution_time) for allocate, attach, allocate with
# "attach" and release, then wall times of `systemd-run --scope true` and `resmgr-run -- true`,
# interleaved, and for scale /bin/true and `resmgr-run --version` (the shell's own fork+exec+date,
# and a resmgr-run that starts and exits without resmgrd). With OLD_RESMGR_RUN=PATH (a resmgr-run built from another commit) that binary runs
# in the same interleaving, against the same resmgrd, `--version` too. The programs go in stripped,
# as the package installs them.
# Then the same resmgrd restarted with --backend systemd-units (U lines).
# Usage: bench/vm_resmgr_run.sh BUILD_DIR [RUNS=25]   (root; prints ET, W and U lines, then p50/p90)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: vm_resmgr_run.sh BUILD_DIR [RUNS]}" && pwd)
runs=${2:-25}
. "$here/vm_share.sh"
vm_share_create "$build" resmgr-vm-bench
strip -o "$share/bin/resmgr-run-old" "${OLD_RESMGR_RUN:-$build/agent/cli/resmgr-run}"
vm_share_guest_install > "$share/bench.sh"
cat >> "$share/bench.sh" <<GUEST
install -m 0755 "\$share/bin/resmgr-run-old" /usr/bin/
systemctl daemon-reload; systemctl start resmgrd
et() { grep -o '"execution_time": "[^"]*"' | sed 's/.*: "\(.*\)"/\1/'; }
idof() { grep -o '"allocation_id": "[^"]*"' | head -1 | sed 's/.*: "\(.*\)"/\1/'; }
for i in 1 2 3; do resmgr-run -q -- true; resmgr-run-old -q -- true; systemd-run --scope --quiet true; done
for i in \$(seq 1 6); do
  a=\$(resmgr --json allocate '{"workflow_id":"wf-x","resources":{"cpu_cores":0.5},"auto_release":{"on_completion":false}}')
  id=\$(echo "\$a" | idof)
  t=\$(sh -c "exec resmgr --json attach '{\"allocation_id\":\"\$id\",\"pid\":'\\\$\\\$'}'")
  r=\$(resmgr --json release "{\"allocation_id\":\"\$id\"}")
  b=\$(sh -c 'exec resmgr --json allocate "{\"workflow_id\":\"wf-y\",\"resources\":{\"cpu_cores\":0.5},\"auto_release\":{\"on_completion\":false},\"attach\":{\"pid\":\$\$}}"')
  resmgr --json release "{\"allocation_id\":\"\$(echo "\$b" | idof)\"}" > /dev/null
  echo "ET allocate \$(echo "\$a" | et) attach \$(echo "\$t" | et) release-empty \$(echo "\$r" | et) allocate+attach \$(echo "\$b" | et)"
done
ms() { echo \$(( \$(date +%s%N) / 1000000 )); }
for i in \$(seq 1 $runs); do
  t0=\$(ms); systemd-run --scope --quiet true; t1=\$(ms); resmgr-run-old -q -- true; t2=\$(ms); resmgr-run -q -- true; t3=\$(ms)
  /bin/true; t4=\$(ms); resmgr-run --version > /dev/null; t5=\$(ms); resmgr-run-old --version > /dev/null; t6=\$(ms)
  echo "W sdrun \$((t1-t0)) old \$((t2-t1)) new \$((t3-t2)) true \$((t4-t3)) version \$((t5-t4)) oldversion \$((t6-t5))"
done
# The same resmgrd made to use one transient slice and scope per allocation (the fallback).
mkdir -p /etc/systemd/system/resmgrd.service.d
printf '[Service]\nExecStart=\nExecStart=/usr/sbin/resmgrd --backend systemd-units\n' > /etc/systemd/system/resmgrd.service.d/units.conf
systemctl daemon-reload; systemctl restart resmgrd
resmgr-run -q -- true
for i in \$(seq 1 $runs); do
  t0=\$(ms); systemd-run --scope --quiet true; t1=\$(ms); resmgr-run -q -- true; t2=\$(ms)
  echo "U sdrun \$((t1-t0)) units \$((t2-t1))"
done
GUEST
out=$("$here/../tests/system/vm.sh" run "$share" bench.sh | tr -d '\r')
grep -E '^(ET|W|U) ' <<<"$out"
pct() { # column, percent[, line kind]: that percentile of the W (or U) lines' column
    grep "^${3:-W} " <<<"$out" | awk -v c="$1" '{print $c}' | sort -n | awk -v p="$2" '{v[NR]=$1} END {i=int(NR*p/100+0.5); if (i<1) i=1; print v[i]}'
}
[ -n "$(grep '^W ' <<<"$out")" ] || { echo "vm_resmgr_run.sh: no runs came back" >&2; exit 1; }
echo "p50/p90 ms: systemd-run $(pct 3 50)/$(pct 3 90), resmgr-run (old) $(pct 5 50)/$(pct 5 90), resmgr-run $(pct 7 50)/$(pct 7 90)," \
     "/bin/true $(pct 9 50)/$(pct 9 90), resmgr-run --version $(pct 11 50)/$(pct 11 90), resmgr-run (old) --version $(pct 13 50)/$(pct 13 90)," \
     "ratio p50 $(awk -v n="$(pct 7 50)" -v s="$(pct 3 50)" 'BEGIN {printf "%.2f", n / s}')"
echo "per-allocation units (--backend systemd-units), p50/p90 ms: systemd-run $(pct 3 50 U)/$(pct 3 90 U), resmgr-run $(pct 5 50 U)/$(pct 5 90 U)," \
     "ratio p50 $(awk -v n="$(pct 5 50 U)" -v s="$(pct 3 50 U)" 'BEGIN {printf "%.2f", n / s}')"
