//! config-linux.md "Control groups": cgroupsPath and linux.resources, read
//! back from the container's own cgroup files. The same cases run on this
//! host (v1/hybrid) and under pure cgroup v2 in a VM
//! (tests/runtime_conformance_v2.rs), so they depend only on the config
//! and harness modules and every script handles both layouts.

use crate::config::{add_namespace, base, drop_namespace, put};
use crate::harness::{Env, Expect, Inside};
use serde_json::{json, Value};

/// Builds one case's config and checks.
pub type MakeCase = fn(&Env) -> Inside;

/// (name, case) — the runner adds the section.
pub fn inside_cases() -> Vec<(&'static str, MakeCase)> {
    vec![
        ("cgroup_memory", memory),
        ("cgroup_memory_swap", memory_swap),
        ("cgroup_memory_enforced", memory_enforced),
        ("cgroup_cpu", cpu),
        ("cgroup_cpuset", cpuset),
        ("cgroup_pids", pids),
        ("cgroup_pids_enforced", pids_enforced),
        ("cgroup_hugetlb", hugetlb),
        ("cgroup_path", path),
        ("cgroup_namespace_root", namespace_root),
        ("cgroup_devices_deny", devices_deny),
        ("cgroup_devices_allow", devices_allow),
    ]
}

/// `cg <v1 file> <v2 file>` prints the container's own cgroup file.
const CG: &str = r#"
cg() { if is_v2; then cat /sys/fs/cgroup/$2; else cat /sys/fs/cgroup/$1; fi; }
"#;

/// A config in its own cgroup (cgroupsPath) and cgroup namespace, so
/// /sys/fs/cgroup inside is the container's cgroup on v1 and v2 alike.
fn config(env: &Env, resources: Value) -> Value {
    let mut c = base(&env.rootfs);
    put(&mut c, "/linux/cgroupsPath", json!(env.cgroup_path()));
    add_namespace(&mut c, json!({"type": "cgroup"}));
    if let Value::Object(map) = resources {
        for (k, v) in map {
            put(&mut c, &format!("/linux/resources/{k}"), v);
        }
    }
    c
}

fn case(c: Value, checks: &str) -> Inside {
    Inside {
        config: c,
        script: format!("{CG}\n{checks}"),
        expect: Expect::Pass,
    }
}

/// memory.limit and memory.reservation.
fn memory(env: &Env) -> Inside {
    let c = config(
        env,
        json!({"memory": {"limit": 67108864, "reservation": 33554432}}),
    );
    case(
        c,
        r#"
eq "$(cg memory/memory.limit_in_bytes memory.max)" 67108864 "memory limit"
eq "$(cg memory/memory.soft_limit_in_bytes memory.low)" 33554432 "memory reservation"
"#,
    )
}

/// memory.swap is memory+swap (v1 memsw); on v2 swap.max is swap - limit.
fn memory_swap(env: &Env) -> Inside {
    let c = config(
        env,
        json!({"memory": {"limit": 67108864, "swap": 134217728}}),
    );
    case(
        c,
        r#"
if is_v2; then
  eq "$(cat /sys/fs/cgroup/memory.swap.max)" 67108864 "memory.swap.max"
else
  eq "$(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes)" 134217728 "memsw limit"
fi
"#,
    )
}

/// The limit is enforced: a process that grows past it is OOM-killed.
fn memory_enforced(env: &Env) -> Inside {
    let c = config(
        env,
        json!({"memory": {"limit": 16777216, "swap": 16777216}}),
    );
    // dd fills a 32 MiB buffer in one read: twice the limit.
    case(
        c,
        r#"
dd if=/dev/zero of=/dev/null bs=32M count=1 2>/dev/null
rc=$?
eq "$rc" 137 "exit status of a process growing past the limit (SIGKILL)"
"#,
    )
}

/// cpu shares, quota and period. v2 has no shares: the weight is the
/// conversion runc and crun document, 1 + ((shares - 2) * 9999) / 262142.
fn cpu(env: &Env) -> Inside {
    let c = config(
        env,
        json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000}}),
    );
    case(
        c,
        r#"
if is_v2; then
  eq "$(cat /sys/fs/cgroup/cpu.max)" "50000 100000" cpu.max
  eq "$(cat /sys/fs/cgroup/cpu.weight)" 20 "cpu.weight from shares 512"
else
  eq "$(cat /sys/fs/cgroup/cpu/cpu.shares)" 512 cpu.shares
  eq "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)" 50000 cpu.cfs_quota_us
  eq "$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)" 100000 cpu.cfs_period_us
fi
"#,
    )
}

