# Sourced by the bench/vm_*.sh scripts: the share directory a benchmark boots the system-test VM
# (tests/system/vm.sh) with, holding resmgrd, resmgr and resmgr-run (stripped, as the package
# installs them) and the units; and the guest's lines that install them and start resmgrd.
#   vm_share_create BUILD_DIR NAME   sets $share (a fresh /tmp/NAME-XXXXXX, removed on exit)
#   vm_share_guest_install           prints the guest script's first lines (POSIX sh)
vm_share_create() {
    local build=$1 name=$2 here
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    share=$(mktemp -d "/tmp/$name-XXXXXX")
    trap 'rm -rf "$share"' EXIT
    mkdir -p "$share/bin" "$share/units"
    for program in agent/resmgrd agent/cli/resmgr agent/cli/resmgr-run; do strip -o "$share/bin/${program##*/}" "$build/$program"; done
    cp "$here/../units/resmgrd.service" "$here/../units/resmgr.slice" "$share/units/"
}
vm_share_guest_install() {
    cat <<'GUEST'
#!/bin/sh
share=$(cd "$(dirname "$0")" && pwd)
install -m 0755 "$share/bin/resmgrd" /usr/sbin/resmgrd
install -m 0755 "$share/bin/resmgr" "$share/bin/resmgr-run" /usr/bin/
install -m 0644 "$share/units/resmgrd.service" "$share/units/resmgr.slice" /etc/systemd/system/
GUEST
}
