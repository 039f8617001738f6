#!/bin/sh
# Runs inside the system-test VM as root (systemd PID 1, pure cgroup v2), from the 9p share
# that run-system-tests.sh filled: bin/ (resmgrd, resmgr, resmgr-run, hog, spin) and units/.
# Prints PASS/FAIL per check, BENCH lines, and "system: N passed, M failed".
share=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
field() { # first "key": "value" of a JSON document on stdin
    grep -o "\"$1\": \"[^\"]*\"" | head -1 | sed 's/.*: "\(.*\)"/\1/'
}
group_of() { # the cgroup directory of allocation $1, as status reports it
    resmgr --json status "{\"allocation_id\":\"$1\"}" | field cgroup_path
}
scope=/sys/fs/cgroup/resmgr.slice/resmgr-allocations.scope

install -m 0755 "$share/bin/resmgrd" /usr/sbin/resmgrd
install -m 0755 "$share/bin/resmgr" "$share/bin/resmgr-run" /usr/bin/
install -m 0644 "$share/units/resmgrd.service" "$share/units/resmgr.slice" /etc/systemd/system/
# Sampling every 2 s instead of the seed's 30 s, so usage shows an OOM kill within the run.
install -d /etc/resmgr
echo '{"resource_policies":{"monitoring_intervals":{"resource_check":"2s"}}}' > /etc/resmgr/resmgr.json
systemctl daemon-reload

# 0. resmgrd starts as a Type=notify service (READY=1 reached systemd).
if systemctl start resmgrd && [ "$(systemctl show -p ActiveState --value resmgrd)" = active ]; then
    pass service-starts
else
    fail service-starts "$(systemctl status resmgrd --no-pager 2>&1 | tail -20)"
    echo "system: $passed passed, $((failed)) failed"
    exit 1
fi

# a. doctor: auto picked systemd's fast path on this host (the delegated scope), and says why.
doctor=$(resmgr --json doctor)
if echo "$doctor" | grep -q '"backend": "systemd-delegated"' && echo "$doctor" | grep -q '"cgroup_mode": "v2"' &&
   echo "$doctor" | grep -q '"process groups, freeze and kill (systemd-delegated backend: .*resmgr-allocations.scope (Delegate=yes'; then
    pass doctor-systemd-delegated-backend
else
    fail doctor-systemd-delegated-backend "$doctor"
fi

# a1. the kernel here takes PSI triggers (the build host's refuses them): the pressure responder is
# woken by a trigger on /proc/pressure/memory, not by polling avg10, and doctor says which runs.
source=$(resmgr --json status pressure | field signal_source)
case "$source" in
    "trigger 'some "*"' on /proc/pressure/memory"*) pass "psi-trigger-registers ($source)" ;;
    *) fail psi-trigger-registers "signal_source: $source" ;;
esac

# a2. the eBPF probes (built on the host, CO-RE) load on the guest's kernel.
if echo "$doctor" | grep -q '"ebpf": "loaded"'; then
    pass ebpf-probes-load
else
    fail ebpf-probes-load "$(echo "$doctor" | grep '"ebpf"')"
fi

# b. a 256 MiB hog under --memory 64M is OOM-killed inside its slice, and resmgr-run says so.
resmgr-run --workflow wf-oom --memory 64M -- "$share/bin/hog" 256 2> /tmp/oom.err
rc=$?
if [ "$rc" = 137 ] && grep -q OOM /tmp/oom.err; then
    pass oom-kill-in-slice
else
    fail oom-kill-in-slice "exit $rc, stderr: $(cat /tmp/oom.err)"
fi

# c. a spinner under --cpu 0.5 gets at most 55 % of a CPU, measured from its slice's cpu.stat.
resmgr-run --workflow wf-spin --cpu 0.5 -- "$share/bin/spin" 8 &
runner=$!
sleep 2
slice=$(resmgr --json status '{"workflow_id":"wf-spin"}' | field cgroup_path)
if [ -n "$slice" ] && [ -f "$slice/cpu.stat" ]; then
    cpumax=$(cat "$slice/cpu.max") # now: on a busy host the 8 s spinner may end during the 3 s below
    u0=$(awk '$1 == "usage_usec" {print $2}' "$slice/cpu.stat")
    t0=$(date +%s%N)
    sleep 3
    u1=$(awk '$1 == "usage_usec" {print $2}' "$slice/cpu.stat")
    t1=$(date +%s%N)
    pct=$(( (u1 - u0) * 100000 / ((t1 - t0) / 1000) / 1000 ))
    if [ "$pct" -le 55 ] && [ "$pct" -gt 20 ] && [ "$cpumax" = "50000 100000" ]; then
        pass "cpu-quota (${pct}% of a CPU, cpu.max $cpumax)"
    else
        fail cpu-quota "${pct}% of a CPU over 3s, cpu.max '$cpumax'"
    fi
