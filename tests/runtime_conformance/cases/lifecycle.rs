//! runtime.md "Lifecycle" and "Operations": create, start, kill, delete,
//! and the runc commands engines rely on (run, pause, resume).

use super::{outside, Case};
use crate::config::{base, push};
use crate::harness::{write_bundle, Cleanup, Env, Expect, Inside, Runtime, RUN_TIMEOUT};
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub fn cases() -> Vec<Case> {
    vec![
        outside(
            "lifecycle",
            "lifecycle_create_start_kill_delete",
            create_start_kill_delete,
        ),
        outside(
            "lifecycle",
            "lifecycle_kill_signal_forms",
            kill_signal_forms,
        ),
        outside(
            "lifecycle",
            "lifecycle_kill_stopped_is_error",
            kill_stopped_is_error,
        ),
        outside(
            "lifecycle",
            "lifecycle_start_twice_is_error",
            start_twice_is_error,
        ),
        outside(
            "lifecycle",
            "lifecycle_delete_running_is_error",
            delete_running_is_error,
        ),
        outside(
            "lifecycle",
            "lifecycle_config_frozen_at_create",
            config_frozen_at_create,
        ),
        outside("lifecycle", "lifecycle_pause_resume", pause_resume),
        outside("lifecycle", "lifecycle_run_detached", run_detached),
    ]
}

/// A process that marks it ran in a host dir, then waits for SIGTERM.
const WAITER: &str = r#"trap 'echo term >> /out/marker; exit 0' TERM
echo started >> /out/marker
while :; do sleep 0.05; done"#;

struct Setup {
    out: PathBuf,
    bundle: String,
}

