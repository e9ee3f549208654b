#!/bin/bash
# bench/density.sh [N=100]: N pods of one busybox `sleep` container running at
# once under the node agent (`krun kubelet`, the manifests moved into its
# directory together), then the same N manifests under podman (`podman kube
# play`, one after another: podman has no directory to watch). Prints:
#
# - the time from the drop until all N are Running (podman: until the last
#   kube play returned and all N are running);
# - the memory of what keeps the pods: krun's node agent + one supervisor per
#   pod, against podman's conmon per container + the infra (pause) process
#   per pod. Two figures each, per pod: summed VmRSS (every process counts
#   the shared pages of its binary again: N copies of one program's text)
#   and summed PSS from /proc/PID/smaps_rollup (shared pages divided among
#   the processes that map them: what the pods really cost), PSS split in
#   anonymous and file-backed; and the group's RSS, each physical page
#   counted once however many of the processes map it (bench/rss-union.py:
#   what the group holds in RAM). The containers' own processes are not
#   counted on either side. Target for krun: <= 2 MiB per pod;
# - `krun get pods` latency with N pods (median of 11 runs; target <= 50 ms).
#
# krun runs with roots and a pod network of its own (bridge krund0,
# 10.250.0.0/24, nft table krun_density); everything (pods, podman pods, the
# network) is removed at the end, on failure too. Figures mean something only
# on a quiet machine: the load average is printed with them.
#
# Env: KRUN (default target/release/krun), IMAGE (default the fixture busybox).
set -euo pipefail
n=${1:-100}
here=$(cd "$(dirname "$0")/.." && pwd)
krun=${KRUN:-$here/target/release/krun}
image=${IMAGE:-127.0.0.1:5000/library/busybox:latest}
[ "$(id -u)" = 0 ] || { echo "density.sh: needs root" >&2; exit 1; }
[ "$n" -ge 1 ] && [ "$n" -le 250 ] || { echo "density.sh: N must be 1..250 (one /24)" >&2; exit 1; }
for b in "$krun" "$(dirname "$krun")/krun-runtime" "$(command -v podman)"; do
  [ -x "$b" ] || { echo "density.sh: $b missing (cargo build --release --workspace --bins; apt-get install podman)" >&2; exit 1; }
done
grep -q 'nofile=1024:1024' /etc/containers/containers.conf 2>/dev/null || {
  echo "density.sh: podman needs default_ulimits in /etc/containers/containers.conf here (see ../shared/NOTES-fixtures.md)" >&2
  exit 1
}

work=$(mktemp -d /tmp/krun-density.XXXXXX)
. "$here/bench/hugetlb.sh"
. "$here/bench/sleep-pod.sh"
krun_bench_node "$work" density krund0 10.250.0.0/24 krun_density
export KRUN_RUNTIME=$(dirname "$krun")/krun-runtime
node=density
mkdir -p "$work/src" "$work/manifests"
agent=
# kube play makes this network on first use: removed again if this run made it
kube_net=podman-default-kube-network
kube_net_was=$(podman network exists "$kube_net" && echo 1 || true)
cleanup() {
  set +e
  if [ -n "$agent" ]; then kill "$agent" 2>/dev/null; wait "$agent" 2>/dev/null; fi
  # the agent is stopped: deleting its static pods is final
  for i in $(seq "$n"); do
    [ -e "$work/podman-$i" ] && podman kube down "$work/src/d$i.yaml" >/dev/null 2>&1
  done
  [ -z "$kube_net_was" ] && podman network rm "$kube_net" >/dev/null 2>&1
  krun_bench_node_remove "$work"
  hugetlb_v1_release
}
trap cleanup EXIT
hugetlb_v1_mount

"$krun" pull -q "$image" >/dev/null
podman pull -q --tls-verify=false "$image" >/dev/null
for i in $(seq "$n"); do
  sleep_pod "d$i" "$image" >"$work/src/d$i.yaml"
done

# sums VmRSS and Pss, Pss_Anon, Pss_File (kB) of the given pids
mem() {
  local rss=0 pss=0 anon=0 file=0 p v
  for p in "$@"; do
    v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    rss=$((rss + ${v:-0}))
    read -r a b c < <(awk '/^Pss:/{p=$2} /^Pss_Anon:/{a=$2} /^Pss_File:/{f=$2} END{print p+0, a+0, f+0}' "/proc/$p/smaps_rollup" 2>/dev/null || echo "0 0 0")
    pss=$((pss + a)) anon=$((anon + b)) file=$((file + c))
  done
  echo "$rss $pss $anon $file"
}
per_pod() { echo "scale=2; $1 / 1024 / $n" | bc; }
running_krun() { "$krun" get pods 2>/dev/null | awk '$3 == "Running"' | wc -l; }