else
    fail cpu-quota "no slice found for wf-spin: $(resmgr --json status)"
fi
wait "$runner"
# The run's record (issue 13) has the time its group stood throttled, cpu.stat's throttled_usec
# read before the group went: 8 s of spinning held to 0.5 cores stand throttled about half of it.
throttled=$(resmgr --json usage wf-spin | tr -d ' \n' | grep -o '"throttled_seconds":[0-9.]*' | head -1 | cut -d: -f2)
if [ -n "$throttled" ] && awk -v t="$throttled" 'BEGIN { exit !(t >= 1 && t <= 8) }'; then
    pass "run-record-throttled (${throttled} s of the 8 s run)"
else
    fail run-record-throttled "throttled_seconds '$throttled': $(resmgr --json usage wf-spin | tr -d ' \n' | head -c 800)"
fi

# d. the slice carries the requested limits, and release removes it.
out=$(resmgr --json allocate '{"workflow_id":"wf-sys","priority":"high","resources":{"cpu_cores":1.5,"memory_gb":"256M","pids":64}}')
id=$(echo "$out" | field allocation_id)
slice=$(group_of "$id")
if [ -n "$id" ] && [ "$slice" = "$scope/groups/$id" ] && [ -d "$slice" ] && [ "$(cat "$slice/memory.max")" = 268435456 ] &&
   [ "$(cat "$slice/cpu.max")" = "150000 100000" ] && [ "$(cat "$slice/pids.max")" = 64 ]; then
    pass "slice-limits ($slice)"
else
    fail slice-limits "id '$id' memory.max '$(cat "$slice/memory.max" 2>&1)' cpu.max '$(cat "$slice/cpu.max" 2>&1)' pids.max '$(cat "$slice/pids.max" 2>&1)' allocate: $out"
fi
resmgr --json release "{\"allocation_id\":\"$id\"}" > /tmp/release.out
if [ -n "$id" ] && [ ! -d "$slice" ]; then
    pass release-removes-slice
else
    fail release-removes-slice "slice still there: $(ls -d "$slice" 2>&1); $(cat /tmp/release.out)"
fi

# d2. a restart of resmgrd keeps an allocation and its slice.
id=$(resmgr --json allocate '{"workflow_id":"wf-restart","resources":{"cpu_cores":0.5}}' | field allocation_id)
systemctl restart resmgrd
if resmgr --json status | grep -q "\"$id\"" && [ -d "$scope/groups/$id" ]; then
    pass restart-keeps-allocation
else
    fail restart-keeps-allocation "$(resmgr --json status)"
fi
resmgr --json release "{\"allocation_id\":\"$id\"}" > /dev/null

# k. the fast path (issue 19): resmgr-run's group is a cgroup of the delegated scope carrying the
#    limits asked for (read from inside the command), a hog is OOM-killed inside it, and
#    systemd-cgls shows it under the scope.
resmgr-run --workflow wf-fast --memory 64M --cpu 0.5 -- sh -c \
    'g=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup); g=${g%/*}; echo "$g $(cat $g/memory.max) $(cat $g/cpu.max)" > /tmp/fast.lim;
     systemd-cgls --no-pager -u resmgr-allocations.scope > /tmp/fast.cgls; exec '"$share/bin/hog"' 256' 2> /tmp/fast.err
rc=$?
read -r fgroup fmem fcpu_quota fcpu_period < /tmp/fast.lim
case $fgroup in "$scope"/groups/alloc_*) under_scope=yes ;; *) under_scope=no ;; esac
if [ "$rc" = 137 ] && grep -q OOM /tmp/fast.err && [ $under_scope = yes ] && [ "$fmem" = 67108864 ] &&
   [ "$fcpu_quota $fcpu_period" = "50000 100000" ] && grep -q "${fgroup##*/}" /tmp/fast.cgls && [ ! -d "$fgroup" ]; then
    pass "fast-path-limits-and-oom ($fgroup: memory.max $fmem, cpu.max $fcpu_quota $fcpu_period)"
