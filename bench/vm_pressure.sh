#!/usr/bin/env bash
# Issue 15's pressure scenarios in the system-test VM (tests/system/vm.sh: 2 vCPUs, 2 GiB, no swap),
# in one boot, side by side:
#   memory: a critical latency probe (bench/pressure/probe.c) and three low-priority hogs
#     (grow.c, 250 MiB each, checking their pages at the end) in a group capped at 700 MiB, so two
#     fit and three do not. Modes: "resmgr" (resmgrd's responder enforcing, sampling every 1 s),
#     "kernel" (resmgrd with pressure_response off: the kernel's OOM killer alone), "oomd"
#     (systemd-oomd, Debian's package, ManagedOOMMemoryPressure=kill on the capped slice, its
#     defaults: 60 % for 30 s). Per trial: kernel OOM kills (memory.events), hogs killed, hogs
#     that finished with their pages intact, the probe's p99, and (resmgr) the time from the
#     signal crossing its threshold to the first step (the step's signal_crossed .. at).
#   cpu: a critical fixed-work step (work.c) alone, then beside six low-priority spinners, with
#     the responder off and enforcing (interleaved, TRIALS of each); and how long after the
#     critical step ends the spinners' limits are back (they keep spinning).
# Usage: [RESMGR_BENCH_PARTS="memory cpu"] bench/vm_pressure.sh BUILD_DIR [TRIALS=10]
#   (root; prints M/C/E/P/D lines, then a summary)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: vm_pressure.sh BUILD_DIR [TRIALS]}" && pwd)
trials=${2:-10}
# RESMGR_BENCH_PARTS: which scenarios run ("memory cpu", the default; "cpu" alone, say).
parts=${RESMGR_BENCH_PARTS:-memory cpu}
memory=0 cpu=0
for part in $parts; do
    case $part in
        memory) memory=1 ;;
        cpu) cpu=1 ;;
        *) echo "vm_pressure.sh: unknown part '$part' in RESMGR_BENCH_PARTS (memory, cpu)" >&2; exit 2 ;;
    esac
done
. "$here/vm_share.sh"
vm_share_create "$build" resmgr-vm-pressure
mkdir -p "$share/debs"
for p in probe grow work; do cc -static -O2 -o "$share/bin/$p" "$here/pressure/$p.c"; done
cc -static -O2 -o "$share/bin/spin" "$here/../tests/system/spin.c"
# systemd-oomd is not in the VM image: the guest installs Debian's package from the share.
(cd "$share/debs" && apt-get download -q systemd-oomd > /dev/null 2>&1) || echo "vm_pressure.sh: systemd-oomd could not be downloaded: its mode is skipped" >&2
vm_share_guest_install > "$share/bench.sh"
cat >> "$share/bench.sh" <<GUEST
mkdir -p /etc/resmgr
# Sampling every second, as the responder's cost target is stated for.
policy() { printf '{"resource_policies": {"monitoring_intervals": {"resource_check": "1s"}, "pressure_response": {"mode": "%s"}}}\n' "\$1" > /etc/resmgr/resmgr.json; }
policy enforce
systemctl daemon-reload; systemctl start resmgrd
resmgr-run -q -- true
scope=/sys/fs/cgroup/resmgr.slice/resmgr-allocations.scope
ooms() { awk '/^oom_kill /{print \$2}' "\$1/memory.events"; }
B=\$share/bin
# The probe alone, for its solo latency.
for i in 1 2; do echo "SOLO \$(resmgr-run -q --priority critical --workflow solo-\$i -- \$B/probe 10)"; done
memory_trial() { # mode trial
  mode=\$1 i=\$2
  if [ "\$mode" = oomd ]; then group=/sys/fs/cgroup/oomtest.slice; else group=\$scope; fi
  # run: a workflow still waiting after 5 minutes ends the trial as failed (rc 124), never hangs it.
  before=\$(ooms \$group); since=\$(date '+%Y-%m-%d %H:%M:%S')
  if [ "\$mode" = oomd ]; then
    run() { prio=\$1 wf=\$2; shift 2; timeout 300 systemd-run --scope --quiet --slice=oomtest.slice "\$@"; }
  else
    run() { prio=\$1 wf=\$2; shift 2; timeout 300 resmgr-run -q --priority \$prio --workflow \$wf -- "\$@"; }
  fi
  run critical probe-\$i \$B/probe 25 > /tmp/probe.out 2>&1 & p=\$!
  sleep 1
  for h in 1 2 3; do (run low hog-\$i-\$h \$B/grow 250 200 6 > /tmp/hog.\$h 2>&1; echo \$? > /tmp/hog.\$h.rc) & done
  wait
  kills=0; ok=0
  for h in 1 2 3; do
    rc=\$(cat /tmp/hog.\$h.rc)
    [ "\$rc" = 137 ] && kills=\$((kills + 1))
    [ "\$rc" = 0 ] && grep -q "GROW ok" /tmp/hog.\$h && ok=\$((ok + 1))
  done
  hung=0; for h in 1 2 3; do [ "\$(cat /tmp/hog.\$h.rc)" = 124 ] && hung=\$((hung + 1)); done
  [ \$hung = 0 ] || resmgr --json status pressure | tr -d '\\n' | sed "s/^/H \$i /"; echo
  echo "M \$mode \$i hung \$hung oom_kills \$(( \$(ooms \$group) - before )) hogs_killed \$kills hogs_ok \$ok \$(grep PROBE /tmp/probe.out || echo PROBE none)"
  if [ "\$mode" = resmgr ]; then resmgr --json events '{"types":["RESOURCE_PRESSURE"],"limit":60}' | tr -d '\n' | sed "s/^/E \$i /"; echo; fi
  if [ "\$mode" = oomd ]; then journalctl -q -o short-iso-precise -u systemd-oomd --since "\$since" | grep -i kill | sed "s/^/O \$i /"; fi
  sleep 12 # the responder gives its steps back (clear_hold 10 s) before the next trial
}
if [ $memory = 1 ]; then
systemctl set-property --runtime resmgr-allocations.scope MemoryMax=700M
for i in \$(seq 1 $trials); do memory_trial resmgr \$i; done
policy off; systemctl restart resmgrd; resmgr-run -q -- true
systemctl set-property --runtime resmgr-allocations.scope MemoryMax=700M
for i in \$(seq 1 $trials); do memory_trial kernel \$i; done
systemctl set-property --runtime resmgr-allocations.scope MemoryMax=infinity
fi
if [ $memory = 0 ]; then
  echo "SKIP memory and oomd: RESMGR_BENCH_PARTS=$parts"
