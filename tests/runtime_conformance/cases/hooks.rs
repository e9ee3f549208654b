//! config.md "POSIX-platform Hooks": each hook runs at its point of the
//! lifecycle, in its namespace, with the state on stdin, env and timeout;
//! failures handled as the spec says for each kind.

use super::{outside, Case};
use crate::config::{base, push, put};
use crate::harness::{
    read_lossy, write_bundle, Cleanup, Env, Expect, Inside, Runtime, CALL_TIMEOUT, RUN_TIMEOUT,
};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn cases() -> Vec<Case> {
    vec![
        outside("hooks", "hooks_order_and_state", order_and_state),
        outside(
            "hooks",
            "hooks_poststart_after_start",
            poststart_after_start,
        ),
        outside(
            "hooks",
            "hooks_create_runtime_failure",
            create_runtime_failure,
        ),
        outside(
            "hooks",
            "hooks_poststart_failure_is_a_warning",
            poststart_failure,
        ),
        outside(
            "hooks",
            "hooks_poststop_failure_is_a_warning",
            poststop_failure,
        ),
        outside("hooks", "hooks_timeout", timeout),
    ]
}

/// A hook run by the host's /bin/sh that records its name and its stdin.
fn host_hook(dir: &Path, name: &str) -> Value {
    let d = dir.display();
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} >> {d}/order; cat > {d}/{name}.json; echo \"$CONF_HOOK_ENV\" > {d}/{name}.env; readlink /proc/self/ns/mnt > {d}/{name}.mnt")],
           "env": [format!("CONF_HOOK_ENV=env-of-{name}")]})
}

fn hook_dir(env: &Env) -> std::path::PathBuf {
    let d = env.scratch.join("hooks");
    fs::create_dir_all(&d).expect("mkdir hooks dir");
    d
}

fn order(dir: &Path) -> Vec<String> {
    read_lossy(&dir.join("order"))
        .lines()
        .map(str::to_string)
        .collect()
}

fn create(rt: &Runtime, env: &Env, inside: &Inside) -> crate::harness::Outcome {
    let bundle = write_bundle(env, inside);
    let b = bundle.display().to_string();
    rt.cmd(&["create", "--bundle", &b, &env.id])
}

/// createRuntime, createContainer and prestart run during create;
/// startContainer (inside the container) during start, before the
/// process; poststart after it started; poststop on delete. Each gets the
/// state JSON on stdin and its own env.
fn order_and_state(rt: &Runtime, env: &Env) -> Result<(), String> {
    hooks_run(rt, env, false)
}

/// poststart "MUST be called after the user-specified process is executed
/// but before the start operation returns" — so not during create.
/// Known wrong in runc 1.1.5: it runs poststart at the end of create.
fn poststart_after_start(rt: &Runtime, env: &Env) -> Result<(), String> {
    hooks_run(rt, env, true)
}

