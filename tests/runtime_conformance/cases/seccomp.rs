//! config-linux.md "Seccomp": actions, errnoRet, argument filters,
//! architectures, with and without no_new_privs.

use super::{inside, Case};
use crate::config::{base, put};
use crate::harness::{Env, Expect, Inside};
use serde_json::{json, Value};

pub fn cases() -> Vec<Case> {
    vec![
        inside("seccomp", "seccomp_errno_ret", errno_ret),
        inside(
            "seccomp",
            "seccomp_errno_default_eperm",
            errno_default_eperm,
        ),
        inside("seccomp", "seccomp_kill", kill),
        inside("seccomp", "seccomp_argument_filter", argument_filter),
        inside("seccomp", "seccomp_without_no_new_privileges", without_nnp),
    ]
}

const ARCHES: &[&str] = &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];

fn seccomp(syscalls: Value) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ARCHES, "syscalls": syscalls})
}

/// errnoRet: the blocked syscall fails with exactly that errno (EXDEV, 18,
/// which mkdir never returns on its own); the filter is in mode 2.
fn errno_ret(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/linux/seccomp",
        seccomp(
            json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18}]),
        ),
    );
    let script = r#"
eq "$(status_of Seccomp)" 2 "Seccomp mode"
err=$(mkdir /tmp/conf-seccomp-$$ 2>&1)
case "$err" in *"Invalid cross-device link"*) ;; *) fail "mkdir under the filter: [$err], expected EXDEV";; esac
eq "$(echo allowed)" allowed "an unfiltered syscall path"
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// SCMP_ACT_ERRNO without errnoRet returns EPERM.
fn errno_default_eperm(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/linux/seccomp",
        seccomp(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}])),
    );
    let script = r#"
err=$(mkdir /tmp/conf-seccomp-$$ 2>&1)
case "$err" in *"Operation not permitted"*) ;; *) fail "mkdir under the filter: [$err], expected EPERM";; esac
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// SCMP_ACT_KILL: the caller dies of SIGSYS (exit status 128+31).
fn kill(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/linux/seccomp",
        seccomp(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}])),
    );
    let script = r#"
( /bin/mkdir /tmp/conf-seccomp-$$ ) 2>/dev/null
eq "$?" 159 "exit status of a process killed by the filter"
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// Argument filters: kill(pid, SIGUSR1) is blocked, kill(pid, 0) is not.
fn argument_filter(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/linux/seccomp",
        seccomp(
            json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18,
                         "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}]),
        ),
    );
    let script = r#"
trap '' USR1
err=$(kill -USR1 $$ 2>&1)
case "$err" in *"Invalid cross-device link"*) ;; *) fail "kill -USR1 under the filter: [$err], expected EXDEV";; esac
kill -0 $$ 2>/dev/null || fail "kill -0 was blocked too (argument not compared)"
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// With noNewPrivileges false the runtime still installs the filter (it
/// must do so while it still holds CAP_SYS_ADMIN).
fn without_nnp(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(&mut c, "/process/noNewPrivileges", json!(false));
    put(
        &mut c,
        "/linux/seccomp",
        seccomp(
            json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18}]),
        ),
    );
    let script = r#"
eq "$(status_of NoNewPrivs)" 0 NoNewPrivs
eq "$(status_of Seccomp)" 2 "Seccomp mode"
err=$(mkdir /tmp/conf-seccomp-$$ 2>&1)
case "$err" in *"Invalid cross-device link"*) ;; *) fail "mkdir under the filter: [$err], expected EXDEV";; esac
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}
