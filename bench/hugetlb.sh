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
    umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb || true
    hugetlb_mounted=
  fi
}
