//! config.md "User" (POSIX): uid, gid, additionalGids.

use super::{inside, Case};
use crate::config::{base, put};
use crate::harness::{Env, Expect, Inside};
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        inside("user", "user_uid_gid", uid_gid),
        inside("user", "user_additional_gids", additional_gids),
        inside("user", "user_no_supplementary_groups", no_supplementary),
    ]
}

const GROUPS: &str =
    r#"groups_of() { awk '$1=="Groups:" {$1=""; print}' /proc/$$/status | xargs; }"#;

/// uid and gid: real, effective, saved and filesystem ids all match.
fn uid_gid(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(&mut c, "/process/user", json!({"uid": 1000, "gid": 1001}));
    let script = r#"
eq "$(id -u)" 1000 uid
eq "$(id -g)" 1001 gid
eq "$(awk '$1=="Uid:" {print $2,$3,$4,$5}' /proc/$$/status)" "1000 1000 1000 1000" "Uid: real effective saved fs"
eq "$(awk '$1=="Gid:" {print $2,$3,$4,$5}' /proc/$$/status)" "1001 1001 1001 1001" "Gid: real effective saved fs"
"#;
    Inside {
        config: c,
        script: script.into(),
        expect: Expect::Pass,
    }
}

/// additionalGids become the supplementary groups, and nothing else.
fn additional_gids(env: &Env) -> Inside {
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/process/user",
        json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20, 30]}),
    );
    let script = format!(
        r#"{GROUPS}
eq "$(groups_of)" "10 20 30" "supplementary groups"
"#
    );
    Inside {
        config: c,
        script,
        expect: Expect::Pass,
    }
}

/// Without additionalGids the host runtime's groups must not leak in.
fn no_supplementary(env: &Env) -> Inside {
    let c = base(&env.rootfs);
    let script = format!(
        r#"{GROUPS}
eq "$(groups_of)" "" "supplementary groups"
"#
    );
    Inside {
        config: c,
        script,
        expect: Expect::Pass,
    }
}