else
    fail fast-path-limits-and-oom "exit $rc; $(cat /tmp/fast.lim); $(cat /tmp/fast.err); $(cat /tmp/fast.cgls)"
fi

# k2. a running workflow survives `systemctl restart resmgrd` (the scope is not the service's),
#     is re-adopted (status shows it, in the same group), and completes when its command ends.
resmgr-run --workflow wf-survive -- "$share/bin/spin" 120 2> /tmp/survive.err &
survivor=$!
sleep 2
sid=$(resmgr --json status '{"workflow_id":"wf-survive"}' | field allocation_id)
spid=$(head -1 "$scope/groups/$sid/main/cgroup.procs" 2>/dev/null)
systemctl restart resmgrd
restarted=$(systemctl show -p ActiveState --value resmgrd)
alive=no
[ -n "$spid" ] && kill -0 "$spid" 2>/dev/null && alive=yes
after=$(resmgr --json status "{\"allocation_id\":\"$sid\"}" | field status)
after_group=$(group_of "$sid")
kill "$spid" 2>/dev/null
wait $survivor
src=$?
listed=$(resmgr --json status | grep -c "\"$sid\"")
if [ -n "$sid" ] && [ "$restarted" = active ] && [ $alive = yes ] && [ "$after" = active ] && [ "$src" = 143 ] &&
   [ "$after_group" = "$scope/groups/$sid" ] &&
   [ "$listed" = 0 ] && [ ! -d "$scope/groups/$sid" ]; then
    pass "workflow-survives-restart ($sid, pid $spid)"
else
    fail workflow-survives-restart "id '$sid' pid '$spid' service '$restarted' alive $alive status after '$after' exit $src, still listed $listed; $(cat /tmp/survive.err); $(journalctl -u resmgrd --no-pager | tail -15)"
fi

