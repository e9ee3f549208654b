#!/bin/bash
# bench/lifecycle.sh [N]: runs N containers one after another (`RUNTIME run` of
# /bin/true from one busybox bundle, foreground) with krun-runtime, crun and
# runc, alternating krun/crun/runc in one run, and prints per-runtime median
# wall time, median and max peak RSS (GNU time %M of the runtime process
# tree), and krun's ratios to the peers.
#
# crun 1.8 refuses this host's hybrid cgroups while hugetlb sits on the v2
# mount, so the script mounts a v1 hugetlb hierarchy for the duration of the
# run and unmounts it afterwards (also on failure).
#
# Env: KRUN_RUNTIME (default target/release/krun-runtime), CRUN, RUNC.
set -euo pipefail
n=${1:-50}
here=$(cd "$(dirname "$0")/.." && pwd)
krun=${KRUN_RUNTIME:-$here/target/release/krun-runtime}
crun=${CRUN:-$(command -v crun)}
runc=${RUNC:-$(command -v runc)}
[ "$(id -u)" = 0 ] || { echo "lifecycle.sh: needs root" >&2; exit 1; }
# The v1 hugetlb mount lives in a mount namespace of the benchmark's own:
# containers that other workloads start meanwhile then neither see it nor
# leave cgroups in it, which would keep hugetlb bound to an unmounted v1
# hierarchy (and off the v2 mount) after the benchmark.
if [ -z "${KRUN_BENCH_PRIVATE_NS:-}" ]; then
  exec env KRUN_BENCH_PRIVATE_NS=1 unshare -m --propagation private bash "$0" "$@"
fi
for b in "$krun" "$crun" "$runc" /usr/bin/time /bin/busybox; do
  [ -x "$b" ] || { echo "lifecycle.sh: $b missing (build with: cargo build --release -p krun-runtime)" >&2; exit 1; }
done

# State roots on tmpfs (/run), where every runtime keeps them by default.
work=$(mktemp -d /run/krun-lifecycle.XXXXXX)
. "$here/bench/hugetlb.sh"
b=
cleanup() {
  for rt in krun crun runc; do
    for d in "$work/state-$rt"/*/; do
      [ -d "$d" ] || continue
      case $rt in krun) r=$krun ;; crun) r=$crun ;; runc) r=$runc ;; esac
      "$r" --root "$work/state-$rt" delete -f "$(basename "$d")" >/dev/null 2>&1 || true
    done
  done
  hugetlb_v1_release
  rm -rf "$work" "$b"
}
trap cleanup EXIT

b=$(mktemp -d /tmp/krun-lifecycle-bundle.XXXXXX)
# One bundle: busybox rootfs and runc's default config running /bin/true.
mkdir -p "$b/rootfs"/{bin,etc,tmp,proc,sys,dev,root}
cp /bin/busybox "$b/rootfs/bin/busybox"
ln -s busybox "$b/rootfs/bin/true"
ln -s busybox "$b/rootfs/bin/sh"
(cd "$b" && "$runc" spec)
sed -i 's/"terminal": true/"terminal": false/; s/^\(\s*\)"sh"$/\1"\/bin\/true"/' "$b/config.json"
grep -q '"/bin/true"' "$b/config.json" || { echo "lifecycle.sh: could not set args" >&2; exit 1; }

hugetlb_v1_mount

for rt in krun crun runc; do mkdir -p "$work/state-$rt"; : >"$work/$rt.ms"; : >"$work/$rt.kb"; done
cd "$b"
one() { # rt binary id
  local t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -f %M -o "$work/rss" "$2" --root "$work/state-$1" run "$3" >/dev/null 2>"$work/err" \
    || { echo "$1 run $3 failed:" >&2; cat "$work/err" >&2; exit 1; }
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000 )) >>"$work/$1.ms"
  cat "$work/rss" >>"$work/$1.kb"
}
# One untimed warm-up each (page cache, cgroup parents).
one krun "$krun" warm-k; one crun "$crun" warm-c; one runc "$runc" warm-r
for rt in krun crun runc; do : >"$work/$rt.ms"; : >"$work/$rt.kb"; done
for i in $(seq "$n"); do
  one krun "$krun" "lc-$$-k$i"
  one crun "$crun" "lc-$$-c$i"
  one runc "$runc" "lc-$$-r$i"
done

median() { sort -n "$1" | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
max() { sort -n "$1" | tail -1; }
printf '%-13s %12s %14s %13s\n' runtime "median ms" "median RSS KiB" "max RSS KiB"
for rt in krun crun runc; do
  m=$(median "$work/$rt.ms"); r=$(median "$work/$rt.kb"); x=$(max "$work/$rt.kb")
  printf '%-13s %12s %14s %13s\n' "$rt" "$(awk -v u="$m" 'BEGIN {printf "%.2f", u/1000}')" "$r" "$x"
  eval "med_$rt=$m rss_$rt=$r"
done
awk -v k="$med_krun" -v c="$med_crun" -v r="$med_runc" -v kr="$rss_krun" -v cr="$rss_crun" -v rr="$rss_runc" -v n="$n" 'BEGIN {
  printf "time ratio krun/crun %.2f, krun/runc %.2f; RSS ratio krun/crun %.2f, krun/runc %.2f (%d runs each, alternating)\n", k/c, k/r, kr/cr, kr/rr, n }'
