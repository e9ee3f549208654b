#!/bin/bash
# bench/pull.sh [RUNS]: cold pulls of flask-app from the loopback registry,
# krun vs podman, alternating (krun, podman, krun, podman, ...) in one run.
#
# Fairness and stability:
# - Both stores live on the same filesystem (under /var/lib), each run in a
#   fresh directory of its own (podman's made and initialised before its
#   timed pull), so nothing is deleted while the benchmark runs. Deleting
#   thousands of files just before a pull makes the next pull much slower on
#   an ext4 without a journal (as here): the inode allocator skips inodes
#   freed in the last 60 s (360 s when their table block is dirty), one
#   buffer lookup each, and every unlink waits for a synchronous discard.
#   That, not the pullers, made the earlier runs grow slower one after the
#   other. Everything is removed at the end; wait ~6 minutes after that
#   before timing file creation on this disk again.
# - Before each timed pull: `sync`, then wait until little is dirty and
#   settle 2 s, so neither side pays for the other's writeback.
# - The timed region is exactly one `krun pull` / one `podman pull`.
# Prints each run, the medians and their ratio (target <= 0.50), then krun's
# tar rate against `gzip -dc` of the same layer (the single-stream
# decompression floor), and the load average before and after.
#   KRUN=path/to/krun  IMAGE=127.0.0.1:5000/flask-app:latest  bench/pull.sh 7
set -euo pipefail
runs=${1:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
krun=${KRUN:-$here/target/release/krun}
img=${IMAGE:-127.0.0.1:5000/flask-app:latest}
base=/var/lib/krun-bench-pull-$$
runbase=/run/krun-bench-pull-$$
[[ -x $krun ]] || { echo "build first: cargo build --release --bin krun" >&2; exit 1; }
command -v podman >/dev/null || { echo "podman not installed" >&2; exit 1; }
cleanup() {
  for d in "$base"/podman-*; do
    [[ -d $d ]] || continue
    podman --root "$d" --runroot "$runbase/${d##*/}" rmi -af >/dev/null 2>&1 || true
  done
  rm -rf "$base" "$runbase"
}
trap cleanup EXIT
mkdir -p "$base" "$runbase"

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
dirty_kb() { awk '/^(Dirty|Writeback):/ {s+=$2} END {print s}' /proc/meminfo; }
settle() {
  sync
  for _ in $(seq 60); do
    (($(dirty_kb) < 16384)) && break
    sleep 0.5
  done
  sleep 2
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
k_times=() p_times=()
for i in $(seq "$runs"); do
  kroot=$base/krun-$i
  settle
  s=$(now); "$krun" --root "$kroot" pull -q "$img" >/dev/null; e=$(now)
  k_times+=("$(echo "$e - $s" | bc)")

  proot=$base/podman-$i prun=$runbase/podman-$i
  podman --root "$proot" --runroot "$prun" images >/dev/null # initialise the store
  settle
  s=$(now); podman --root "$proot" --runroot "$prun" pull -q --tls-verify=false "$img" >/dev/null; e=$(now)
  p_times+=("$(echo "$e - $s" | bc)")
  printf 'run %d: krun %.3fs  podman %.3fs\n' "$i" "${k_times[-1]}" "${p_times[-1]}"
done
k=$(printf '%s\n' "${k_times[@]}" | median)
p=$(printf '%s\n' "${p_times[@]}" | median)
printf 'median: krun %.3fs  podman %.3fs  ratio krun/podman %.2f (target <= 0.50)\n' "$k" "$p" "$(echo "$k / $p" | bc -l)"

# The decompression floor: gzip -dc of the image's largest layer, fetched
# from the registry into memory (/run) so the disk plays no part.
reg=${img%%/*} rest=${img#*/}
repo=${rest%:*} tag=${rest##*:}
[[ $rest == *:* ]] || tag=latest
blob=$runbase/layer.gz
digest=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
  "http://$reg/v2/$repo/manifests/$tag" |
  python3 -c 'import json,sys; m=json.load(sys.stdin); print(max(m["layers"], key=lambda l: l["size"])["digest"])')
curl -sf -o "$blob" "http://$reg/v2/$repo/blobs/$digest"
tar_bytes=$(gzip -dc <"$blob" | wc -c)
g_times=()
for _ in 1 2 3; do
  s=$(now); gzip -dc <"$blob" >/dev/null; e=$(now)
  g_times+=("$(echo "$e - $s" | bc)")
done
g=$(printf '%s\n' "${g_times[@]}" | median)
mb=$(echo "$tar_bytes / 1000000" | bc -l)
printf 'layer: %.1f MB gzip -> %.1f MB tar\n' "$(echo "$(stat -c %s "$blob") / 1000000" | bc -l)" "$mb"
printf 'gzip -dc: %.3fs (%.0f MB/s of tar)   krun pull: %.3fs (%.0f MB/s of tar, %.2fx the gzip -dc time)\n' \
  "$g" "$(echo "$mb / $g" | bc -l)" "$k" "$(echo "$mb / $k" | bc -l)" "$(echo "$k / $g" | bc -l)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