# k3. an upgrade from per-allocation units (a resmgrd without the fast path; here --backend
#     systemd-units) to the delegated scope: at the restart the running workflow's process moves
#     into its group in the scope, under its limits; the emptied slice is stopped; the workflow
#     stays active and completes when its command ends.
mkdir -p /run/systemd/system/resmgrd.service.d
printf '[Service]\nExecStart=\nExecStart=/usr/sbin/resmgrd --backend systemd-units\n' > /run/systemd/system/resmgrd.service.d/units.conf
systemctl daemon-reload
systemctl restart resmgrd
resmgr-run --workflow wf-upgrade --memory 64M -- "$share/bin/spin" 120 2> /tmp/upgrade.err &
upgrader=$!
sleep 3
upid=
uid_=$(resmgr --json status '{"workflow_id":"wf-upgrade"}' | field allocation_id)
before_group=$(group_of "$uid_")
for f in "$before_group"/*/cgroup.procs; do [ -z "$upid" ] && upid=$(head -1 "$f" 2>/dev/null); done
rm /run/systemd/system/resmgrd.service.d/units.conf
systemctl daemon-reload
systemctl restart resmgrd
ucg=$(sed -n 's/^0:://p' "/proc/$upid/cgroup" 2>/dev/null)
umem=$(cat "$scope/groups/$uid_/memory.max" 2>/dev/null)
slice_state=$(systemctl show -p ActiveState --value "resmgr-$uid_.slice")
ustatus=$(resmgr --json status "{\"allocation_id\":\"$uid_\"}" | field status)
[ -n "$upid" ] && kill "$upid"
wait $upgrader
urc=$?
if [ -n "$uid_" ] && [ "$before_group" = "/sys/fs/cgroup/resmgr.slice/resmgr-$uid_.slice" ] &&
   [ "$ucg" = "${scope#/sys/fs/cgroup}/groups/$uid_/main" ] && [ "$umem" = 67108864 ] && [ "$slice_state" = inactive ] &&
   [ "$ustatus" = active ] && [ "$urc" = 143 ] && [ ! -d "$scope/groups/$uid_" ]; then
    pass "upgrade-from-units-takes-over ($uid_, pid $upid: $ucg)"
else
    fail upgrade-from-units-takes-over "id '$uid_' before '$before_group' pid '$upid' now '$ucg' memory.max '$umem' slice '$slice_state' status '$ustatus' exit $urc; $(cat /tmp/upgrade.err); $(journalctl -u resmgrd --no-pager | tail -12)"
fi

# k4. the other way (a start that has to fall back to per-allocation units while workflows run in
#     the delegated scope; here --backend systemd-units): the process gets a scope of its leaf in
#     the allocation's slice, under its limits, and the emptied group in the scope is removed.
resmgr-run --workflow wf-fallback --memory 64M -- "$share/bin/spin" 120 2> /tmp/fallback.err &
faller=$!
sleep 3
fid=$(resmgr --json status '{"workflow_id":"wf-fallback"}' | field allocation_id)
fpid=$(head -1 "$scope/groups/$fid/main/cgroup.procs" 2>/dev/null)
printf '[Service]\nExecStart=\nExecStart=/usr/sbin/resmgrd --backend systemd-units\n' > /run/systemd/system/resmgrd.service.d/units.conf
systemctl daemon-reload
systemctl restart resmgrd
fcg=$(sed -n 's/^0:://p' "/proc/$fpid/cgroup" 2>/dev/null)
fslice_mem=$(cat "/sys/fs/cgroup/resmgr.slice/resmgr-$fid.slice/memory.max" 2>/dev/null)
fstatus=$(resmgr --json status "{\"allocation_id\":\"$fid\"}" | field status)
[ -n "$fpid" ] && kill "$fpid"
wait $faller
frc=$?
rm /run/systemd/system/resmgrd.service.d/units.conf
systemctl daemon-reload
systemctl restart resmgrd
if [ -n "$fid" ] && [ "$fcg" = "/resmgr.slice/resmgr-$fid.slice/resmgr-$fid-main-$fpid.scope" ] && [ "$fslice_mem" = 67108864 ] &&
   [ "$fstatus" = active ] && [ "$frc" = 143 ] && [ ! -d "$scope/groups/$fid" ]; then
    pass "fallback-to-units-takes-over ($fid, pid $fpid: $fcg)"
else
    fail fallback-to-units-takes-over "id '$fid' pid '$fpid' now '$fcg' memory.max '$fslice_mem' status '$fstatus' exit $frc; $(cat /tmp/fallback.err); $(journalctl -u resmgrd --no-pager | tail -12)"
fi

# l. the unit's sandbox (units/resmgrd.service) is in force, and the eBPF exec probe still counts
#    the execs of an allocation's processes under it.
mainpid=$(systemctl show -p MainPID --value resmgrd)
nnp=$(awk '$1 == "NoNewPrivs:" {print $2}' /proc/$mainpid/status)
seccomp=$(awk '$1 == "Seccomp:" {print $2}' /proc/$mainpid/status)
capbnd=$(awk '$1 == "CapBnd:" {print $2}' /proc/$mainpid/status)
exposure=$(systemd-analyze security resmgrd.service 2>/dev/null | tail -1)
echo "SECURITY resmgrd.service: $exposure"
if [ "$nnp" = 1 ] && [ "$seccomp" = 2 ] && [ "$capbnd" != 000001ffffffffff ] && [ -n "$capbnd" ]; then
    pass "unit-sandbox-in-force (NoNewPrivs $nnp, Seccomp $seccomp, CapBnd $capbnd)"
else
    fail unit-sandbox-in-force "NoNewPrivs '$nnp' Seccomp '$seccomp' CapBnd '$capbnd'"
fi
eout=$(resmgr --json allocate '{"workflow_id":"wf-exec","resources":{"cpu_cores":0.5},"auto_release":{"on_completion":false}}')
eid=$(echo "$eout" | field allocation_id)
resmgr-run --allocation "$eid" -- sh -c '/bin/true; /bin/true' > /dev/null 2>&1
execs=$(resmgr --json release "{\"allocation_id\":\"$eid\"}" | tr -d ' \n' | grep -o '"execs":[0-9]*' | head -1 | cut -d: -f2)
if [ "${execs:-0}" -ge 3 ]; then
    pass "ebpf-exec-counts ($execs execs in $eid)"
else
    fail ebpf-exec-counts "execs '$execs' for '$eid': $eout"
fi

# e2. --duration on the systemd backend: SIGTERM at the end, SIGKILL right after the grace period
#     (not systemd's 90 s stop timeout).
t0=$(date +%s)
resmgr-run --duration 2s --grace 2s -- sh -c "trap '' TERM; exec $share/bin/spin 60" 2> /tmp/expire.err
rc=$?
took=$(( $(date +%s) - t0 ))
if [ "$rc" = 137 ] && [ "$took" -lt 20 ] && grep -q "reached its duration" /tmp/expire.err; then
    pass "duration-sigterm-then-kill (${took}s)"
else
    fail duration-sigterm-then-kill "exit $rc after ${took}s: $(cat /tmp/expire.err)"
fi

# f. a critical request pauses (freezes) low-priority work in its slice; its release thaws it.
avail=$(resmgr --json status | grep -A4 '"cpu_cores": {' | grep '"available"' | head -1 | sed 's/.*: \([0-9.]*\).*/\1/')
low=$(resmgr --json allocate "{\"workflow_id\":\"wf-bg\",\"priority\":\"low\",\"resources\":{\"cpu_cores\":$avail},\"auto_release\":{\"on_completion\":false}}" | field allocation_id)
resmgr-run --allocation "$low" -- "$share/bin/spin" 60 &
runner=$!
sleep 2
crit_out=$(resmgr --json allocate '{"workflow_id":"wf-fix","priority":"critical","resources":{"cpu_cores":1}}')
crit=$(echo "$crit_out" | field allocation_id)
lslice=$(group_of "$low")
frozen=$(grep frozen "$lslice/cgroup.events" 2>&1)
u0=$(awk '$1 == "usage_usec" {print $2}' "$lslice/cpu.stat"); sleep 2; u1=$(awk '$1 == "usage_usec" {print $2}' "$lslice/cpu.stat")
if [ -n "$crit" ] && [ "$frozen" = "frozen 1" ] && [ $((u1 - u0)) -lt 20000 ]; then
    pass "preemption-pauses-low-priority ($((u1 - u0)) us of CPU in 2 s while frozen)"