fn hooks_run(rt: &Runtime, env: &Env, with_poststart: bool) -> Result<(), String> {
    let dir = hook_dir(env);
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/annotations",
        json!({"org.krun.conformance/hooks": "yes"}),
    );
    push(
        &mut c,
        "/mounts",
        json!({"destination": "/hookout", "type": "bind", "source": dir, "options": ["rbind", "rw"]}),
    );
    let mut hooks = json!({});
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        if kind != "poststart" || with_poststart {
            hooks[kind] = json!([host_hook(&dir, kind)]);
        }
    }
    // Path resolved in the container: the rootfs's busybox sh.
    hooks["startContainer"] = json!([{"path": "/bin/sh", "args": ["sh", "-c",
        "echo startContainer >> /hookout/order; cat > /hookout/startContainer.json"]}]);
    c["hooks"] = hooks;
    let inside = Inside {
        config: c,
        script: "echo process >> /hookout/order; readlink /proc/self/ns/mnt > /hookout/process.mnt"
            .into(),
        expect: Expect::Pass,
    };
    let o = create(rt, env, &inside);
    let _guard = Cleanup {
        rt,
        id: env.id.clone(),
    };
    if !o.ok() {
        return Err(format!("create failed: {}", o.describe()));
    }
    let mut after_create = order(&dir);
    after_create.sort();
    if after_create != ["createContainer", "createRuntime", "prestart"] {
        return Err(format!("after create the hooks run were {after_create:?}, expected prestart, createRuntime, createContainer"));
    }
    let o = rt.cmd(&["start", &env.id]);
    if !o.ok() {
        return Err(format!("start failed: {}", o.describe()));
    }
    rt.wait_status(&env.id, "stopped", RUN_TIMEOUT)?;
    let o = rt.cmd(&["delete", &env.id]);
    if !o.ok() {
        return Err(format!("delete failed: {}", o.describe()));
    }
    let seen = order(&dir);
    let pos = |n: &str| seen.iter().position(|s| s == n);
    let chain: &[&str] = if with_poststart {
        &[
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ]
    } else {
        &[
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststop",
        ]
    };
    for w in chain.windows(2) {
        match (pos(w[0]), pos(w[1])) {
            (Some(a), Some(b)) if a < b => {}
            _ => {
                return Err(format!(
                    "hook order {seen:?}: expected {} before {}",
                    w[0], w[1]
                ))
            }
        }
    }
    match (pos("startContainer"), pos("process")) {
        (Some(a), Some(b)) if a < b => {}
        _ => {
            return Err(format!(
                "hook order {seen:?}: startContainer must run before the process"
            ))
        }
    }
    // createContainer runs in the container's mount namespace, the
    // runtime-namespace hooks in the runtime's.
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let container_mnt = read_lossy(&dir.join("process.mnt")).trim().to_string();
    for (kind, want, which) in [
        ("createRuntime", &host_mnt, "the runtime's"),
        ("prestart", &host_mnt, "the runtime's"),
        ("poststop", &host_mnt, "the runtime's"),
        ("createContainer", &container_mnt, "the container's"),
    ] {
        let got = read_lossy(&dir.join(format!("{kind}.mnt")));
        if got.trim() != want.as_str() {
            return Err(format!(
                "{kind} hook ran in mount namespace {:?}, expected {which} {want:?}",
                got.trim()
            ));
        }
    }
    let bundle = env.bundle().display().to_string();
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        if kind == "poststart" && !with_poststart {
            continue;
        }
        let text = read_lossy(&dir.join(format!("{kind}.json")));
        let st: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{kind} hook's stdin is not state JSON ({e}): {text:?}"))?;
        if st["id"] != env.id.as_str()
            || st["bundle"] != bundle.as_str()
            || !st["ociVersion"].is_string()
        {
            return Err(format!(
                "{kind} hook's state lacks id/bundle/ociVersion: {st}"
            ));
        }
        if st["annotations"]["org.krun.conformance/hooks"] != "yes" {
            return Err(format!("{kind} hook's state lacks the annotations: {st}"));
        }
        let status = st["status"].as_str().unwrap_or("");
        let ok = match kind {
            "poststop" => status == "stopped",
            "poststart" => status == "running" || status == "stopped",
            _ => ["creating", "created"].contains(&status),
        };
        if !ok {
            return Err(format!("{kind} hook saw status {status:?}: {st}"));
        }
        if kind != "poststop" && st["pid"].as_i64().unwrap_or(0) <= 0 {
            return Err(format!("{kind} hook's state has no pid: {st}"));
        }
        if kind != "startContainer" {
            let e = read_lossy(&dir.join(format!("{kind}.env")));
            if e.trim() != format!("env-of-{kind}") {
                return Err(format!("{kind} hook's env CONF_HOOK_ENV was {e:?}"));
            }
        }
    }
    Ok(())
}

/// "If any createRuntime hook fails, the runtime MUST generate an error,
/// stop the container" and the process never runs.
fn create_runtime_failure(rt: &Runtime, env: &Env) -> Result<(), String> {
    let dir = hook_dir(env);
    let mut c = base(&env.rootfs);
    push(
        &mut c,
        "/mounts",
        json!({"destination": "/hookout", "type": "bind", "source": dir, "options": ["rbind", "rw"]}),
    );
    put(
        &mut c,
        "/hooks/createRuntime",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]),
    );
    let inside = Inside {
        config: c,
        script: "echo ran > /hookout/process".into(),
        expect: Expect::Pass,
    };
    let o = create(rt, env, &inside);
    let _guard = Cleanup {
        rt,
        id: env.id.clone(),
    };
    let failure = if o.ok() {
        rt.cmd(&["start", &env.id])
    } else {
        o
    };
    if failure.ok() {
        return Err("create and start succeeded although a createRuntime hook failed".into());
    }
    crate::harness::names_problem(&failure.stderr, &["hook"])?;
    std::thread::sleep(Duration::from_millis(200));
    if dir.join("process").exists() {
        return Err("the process ran although a createRuntime hook failed".into());
    }
    if let Ok(st) = rt.state(&env.id) {
        if st["status"] != "stopped" {
            return Err(format!(
                "after the failed hook the container is {}",
                st["status"]
            ));
        }
    }
    Ok(())
}

