//! runtime.md "Errors" and the error clauses of each operation: unknown
//! and duplicate ids, bad bundles, and "generating an error MUST leave the
//! state of the environment as if the operation were never attempted".

use super::{outside, Case};
use crate::config::{base, push, put};
use crate::harness::{refused_cleanly, write_bundle, Cleanup, Env, Expect, Inside, Runtime};
use serde_json::json;
use std::fs;

pub fn cases() -> Vec<Case> {
    vec![
        outside("errors", "errors_unknown_id", unknown_id),
        outside("errors", "errors_duplicate_id", duplicate_id),
        outside("errors", "errors_missing_config", missing_config),
        outside("errors", "errors_invalid_json", invalid_json),
        outside("errors", "errors_missing_rootfs", missing_rootfs),
        outside("errors", "errors_relative_cwd", relative_cwd),
        outside("errors", "errors_missing_executable", missing_executable),
        outside(
            "errors",
            "errors_failed_create_leaves_nothing",
            failed_create_leaves_nothing,
        ),
        outside("errors", "errors_invalid_id", invalid_id),
    ]
}

/// state, start, kill and delete of an id that does not exist fail with a message.
fn unknown_id(rt: &Runtime, env: &Env) -> Result<(), String> {
    let id = format!("{}-never-created", env.id);
    for args in [
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
    ] {
        let o = rt.cmd(&args);
        if o.ok() {
            return Err(format!(
                "{} on an unknown id succeeded: {}",
                args[0],
                o.describe()
            ));
        }
        crate::harness::names_problem(&o.stderr, &["not exist", "not found", "no such", &id])
            .map_err(|e| format!("{} on an unknown id: {e}", args[0]))?;
    }
    Ok(())
}

/// A second create with the same id fails and leaves the first untouched.
fn duplicate_id(rt: &Runtime, env: &Env) -> Result<(), String> {
    let bundle = write_bundle(
        env,
        &Inside {
            config: base(&env.rootfs),
            script: "sleep 5".into(),
            expect: Expect::Pass,
        },
    );
    let b = bundle.display().to_string();
    let o = rt.cmd(&["create", "--bundle", &b, &env.id]);
    let _guard = Cleanup {
        rt,
        id: env.id.clone(),
    };
    if !o.ok() {
        return Err(format!("first create failed: {}", o.describe()));
    }
    let first = rt.state(&env.id)?;
    let other = env.scratch.join("other");
    let sub = Env {
        rootfs: env.rootfs.clone(),
        scratch: other.clone(),
        id: env.id.clone(),
    };
    fs::create_dir_all(&other).map_err(|e| e.to_string())?;
    let b2 = write_bundle(
        &sub,
        &Inside {
            config: base(&env.rootfs),
            script: "true".into(),
            expect: Expect::Pass,
        },
    );
    let o = rt.cmd(&["create", "--bundle", &b2.display().to_string(), &env.id]);
    if o.ok() {
        return Err(format!("a duplicate id was accepted: {}", o.describe()));
    }
    crate::harness::names_problem(&o.stderr, &["exist", "already", "in use"])?;
    let now = rt.state(&env.id)?;
    if now["status"] != "created" || now["pid"] != first["pid"] || now["bundle"] != first["bundle"]
    {
        return Err(format!(
            "the failed duplicate changed the first container: {first} -> {now}"
        ));
    }
    Ok(())
}

fn expect_refused(rt: &Runtime, env: &Env, bundle: &str, words: &[&str]) -> Result<(), String> {
    let o = rt.cmd(&["create", "--bundle", bundle, &env.id]);
    let _guard = Cleanup {
        rt,
        id: env.id.clone(),
    };
    if o.ok() {
        let started = rt.cmd(&["start", &env.id]);
        if started.ok() {
            return Err("create and start both succeeded on a bundle that must be refused".into());
        }
        return Ok(());
    }
    refused_cleanly(rt, &env.id, &o.stderr, words)
}

/// A bundle without config.json.
fn missing_config(rt: &Runtime, env: &Env) -> Result<(), String> {
    let b = env.bundle();
    fs::create_dir_all(&b).map_err(|e| e.to_string())?;
    expect_refused(rt, env, &b.display().to_string(), &["config.json"])
}

/// config.json that is not JSON.
fn invalid_json(rt: &Runtime, env: &Env) -> Result<(), String> {
    let b = env.bundle();
    fs::create_dir_all(&b).map_err(|e| e.to_string())?;
    fs::write(
        b.join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": ",
    )
    .map_err(|e| e.to_string())?;
    expect_refused(
        rt,
        env,
        &b.display().to_string(),
        &["config.json", "json", "eof", "parse"],
    )
}