else
    fail preemption-pauses-low-priority "crit '$crit' events '$frozen' cpu delta $((u1 - u0)) us; $crit_out"
fi
resmgr --json release "{\"allocation_id\":\"$crit\"}" > /dev/null
thawed=$(grep frozen "$lslice/cgroup.events" 2>&1)
u0=$(awk '$1 == "usage_usec" {print $2}' "$lslice/cpu.stat"); sleep 2; u1=$(awk '$1 == "usage_usec" {print $2}' "$lslice/cpu.stat")
if [ "$thawed" = "frozen 0" ] && [ $((u1 - u0)) -gt 200000 ]; then
    pass "release-thaws-paused ($((u1 - u0)) us of CPU in 2 s)"
else
    fail release-thaws-paused "events '$thawed' cpu delta $((u1 - u0)) us"
fi
kill "$runner" 2>/dev/null; wait "$runner" 2>/dev/null
resmgr --json release "{\"allocation_id\":\"$low\"}" > /dev/null

# g. a reservation activates at its start time and gets its slice then, not before.
start=$(date -u -d '+8 seconds' +%Y-%m-%dT%H:%M:%SZ)
resmgr --json reserve "{\"reservation_id\":\"res_vm\",\"start_time\":\"$start\",\"duration\":\"1m\",\"resources\":{\"cpu_cores\":0.5},\"priority\":\"medium\"}" > /tmp/reserve.out
rslice=$scope/groups/res_vm
before=$(resmgr --json status '{"allocation_id":"res_vm"}' | field status)
[ -d "$rslice" ] && before="$before+slice"
sleep 12
after=$(resmgr --json status '{"allocation_id":"res_vm"}' | field status)
if [ "$before" = reserved ] && [ "$after" = active ] && [ -d "$rslice" ] && [ "$(cat "$rslice/cpu.max")" = "50000 100000" ]; then
    pass "reservation-activates-at-start-time ($start)"
else
    fail reservation-activates-at-start-time "before '$before' after '$after' slice $(ls -d "$rslice" 2>&1); $(cat /tmp/reserve.out)"
fi
resmgr --json release '{"allocation_id":"res_vm"}' > /dev/null