/// "If any poststart hook fails, the runtime MUST log a warning, but the
/// remaining hooks and lifecycle continue as if the hook had succeeded."
/// Known wrong in runc 1.1.5: the failure fails create.
fn poststart_failure(rt: &Runtime, env: &Env) -> Result<(), String> {
    let dir = hook_dir(env);
    let mut c = base(&env.rootfs);
    push(
        &mut c,
        "/mounts",
        json!({"destination": "/hookout", "type": "bind", "source": dir, "options": ["rbind", "rw"]}),
    );
    put(
        &mut c,
        "/hooks/poststart",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}, host_hook(&dir, "poststart2")]),
    );
    let inside = Inside {
        config: c,
        script: "sleep 0.3; echo ran > /hookout/process".into(),
        expect: Expect::Pass,
    };
    let o = create(rt, env, &inside);
    let _guard = Cleanup {
        rt,
        id: env.id.clone(),
    };
    if !o.ok() {
        return Err(format!("create failed: {}", o.describe()));
    }
    let o = rt.cmd(&["start", &env.id]);
    if !o.ok() {
        return Err(format!(
            "start failed because a poststart hook failed: {}",
            o.describe()
        ));
    }
    rt.wait_status(&env.id, "stopped", RUN_TIMEOUT)?;
    if !dir.join("process").exists() {
        return Err("the process was stopped after a poststart hook failed".into());
    }
    if !dir.join("poststart2.json").exists() {
        return Err("the poststart hook after the failed one did not run".into());
    }
    Ok(())
}

/// "If any poststop hook fails, the runtime MUST log a warning, but the
/// remaining hooks and lifecycle continue": delete succeeds.
/// Known wrong in runc 1.1.5: the hooks after the failed one never run.
fn poststop_failure(rt: &Runtime, env: &Env) -> Result<(), String> {
    let dir = hook_dir(env);
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/hooks/poststop",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}, host_hook(&dir, "poststop2")]),
    );
    let inside = Inside {
        config: c,
        script: "true".into(),
        expect: Expect::Pass,
    };
    let o = create(rt, env, &inside);
    let _guard = Cleanup {
        rt,
        id: env.id.clone(),
    };
    if !o.ok() {
        return Err(format!("create failed: {}", o.describe()));
    }
    let o = rt.cmd(&["start", &env.id]);
    if !o.ok() {
        return Err(format!("start failed: {}", o.describe()));
    }
    rt.wait_status(&env.id, "stopped", RUN_TIMEOUT)?;
    let o = rt.cmd(&["delete", &env.id]);
    if !o.ok() {
        return Err(format!(
            "delete failed because a poststop hook failed: {}",
            o.describe()
        ));
    }
    if rt.cmd(&["state", &env.id]).ok() {
        return Err("the container still exists after delete".into());
    }
    if !dir.join("poststop2.json").exists() {
        return Err("the poststop hook after the failed one did not run".into());
    }
    Ok(())
}

/// timeout: a hook running longer is aborted and create fails, promptly.
fn timeout(rt: &Runtime, env: &Env) -> Result<(), String> {
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/hooks/createRuntime",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "exec sleep 20"], "timeout": 1}]),
    );
    let inside = Inside {
        config: c,
        script: "true".into(),
        expect: Expect::Pass,
    };
    let t = Instant::now();
    let o = create(rt, env, &inside);
    let _guard = Cleanup {
        rt,
        id: env.id.clone(),
    };
    let took = t.elapsed();
    if o.ok() {
        return Err(format!(
            "create succeeded although its hook outlived its timeout (took {took:?})"
        ));
    }
    crate::harness::names_problem(&o.stderr, &["hook"])?;
    if took > Duration::from_secs(10) || o.timed_out {
        return Err(format!(
            "the hook was not aborted after 1 s: create took {took:?} (limit {CALL_TIMEOUT:?})"
        ));
    }
    Ok(())
}
