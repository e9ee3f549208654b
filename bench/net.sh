#!/bin/bash
# netplug benchmark (issue 5), one run, alternating A B A B, medians + ratios:
#  1. pod→pod TCP throughput (iperf3) over the krun-cni bridge vs a bare
#     veth pair between two namespaces (target: >= 90%); also a plain
#     bridge made with `ip` (no nft table, no krun settings), the floor any
#     bridge CNI pays, to tell krun's costs from the bridge's
#  2. attach+detach latency (ADD then DEL) of krun-cni vs the reference
#     bridge + host-local plugins (/usr/lib/cni) with the same config
#     (target: krun faster)
# Root only. Uses namespaces, bridges and nft/iptables state of its own
# (names carry the pid) and removes them on exit. Addresses only loopback
# and the namespaces it creates.
#   KRUN_CNI=path (default target/release/krun-cni)  ROUNDS=5  SECS=5  LAT_N=30
set -euo pipefail
cd "$(dirname "$0")/.."
KRUN_CNI=${KRUN_CNI:-$PWD/target/release/krun-cni}
REF=${REF_BRIDGE:-/usr/lib/cni/bridge}
ROUNDS=${ROUNDS:-5}; SECS=${SECS:-5}; LAT_N=${LAT_N:-30}
[ -x "$KRUN_CNI" ] || { echo "build first: cargo build --release -p krun-netplug" >&2; exit 1; }
[ -x "$REF" ] || { echo "missing $REF (apt-get install containernetworking-plugins)" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "missing iperf3 (apt-get install iperf3)" >&2; exit 1; }

P=$$
TMP=$(mktemp -d /tmp/krun-bench-net.XXXXXX)
# the reference plugin's ipMasq makes iptables-nft create table ip nat and
# leaves it behind empty: remove it afterwards if this run made it
NAT_BEFORE=$(nft list table ip nat >/dev/null 2>&1 && echo y || echo n)
NS=()
LINKS=()
cleanup() {
  set +e
  for n in "${NS[@]}"; do ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null; ip netns del "$n" 2>/dev/null; done
  for l in "${LINKS[@]}"; do ip link del "$l" 2>/dev/null; done
  nft delete table ip "kbench_$P" 2>/dev/null
  # krun-cni's FORWARD chain, made where a filter table exists (podman's
  # netavark or docker made one): the jump from FORWARD first, then the chain
  if [ -n "${BR_K:-}" ]; then
    for ipt in iptables-nft iptables-legacy; do
      command -v "$ipt" >/dev/null || continue
      "$ipt" -w -S FORWARD 2>/dev/null | grep -- "-j KRUN-FWD-$BR_K\$" | sed 's/^-A /-D /' \
        | while read -r rule; do eval "$ipt -w $rule"; done
      "$ipt" -w -F "KRUN-FWD-$BR_K" 2>/dev/null && "$ipt" -w -X "KRUN-FWD-$BR_K"
    done
  fi
  if [ "$NAT_BEFORE" = n ] && [ "$(nft -j list table ip nat 2>/dev/null | python3 -c 'import json,sys; print(sum("rule" in i for i in json.load(sys.stdin)["nftables"]))' 2>/dev/null)" = 0 ]; then
    nft delete table ip nat
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# Test subnets that nothing on this host routes (checked, not assumed).
pick_net() { # prefix: first free 10.$1.X.0/24
  for x in $(seq 200 250); do
    ip route | grep -q "^10\.$1\.$x\." || { echo "10.$1.$x"; return; }
  done; echo "no free test subnet in 10.$1/16" >&2; exit 1
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# newns VAR tag: creates a namespace and names it in VAR (no subshell, so
# the cleanup list sees it)
newns() { local _ns="kb-$P-$2"; ip netns add "$_ns"; ip -n "$_ns" link set lo up; NS+=("$_ns"); printf -v "$1" %s "$_ns"; }

cni() { # plugin command conf id netns
  printf '%s' "$3" | env -i CNI_COMMAND="$2" CNI_CONTAINERID="$4" CNI_NETNS="/run/netns/$5" \
    CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni PATH=/usr/sbin:/usr/bin:/sbin:/bin "$1"
}
conf() { # type bridge subnet datadir
  printf '{"cniVersion":"1.0.0","name":"kbench%s","type":"%s","bridge":"%s","isGateway":true,"isDefaultGateway":true,"ipMasq":true,"hairpinMode":true,"mtu":1500,"ipam":{"type":"host-local","subnet":"%s.0/24","dataDir":"%s"},"nftTable":"kbench_%s"}' \
    "$P" "$1" "$2" "$3" "$4" "$P"
}

# ---- 1. throughput ----------------------------------------------------
NET_K=$(pick_net 252); NET_V=$(pick_net 253); NET_P=$(pick_net 251)
BR_K="kbk$((P % 100000))"; LINKS+=("$BR_K")
CONF_K=$(conf krun-cni "$BR_K" "$NET_K" "$TMP/k")
newns KA ka; newns KB kb
cni "$KRUN_CNI" ADD "$CONF_K" "kb-a-$P" "$KA" >/dev/null
cni "$KRUN_CNI" ADD "$CONF_K" "kb-b-$P" "$KB" >/dev/null
KA_IP=$(ip -n "$KA" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)

newns VA va; newns VB vb
ip link add eth0 netns "$VA" type veth peer name eth0 netns "$VB"
ip -n "$VA" addr add "$NET_V.1/24" dev eth0; ip -n "$VA" link set eth0 up
ip -n "$VB" addr add "$NET_V.2/24" dev eth0; ip -n "$VB" link set eth0 up

BR_P="kbp$((P % 100000))"; LINKS+=("$BR_P")
ip link add "$BR_P" type bridge; ip addr add "$NET_P.1/24" dev "$BR_P"; ip link set "$BR_P" up
newns PA pa; newns PB pb
for x in a b; do
  ns=PA; [ $x = b ] && ns=PB; n=${!ns}; h="kbp$x$((P % 100000))"; LINKS+=("$h")
  ip link add "$h" type veth peer name eth0 netns "$n"
  ip link set "$h" master "$BR_P" up
  ip -n "$n" addr add "$NET_P.$([ $x = a ] && echo 2 || echo 3)/24" dev eth0; ip -n "$n" link set eth0 up
done

iperf() { # server-ns server-ip client-ns → Gbit/s
  ip netns exec "$1" iperf3 -s -1 -D >/dev/null
  sleep 0.3
  ip netns exec "$3" iperf3 -c "$2" -t "$SECS" -J | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}
: >"$TMP/tv"; : >"$TMP/tk"; : >"$TMP/tp"; : >"$TMP/tr"; : >"$TMP/tq"
for r in $(seq "$ROUNDS"); do
  # rotate the order; each triple shares the machine's load of the moment
  case $((r % 3)) in
    1) v=$(iperf "$VA" "$NET_V.1" "$VB"); k=$(iperf "$KA" "$KA_IP" "$KB"); p=$(iperf "$PA" "$NET_P.2" "$PB") ;;
    2) k=$(iperf "$KA" "$KA_IP" "$KB"); p=$(iperf "$PA" "$NET_P.2" "$PB"); v=$(iperf "$VA" "$NET_V.1" "$VB") ;;
    0) p=$(iperf "$PA" "$NET_P.2" "$PB"); v=$(iperf "$VA" "$NET_V.1" "$VB"); k=$(iperf "$KA" "$KA_IP" "$KB") ;;
  esac
  echo "$v" >>"$TMP/tv"; echo "$k" >>"$TMP/tk"; echo "$p" >>"$TMP/tp"
  awk -v a="$k" -v b="$v" 'BEGIN{printf "%.4f\n", a/b}' >>"$TMP/tr"
  awk -v a="$k" -v b="$p" 'BEGIN{printf "%.4f\n", a/b}' >>"$TMP/tq"
  echo "round $r: bare veth $v Gbit/s, krun bridge $k Gbit/s, plain bridge $p Gbit/s"
