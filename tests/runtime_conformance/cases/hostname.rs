//! config.md "Hostname" and "Domainname".

use super::{inside, Case};
use crate::config::{base, drop_namespace, put};
use crate::harness::{Env, Expect, Inside};
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        inside("hostname", "hostname_set", hostname),
        inside("hostname", "domainname_set", domainname),
        inside("hostname", "hostname_requires_uts_namespace", requires_uts),
    ]
}

/// hostname in a new UTS namespace.
fn hostname(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(&mut c, "/hostname", json!("conf-host"));
    let script = r#"
eq "$(hostname)" conf-host hostname
eq "$(cat /proc/sys/kernel/hostname)" conf-host "kernel hostname"
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// domainname (runtime-spec 1.1). Known wrong in runc 1.1.5: ignored.
fn domainname(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(&mut c, "/domainname", json!("conf.example"));
    let script = r#"eq "$(cat /proc/sys/kernel/domainname)" conf.example domainname"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// A hostname without a UTS namespace of its own would rename the host.
/// The spec leaves this open; runc and crun refuse, and so must we.
fn requires_uts(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    drop_namespace(&mut c, "uts");
    put(&mut c, "/hostname", json!("conf-must-not-rename-the-host"));
    Inside {
        config: c,
        script: String::new(),
        expect: Expect::Refused(&["hostname", "uts"]),
    }
}
