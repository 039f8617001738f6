#!/usr/bin/env bash
# The system test tier's machine: a throw-away Debian 12 VM with systemd as PID 1 and a pure
# cgroup v2 hierarchy, booted by qemu under TCG (no KVM on the build machines).
#
#   vm.sh image                 build the image once and cache it outside the repo
#   vm.sh run SHAREDIR SCRIPT   boot it, run SHAREDIR/SCRIPT as root inside, power off;
#                               exit with the script's exit code
#
# Exit 77 with "SKIP: <reason>" when the tier cannot run here (no qemu/debootstrap, no mirror).
# The cache lives in $RESMGR_VM_CACHE (default /var/cache/resmgr-vm), keyed by a hash of this
# file, so changing the recipe below rebuilds the image.
set -euo pipefail

cache=${RESMGR_VM_CACHE:-/var/cache/resmgr-vm}
here=$(cd "$(dirname "$0")" && pwd)
key=$(sha256sum "$here/vm.sh" | cut -c1-16)
image_dir=$cache/$key
timeout_s=${RESMGR_VM_TIMEOUT:-900}

# Guest packages: systemd + D-Bus for the systemd backend, and the runtime libraries of resmgr.
guest_packages=systemd,systemd-sysv,dbus,udev,kmod,procps,zstd,libbpf1,libelf1,libspdlog1.10,libfmt9,libsystemd0,libsqlite3-0,libprometheus-cpp-core1.0,libprometheus-cpp-pull1.0,libcurl4

skip() { echo "SKIP: $*"; exit 77; }

mirror() {
    # Read at run time from this machine's apt sources; never written into the repo.
    local m=""
    [ -f /etc/apt/sources.list.d/debian.sources ] &&
        m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    [ -z "$m" ] && [ -f /etc/apt/sources.list ] &&
        m=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list)
    echo "$m"
}

# Runs inside `unshare -m`: the proc/dev mounts needed by the chroot never show on the host.
build_rootfs() { # dir mirror
    local dir=$1 mirror=$2
    debootstrap --variant=minbase --include="$guest_packages" bookworm "$dir" "$mirror"
    # A small initrd: only what mounts a virtio root (the default one is 5x larger, built twice).
    mkdir -p "$dir/etc/initramfs-tools/conf.d"
    echo "MODULES=list" > "$dir/etc/initramfs-tools/conf.d/resmgr-vm"
    printf '%s\n' virtio_pci virtio_blk ext4 9pnet_virtio 9p > "$dir/etc/initramfs-tools/modules"
    mount -t proc proc "$dir/proc"
    mount --bind /dev "$dir/dev"
    chroot "$dir" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        linux-image-amd64 initramfs-tools
    chroot "$dir" apt-get clean
    umount "$dir/dev" "$dir/proc"

    echo resmgr-vm > "$dir/etc/hostname"
    echo "/dev/vda / ext4 rw 0 1" > "$dir/etc/fstab"
    # The test runner: mount the 9p share, run the script, record its exit code, power off.
    cat > "$dir/usr/local/sbin/resmgr-vm-run" <<'EOF'
#!/bin/sh
mkdir -p /mnt/share
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 host0 /mnt/share
cd /mnt/share
script=$(cat /mnt/share/.script)
sh "/mnt/share/$script" > /dev/ttyS0 2>&1
echo $? > /mnt/share/.exit
sync
systemctl poweroff --no-block
EOF
    chmod +x "$dir/usr/local/sbin/resmgr-vm-run"
    cat > "$dir/etc/systemd/system/resmgr-vm-run.service" <<'EOF'
[Unit]
Description=Run the resmgr system tests from the 9p share
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/resmgr-vm-run
StandardOutput=tty
TTYPath=/dev/ttyS0

[Install]
WantedBy=multi-user.target
EOF
    ln -sf /etc/systemd/system/resmgr-vm-run.service "$dir/etc/systemd/system/multi-user.target.wants/resmgr-vm-run.service"
    # No login prompt on the serial console: its output would interleave with the tests'.
    ln -sf /dev/null "$dir/etc/systemd/system/serial-getty@ttyS0.service"
}

image() {
    command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not installed (scripts/install-deps.sh installs it)"
    command -v debootstrap >/dev/null || skip "debootstrap is not installed"
    [ -f "$image_dir/img" ] && return 0
    mkdir -p "$cache"
    exec 9>"$cache/.lock"
    flock 9
    [ -f "$image_dir/img" ] && return 0
    local m
    m=$(mirror)
    [ -n "$m" ] || skip "no Debian mirror found in this machine's apt sources"
    local tmp
    tmp=$(mktemp -d "$cache/build.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    echo "vm.sh: building the VM image in $tmp (a few minutes, once)"
    local started=$SECONDS
    if ! unshare -m --propagation private bash -c "$(declare -f build_rootfs); guest_packages=$guest_packages; build_rootfs $tmp/root $m" \
        > "$tmp/build.log" 2>&1; then
        tail -20 "$tmp/build.log"
        skip "the VM root filesystem could not be built (log above)"
    fi
    truncate -s 3G "$tmp/img"
    mkfs.ext4 -q -F -d "$tmp/root" "$tmp/img"
    cp "$tmp"/root/boot/vmlinuz-* "$tmp/vmlinuz"
    cp "$tmp"/root/boot/initrd.img-* "$tmp/initrd.img"
    rm -rf "$tmp/root"
    rm -rf "$image_dir"
    mv "$tmp" "$image_dir"
    trap - EXIT
    # Older images are of no use once the recipe changed.
    find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -exec rm -rf {} +
    echo "vm.sh: image ready in $((SECONDS - started))s: $image_dir"
}

run() { # share script
    local share=$1 script=$2
    [ -f "$share/$script" ] || { echo "vm.sh: $share/$script does not exist" >&2; exit 2; }
    image
    echo "$script" > "$share/.script"
    rm -f "$share/.exit"
    local started=$SECONDS
    qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m 2048 -display none -monitor none \
        -serial stdio -no-reboot -nic none \
        -kernel "$image_dir/vmlinuz" -initrd "$image_dir/initrd.img" \
        -append "console=ttyS0 root=/dev/vda rw panic=-1 audit=1 quiet" \
        -drive "file=$image_dir/img,format=raw,if=virtio,snapshot=on" \
        -virtfs "local,path=$share,mount_tag=host0,security_model=none,id=host0" </dev/null &
    local qemu=$!
    local waited=0
    while kill -0 "$qemu" 2>/dev/null; do
        if [ "$waited" -ge "$timeout_s" ]; then
            kill "$qemu"
            wait "$qemu" || true
            echo "vm.sh: the VM did not finish within ${timeout_s}s; killed qemu (pid $qemu)" >&2
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    wait "$qemu" || true
    echo "vm.sh: VM run took $((SECONDS - started))s"
    [ -f "$share/.exit" ] || { echo "vm.sh: the guest wrote no exit code (did it boot? output above)" >&2; exit 1; }
    return "$(cat "$share/.exit")"
}

case ${1:-} in
    image) image ;;
    run) [ $# -eq 3 ] || { echo "usage: vm.sh run SHAREDIR SCRIPT" >&2; exit 2; }; run "$2" "$3" ;;
    *) echo "usage: vm.sh image | vm.sh run SHAREDIR SCRIPT" >&2; exit 2 ;;
esac
