# Sourced by benchmarks that run crun (directly or under podman): crun 1.8
# refuses this host's hybrid cgroups while hugetlb sits on the v2 mount, so a
# v1 hugetlb hierarchy is mounted for the run. hugetlb_v1_release (call it
# from the script's EXIT trap) unmounts it again if this run mounted it.
hugetlb_mounted=
hugetlb_v1_mount() {
  grep -q ' /sys/fs/cgroup/hugetlb cgroup ' /proc/mounts && return 0
  mkdir -p /sys/fs/cgroup/hugetlb
  if ! mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb 2>/dev/null; then
    # Enabled on the v2 mount (a hugepage-limited container ran): hand it back first.
    echo -hugetlb >/sys/fs/cgroup/unified/cgroup.subtree_control
    mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
  fi
  hugetlb_mounted=1
}
hugetlb_v1_release() {
  if [ -n "$hugetlb_mounted" ]; then
    # A v1 hierarchy outlives its unmount while it has child cgroups (the
    # runtimes' parents such as krun/ or libpod_parent/): hugetlb would not
    # return to the v2 mount. Remove the empty ones first, deepest first.
    find /sys/fs/cgroup/hugetlb -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
    if [ -n "$(find /sys/fs/cgroup/hugetlb -mindepth 1 -type d -print -quit)" ]; then
      echo "hugetlb.sh: cgroups with processes remain under /sys/fs/cgroup/hugetlb; hugetlb stays on v1 until they are gone" >&2
    fi
    umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb || true
    # Removed cgroups can still be dying at the umount, which then keeps the
    # hierarchy; a second mount and umount once they are gone releases it.
    local t
    for _ in 1 2 3 4 5; do
      sleep 1 # the release itself is asynchronous
      [ "$(awk '$1 == "hugetlb" {print $2}' /proc/cgroups)" = 0 ] && break
      t=$(mktemp -d /tmp/krun-hugetlb.XXXXXX)
      mount -t cgroup -o hugetlb cgroup "$t" && umount "$t"
      rmdir "$t"
    done
    [ "$(awk '$1 == "hugetlb" {print $2}' /proc/cgroups)" = 0 ] ||
      echo "hugetlb.sh: hugetlb is still bound to a v1 hierarchy" >&2
    hugetlb_mounted=
  fi
}
