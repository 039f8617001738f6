#!/usr/bin/env bash
# Records real run histories for predict (issue 14) and the right-sizing replay (issue 13): in the
# system-test VM (tests/system/vm.sh; real resmgrd, real cgroup v2 limits, memory.peak, cpu.stat),
# development workflows run one after another through `resmgr-run --type T` with declared limits,
# the types interleaved (the order rotates every round), and resmgrd records each run in its
# history database, which is then copied out of the guest.
#
# The work is real and its size varies the way development work does: it follows this repository's
# own git history. Round i stands for one recent commit (oldest first):
#   build    the C++ translation units that commit i touched (its .cpp files, and the .cpp of each
#            .hpp it changed), compiled as `make -j2` of a Debug build runs the compiler proper:
#            cc1plus -O0 -g, two at a time, on sources preprocessed on the host with the build's
#            own flags made Debug ones (the build directory's `make FILE.cpp.i` targets), at most
#            BUILD_MAX_TUS of them (the first by path) to keep the VM run under 25 min. Commits that touch no
#            translation unit (docs, scripts) are skipped for this type. No assembling or linking:
#            the VM image has no binutils. The sources are the current ones (not each commit's).
#   test     the pure suites of this build's unit tests (same work every run, as CI's test job).
#   package  a source release of commit i: `git archive` (made on the host, unpacked in the guest
#            before the run), tar | zstd -19 | sha256sum; grows with the repository.
#   lint     bench/lint_index.pl (style checks and an identifier index) over the same tree.
# No random sizes, no sleeps: what varies is the commits. The host's gcc-12 cc1plus runs in the
# guest with its four libraries the image lacks (the guest is the same Debian 12).
#
# Usage: bench/vm_record_runs.sh BUILD_DIR [RUNS_PER_TYPE=20]   (root; the build needs resmgrd,
#   resmgr, resmgr-run, resmgr_unit_tests, and bench_predict for the summary at the end)
# Env: RECORD_BUDGET_S (default 1140): no new round starts after this many seconds of runs (a
#   round takes 1-2 min under TCG); BUILD_MAX_TUS (default 2); RESMGR_RUNS_DIR (default /var/tmp/resmgr-runs) receives
#   history-<UTC date>.db. Prints one R line per run (type, round, seconds, exit code), then the
#   runs per type as bench_predict reads them from the copied database.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$(cd "${1:?usage: vm_record_runs.sh BUILD_DIR [RUNS_PER_TYPE]}" && pwd)
runs=${2:-20}
budget=${RECORD_BUDGET_S:-1140}
max_tus=${BUILD_MAX_TUS:-2}
out_dir=${RESMGR_RUNS_DIR:-/var/tmp/resmgr-runs}
test_filter='Forecast*:Trends:RunPrediction:Sizing:Ledger:Calendar:Policy:PressurePlan:PressureRanking:HistoryStore:StateJournal:Scaling:Balance:Tuning'
cc1plus=$(gcc -print-prog-name=cc1plus)
. "$here/vm_share.sh"
vm_share_create "$build" resmgr-vm-runs
mkdir -p "$share/cc" "$share/pp" "$share/snap" "$share/out"

# The compiler proper and the libraries the guest image lacks (it has libz, libzstd, libc).
cp "$cc1plus" "$share/cc/"
ldd "$cc1plus" | awk '/libisl|libmpc|libmpfr|libgmp/ {print $3}' | xargs -I{} cp -L {} "$share/cc/"
strip -o "$share/bin/resmgr_unit_tests" "$build/tests/resmgr_unit_tests"
cp "$here/lint_index.pl" "$share/"