done
MV=$(median <"$TMP/tv"); MK=$(median <"$TMP/tk"); MP=$(median <"$TMP/tp"); MR=$(median <"$TMP/tr"); MQ=$(median <"$TMP/tq")
echo "throughput median: bare veth $MV Gbit/s, krun pod->pod $MK Gbit/s, ratio of medians $(awk -v a="$MK" -v b="$MV" 'BEGIN{printf "%.1f%%", 100*a/b}'), median of per-round ratios $(awk -v r="$MR" 'BEGIN{printf "%.1f%%", 100*r}') (target >= 90%)"
echo "plain bridge (no krun) $MP Gbit/s = $(awk -v a="$MP" -v b="$MV" 'BEGIN{printf "%.1f%%", 100*a/b}') of bare veth; krun / plain bridge: median of per-round ratios $(awk -v r="$MQ" 'BEGIN{printf "%.1f%%", 100*r}')"
echo "bridge-nf-call-iptables=$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo absent) (1: bridged frames pass the ip hooks), load average $(cut -d' ' -f1-3 /proc/loadavg)"
cni "$KRUN_CNI" DEL "$CONF_K" "kb-a-$P" "$KA" >/dev/null
cni "$KRUN_CNI" DEL "$CONF_K" "kb-b-$P" "$KB" >/dev/null

# ---- 2. attach+detach latency -----------------------------------------
NET_R=$(pick_net 254)
BR_R="kbr$((P % 100000))"; LINKS+=("$BR_R")
CONF_R=$(conf bridge "$BR_R" "$NET_R" "$TMP/r")
now() { date +%s%N; }
: >"$TMP/lk"; : >"$TMP/lr"
# one warm-up each: bridge creation and first-use costs are not per pod
newns LW lw
cni "$KRUN_CNI" ADD "$CONF_K" warm "$LW" >/dev/null; cni "$KRUN_CNI" DEL "$CONF_K" warm "$LW"
cni "$REF" ADD "$CONF_R" warm "$LW" >/dev/null; cni "$REF" DEL "$CONF_R" warm "$LW"
timed() { # file plugin conf id netns: one ADD+DEL, ms appended to file
  local t0 t1; t0=$(now)
  cni "$2" ADD "$3" "$4" "$5" >/dev/null; cni "$2" DEL "$3" "$4" "$5"
  t1=$(now); awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f\n", (b-a)/1e6}' >>"$1"
}
for i in $(seq "$LAT_N"); do
  newns n "l$i"
  # alternate which goes first, so neither always runs on a warmer cache
  if ((i % 2)); then
    timed "$TMP/lk" "$KRUN_CNI" "$CONF_K" "k$i" "$n"; timed "$TMP/lr" "$REF" "$CONF_R" "r$i" "$n"
  else
    timed "$TMP/lr" "$REF" "$CONF_R" "r$i" "$n"; timed "$TMP/lk" "$KRUN_CNI" "$CONF_K" "k$i" "$n"
  fi
  ip netns del "$n"
done
LK=$(median <"$TMP/lk"); LR=$(median <"$TMP/lr")
echo "attach+detach median over $LAT_N: krun-cni $LK ms, reference bridge+host-local $LR ms, krun/reference $(awk -v a="$LK" -v b="$LR" 'BEGIN{printf "%.2f", a/b}') (target < 1)"
