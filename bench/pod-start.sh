#!/bin/bash
# bench/pod-start.sh [N=20]: starts N one-container pods (busybox `sleep`,
# image present, pod network on) one after another with `krun apply -d` and
# with `podman kube play`, alternating krun/podman pod by pod in one run, and
# prints each tool's median and min/max start latency (command issued to
# command returned with the pod Running, checked afterwards) and the ratio.
# Then every pod is deleted again.
#
# krun runs with roots and a pod network of its own (bridge krunb0,
# 10.251.0.0/24, nft table krun_bench), removed at the end, so the node's real
# pods and network are untouched.
#
# Env: KRUN (default target/release/krun), IMAGE (default the fixture busybox).
set -euo pipefail
n=${1:-20}
here=$(cd "$(dirname "$0")/.." && pwd)
krun=${KRUN:-$here/target/release/krun}
image=${IMAGE:-127.0.0.1:5000/library/busybox:latest}
[ "$(id -u)" = 0 ] || { echo "pod-start.sh: needs root" >&2; exit 1; }
for b in "$krun" "$(dirname "$krun")/krun-runtime" "$(command -v podman)"; do
  [ -x "$b" ] || { echo "pod-start.sh: $b missing (cargo build --release --workspace --bins; apt-get install podman)" >&2; exit 1; }
done
grep -q 'nofile=1024:1024' /etc/containers/containers.conf 2>/dev/null || {
  echo "pod-start.sh: podman needs default_ulimits in /etc/containers/containers.conf here (see ../shared/NOTES-fixtures.md)" >&2
  exit 1
}

work=$(mktemp -d /tmp/krun-pod-start.XXXXXX)
# podman runs its default runtime, crun, which needs hugetlb on v1 here.
. "$here/bench/hugetlb.sh"
. "$here/bench/sleep-pod.sh"
krun_bench_node "$work" bench krunb0 10.251.0.0/24 krun_bench
cleanup() {
  set +e
  for i in $(seq "$n"); do
    podman kube down "$work/p$i.yaml" >/dev/null 2>&1
  done
  krun_bench_node_remove "$work"
  hugetlb_v1_release
}
trap cleanup EXIT
hugetlb_v1_mount

"$krun" pull -q "$image" >/dev/null
podman pull -q --tls-verify=false "$image" >/dev/null
for i in $(seq "$n"); do
  sleep_pod "bench-$i" "$image" >"$work/p$i.yaml"
done

# Between two starts (untimed, after each tool alike): what a start leaves
# running in the background (podman's conmon and cleanup processes, a
# supervisor's first status writes) finishes before the other tool is timed.
settle() { sleep "${SETTLE:-1}"; }
k=() p=()
for i in $(seq "$n"); do
  t0=$EPOCHREALTIME
  "$krun" apply -d -f "$work/p$i.yaml" >/dev/null
  t1=$EPOCHREALTIME
  settle
  t2=$EPOCHREALTIME
  podman kube play --tls-verify=false "$work/p$i.yaml" >/dev/null 2>"$work/err" \
    || { echo "pod-start.sh: podman kube play bench-$i failed:" >&2; cat "$work/err" >&2; exit 1; }
  t3=$EPOCHREALTIME
  settle
  k+=("$(ms "$t0" "$t1")") p+=("$(ms "$t2" "$t3")")
done
# the pods must really be running, or the figures mean nothing
running=$("$krun" get pods | awk '$3 == "Running"' | wc -l)
[ "$running" = "$n" ] || { echo "pod-start.sh: only $running of $n krun pods Running" >&2; exit 1; }
prunning=$(podman pod ps --filter name=bench- --format '{{.Status}}' | grep -c Running || true)
[ "$prunning" = "$n" ] || { echo "pod-start.sh: only $prunning of $n podman pods Running" >&2; exit 1; }

stats() { sort -n | awk '{a[NR]=$1} END {printf "%d %d %d\n", a[int((NR+1)/2)], a[1], a[NR]}'; }
read -r km kmin kmax < <(printf '%s\n' "${k[@]}" | stats)
read -r pm pmin pmax < <(printf '%s\n' "${p[@]}" | stats)
echo "pod start, $n pods each, alternating (ms: median min max)"
echo "krun apply -d     $km $kmin $kmax"
echo "podman kube play  $pm $pmin $pmax"
echo "krun / podman     $(echo "scale=3; $km / $pm" | bc)"
