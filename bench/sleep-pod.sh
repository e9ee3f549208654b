# Sourced by the pod benchmarks (bench/pod-start.sh, bench/density.sh): the
# pod they start, their clock and their krun node.
#
# sleep_pod NAME IMAGE [PULL_POLICY] prints the
# manifest of a one-container pod running `sleep 3600` (grace period 1 s), the
# pod both krun and podman start in bench/pod-start.sh and bench/density.sh.
# The benchmarks measure pods whose image is present, so they pass
# IfNotPresent: a `:latest` image's default policy, Always, would ask the
# registry on every start.
sleep_pod() {
  cat <<Y
apiVersion: v1
kind: Pod
metadata:
  name: $1
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: $2
    imagePullPolicy: ${3:-IfNotPresent}
    command: ["sleep", "3600"]
Y
}

# ms T0 T1: milliseconds between two $EPOCHREALTIME stamps. Stamps are taken
# with bash's own clock: a `date` process per stamp would add its fork and
# exec (1.5-3.5 ms here) to every figure.
ms() { echo $(( (${2//[.,]/} - ${1//[.,]/}) / 1000 )); }

# krun_bench_node WORK TAG BRIDGE CIDR TABLE: points krun at roots of the
# benchmark's own under WORK (run root /run/krun-TAG-$$) with a pod network
# of its own (BRIDGE on CIDR, nft table TABLE), so the node's real pods and
# network are untouched.
krun_bench_node() {
  export KRUN_ROOT=$1/root KRUN_RUN_ROOT=/run/krun-$2-$$ KRUN_LOG_ROOT=$1/log KRUN_CONFIG_DIR=$1/etc
  mkdir -p "$KRUN_CONFIG_DIR"
  cat >"$KRUN_CONFIG_DIR/netplug.json" <<J
{"clusterCidr":"$4","subnet":"$4","bridge":"$3","mtu":1500,"ipMasq":true,"nftTable":"$5"}
J
}

# krun_bench_node_remove WORK: deletes every pod of that node, its network
# and its roots (never into a mount a pod that would not go still holds).
krun_bench_node_remove() {
  "$krun" get pods 2>/dev/null | awk 'NR > 1 {print $1}' |
    xargs -r -P 8 -n 1 "$krun" delete --grace-period 0 pod >/dev/null 2>&1
  "$krun" network --config-dir "$KRUN_CONFIG_DIR" --state-dir "$KRUN_ROOT/netplug" reset >/dev/null 2>&1
  rm -rf --one-file-system "$1" "$KRUN_RUN_ROOT"
}