/// root.path that does not exist.
fn missing_rootfs(rt: &Runtime, env: &Env) -> Result<(), String> {
    let mut c = base(&env.rootfs);
    put(
        &mut c,
        "/root/path",
        json!(env.scratch.join("no-such-rootfs")),
    );
    let b = write_bundle(
        env,
        &Inside {
            config: c,
            script: "true".into(),
            expect: Expect::Pass,
        },
    );
    expect_refused(rt, env, &b.display().to_string(), &["no-such-rootfs"])
}

/// process.cwd "MUST be an absolute path".
fn relative_cwd(rt: &Runtime, env: &Env) -> Result<(), String> {
    let mut c = base(&env.rootfs);
    put(&mut c, "/process/cwd", json!("tmp"));
    let b = write_bundle(
        env,
        &Inside {
            config: c,
            script: "true".into(),
            expect: Expect::Pass,
        },
    );
    expect_refused(rt, env, &b.display().to_string(), &["cwd"])
}

/// args[0] that does not exist: create or start fails with a message.
fn missing_executable(rt: &Runtime, env: &Env) -> Result<(), String> {
    let b = env.bundle();
    fs::create_dir_all(&b).map_err(|e| e.to_string())?;
    let mut c = base(&env.rootfs);
    put(&mut c, "/process/args", json!(["/no/such/program"]));
    fs::write(b.join("config.json"), c.to_string()).map_err(|e| e.to_string())?;
    let o = rt.cmd(&["create", "--bundle", &b.display().to_string(), &env.id]);
    let _guard = Cleanup {
        rt,
        id: env.id.clone(),
    };
    if !o.ok() {
        return refused_cleanly(rt, &env.id, &o.stderr, &["/no/such/program"]);
    }
    let s = rt.cmd(&["start", &env.id]);
    if s.ok() {
        return Err("start of a missing executable succeeded".into());
    }
    crate::harness::names_problem(&s.stderr, &["/no/such/program"])
}

fn cgroup_dirs(path: &str) -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        vec![root.join(path.trim_start_matches('/'))]
    } else {
        ["pids", "memory", "cpu", "devices"]
            .iter()
            .map(|c| root.join(c).join(path.trim_start_matches('/')))
            .collect()
    }
}

/// A create that fails late (a bind source that does not exist) leaves no
/// state and no cgroup behind.
fn failed_create_leaves_nothing(rt: &Runtime, env: &Env) -> Result<(), String> {
    let mut c = base(&env.rootfs);
    put(&mut c, "/linux/cgroupsPath", json!(env.cgroup_path()));
    put(&mut c, "/linux/resources/pids", json!({"limit": 50}));
    push(
        &mut c,
        "/mounts",
        json!({"destination": "/conf-missing", "type": "bind", "source": env.scratch.join("no-such-source"), "options": ["rbind"]}),
    );
    let b = write_bundle(
        env,
        &Inside {
            config: c,
            script: "true".into(),
            expect: Expect::Pass,
        },
    );
    let o = rt.cmd(&["create", "--bundle", &b.display().to_string(), &env.id]);
    let _guard = Cleanup {
        rt,
        id: env.id.clone(),
    };
    if o.ok() {
        return Err("create succeeded with a bind source that does not exist".into());
    }
    refused_cleanly(rt, &env.id, &o.stderr, &["no-such-source", "conf-missing"])?;
    for d in cgroup_dirs(&env.cgroup_path()) {
        if d.exists() {
            return Err(format!("the failed create left cgroup {}", d.display()));
        }
    }
    Ok(())
}

/// An id that is "not valid in any other way" (a path) is refused, and
/// nothing is written outside the state root.
fn invalid_id(rt: &Runtime, env: &Env) -> Result<(), String> {
    let bundle = write_bundle(
        env,
        &Inside {
            config: base(&env.rootfs),
            script: "true".into(),
            expect: Expect::Pass,
        },
    );
    let escape = format!("../escape-{}", env.id);
    let o = rt.cmd(&["create", "--bundle", &bundle.display().to_string(), &escape]);
    let _guard = Cleanup {
        rt,
        id: escape.clone(),
    };
    if o.ok() {
        return Err(format!("create accepted the id {escape:?}"));
    }
    crate::harness::names_problem(&o.stderr, &["id", "invalid"])?;
    let outside = rt.root.join(&escape);
    if outside.exists() {
        return Err(format!("the refused id created {}", outside.display()));
    }
    Ok(())
}