/// cpuset cpus and mems.
fn cpuset(env: &Env) -> Inside {
    let c = config(env, json!({"cpu": {"cpus": "0", "mems": "0"}}));
    case(
        c,
        r#"
eq "$(cg cpuset/cpuset.cpus cpuset.cpus)" 0 cpuset.cpus
eq "$(cg cpuset/cpuset.mems cpuset.mems)" 0 cpuset.mems
eq "$(awk '$1=="Cpus_allowed_list:" {print $2}' /proc/$$/status)" 0 "Cpus_allowed_list"
"#,
    )
}

/// pids.limit.
fn pids(env: &Env) -> Inside {
    let c = config(env, json!({"pids": {"limit": 77}}));
    case(c, r#"eq "$(cg pids/pids.max pids.max)" 77 pids.max"#)
}

/// pids.limit is enforced: forks beyond it fail.
fn pids_enforced(env: &Env) -> Inside {
    let c = config(env, json!({"pids": {"limit": 10}}));
    case(
        c,
        r#"
# A failed fork ends an ash script, so a child shell does the forking;
# its sleeps are then counted without forking (a glob).
sh -c 'i=0; while [ $i -lt 20 ]; do sleep 30 & i=$((i+1)); done' 2>/dev/null
set -- /proc/[0-9]*
[ $# -le 10 ] || fail "$# processes under a limit of 10"
[ $# -ge 5 ] || fail "only $# processes: the fork loop did not run"
"#,
    )
}

/// hugepageLimits for 2MB pages. Known wrong in runc 1.1.5 on this hybrid
/// host, where hugetlb is only on the v2 "unified" mount: it refuses the
/// container. Under pure v2 (the VM) runc applies it.
fn hugetlb(env: &Env) -> Inside {
    let c = config(
        env,
        json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
    );
    // On a hybrid host hugetlb may live only on the v2 "unified" mount.
    case(
        c,
        r#"
if is_v2; then f=/sys/fs/cgroup/hugetlb.2MB.max
elif [ -d /sys/fs/cgroup/hugetlb ]; then f=/sys/fs/cgroup/hugetlb/hugetlb.2MB.limit_in_bytes
else f=/sys/fs/cgroup/unified/hugetlb.2MB.max; fi
eq "$(cat $f)" 4194304 "2MB hugetlb limit ($f)"
"#,
    )
}

/// cgroupsPath is where the process lives (seen without a cgroup namespace).
fn path(env: &Env) -> Inside {
    let mut c = config(env, json!({"pids": {"limit": 100}}));
    drop_namespace(&mut c, "cgroup");
    let p = env.cgroup_path();
    let script = format!(
        r#"
if is_v2; then
  grep -qx "0::{p}" /proc/$$/cgroup || fail "not in {p}: $(cat /proc/$$/cgroup)"
else
  grep -q ":pids:{p}$" /proc/$$/cgroup || fail "pids cgroup is not {p}: $(cat /proc/$$/cgroup)"
  grep -q ":memory:{p}$" /proc/$$/cgroup || fail "memory cgroup is not {p}: $(cat /proc/$$/cgroup)"
fi
"#
    );
    case(c, &script)
}

/// With a cgroup namespace the container's cgroup is its root.
fn namespace_root(env: &Env) -> Inside {
    let c = config(env, json!({"pids": {"limit": 100}}));
    case(
        c,
        r#"
if is_v2; then
  grep -qx "0::/" /proc/$$/cgroup || fail "cgroup is not / in the namespace: $(cat /proc/$$/cgroup)"
else
  grep -q ":pids:/$" /proc/$$/cgroup || fail "pids cgroup is not / in the namespace: $(cat /proc/$$/cgroup)"
fi
"#,
    )
}

/// A device node the device rules do not allow cannot be opened
/// (/dev/fuse's numbers: no engine allows them by default).
fn devices_config(env: &Env, rules: Value) -> Value {
    let mut c = config(env, json!({}));
    put(&mut c, "/linux/resources/devices", rules);
    put(
        &mut c,
        "/linux/devices",
        json!([{"path": "/dev/conf-fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0}]),
    );
    c
}

/// resources.devices deny: open fails with EPERM.
fn devices_deny(env: &Env) -> Inside {
    let c = devices_config(env, json!([{"allow": false, "access": "rwm"}]));
    case(
        c,
        r#"
err=$( (exec 3</dev/conf-fuse) 2>&1)
case "$err" in *"Operation not permitted"*) ;; *) fail "opening a denied device: [$err], expected EPERM";; esac
"#,
    )
}

/// resources.devices allow: the same node opens past the cgroup (only
/// opened, never read; the driver may still answer ENXIO when fuse is
/// not loaded, which is not the cgroup's EPERM).
fn devices_allow(env: &Env) -> Inside {
    let c = devices_config(
        env,
        json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}]),
    );
    case(
        c,
        r#"
err=$( (exec 3</dev/conf-fuse) 2>&1)
case "$err" in *"Operation not permitted"*) fail "opening an allowed device: [$err]";; esac
"#,
    )
}
