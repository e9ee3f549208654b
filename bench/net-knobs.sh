#!/bin/bash
# What krun's bridge settings cost or save in pod→pod throughput (issue 5):
# two pods attached by krun-cni, iperf3 between them, rounds alternating
# "as krun sets it up" with "one knob changed", median of per-round ratios.
#   bench/net-knobs.sh KNOB      KNOB one of:
#     conntrack  without krun's notrack rule for pod→pod (the reference
#                bridge plugin's behaviour: every bridged packet tracked)
#     nf0        bridge-nf-call-iptables=0 (bridged frames skip the ip hooks)
#     gro        GRO on on both ends of both veths
# Everything runs in a network namespace the script creates as the node,
# so sysctls and rules never change on the host; deleting it removes them.
#   KRUN_CNI=path (default target/release/krun-cni)  ROUNDS=8  SECS=3
set -euo pipefail
cd "$(dirname "$0")/.."
KNOB=${1:?usage: bench/net-knobs.sh conntrack|nf0|gro}
KRUN_CNI=${KRUN_CNI:-$PWD/target/release/krun-cni}
ROUNDS=${ROUNDS:-8}; SECS=${SECS:-3}
[ -x "$KRUN_CNI" ] || { echo "build first: cargo build --release -p krun-netplug" >&2; exit 1; }
case $KNOB in conntrack|nf0|gro) ;; *) echo "unknown knob $KNOB" >&2; exit 1 ;; esac
command -v iperf3 >/dev/null || { echo "missing iperf3" >&2; exit 1; }
[ "$KNOB" != gro ] || command -v ethtool >/dev/null || { echo "missing ethtool" >&2; exit 1; }

P=$$; NODE=kk-$P; TMP=$(mktemp -d /tmp/krun-bench-knobs.XXXXXX)
cleanup() {
  set +e
  for n in a b; do
    ip netns pids "$NODE-$n" 2>/dev/null | xargs -r kill 2>/dev/null; ip netns del "$NODE-$n" 2>/dev/null
  done
  ip netns del "$NODE" 2>/dev/null; rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NODE"; ip -n "$NODE" link set lo up
SUB=10.77.1
CONF='{"cniVersion":"1.0.0","name":"kknobs'$P'","type":"krun-cni","bridge":"kkb0","isGateway":true,"isDefaultGateway":true,"ipMasq":true,"hairpinMode":true,"mtu":1500,"ipam":{"type":"host-local","subnet":"'$SUB'.0/24","dataDir":"'$TMP'/ipam"},"nftTable":"kknobs","stateDir":"'$TMP'/state"}'
for n in a b; do
  ip netns add "$NODE-$n"
  printf '%s' "$CONF" | ip netns exec "$NODE" env -i CNI_COMMAND=ADD CNI_CONTAINERID="c$n" \
    CNI_NETNS="/run/netns/$NODE-$n" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    "$KRUN_CNI" >/dev/null
done
AIP=$(ip -n "$NODE-a" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
iperf() {
  ip netns exec "$NODE-a" iperf3 -s -1 -D >/dev/null; sleep 0.3
  ip netns exec "$NODE-b" iperf3 -c "$AIP" -t "$SECS" -J |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}
# the raw chain's notrack rule as krun-cni made it, to restore it verbatim
NOTRACK=$(ip netns exec "$NODE" nft list chain ip kknobs raw | grep notrack | sed 's/^[[:space:]]*//')
veths() { ip netns exec "$NODE" ls /sys/class/net | grep '^kv' || true; }
knob() { # on|off
  case $KNOB in
    conntrack)
      if [ "$1" = on ]; then ip netns exec "$NODE" nft flush chain ip kknobs raw
      else ip netns exec "$NODE" nft flush chain ip kknobs raw; ip netns exec "$NODE" nft add rule ip kknobs raw $NOTRACK; fi ;;
    nf0) ip netns exec "$NODE" sysctl -qw "net.bridge.bridge-nf-call-iptables=$([ "$1" = on ] && echo 0 || echo 1)" ;;
    gro)
      for l in $(veths); do ip netns exec "$NODE" ethtool -K "$l" gro "$1"; done
      for n in a b; do ip netns exec "$NODE-$n" ethtool -K eth0 gro "$1"; done ;;
  esac
}
: >"$TMP/r"
for r in $(seq "$ROUNDS"); do
  if ((r % 2)); then knob off; k=$(iperf); knob on; v=$(iperf)
  else knob on; v=$(iperf); knob off; k=$(iperf); fi
  echo "round $r: as krun sets up $k Gbit/s, with $KNOB $v Gbit/s"
  awk -v a="$v" -v b="$k" 'BEGIN{printf "%.4f\n", a/b}' >>"$TMP/r"
done
echo "$KNOB / krun as set up: median of per-round ratios $(sort -n "$TMP/r" | awk '{a[NR]=$1} END{printf "%.3f", (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
