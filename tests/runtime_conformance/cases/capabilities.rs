//! config.md "Process" capabilities (Linux): all five sets as configured,
//! and the kernel's rules for a non-root user.

use super::{inside, Case};
use crate::config::{base, cap_mask, put, DEFAULT_CAPS};
use crate::harness::{Env, Expect, Inside};
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        inside("capabilities", "caps_default_set", default_set),
        inside("capabilities", "caps_distinct_sets", distinct_sets),
        inside("capabilities", "caps_none", none),
        inside("capabilities", "caps_ambient_nonroot", ambient_nonroot),
        inside(
            "capabilities",
            "caps_nonroot_without_ambient",
            nonroot_without_ambient,
        ),
        inside(
            "capabilities",
            "caps_dropped_is_enforced",
            dropped_is_enforced,
        ),
    ]
}

fn expect_sets(bnd: &[&str], eff: &[&str], prm: &[&str], inh: &[&str], amb: &[&str]) -> String {
    format!(
        r#"
eq "$(status_of CapBnd)" {} CapBnd
eq "$(status_of CapEff)" {} CapEff
eq "$(status_of CapPrm)" {} CapPrm
eq "$(status_of CapInh)" {} CapInh
eq "$(status_of CapAmb)" {} CapAmb
"#,
        cap_mask(bnd),
        cap_mask(eff),
        cap_mask(prm),
        cap_mask(inh),
        cap_mask(amb)
    )
}

/// The default engine set in bounding, effective and permitted; nothing inherited.
fn default_set(env: &Env) -> Inside {
    let c = base(&env.rootfs);
    Inside {
        config: c,
        script: expect_sets(DEFAULT_CAPS, DEFAULT_CAPS, DEFAULT_CAPS, &[], &[]),
        expect: Expect::Pass,
    }
}

/// Bounding, permitted and inheritable are applied each on its own. (For
/// uid 0 the kernel makes effective equal permitted across execve, so a
/// smaller effective set cannot survive into the process; it is asked
/// equal here.)
fn distinct_sets(env: &Env) -> Inside {
    let bnd = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_SETUID",
        "CAP_SETGID",
        "CAP_NET_BIND_SERVICE",
    ];
    let prm = ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID"];
    let eff = prm;
    let inh = ["CAP_KILL"];
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/process/capabilities",
        json!({"bounding": bnd, "permitted": prm, "effective": eff, "inheritable": inh}),
    );
    Inside {
        config: c,
        script: expect_sets(&bnd, &eff, &prm, &inh, &[]),
        expect: Expect::Pass,
    }
}

/// Empty sets: even uid 0 holds no capability.
fn none(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/process/capabilities",
        json!({"bounding": [], "permitted": [], "effective": [], "inheritable": [], "ambient": []}),
    );
    Inside {
        config: c,
        script: expect_sets(&[], &[], &[], &[], &[]),
        expect: Expect::Pass,
    }
}

/// An ambient capability survives the exec of a non-root user.
fn ambient_nonroot(env: &Env) -> Inside {
    let nbs = ["CAP_NET_BIND_SERVICE"];
    let mut c = base(&env.rootfs);
    put(&mut c, "/process/user", json!({"uid": 1000, "gid": 1000}));
    put(
        &mut c,
        "/process/capabilities",
        json!({"bounding": DEFAULT_CAPS, "permitted": nbs, "effective": nbs, "inheritable": nbs, "ambient": nbs}),
    );
    Inside {
        config: c,
        script: expect_sets(DEFAULT_CAPS, &nbs, &nbs, &nbs, &nbs),
        expect: Expect::Pass,
    }
}

/// A non-root process without ambient caps execs with empty effective and
/// permitted sets; the bounding set is still the configured one.
fn nonroot_without_ambient(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(&mut c, "/process/user", json!({"uid": 1000, "gid": 1000}));
    Inside {
        config: c,
        script: expect_sets(DEFAULT_CAPS, &[], &[], &[], &[]),
        expect: Expect::Pass,
    }
}

/// A capability left out is really gone: root cannot chown without CAP_CHOWN.
fn dropped_is_enforced(env: &Env) -> Inside {
    let caps: Vec<&str> = DEFAULT_CAPS
        .iter()
        .copied()
        .filter(|c| *c != "CAP_CHOWN")
        .collect();
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/process/capabilities",
        json!({"bounding": caps, "permitted": caps, "effective": caps}),
    );
    push_tmpfs(&mut c);
    let script = r#"
touch /conf-scratch/f
if chown 1000 /conf-scratch/f 2>/dev/null; then fail "chown worked without CAP_CHOWN"; fi
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

fn push_tmpfs(c: &mut serde_json::Value) {
    crate::config::push(
        c,
        "/mounts",
        json!({"destination": "/conf-scratch", "type": "tmpfs", "source": "tmpfs"}),
    );
}
