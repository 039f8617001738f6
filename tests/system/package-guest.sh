#!/bin/sh
# Runs inside the system-test VM as root: installs the Debian package as a user would, checks the
# service and the installed files, purges it. Prints PASS/FAIL per check and "system: N passed,
# M failed".
share=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

# 1. dpkg installs it (every dependency is in the image), and postinst starts the service.
if dpkg -i "$share/resmgr.deb" > /tmp/dpkg.out 2>&1; then
    pass package-installs
else
    fail package-installs "$(tail -20 /tmp/dpkg.out)"
fi
for _ in $(seq 50); do [ "$(systemctl is-active resmgrd)" = active ] && break; sleep 0.2; done
if [ "$(systemctl is-active resmgrd)" = active ] && [ "$(systemctl is-enabled resmgrd)" = enabled ]; then
    pass service-enabled-and-active
else
    fail service-enabled-and-active "$(systemctl is-active resmgrd) / $(systemctl is-enabled resmgrd): $(systemctl status resmgrd --no-pager 2>&1 | tail -10)"
fi

# 2. It answers, the socket belongs to the resmgr group that sysusers made, the conffile is the
#    daemon's defaults, the man pages are there.
doctor=$(resmgr --json doctor 2>&1)
socket_group=$(stat -c %G /run/resmgr/resmgr.sock 2>/dev/null)
if echo "$doctor" | grep -q '"status": "success"' && [ "$socket_group" = resmgr ] && getent group resmgr > /dev/null; then
    pass doctor-answers-socket-group
else
    fail doctor-answers-socket-group "socket group '$socket_group'; $(echo "$doctor" | head -20)"
fi
if [ -f /etc/resmgr/resmgr.json ] && [ "$(resmgrd --print-default-config)" = "$(cat /etc/resmgr/resmgr.json)" ] &&
   grep -q /etc/resmgr/resmgr.json /var/lib/dpkg/info/resmgr.conffiles &&
   [ -f /usr/share/man/man8/resmgrd.8.gz ] && [ -f /usr/share/man/man5/resmgr.json.5.gz ]; then
    pass conffile-catalog-manpages
else
    fail conffile-catalog-manpages "$(ls -l /etc/resmgr /usr/share/man/man8 2>&1 | head)"
fi
# The catalog is in journald's database (postinst ran --update-catalog).
if journalctl --list-catalog 2>/dev/null | grep -q 96a16acba5064d4c81859687760c8a4b; then
    pass catalog-updated
else
    fail catalog-updated "$(journalctl --list-catalog 2>&1 | grep -c .) catalog entries, none of resmgr's"
fi

# 3. A running workflow survives a package upgrade's restart of resmgrd (dpkg -i again).
resmgr-run -q --workflow wf-pkg -- sleep 60 &
runner=$!
sleep 2
dpkg -i "$share/resmgr.deb" > /tmp/dpkg2.out 2>&1
sleep 2
if kill -0 $runner 2>/dev/null && [ "$(systemctl is-active resmgrd)" = active ] &&
   resmgr --json status '{"workflow_id":"wf-pkg"}' | grep -q '"status": "active"'; then
    pass upgrade-keeps-running-workflow
else
    fail upgrade-keeps-running-workflow "runner alive: $(kill -0 $runner 2>/dev/null && echo yes || echo no); $(tail -5 /tmp/dpkg2.out)"
fi
kill $runner 2>/dev/null; wait $runner 2>/dev/null

# 4. The -dbgsym package installs beside it and holds the debug info of the installed resmgrd
#    (found by its build id).
#    (found by its build id, which package-test.sh read on the host: the guest has no readelf).
if [ -f "$share/resmgr-dbgsym.ddeb" ]; then
    build_id=$(cat "$share/resmgrd.build-id")
    debug=/usr/lib/debug/.build-id/$(echo "$build_id" | cut -c1-2)/$(echo "$build_id" | cut -c3-).debug
    dpkg -i "$share/resmgr-dbgsym.ddeb" > /tmp/dbgsym.out 2>&1
    if dpkg -s resmgr-dbgsym > /dev/null 2>&1 && [ -n "$build_id" ] && [ -f "$debug" ] && [ -L /usr/share/doc/resmgr-dbgsym ]; then
        pass dbgsym-installs
    else
        fail dbgsym-installs "build id '$build_id', debug file '$debug'; $(tail -5 /tmp/dbgsym.out)"
    fi
fi

# 5. apt-get purge stops the service and leaves nothing: no files of the package (nor of the
#    -dbgsym package, removed with it), no state, no temporary directories' root (the workflows
#    above have ended), no unit, no keeper of the delegated scope.
tmp_root_before=$([ -d /var/tmp/resmgr ] && echo yes || echo no)
apt-get purge -y resmgr > /tmp/purge.out 2>&1
left=""
for f in /usr/sbin/resmgrd /usr/bin/resmgr /etc/resmgr/resmgr.json /var/lib/resmgr /var/tmp/resmgr /usr/lib/systemd/system/resmgrd.service \
         /etc/systemd/system/multi-user.target.wants/resmgrd.service /usr/lib/debug/.build-id /usr/share/doc/resmgr-dbgsym; do
    [ -e "$f" ] && left="$left $f"
done
keeper=/sys/fs/cgroup/resmgr.slice/resmgr-allocations.scope/keeper/cgroup.procs
sleep 1
[ -s "$keeper" ] && left="$left keeper($(cat "$keeper"))"
if [ -z "$left" ] && [ "$tmp_root_before" = yes ] && ! dpkg -s resmgr > /dev/null 2>&1 && ! dpkg -s resmgr-dbgsym > /dev/null 2>&1 &&
   [ "$(systemctl is-active resmgrd)" != active ]; then
    pass purge-removes-everything
else
    fail purge-removes-everything "left:$left; temporary root before purge: $tmp_root_before; $(tail -5 /tmp/purge.out)"
fi

echo "system: $passed passed, $failed failed"
[ "$failed" = 0 ]