# The translation units an incremental build recompiles after commit $1 (existing files only).
translation_units() {
    git -C "$repo" show --name-only --format= "$1" | while read -r f; do
        case $f in
            *.cpp) echo "$f" ;;
            *.hpp) echo "${f%.hpp}.cpp" ;;
        esac
    done | sort -u | while read -r f; do [ -f "$repo/$f" ] && echo "$f"; done
}
# Preprocesses repo file $1 with the build's flags into $share/pp/<path with / as __>.ii, through
# the make target CMake writes for it in the build directory of the nearest CMakeLists.txt above.
preprocess() {
    local file=$1 dir rel out target flags
    out="$share/pp/${file//\//__}.ii"
    [ -f "$out" ] && return 0
    dir=$(dirname "$file")
    while :; do
        rel=${file#"$dir"/}
        [ "$dir" = . ] && rel=$file
        if [ -f "$build/$dir/Makefile" ] && grep -q "^$rel.i:" "$build/$dir/Makefile"; then
            # The target's flags as a Debug build has them: no -O2 (so -O0), no _FORTIFY_SOURCE
            # (glibc's wrappers need optimisation), no NDEBUG.
            target=$(dirname "$(grep -l "/$rel.i: cmake_force" "$build/$dir"/CMakeFiles/*.dir/build.make | head -1)")
            flags=$(sed -n 's/^CXX_FLAGS = //p' "$target/flags.make" | tr ' ' '\n' | grep -vxE -- '-O2|-D_FORTIFY_SOURCE=[0-9]|-DNDEBUG' | tr '\n' ' ')
            make -s -C "$build/$dir" "$rel.i" CXX_FLAGS="$flags -O0" > /dev/null
            cp "$target/$rel.i" "$out"
            return 0
        fi
        [ "$dir" = . ] && return 1
        dir=$(dirname "$dir")
    done
}

# Round i's commits, oldest first: any commit for package and lint; for build the commits
# that touch a translation unit this build compiles.
mapfile -t commits < <(git -C "$repo" log --format=%H -n "$runs" | tac)
build_commits=()
build_sets=()
while read -r c; do
    [ "${#build_commits[@]}" -ge "$runs" ] && break
    set=""
    for f in $(translation_units "$c"); do
        [ "$(wc -w <<<"$set")" -ge "$max_tus" ] && break
        preprocess "$f" && set="$set ${f//\//__}"
    done
    [ -n "$set" ] || continue
    build_commits+=("$c")
    build_sets+=("$set")
done < <(git -C "$repo" log --format=%H -n 400)
for ((i = ${#build_sets[@]} - 1, k = 1; i >= 0; i--, k++)); do
    echo "${build_sets[i]}" > "$share/pp/set-$k"
done
for ((i = 0; i < ${#commits[@]}; i++)); do
    git -C "$repo" archive --format=tar "${commits[i]}" > "$share/snap/$((i + 1)).tar"
done
rounds=$(( ${#commits[@]} < ${#build_sets[@]} ? ${#commits[@]} : ${#build_sets[@]} ))
echo "vm_record_runs.sh: $rounds rounds; build sets of $(cat "$share"/pp/set-* | wc -w) translation units in all;" \
     "package/lint from $(git -C "$repo" log --format=%h -1 "${commits[0]}")..$(git -C "$repo" log --format=%h -1 "${commits[-1]}")"

vm_share_guest_install > "$share/record.sh"
cat >> "$share/record.sh" <<GUEST
# A 2 GiB, 2 vCPU guest: the default reserve (1 GiB, 0.5 cores) would leave too little to declare.
mkdir -p /etc/resmgr
echo '{"resource_policies": {"system_reserve": {"cpu_cores": 0, "memory_gb": 0.25}}}' > /etc/resmgr/resmgr.json
systemctl daemon-reload; systemctl start resmgrd
w=/var/tmp/w
mkdir -p \$w/cc \$w/pp \$w/snap \$w/out
install -m 0755 "\$share"/cc/* \$w/cc/
install -m 0755 "\$share/bin/resmgr_unit_tests" /usr/local/bin/
cp "\$share"/pp/* \$w/pp/
for i in \$(seq 1 $rounds); do mkdir -p \$w/snap/\$i; tar -C \$w/snap/\$i -xf "\$share/snap/\$i.tar"; done
sync
run() { # type round declared-cpu declared-memory command
    t=\$1 i=\$2
    s=\$(date +%s%N)
    rc=0
    resmgr-run -q --workflow "\$t-\$i" --type "\$t" --cpu "\$3" --memory "\$4" -- sh -c "\$5" > \$w/out/\$t.log 2>&1 || rc=\$?
    echo "R \$t \$i \$(( (\$(date +%s%N) - s) / 1000000 )) ms rc \$rc"
    [ \$rc = 0 ] || tail -3 \$w/out/\$t.log | sed 's/^/    /'
}
started=\$(date +%s)
for i in \$(seq 1 $rounds); do
    [ \$(( \$(date +%s) - started )) -lt $budget ] || { echo "budget of ${budget}s spent after \$((i - 1)) rounds"; break; }
    for k in 0 1 2 3; do
        case \$(( (i + k) % 4 )) in
        0) run build \$i 2 1400M "tr ' ' '\\\\n' < \$w/pp/set-\$i | grep . | xargs -P 2 -I U env LD_LIBRARY_PATH=\$w/cc \$w/cc/cc1plus -fpreprocessed -quiet -O0 -g -std=c++20 \$w/pp/U.ii -o \$w/out/U.s" ;;
        1) run test \$i 1 512M "cd \$w/out && resmgr_unit_tests --gtest_brief=1 --gtest_filter='$test_filter'" ;;
        2) run package \$i 1 512M "tar -C \$w/snap/\$i -cf - . | zstd -q -19 -T1 -c > \$w/out/release.tar.zst && sha256sum \$w/out/release.tar.zst" ;;
        3) run lint \$i 1 256M "find \$w/snap/\$i -type f | perl \"\$share/lint_index.pl\"" ;;
        esac
    done
done
# resmgrd closes its history database on a clean stop (the WAL checkpointed into the file).
systemctl stop resmgrd
cp /var/lib/resmgr/monitoring/history.db* "\$share/out/"
ls -la "\$share/out/"
GUEST
started=$SECONDS
# The guest's own time: the budget, then the last round (up to ~3 min under TCG) and the copy out.
out=$(RESMGR_VM_TIMEOUT=$((budget + 600)) "$repo/tests/system/vm.sh" run "$share" record.sh | tr -d '\r') || { echo "$out" | tail -30; exit 1; }
grep -E '^(R|budget) ' <<<"$out"
[ -f "$share/out/history.db" ] || { echo "$out" | tail -30; echo "vm_record_runs.sh: no history database came back" >&2; exit 1; }
mkdir -p "$out_dir"
db=$out_dir/history-$(date -u +%Y%m%dT%H%MZ).db
cp "$share/out/history.db" "$db"
for extra in "$share"/out/history.db-*; do [ -f "$extra" ] && cp "$extra" "$db${extra##*/history.db}"; done
echo "vm_record_runs.sh: $((SECONDS - started)) s; the history database: $db"
echo "runs per type (R lines, failed = exit code not 0):"
grep '^R ' <<<"$out" | awk '{n[$2]++; if ($7 != 0) f[$2]++} END {for (t in n) printf "  %-8s %3d runs, %d failed\n", t, n[t], f[t]}' | sort
if [ -x "$build/bench/bench_predict" ]; then "$build/bench/bench_predict" "$db"; fi