elif ls \$share/debs/*.deb > /dev/null 2>&1 && dpkg -i \$share/debs/*.deb > /dev/null 2>&1; then
  systemctl stop resmgrd
  mkdir -p /run/systemd/system
  printf '[Slice]\nMemoryMax=700M\nManagedOOMMemoryPressure=kill\n' > /run/systemd/system/oomtest.slice
  systemctl daemon-reload; systemctl start systemd-oomd oomtest.slice
  for i in \$(seq 1 $trials); do memory_trial oomd \$i; done
  systemctl start resmgrd
else
  echo "SKIP oomd: systemd-oomd did not install"
fi
# CPU: the critical step alone, then beside six low spinners with the responder off, then
# enforcing; the three modes interleaved trial by trial, so a change of load on the host weighs
# on each alike.
spinning() { for p in \$spinners; do kill -0 \$p 2> /dev/null && return 0; done; return 1; }
cpu_trial() { # mode trial
  spinners=""
  if [ \$1 != solo ]; then
    for s in 1 2 3 4 5 6; do resmgr-run -q --priority low --workflow spin-\$1-\$2-\$s -- \$B/spin 300 > /dev/null 2>&1 & spinners="\$spinners \$!"; done
    sleep 3
  fi
  w=\$(timeout 120 resmgr-run -q --priority critical --workflow build-\$1-\$2 -- \$B/work 1000 || echo "WORK failed-or-timed-out")
  # The protected step is over, the spinners go on: how long until their limits are back.
  end=\$(date +%s%N)
  back=0
  if [ \$1 = enforce ]; then
    back=none
    for t in \$(seq 1 100); do
      if [ "\$(resmgr --json status pressure | grep -c '"action"')" = 0 ]; then back=\$(( (\$(date +%s%N) - end) / 1000000 )); break; fi
      sleep 0.2
    done
  fi
  # The spinners end with their resmgr-run (it forwards SIGTERM; their pids are kept, since a
  # \$(jobs -p) runs in a subshell that sees no jobs); one still there after 20 s is shown
  # (D lines: the processes and resmgrd's view) and killed, so a trial never hangs the run.
  if [ -n "\$spinners" ]; then
    kill \$spinners 2> /dev/null
    for t in \$(seq 1 100); do spinning || break; sleep 0.2; done
    if spinning; then
      echo "D \$1 \$2 still running 20 s after SIGTERM: \$(ps -eo pid,ppid,stat,args | grep -E 'resmgr-run|spin' | grep -v grep | tr '\n' ';')"
      resmgr --json status | tr -d '\n' | sed "s/^/D \$1 \$2 /"; echo
      kill -9 \$spinners 2> /dev/null
    fi
    wait
  fi
  echo "C \$1 \$2 \$w restored_ms \$back"
  # The responder's CPU steps of this trial (P lines), to see when each rung came.
  if [ \$1 = enforce ]; then resmgr --json events '{"types":["RESOURCE_PRESSURE","RESOURCE_PRESSURE_RELIEVED"],"limit":40}' | tr -d '\n' | sed "s/^/P \$2 /"; echo; fi
}
[ $cpu = 1 ] || { echo "SKIP cpu: RESMGR_BENCH_PARTS=$parts"; exit 0; }
for i in \$(seq 1 $trials); do
  policy off; systemctl restart resmgrd; resmgr-run -q -- true
  cpu_trial solo \$i
  cpu_trial off \$i
  policy enforce; systemctl restart resmgrd; resmgr-run -q -- true
  cpu_trial enforce \$i
done
GUEST
RESMGR_VM_TIMEOUT=${RESMGR_VM_TIMEOUT:-3600} "$here/../tests/system/vm.sh" run "$share" bench.sh | stdbuf -oL tr -d '\r' | tee "$share/out.txt" | grep -E '^(SOLO|M|E|O|C|H|D|P|SKIP) ' || true
python3 "$here/pressure/summary.py" < "$share/out.txt"