# --- krun: the agent and N static pods ---
"$krun" kubelet --manifests "$work/manifests" --node-name "$node" 2>"$work/agent.log" &
agent=$!
sleep 1
t0=$EPOCHREALTIME
for i in $(seq "$n"); do mv "$work/src/d$i.yaml" "$work/manifests/"; done
deadline=$(( $(date +%s) + 600 ))
while [ "$(running_krun)" != "$n" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "density.sh: only $(running_krun) of $n krun pods Running after 600 s" >&2; tail "$work/agent.log" >&2; exit 1; }
  sleep 0.2
done
t1=$EPOCHREALTIME
kload=$(cut -d' ' -f1-3 /proc/loadavg)
sleep 15 # let start-up threads (pull and netlink pools) end
sups=()
for f in "$KRUN_RUN_ROOT"/supervisors/*/supervisor.pid; do sups+=("$(cat "$f")"); done
[ "${#sups[@]}" = "$n" ] || { echo "density.sh: ${#sups[@]} supervisors for $n pods" >&2; exit 1; }
read -r krss kpss kanon kfile < <(mem "$agent" "${sups[@]}")
kunion=$(python3 "$here/bench/rss-union.py" "$agent" "${sups[@]}")
read -r arss apss _ _ < <(mem "$agent")
lat=()
for _ in $(seq 11); do
  a=$EPOCHREALTIME; "$krun" get pods >/dev/null; b=$EPOCHREALTIME
  lat+=("$(ms "$a" "$b")")
done
lmed=$(printf '%s\n' "${lat[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')

# krun's pods go before podman's start: each side measured alone
kill "$agent"; wait "$agent" || true; agent=
for i in $(seq "$n"); do mv "$work/manifests/d$i.yaml" "$work/src/"; done
"$krun" get pods | awk 'NR > 1 {print $1}' | xargs -r -P 8 -n 1 "$krun" delete --grace-period 0 pod >/dev/null

# --- podman: the same manifests ---
t2=$EPOCHREALTIME
for i in $(seq "$n"); do
  touch "$work/podman-$i"
  podman kube play --tls-verify=false "$work/src/d$i.yaml" >/dev/null 2>"$work/err" \
    || { echo "density.sh: podman kube play d$i failed:" >&2; cat "$work/err" >&2; exit 1; }
done
prunning=$(podman pod ps --filter name='^d[0-9]+$' --format '{{.Name}} {{.Status}}' | grep -c ' Running' || true)
[ "$prunning" = "$n" ] || { echo "density.sh: only $prunning of $n podman pods Running" >&2; exit 1; }
t3=$EPOCHREALTIME
pload=$(cut -d' ' -f1-3 /proc/loadavg)
sleep 15
keep=()
for i in $(seq "$n"); do
  for c in $(podman pod inspect "d$i" --format '{{range .Containers}}{{.Id}} {{end}}'); do
    keep+=("$(podman inspect "$c" --format '{{.State.ConmonPid}}')")
    # the infra container's process (catatonit) runs for the pod, not for a container of it
    if [ "$(podman inspect "$c" --format '{{.IsInfra}}')" = true ]; then
      keep+=("$(podman inspect "$c" --format '{{.State.Pid}}')")
    fi
  done
done
read -r prss ppss panon pfile < <(mem "${keep[@]}")
punion=$(python3 "$here/bench/rss-union.py" "${keep[@]}")

echo "density: $n pods of one busybox sleep container ($(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo))"
echo "all Running after            krun $(ms "$t0" "$t1") ms (agent, manifests dropped together; load $kload)"
echo "                             podman $(ms "$t2" "$t3") ms (kube play one after another; load $pload)"
echo "memory per pod (MiB)         group RSS (each page once)   summed VmRSS   summed PSS (anon + file)"
echo "krun agent + supervisors     $(per_pod "$kunion")                          $(per_pod "$krss")          $(per_pod "$kpss") ($(per_pod "$kanon") + $(per_pod "$kfile"))   [agent alone: RSS $((arss / 1024)) MiB, PSS $((apss / 1024)) MiB]"
echo "podman conmon + infra        $(per_pod "$punion")                          $(per_pod "$prss")          $(per_pod "$ppss") ($(per_pod "$panon") + $(per_pod "$pfile"))   [${#keep[@]} processes]"
echo "krun get pods with $n pods   median $lmed ms of 11 (all: ${lat[*]})"
