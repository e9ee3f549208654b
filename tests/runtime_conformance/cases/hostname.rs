//! config.md "Hostname" and "Domainname".

use super::{inside, outside, Case};
use crate::config::{base, drop_namespace, put};
use crate::harness::{
    read_lossy, refused_cleanly, write_bundle, Cleanup, Env, Expect, Inside, Runtime, CALL_TIMEOUT,
};
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        inside("hostname", "hostname_set", hostname),
        inside("hostname", "domainname_set", domainname),
        outside("hostname", "hostname_requires_uts_namespace", requires_uts),
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
fn requires_uts(rt: &Runtime, env: &Env) -> Result<(), String> {
    let mut c = base(&env.rootfs);
    drop_namespace(&mut c, "uts");
    put(&mut c, "/hostname", json!("conf-must-not-rename-the-host"));
    let bundle = write_bundle(
        env,
        &Inside {
            config: c,
            script: String::new(),
            expect: Expect::Pass,
        },
    );
    // The runtime itself runs in a throwaway UTS namespace, which the
    // container shares: a runtime failing this renames only that one.
    let (out, err) = (
        env.scratch.join("create.out"),
        env.scratch.join("create.err"),
    );
    let b = bundle.display().to_string();
    let (code, timed_out) = rt.spawn_wait_wrapped(
        &["unshare", "--uts"],
        &["create", "--bundle", &b, &env.id],
        &out,
        &err,
        None,
        CALL_TIMEOUT,
    );
    let _guard = Cleanup {
        rt,
        id: env.id.clone(),
    };
    if code == Some(0) && !timed_out {
        return Err("create accepted a hostname without a UTS namespace of its own".into());
    }
    refused_cleanly(rt, &env.id, &read_lossy(&err), &["hostname", "uts"])
}
