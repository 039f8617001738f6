#!/usr/bin/env bash
# Installs everything resmgr needs to build, run and test on Debian 12, from Debian's archive only.
# Safe to run again: apt-get skips what is already installed.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "install-deps.sh: run as root (it calls apt-get)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
build=(build-essential cmake pkg-config git
       libsystemd-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev
       libgtest-dev libgmock-dev libbenchmark-dev
       libbpf-dev bpftool clang llvm libelf-dev zlib1g-dev
       libsqlite3-dev ccache
       prometheus-cpp-dev  # resmgrd --metrics-listen (/metrics) and --metrics-textfile
       help2man lintian  # the man pages and the package check (scripts/package.sh)
       libxml2-utils  # xmllint: the host tests check that resmgr --svg writes well-formed XML
       libcurl4-openssl-dev etcd-server etcd-client)  # resmgrd --cluster: etcd's JSON gateway; the host tests run a 3-member etcd
# The system test tier boots a throw-away Debian VM (see tests/system/); skipped when these are absent.
vm=(qemu-system-x86 qemu-utils debootstrap e2fsprogs)
want=("${build[@]}")
[ "${RESMGR_NO_VM:-0}" = 1 ] || want+=("${vm[@]}")
missing=()
for p in "${want[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
