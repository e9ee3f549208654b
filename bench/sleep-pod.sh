# Sourced by the pod benchmarks: sleep_pod NAME IMAGE [PULL_POLICY] prints the
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