# i. an OOM kill in an allocation whose command keeps running is reported exactly once in
#    journald, although both sampling and the final count at release see it, and `resmgr usage`
#    shows it (systemd's default OOMPolicy=stop may end the scope, and with it the allocation,
#    before a sample: usage then shows the ended allocation's final counters).
resmgr-run --workflow wf-oom2 --memory 64M -- sh -c "$share/bin/hog 256; sleep 60" 2> /tmp/oom2.err &
oom2_runner=$!
# Up to 150 s: on a loaded host the emulated guest can take over a minute to go from reclaim at
# memory.max (the hog's own pages re-read from the share) to the OOM kill.
i=0
usage_seen=no
while [ $i -lt 150 ]; do
    if resmgr --json usage wf-oom2 | tr -d ' \n' | grep -q '"oom_kill":1'; then usage_seen=yes; break; fi
    sleep 1; i=$((i + 1))
done
kill $oom2_runner 2>/dev/null; wait $oom2_runner
# resmgrd sends its events from a thread of their own, a few ms after what they report: wait
# until journald has the kill, then a second more, so that a second report (the release's final
# count, sent after the wrapper's release was answered) would be there too before counting.
i=0
while [ $i -lt 10 ]; do
    journalctl --sync 2>/dev/null
    journalctl -o verbose MESSAGE_ID=96a16acba5064d4c81859687760c8a4b RESMGR_WORKFLOW=wf-oom2 2>&1 | grep -q 'RESMGR_EVENT=RESOURCE_OOM_KILL' && break
    sleep 1; i=$((i + 1))
done
sleep 1
journalctl --sync 2>/dev/null
oom2=$(journalctl -o verbose MESSAGE_ID=96a16acba5064d4c81859687760c8a4b RESMGR_WORKFLOW=wf-oom2 2>&1)
if [ "$(echo "$oom2" | grep -c 'RESMGR_EVENT=RESOURCE_OOM_KILL')" = 1 ] && [ $usage_seen = yes ]; then
    pass oom-kill-reported-once-and-in-usage
else
    fail oom-kill-reported-once-and-in-usage "usage saw it: $usage_seen; $(resmgr --json usage wf-oom2 2>&1 | tail -30); journal: $(echo "$oom2" | tail -12)"
fi

# j. exclusive files under BPF LSM (the guest kernel runs it): the holder's command writes the file;
#    an outsider's write open, rename over it and unlink of it are refused before they happen; the
#    refusals reach journald as RESOURCE_CONFLICT events.
mkdir -p /tmp/excl && echo data > /tmp/excl/f && echo other > /tmp/excl/g
resmgr --json prevent-conflicts '{"file_conflicts":{"strategy":"file_locking"}}' > /tmp/excl.policy
resmgr-run --workflow wf-excl --exclusive /tmp/excl/f -- sh -c 'echo holder >> /tmp/excl/f; sleep 60' 2> /tmp/excl.err &
excl_runner=$!
i=0
while [ $i -lt 30 ] && ! grep -q holder /tmp/excl/f; do sleep 1; i=$((i + 1)); done
lsm=$(resmgr --json doctor | grep -o '"bpf_lsm": "[^"]*"')
sh -c 'echo outsider >> /tmp/excl/f' 2>/dev/null; wrote=$?
mv -f /tmp/excl/g /tmp/excl/f 2>/dev/null; renamed=$?
rm -f /tmp/excl/f 2>/dev/null; unlinked=$?
content=$(cat /tmp/excl/f 2>&1 | tr '\n' ' ')
sleep 2
journalctl --sync 2>/dev/null
conflicts=$(journalctl -o verbose MESSAGE_ID=35b6de9a7e8147a6914f2251038df5d1 RESMGR_WORKFLOW=wf-excl 2>&1)
refusals=$(echo "$conflicts" | grep -c 'refused by the BPF LSM program')
if echo "$lsm" | grep -q enforcing && [ $wrote != 0 ] && [ $renamed != 0 ] && [ $unlinked != 0 ] &&
   [ "$content" = "data holder " ] && [ "$refusals" -ge 3 ]; then
    pass "bpf-lsm-exclusive-file ($refusals refusals in journald)"
else
    fail bpf-lsm-exclusive-file "lsm: $lsm; write $wrote rename $renamed unlink $unlinked; content '$content'; $(cat /tmp/excl.err); journal: $(echo "$conflicts" | grep -E 'MESSAGE=|RESMGR_EVENT' | tail -8)"
fi
kill $excl_runner 2>/dev/null; wait $excl_runner

