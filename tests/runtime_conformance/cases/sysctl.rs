//! config-linux.md "Sysctl".

use super::{inside, Case};
use crate::config::{base, drop_namespace, put};
use crate::harness::{Env, Expect, Inside};
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        inside("sysctl", "sysctl_namespaced_values", namespaced_values),
        inside("sysctl", "sysctl_unknown_key", unknown_key),
        inside("sysctl", "sysctl_net_needs_own_netns", net_needs_own_netns),
    ]
}

/// net.* and kernel.* (ipc) values in the container's own namespaces.
fn namespaced_values(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/linux/sysctl",
        json!({"net.ipv4.ip_forward": "1", "net.ipv4.ping_group_range": "0 1000", "kernel.msgmax": "4096", "kernel.shmmni": "1000"}),
    );
    let script = r#"
eq "$(cat /proc/sys/net/ipv4/ip_forward)" 1 net.ipv4.ip_forward
eq "$(awk '{print $1,$2}' /proc/sys/net/ipv4/ping_group_range)" "0 1000" net.ipv4.ping_group_range
eq "$(cat /proc/sys/kernel/msgmax)" 4096 kernel.msgmax
eq "$(cat /proc/sys/kernel/shmmni)" 1000 kernel.shmmni
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// A key that does not exist cannot be applied: "MUST generate an error".
fn unknown_key(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/linux/sysctl",
        json!({"net.ipv4.conf_not_a_key": "1"}),
    );
    Inside {
        config: c,
        script: String::new(),
        expect: Expect::Refused(&["conf_not_a_key"]),
    }
}

/// A net.* sysctl without a network namespace would change the host; runc
/// and crun refuse it (the spec is silent), and so must we. The value asked
/// for is the host's own, so a runtime failing this changes nothing.
fn net_needs_own_netns(env: &Env) -> Inside {
    let current =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_else(|_| "0".into());
    let mut c = base(&env.rootfs);
    drop_namespace(&mut c, "network");
    put(
        &mut c,
        "/linux/sysctl",
        json!({"net.ipv4.ip_forward": current.trim()}),
    );
    Inside {
        config: c,
        script: String::new(),
        expect: Expect::Refused(&["sysctl", "net.ipv4"]),
    }
}
