//! config-linux.md "Namespaces": new ones for each listed type, the
//! runtime's own for unlisted types, joining by path, user mappings.

use super::{inside, outside, Case};
use crate::config::{add_namespace, base, drop_mount, drop_namespace, put};
use crate::harness::{run_inside, Env, Expect, Inside, Runtime};
use serde_json::json;
use std::process::{Child, Command, Stdio};

pub fn cases() -> Vec<Case> {
    vec![
        inside("namespaces", "ns_new_for_each_type", new_for_each_type),
        inside("namespaces", "ns_pid_init", pid_init),
        inside("namespaces", "ns_unlisted_is_shared", unlisted_is_shared),
        outside("namespaces", "ns_join_by_path", join_by_path),
        inside("namespaces", "ns_user_mappings", user_mappings),
        inside("namespaces", "ns_time_offsets", time_offsets),
    ]
}

fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| panic!("readlink /proc/self/ns/{kind}: {e}"))
}

/// Every listed type gets a namespace different from the runtime's.
fn new_for_each_type(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    add_namespace(&mut c, json!({"type": "cgroup"}));
    let mut script = String::new();
    for k in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        let host = host_ns(k);
        script.push_str(&format!(
            "[ \"$(readlink /proc/$$/ns/{k})\" != \"{host}\" ] || fail \"{k} namespace is the host's ({host})\"\n"
        ));
    }
    Inside {
        config: c,
        script,
        expect: Expect::Pass,
    }
}

/// In a new PID namespace the process is pid 1 and sees only its own.
fn pid_init(env: &Env) -> Inside {
    let script = r#"
eq "$$" 1 "pid of the container process"
set -- /proc/[0-9]*
[ $# -le 3 ] || fail "sees $# processes: $*"
"#;
    Inside {
        config: base(&env.rootfs),
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// "If a namespace type is not specified ... the container inherits the
/// runtime namespace of that type."
fn unlisted_is_shared(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    drop_namespace(&mut c, "network");
    drop_namespace(&mut c, "ipc");
    let net = host_ns("net");
    let ipc = host_ns("ipc");
    let script = format!(
        r#"
eq "$(readlink /proc/$$/ns/net)" "{net}" "network namespace"
eq "$(readlink /proc/$$/ns/ipc)" "{ipc}" "ipc namespace"
"#
    );
    Inside {
        config: c,
        script,
        expect: Expect::Pass,
    }
}

/// Kills the namespace holder this test started.
struct Holder(Child);
impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A namespace with a path is joined, not created (how pods share net/ipc/uts).
fn join_by_path(rt: &Runtime, env: &Env) -> Result<(), String> {
    let child = Command::new("unshare")
        .args(["--net", "--ipc", "--uts", "sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start unshare: {e}"))?;
    let holder = Holder(child);
    let pid = holder.0.id();
    // Wait until the holder has unshared (its net namespace differs from ours).
    let ours = host_ns("net");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let theirs = |k: &str| {
        std::fs::read_link(format!("/proc/{pid}/ns/{k}")).map(|p| p.display().to_string())
    };
    while theirs("net").map(|n| n == ours).unwrap_or(true) {
        if std::time::Instant::now() > deadline {
            return Err("unshare never entered a new network namespace".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut c = base(&env.rootfs);
    for (t, k) in [("network", "net"), ("ipc", "ipc"), ("uts", "uts")] {
        drop_namespace(&mut c, t);
        add_namespace(
            &mut c,
            json!({"type": t, "path": format!("/proc/{pid}/ns/{k}")}),
        );
    }
    let mut script = String::new();
    for k in ["net", "ipc", "uts"] {
        let want = theirs(k).map_err(|e| format!("readlink holder {k}: {e}"))?;
        script.push_str(&format!(
            "eq \"$(readlink /proc/$$/ns/{k})\" \"{want}\" \"joined {k} namespace\"\n"
        ));
    }
    let r = run_inside(
        rt,
        env,
        Inside {
            config: c,
            script,
            expect: Expect::Pass,
        },
    );
    drop(holder);
    r
}

/// A user namespace with uid/gid mappings: root inside, an unprivileged
/// range outside.
fn user_mappings(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    add_namespace(&mut c, json!({"type": "user"}));
    put(
        &mut c,
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    put(
        &mut c,
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    // sysfs and cgroup mounts need privileges a mapped root lacks on the host.
    drop_mount(&mut c, "/sys/fs/cgroup");
    drop_mount(&mut c, "/sys");
    let script = r#"
eq "$(awk '{print $1,$2,$3}' /proc/$$/uid_map)" "0 100000 65536" uid_map
eq "$(awk '{print $1,$2,$3}' /proc/$$/gid_map)" "0 100000 65536" gid_map
eq "$(id -u)" 0 "uid inside"
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// Known wrong in runc 1.1.5, which predates time namespaces.
/// A time namespace with timeOffsets (runtime-spec 1.1): the offsets are
/// the namespace's, and CLOCK_MONOTONIC/BOOTTIME move by them (uptime
/// follows boottime).
fn time_offsets(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    add_namespace(&mut c, json!({"type": "time"}));
    put(
        &mut c,
        "/linux/timeOffsets",
        json!({"monotonic": {"secs": 86400, "nanosecs": 0}, "boottime": {"secs": 172800, "nanosecs": 0}}),
    );
    let host_ns = host_ns("time");
    let host_uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split('.').next().and_then(|s| s.parse::<u64>().ok()))
        .unwrap_or(0);
    let script = format!(
        r#"
[ "$(readlink /proc/$$/ns/time)" != "{host_ns}" ] || fail "time namespace is the host's"
eq "$(awk '$1=="monotonic" {{print $2}}' /proc/$$/timens_offsets)" 86400 "monotonic offset"
eq "$(awk '$1=="boottime" {{print $2}}' /proc/$$/timens_offsets)" 172800 "boottime offset"
up=$(cut -d. -f1 /proc/uptime)
[ "$up" -ge $(({host_uptime} + 172800)) ] || fail "uptime $up does not include the boottime offset"
"#
    );
    Inside {
        config: c,
        script,
        expect: Expect::Pass,
    }
}