# h. events reach journald with their stable MESSAGE_ID and RESMGR_* fields (the OOM kill of b.
#    included), and the catalog explains them.
install -D -m 0644 "$share/units/resmgr.catalog" /usr/lib/systemd/catalog/resmgr.catalog
journalctl --update-catalog 2>/dev/null
journalctl --sync 2>/dev/null
allocated=$(journalctl -o verbose MESSAGE_ID=602d9a099af149f78b66bd62f772e509 RESMGR_ALLOCATION=res_vm 2>&1)
oom=$(journalctl -o verbose MESSAGE_ID=96a16acba5064d4c81859687760c8a4b RESMGR_WORKFLOW=wf-oom 2>&1)
if echo "$allocated" | grep -q 'RESMGR_WORKFLOW=' && echo "$oom" | grep -q 'RESMGR_EVENT=RESOURCE_OOM_KILL' &&
   echo "$oom" | grep -q 'RESMGR_WORKFLOW=wf-oom' && [ "$(echo "$oom" | grep -c 'RESMGR_EVENT=')" = 1 ]; then
    pass journald-events
else
    fail journald-events "allocated: $(echo "$allocated" | tail -5) oom: $(echo "$oom" | tail -8)"
fi
if journalctl -x MESSAGE_ID=96a16acba5064d4c81859687760c8a4b 2>&1 | grep -q 'OOM-killed inside an allocation'; then
    pass journal-catalog
else
    fail journal-catalog "$(journalctl -x MESSAGE_ID=96a16acba5064d4c81859687760c8a4b 2>&1 | tail -5)"
fi

# i. run records (issue 13): memory.peak of each run is recorded, and a run OOM-killed at its
#    recommended size raises the next recommendation at once.
flat() { tr -d ' \n'; }
# From an empty node: the earlier checks' allocations (a reservation, held files) would leave too
# little CPU for the sizes these runs call for.
for held in $(resmgr --json status | grep -o '"allocation_id": "[^"]*"' | cut -d'"' -f4 | sort -u); do
    resmgr release "{\"allocation_id\":\"$held\"}" > /dev/null 2>&1
done
for i in 0 1 2; do resmgr-run -q --workflow wf-size-$i --type vm-sizing --memory 256M -- "$share/bin/hog" 100 0 > /dev/null 2>&1; done
peaks=$(for i in 0 1 2; do resmgr --json usage wf-size-$i | flat | grep -o '"memory_peak_bytes":[0-9]*' | head -1 | cut -d: -f2; done | tr '\n' ' ')
recommended() { # the memory "resources": "auto" gives a new allocation of vm-sizing now
    out=$(resmgr --json allocate "{\"workflow_id\":\"wf-size-auto-$1\",\"workflow_type\":\"vm-sizing\",\"resources\":\"auto\"}")
    resmgr release "{\"allocation_id\":\"$(echo "$out" | field allocation_id)\"}" > /dev/null 2>&1
    echo "$out" | flat | grep -o '"memory":"[0-9]*"' | head -1 | tr -dc 0-9
}
rec1=$(recommended 1)
resmgr-run -q --workflow wf-size-oom --type vm-sizing --auto -- "$share/bin/hog" 400 0 > /dev/null 2> /tmp/size-oom.err
oom_rc=$?
rec2=$(recommended 2)
oom_outcome=$(resmgr --json usage wf-size-oom | flat | grep -o '"outcome":"[a-z_]*"' | head -1)
ok=1
for p in $peaks; do [ "$p" -gt $((100 * 1048576)) ] && [ "$p" -lt $((256 * 1048576)) ] || ok=0; done
[ "$(echo $peaks | wc -w)" = 3 ] || ok=0
if [ "$ok" = 1 ] && [ -n "$rec1" ] && [ "$oom_rc" = 137 ] && [ "$oom_outcome" = '"outcome":"oom_killed"' ] && [ "${rec2:-0}" -gt "$rec1" ]; then
    pass "run-records-memory-peak (peaks $peaks; auto $((rec1 / 1048576)) MiB, OOM-killed at it, then $((rec2 / 1048576)) MiB)"
else
    fail run-records-memory-peak "peaks '$peaks' rec1 '$rec1' oom exit $oom_rc $oom_outcome rec2 '$rec2' $(cat /tmp/size-oom.err)"
fi

