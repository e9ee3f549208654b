#!/bin/bash
# bench/pull.sh [RUNS]: cold pulls of flask-app from the loopback registry,
# krun vs podman, alternating (krun, podman, krun, podman, ...) in one run.
# Both stores live on the same filesystem (/var/lib). Each side's store is
# emptied before its pull, outside the timed region; the timed region is
# exactly one `krun pull` / one `podman pull`. Prints medians and the ratio,
# then krun's tar rate against `gzip -dc` of the same layer (the
# single-stream decompression floor).
#   KRUN=path/to/krun  IMAGE=127.0.0.1:5000/flask-app:latest  bench/pull.sh 7
set -euo pipefail
runs=${1:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
krun=${KRUN:-$here/target/release/krun}
img=${IMAGE:-127.0.0.1:5000/flask-app:latest}
root=/var/lib/krun-bench-pull-$$
[[ -x $krun ]] || { echo "build first: cargo build --release --bin krun" >&2; exit 1; }
command -v podman >/dev/null || { echo "podman not installed" >&2; exit 1; }
trap 'rm -rf "$root"' EXIT

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

k_times=() p_times=()
for i in $(seq "$runs"); do
  rm -rf "$root"; sync
  s=$(now); "$krun" --root "$root" pull -q "$img" >/dev/null; e=$(now)
  k_times+=("$(echo "$e - $s" | bc)")
  podman rmi -f "$img" >/dev/null 2>&1 || true; sync
  s=$(now); podman pull -q --tls-verify=false "$img" >/dev/null; e=$(now)
  p_times+=("$(echo "$e - $s" | bc)")
  printf 'run %d: krun %.3fs  podman %.3fs\n' "$i" "${k_times[-1]}" "${p_times[-1]}"
done
k=$(printf '%s\n' "${k_times[@]}" | median)
p=$(printf '%s\n' "${p_times[@]}" | median)
printf 'median: krun %.3fs  podman %.3fs  ratio krun/podman %.2f (target <= 0.50)\n' "$k" "$p" "$(echo "$k / $p" | bc -l)"

# The decompression floor: gzip -dc of the largest layer blob krun stored.
blob=$(ls -S "$root"/images/blobs/sha256/* | head -1)
tar_bytes=$(gzip -dc <"$blob" | wc -c)
g_times=()
for i in 1 2 3; do
  s=$(now); gzip -dc <"$blob" >/dev/null; e=$(now)
  g_times+=("$(echo "$e - $s" | bc)")
done
g=$(printf '%s\n' "${g_times[@]}" | median)
mb=$(echo "$tar_bytes / 1000000" | bc -l)
printf 'layer: %.1f MB gzip -> %.1f MB tar\n' "$(echo "$(stat -c %s "$blob") / 1000000" | bc -l)" "$mb"
printf 'gzip -dc: %.3fs (%.0f MB/s of tar)   krun pull: %.3fs (%.0f MB/s of tar, %.2fx the gzip -dc time)\n' \
  "$g" "$(echo "$mb / $g" | bc -l)" "$k" "$(echo "$mb / $k" | bc -l)" "$(echo "$k / $g" | bc -l)"
