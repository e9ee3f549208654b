//! config-linux.md cgroups: the cgroup a runtime created is removed on delete.

use crate::config::{base, put};
use crate::harness::{write_bundle, Cleanup, Env, Expect, Inside, Runtime, RUN_TIMEOUT};
use serde_json::json;
use std::path::{Path, PathBuf};

fn dirs(path: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let rel = path.trim_start_matches('/');
    if root.join("cgroup.controllers").exists() {
        vec![root.join(rel)]
    } else {
        ["pids", "memory", "cpu"]
            .iter()
            .map(|c| root.join(c).join(rel))
            .collect()
    }
}

/// The cgroup exists while the container does and is gone after delete.
pub fn removed_on_delete(rt: &Runtime, env: &Env) -> Result<(), String> {
    let mut c = base(&env.rootfs);
    put(&mut c, "/linux/cgroupsPath", json!(env.cgroup_path()));
    put(&mut c, "/linux/resources/pids", json!({"limit": 50}));
    put(
        &mut c,
        "/linux/resources/memory",
        json!({"limit": 67108864}),
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
    if !o.ok() {
        return Err(format!("create failed: {}", o.describe()));
    }
    for d in dirs(&env.cgroup_path()) {
        if !d.is_dir() {
            return Err(format!(
                "cgroup {} does not exist after create",
                d.display()
            ));
        }
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
    for d in dirs(&env.cgroup_path()) {
        if d.exists() {
            return Err(format!(
                "cgroup {} is still there after delete",
                d.display()
            ));
        }
    }
    Ok(())
}
