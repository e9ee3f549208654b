//! config.md "POSIX process" rlimits.

use super::{inside, Case};
use crate::config::{base, put};
use crate::harness::{Env, Expect, Inside};
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        inside("rlimits", "rlimits_applied", applied),
        inside("rlimits", "rlimits_above_hard_limit", above_hard_limit),
        inside("rlimits", "rlimits_unknown_type", unknown_type),
    ]
}

const LIMITS: &str =
    r#"limit_of() { grep "^$1 " /proc/$$/limits | awk '{print $(NF-2), $(NF-1)}'; }"#;

/// Soft and hard values of several limits, read from /proc/<pid>/limits.
fn applied(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/process/rlimits",
        json!([
            {"type": "RLIMIT_NOFILE", "soft": 500, "hard": 600},
            {"type": "RLIMIT_NPROC", "soft": 200, "hard": 300},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 1048576},
            {"type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192}
        ]),
    );
    let script = format!(
        r#"{LIMITS}
eq "$(limit_of 'Max open files')" "500 600" nofile
eq "$(ulimit -n)" 500 "ulimit -n"
eq "$(limit_of 'Max processes')" "200 300" nproc
eq "$(limit_of 'Max core file size')" "0 1048576" core
eq "$(limit_of 'Max msgqueue size')" "4096 8192" msgqueue
"#
    );
    Inside {
        config: c,
        script,
        expect: Expect::Pass,
    }
}

fn host_has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .is_some_and(|m| m & (1 << 24) != 0)
}

fn host_hard_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    r.rlim_max
}

/// A hard limit above the runtime's own: without CAP_SYS_RESOURCE (as on
/// these hosts) the kernel says EPERM and the runtime "MUST generate an
/// error"; with it, the limit is applied.
fn above_hard_limit(env: &Env) -> Inside {
    let hard = host_hard_nofile() + 1000;
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard}]),
    );
    let expect = if host_has_cap_sys_resource() {
        Expect::Pass
    } else {
        Expect::Refused(&["rlimit", "nofile"])
    };
    let script = format!(r#"eq "$(ulimit -Hn)" {hard} "hard nofile""#);
    Inside {
        config: c,
        script,
        expect,
    }
}

/// A type the kernel has no interface for "MUST generate an error".
fn unknown_type(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOT_A_LIMIT", "soft": 1, "hard": 1}]),
    );
    Inside {
        config: c,
        script: String::new(),
        expect: Expect::Refused(&["rlimit"]),
    }
}