fn setup(env: &Env, script: &str) -> Setup {
    let out = env.scratch.join("out");
    fs::create_dir_all(&out).expect("mkdir out");
    let mut c = base(&env.rootfs);
    push(
        &mut c,
        "/mounts",
        json!({"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]}),
    );
    let bundle = write_bundle(
        env,
        &Inside {
            config: c,
            script: script.into(),
            expect: Expect::Pass,
        },
    );
    Setup {
        out,
        bundle: bundle.display().to_string(),
    }
}

fn must(o: crate::harness::Outcome, what: &str) -> Result<(), String> {
    if o.ok() {
        Ok(())
    } else {
        Err(format!("{what} failed: {}", o.describe()))
    }
}

fn wait_for(path: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn pid_alive(pid: i64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// created (process exists, user code not run) → running (code runs) →
/// kill TERM → stopped → delete → gone.
fn create_start_kill_delete(rt: &Runtime, env: &Env) -> Result<(), String> {
    let s = setup(env, WAITER);
    let id = env.id.as_str();
    must(rt.cmd(&["create", "--bundle", &s.bundle, id]), "create")?;
    let _guard = Cleanup {
        rt,
        id: id.to_string(),
    };
    let st = rt.state(id)?;
    if st["status"] != "created" {
        return Err(format!(
            "after create the status is {}, expected created",
            st["status"]
        ));
    }
    let pid = st["pid"]
        .as_i64()
        .ok_or_else(|| format!("created state has no pid: {st}"))?;
    if !pid_alive(pid) {
        return Err(format!("pid {pid} from the created state is not alive"));
    }
    std::thread::sleep(Duration::from_millis(100));
    if s.out.join("marker").exists() {
        return Err("the user-specified program ran before start".into());
    }
    must(rt.cmd(&["start", id]), "start")?;
    if !wait_for(&s.out.join("marker"), RUN_TIMEOUT) {
        return Err("the program did not run after start".into());
    }
    let st = rt.state(id)?;
    if st["status"] != "running" || st["pid"].as_i64() != Some(pid) {
        return Err(format!("after start expected running with pid {pid}: {st}"));
    }
    must(rt.cmd(&["kill", id, "TERM"]), "kill TERM")?;
    rt.wait_status(id, "stopped", RUN_TIMEOUT)?;
    let marker = fs::read_to_string(s.out.join("marker")).unwrap_or_default();
    if !marker.contains("term") {
        return Err(format!(
            "the process did not receive SIGTERM (marker {marker:?})"
        ));
    }
    must(rt.cmd(&["delete", id]), "delete")?;
    if rt.cmd(&["state", id]).ok() {
        return Err("state still answers after delete".into());
    }
    Ok(())
}

/// kill takes signal names with and without SIG and numbers.
fn kill_signal_forms(rt: &Runtime, env: &Env) -> Result<(), String> {
    for (n, sig) in ["KILL", "SIGKILL", "9"].iter().enumerate() {
        let sub = Env {
            rootfs: env.rootfs.clone(),
            scratch: env.scratch.join(format!("k{n}")),
            id: format!("{}-{n}", env.id),
        };
        fs::create_dir_all(&sub.scratch).map_err(|e| e.to_string())?;
        let s = setup(&sub, WAITER);
        must(
            rt.cmd(&["create", "--bundle", &s.bundle, &sub.id]),
            "create",
        )?;
        let _guard = Cleanup {
            rt,
            id: sub.id.clone(),
        };
        must(rt.cmd(&["start", &sub.id]), "start")?;
        must(rt.cmd(&["kill", &sub.id, sig]), &format!("kill {sig}"))?;
        rt.wait_status(&sub.id, "stopped", RUN_TIMEOUT)
            .map_err(|e| format!("after kill {sig}: {e}"))?;
    }
    Ok(())
}

/// "Attempting to send a signal to a container that is not running MUST
/// have no effect on the container and MUST generate an error."
fn kill_stopped_is_error(rt: &Runtime, env: &Env) -> Result<(), String> {
    let s = setup(env, "true");
    let id = env.id.as_str();
    must(rt.cmd(&["create", "--bundle", &s.bundle, id]), "create")?;
    let _guard = Cleanup {
        rt,
        id: id.to_string(),
    };
    must(rt.cmd(&["start", id]), "start")?;
    rt.wait_status(id, "stopped", RUN_TIMEOUT)?;
    let o = rt.cmd(&["kill", id, "TERM"]);
    if o.ok() {
        return Err("kill of a stopped container succeeded".into());
    }
    if o.stderr.trim().is_empty() {
        return Err("kill of a stopped container failed without a message".into());
    }
    Ok(())
}

/// "Attempting to start an already started container MUST have no effect
/// on the container and MUST generate an error."
fn start_twice_is_error(rt: &Runtime, env: &Env) -> Result<(), String> {
    let s = setup(env, WAITER);
    let id = env.id.as_str();
    must(rt.cmd(&["create", "--bundle", &s.bundle, id]), "create")?;
    let _guard = Cleanup {
        rt,
        id: id.to_string(),
    };
    must(rt.cmd(&["start", id]), "start")?;
    if !wait_for(&s.out.join("marker"), RUN_TIMEOUT) {
        return Err("the program did not run after start".into());
    }
    let o = rt.cmd(&["start", id]);
    if o.ok() {
        return Err("a second start succeeded".into());
    }
    std::thread::sleep(Duration::from_millis(100));
    let runs = fs::read_to_string(s.out.join("marker"))
        .unwrap_or_default()
        .matches("started")
        .count();
    if runs != 1 {
        return Err(format!("the program ran {runs} times"));
    }
    let st = rt.state(id)?;
    if st["status"] != "running" {
        return Err(format!(
            "the container is {} after the second start",
            st["status"]
        ));
    }
    Ok(())
}

/// "Attempting to delete a container whose process is still running MUST
/// generate an error"; delete --force (runc) then kills and removes it.
fn delete_running_is_error(rt: &Runtime, env: &Env) -> Result<(), String> {
    let s = setup(env, WAITER);
    let id = env.id.as_str();
    must(rt.cmd(&["create", "--bundle", &s.bundle, id]), "create")?;
    let _guard = Cleanup {
        rt,
        id: id.to_string(),
    };
    must(rt.cmd(&["start", id]), "start")?;
    let pid = rt.state(id)?["pid"].as_i64().unwrap_or(0);
    let o = rt.cmd(&["delete", id]);
    if o.ok() {
        return Err("delete of a running container succeeded".into());
    }
    let st = rt.state(id)?;
    if st["status"] != "running" {
        return Err(format!(
            "the failed delete changed the container to {}",
            st["status"]
        ));
    }
    must(rt.cmd(&["delete", "--force", id]), "delete --force")?;
    if rt.cmd(&["state", id]).ok() {
        return Err("state still answers after delete --force".into());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid > 0 && pid_alive(pid) {
        if Instant::now() > deadline {
            return Err(format!("pid {pid} survived delete --force"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// "Any updates to config.json after this step MUST NOT affect the container."
fn config_frozen_at_create(rt: &Runtime, env: &Env) -> Result<(), String> {
    let s = setup(env, "echo original >> /out/marker");
    let id = env.id.as_str();
    must(rt.cmd(&["create", "--bundle", &s.bundle, id]), "create")?;
    let _guard = Cleanup {
        rt,
        id: id.to_string(),
    };
    let path = Path::new(&s.bundle).join("config.json");
    let text = fs::read_to_string(&path).map_err(|e| e.to_string())?;
    fs::write(&path, text.replace("echo original", "echo changed")).map_err(|e| e.to_string())?;
    must(rt.cmd(&["start", id]), "start")?;
    rt.wait_status(id, "stopped", RUN_TIMEOUT)?;
    let got = fs::read_to_string(s.out.join("marker")).unwrap_or_default();
    if got.trim() != "original" {
        return Err(format!(
            "the process ran {got:?}: config.json edits after create took effect"
        ));
    }
    Ok(())
}

/// pause freezes the container (status "paused"), resume thaws it.
fn pause_resume(rt: &Runtime, env: &Env) -> Result<(), String> {
    let s = setup(env, "while :; do date +%s%N > /out/tick; sleep 0.02; done");
    let id = env.id.as_str();
    must(rt.cmd(&["create", "--bundle", &s.bundle, id]), "create")?;
    let _guard = Cleanup {
        rt,
        id: id.to_string(),
    };
    must(rt.cmd(&["start", id]), "start")?;
    let tick = s.out.join("tick");
    if !wait_for(&tick, RUN_TIMEOUT) {
        return Err("the program did not run".into());
    }
    must(rt.cmd(&["pause", id]), "pause")?;
    let st = rt.state(id)?;
    if st["status"] != "paused" {
        return Err(format!("after pause the status is {}", st["status"]));
    }
    let before = fs::read_to_string(&tick).unwrap_or_default();
    std::thread::sleep(Duration::from_millis(300));
    if fs::read_to_string(&tick).unwrap_or_default() != before {
        return Err("the process kept running while paused".into());
    }
    must(rt.cmd(&["resume", id]), "resume")?;
    let st = rt.state(id)?;
    if st["status"] != "running" {
        return Err(format!("after resume the status is {}", st["status"]));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs::read_to_string(&tick).unwrap_or_default() == before {
        if Instant::now() > deadline {
            return Err("the process did not run again after resume".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// `run -d` (runc's command line) returns once the container runs; the
/// container stays until killed and deleted.
fn run_detached(rt: &Runtime, env: &Env) -> Result<(), String> {
    let s = setup(env, WAITER);
    let id = env.id.as_str();
    must(rt.cmd(&["run", "-d", "--bundle", &s.bundle, id]), "run -d")?;
    let _guard = Cleanup {
        rt,
        id: id.to_string(),
    };
    if !wait_for(&s.out.join("marker"), RUN_TIMEOUT) {
        return Err("the program did not run after run -d".into());
    }
    let st = rt.state(id)?;
    if st["status"] != "running" {
        return Err(format!("after run -d the status is {}", st["status"]));
    }
    must(rt.cmd(&["kill", id, "TERM"]), "kill TERM")?;
    rt.wait_status(id, "stopped", RUN_TIMEOUT)?;
    must(rt.cmd(&["delete", id]), "delete")
}
