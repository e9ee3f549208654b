//! runtime.md "State": the JSON `state` prints in each status.

use super::{outside, Case};
use crate::config::base;
use crate::harness::{write_bundle, Cleanup, Env, Expect, Inside, Runtime, RUN_TIMEOUT};

pub fn cases() -> Vec<Case> {
    vec![outside(
        "state",
        "state_fields_through_lifecycle",
        fields_through_lifecycle,
    )]
}

/// ociVersion, id, status, pid (created and running) and the absolute
/// bundle path, in created, running and stopped.
fn fields_through_lifecycle(rt: &Runtime, env: &Env) -> Result<(), String> {
    let bundle = write_bundle(
        env,
        &Inside {
            config: base(&env.rootfs),
            // Runs until told to stop, so "running" is not a race.
            script: "trap 'exit 0' TERM; while :; do sleep 0.05; done".into(),
            expect: Expect::Pass,
        },
    );
    let b = bundle.display().to_string();
    let id = env.id.as_str();
    let o = rt.cmd(&["create", "--bundle", &b, id]);
    let _guard = Cleanup {
        rt,
        id: id.to_string(),
    };
    if !o.ok() {
        return Err(format!("create failed: {}", o.describe()));
    }
    let check = |st: &serde_json::Value, status: &str, needs_pid: bool| -> Result<(), String> {
        let ver = st["ociVersion"].as_str().unwrap_or("");
        if ver.is_empty() || st["id"] != id || st["status"] != status || st["bundle"] != b.as_str()
        {
            return Err(format!("state in {status}: expected ociVersion, id {id}, status {status}, bundle {b}: {st}"));
        }
        if needs_pid && st["pid"].as_i64().unwrap_or(0) <= 0 {
            return Err(format!("state in {status} has no pid: {st}"));
        }
        Ok(())
    };
    check(&rt.state(id)?, "created", true)?;
    let o = rt.cmd(&["start", id]);
    if !o.ok() {
        return Err(format!("start failed: {}", o.describe()));
    }
    check(&rt.state(id)?, "running", true)?;
    // KILL: a TERM could land before the shell has set its trap, and an
    // init without a handler ignores it.
    let o = rt.cmd(&["kill", id, "KILL"]);
    if !o.ok() {
        return Err(format!("kill failed: {}", o.describe()));
    }
    let st = rt.wait_status(id, "stopped", RUN_TIMEOUT)?;
    check(&st, "stopped", false)
}