# j. balance (issue 13): a spinner held at 0.5 cores borrows what an idle allocation leaves, its
#    cpu.max and its measured use rise, and stopping balance gives the loan back.
lender=$(resmgr --json allocate '{"workflow_id":"wf-lender","resources":{"cpu_cores":1}}' | field allocation_id)
resmgr-run --workflow wf-borrower --cpu 0.5 -- "$share/bin/spin" 30 &
spinner=$!
sleep 5 # two sampling passes: the spinner's use is known
bslice=$(resmgr --json status '{"workflow_id":"wf-borrower"}' | field cgroup_path)
resmgr --json balance '{"scope":"active_workflows","dry_run":false}' > /tmp/balance.out 2>&1
sleep 5
lent_max=$(cat "$bslice/cpu.max" 2>/dev/null)
u0=$(awk '$1 == "usage_usec" {print $2}' "$bslice/cpu.stat"); t0=$(date +%s%N)
sleep 3
u1=$(awk '$1 == "usage_usec" {print $2}' "$bslice/cpu.stat"); t1=$(date +%s%N)
lent_pct=$(( (u1 - u0) * 100000 / ((t1 - t0) / 1000) / 1000 ))
resmgr --json balance '{"enabled":false}' > /dev/null 2>&1
back_max=$(cat "$bslice/cpu.max" 2>/dev/null)
kill $spinner 2>/dev/null; wait $spinner 2>/dev/null
resmgr release "{\"allocation_id\":\"$lender\"}" > /dev/null 2>&1
lent_quota=${lent_max%% *}
if [ "${lent_quota:-0}" != max ] && [ "${lent_quota:-0}" -gt 50000 ] && [ "$lent_pct" -gt 70 ] && [ "$back_max" = "50000 100000" ]; then
    pass "balance-lends-idle-cpu (cpu.max $lent_max, ${lent_pct}% of a CPU while lent; back to $back_max)"
else
    fail balance-lends-idle-cpu "cpu.max while lent '$lent_max', ${lent_pct}% used, after '$back_max'; $(cat /tmp/balance.out | flat | head -c 1500)"
fi

# e. benchmark (issue 19): resmgr-run vs systemd-run --scope with the same limits (64 MiB, half a
#    CPU), side by side in one boot: two rounds of 30 runs each, alternated, timed by spawn-time.
#    First both must show the limits in force where their command runs: the nearest cgroup up
#    from the command's with a memory.max (the scope itself; the allocation's group above its leaf).
cat > /tmp/limits-seen.sh <<'EOF'
d=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
while [ "$d" != /sys/fs/cgroup ]; do
    m=$(cat "$d/memory.max" 2>/dev/null) # a leaf without the controller has no such file
    if [ -n "$m" ] && [ "$m" != max ]; then echo "$m $(cat "$d/cpu.max")"; exit 0; fi
    d=${d%/*}
done
echo none
EOF
want_limits="67108864 50000 100000"
sd_limits=$(systemd-run --scope --quiet -p MemoryMax=64M -p CPUQuota=50% sh /tmp/limits-seen.sh 2>&1)
rr_limits=$(resmgr-run -q --memory 64M --cpu 0.5 -- sh /tmp/limits-seen.sh 2>&1)
if [ "$sd_limits" = "$want_limits" ] && [ "$rr_limits" = "$want_limits" ]; then
    pass "bench-limits-in-force (memory.max cpu.max: $rr_limits under both)"
else
    fail bench-limits-in-force "systemd-run: '$sd_limits', resmgr-run: '$rr_limits', want '$want_limits'"
fi
p50() { sed -n 's/^p50=\([0-9]*\) .*/\1/p'; }
for round in 1 2; do
    sd=$("$share/bin/spawn-time" 30 systemd-run --scope --quiet -p MemoryMax=64M -p CPUQuota=50% true)
    rr=$("$share/bin/spawn-time" 30 resmgr-run -q --memory 64M --cpu 0.5 -- true)
    echo "BENCH round $round systemd-run --scope -p MemoryMax=64M -p CPUQuota=50% true: $sd (us)"
    echo "BENCH round $round resmgr-run --memory 64M --cpu 0.5 -- true: $rr (us)"
    echo "BENCH round $round ratio resmgr-run/systemd-run p50 = $(awk "BEGIN {printf \"%.2f\", $(echo "$rr" | p50) / $(echo "$sd" | p50)}")"
done

systemctl stop resmgrd
echo "system: $passed passed, $failed failed"
[ "$failed" = 0 ]
