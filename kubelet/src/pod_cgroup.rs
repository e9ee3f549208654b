//! The pod-level cgroup `krun/pod<uid>`: made before the first container
//! (whose cgroups the runtime puts under it) and given the pod's limits
//! from [`crate::qos::pod_cgroup_config`], on cgroup v1 (and hybrid) hosts
//! in the cpu and memory hierarchies, on v2 in the unified tree. Removed
//! with the pod by `cleanup::remove_cgroups`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::qos::{cpu_weight, PodCgroupConfig};
use crate::spec::QUOTA_PERIOD;

const ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The pod's cgroup, relative to a hierarchy's root.
pub fn relative(uid: &str) -> String {
    format!("krun/pod{uid}")
}

#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {source}", path.display())]
pub struct CgroupError {
    what: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

fn err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(err("write", path))
}

fn is_v2(root: &Path) -> bool {
    nix::sys::statfs::statfs(root)
        .map(|s| s.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// The files and values for `cfg`, as (v1 controller or "" on v2, file, value).
pub fn files(cfg: &PodCgroupConfig, v2: bool) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    if v2 {
        out.push(("", "cpu.weight", cpu_weight(cfg.cpu_shares).to_string()));
        let quota = cfg
            .cpu_quota
            .map_or_else(|| "max".to_string(), |q| q.to_string());
        out.push(("", "cpu.max", format!("{quota} {QUOTA_PERIOD}")));
        let mem = cfg
            .memory_limit
            .map_or_else(|| "max".to_string(), |m| m.to_string());
        out.push(("", "memory.max", mem));
    } else {
        out.push(("cpu", "cpu.shares", cfg.cpu_shares.to_string()));
        out.push(("cpu", "cpu.cfs_period_us", QUOTA_PERIOD.to_string()));
        let quota = cfg.cpu_quota.unwrap_or(-1);
        out.push(("cpu", "cpu.cfs_quota_us", quota.to_string()));
        let mem = cfg.memory_limit.unwrap_or(-1);
        out.push(("memory", "memory.limit_in_bytes", mem.to_string()));
    }
    out
}

/// Enables `controllers` for the children of each level from the root down
/// to `rel` (v2 only hands a controller to a child its parent enabled).
fn enable_v2(root: &Path, rel: &str, controllers: &[&str]) -> Result<(), CgroupError> {
    let mut dir = root.to_path_buf();
    for part in std::iter::once("").chain(rel.split('/')) {
        dir.push(part);
        fs::create_dir_all(&dir).map_err(err("create cgroup", &dir))?;
        let ctl = dir.join("cgroup.subtree_control");
        let on = fs::read_to_string(&ctl).map_err(err("read", &ctl))?;
        for c in controllers {
            if !on.split_whitespace().any(|x| x == *c) {
                write(&ctl, &format!("+{c}"))?;
            }
        }
    }
    Ok(())
}

/// Makes the pod's cgroup with `cfg`'s values; idempotent.
pub fn ensure(uid: &str, cfg: &PodCgroupConfig) -> Result<(), CgroupError> {
    ensure_under(Path::new(ROOT), uid, cfg)
}

fn ensure_under(root: &Path, uid: &str, cfg: &PodCgroupConfig) -> Result<(), CgroupError> {
    let rel = relative(uid);
    let v2 = is_v2(root);
    if v2 {
        enable_v2(root, &rel, &["cpu", "memory"])?;
    }
    for (controller, file, value) in files(cfg, v2) {
        let dir = root.join(controller).join(&rel);
        fs::create_dir_all(&dir).map_err(err("create cgroup", &dir))?;
        write(&dir.join(file), &value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_files() {
        let cfg = PodCgroupConfig {
            cpu_shares: 768,
            cpu_quota: Some(75_000),
            memory_limit: Some(192 << 20),
        };
        let v1: Vec<(&str, &str, String)> = files(&cfg, false);
        assert_eq!(
            v1,
            [
                ("cpu", "cpu.shares", "768".to_string()),
                ("cpu", "cpu.cfs_period_us", "100000".to_string()),
                ("cpu", "cpu.cfs_quota_us", "75000".to_string()),
                ("memory", "memory.limit_in_bytes", "201326592".to_string()),
            ]
        );
        let best = PodCgroupConfig {
            cpu_shares: 2,
            cpu_quota: None,
            memory_limit: None,
        };
        assert_eq!(
            files(&best, true),
            [
                ("", "cpu.weight", "1".to_string()),
                ("", "cpu.max", "max 100000".to_string()),
                ("", "memory.max", "max".to_string()),
            ]
        );
    }
}
