//! A container's cgroups, driven through cgroupfs directly (v1, hybrid, v2).
//!
//! Joining is the costly part of cgroups: a write of a pid into
//! `cgroup.procs` migrates a whole thread group, which takes the kernel's
//! cgroup_threadgroup_rwsem for writing and waits for an RCU grace period
//! (5-20 ms). So the directories are made before the fork, the child is
//! born in its v2 cgroup (clone3 CLONE_INTO_CGROUP) and, while it is still
//! single-threaded runtime code, moves itself into each v1 hierarchy by
//! writing "0" to `tasks`: moving only `current` skips that lock.
//!
//! On a hybrid host the container also joins the v2 hierarchy mounted at
//! /sys/fs/cgroup/unified, where hugetlb may live.
use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};

pub mod hier;
mod limits;

pub use hier::{Hier, Layout};

/// The cgroup path for a container: cgroupsPath from the config, else `/<id>`.
/// Systemd-style `slice:prefix:name` paths need systemd, which is absent.
pub fn path_for(cgroups_path: Option<&Path>, id: &str) -> Result<String> {
    let p = match cgroups_path {
        Some(p) => p.to_string_lossy().into_owned(),
        None => format!("/{id}"),
    };
    if !p.starts_with('/') && p.split(':').count() == 3 {
        return Err(Error::invalid(format!(
            "cgroupsPath {p:?} is a systemd unit path, but systemd is not running on this host"
        )));
    }
    if p.split('/').any(|c| c == ".." || c == ".") {
        return Err(Error::invalid(format!(
            "cgroupsPath {p:?} must not contain \".\" or \"..\""
        )));
    }
    let rel: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    if rel.is_empty() {
        return Err(Error::invalid(format!(
            "cgroupsPath {p:?} names the root cgroup"
        )));
    }
    Ok(format!("/{}", rel.join("/")))
}

/// A container's cgroup in every hierarchy of this host.
pub struct Cgroup {
    /// `/a/b`, as stored in the state.
    pub path: String,
    layout: Layout,
}

impl Cgroup {
    /// The cgroup `path` (from [`path_for`]) on this host; nothing is made yet.
    pub fn new(path: &str) -> Cgroup {
        Cgroup {
            path: path.to_string(),
            layout: Layout::host(),
        }
    }

    fn rel(&self) -> &str {
        self.path.trim_start_matches('/')
    }

    /// True on a pure cgroup v2 host.
    pub fn pure_v2(&self) -> bool {
        self.layout.pure_v2
    }

    /// The directory in each v1 hierarchy.
    pub fn v1_dirs(&self) -> impl Iterator<Item = (&Hier, PathBuf)> + '_ {
        self.layout
            .v1
            .iter()
            .map(move |h| (h, h.mountpoint.join(self.rel())))
    }

    /// The directory in the v1 hierarchy carrying `controller`.
    pub fn v1_dir(&self, controller: &str) -> Option<PathBuf> {
        self.layout
            .v1_with(controller)
            .map(|h| h.mountpoint.join(self.rel()))
    }

    /// The directory in the v2 hierarchy (pure or hybrid).
    pub fn v2_dir(&self) -> Option<PathBuf> {
        self.layout.v2.as_ref().map(|m| m.join(self.rel()))
    }

    /// Makes the directories (parents included) in every hierarchy. v1
    /// cpuset levels made here get their parent's cpus and mems (an empty
    /// cpuset refuses tasks); on pure v2 the parents delegate every
    /// controller they have to their children.
    pub fn create(&self) -> Result<()> {
        for h in &self.layout.v1 {
            let cpuset = h.has("cpuset");
            mkdir_levels(&h.mountpoint, self.rel(), |dir, parent| {
                if cpuset {
                    cpuset_inherit(dir, parent)?;
                }
                Ok(())
            })?;
        }
        if let Some(m) = &self.layout.v2 {
            if self.layout.pure_v2 {
                enable_controllers(m, self.rel())?;
            }
            mkdir_levels(m, self.rel(), |_, _| Ok(()))?;
        }
        Ok(())
    }

    /// The v2 directory opened for clone3's CLONE_INTO_CGROUP.
    pub fn open_v2(&self) -> Result<Option<OwnedFd>> {
        match self.v2_dir() {
            Some(d) if d.is_dir() => crate::sys::open_dir(&d).map(Some),
            _ => Ok(None),
        }
    }

    /// Moves the calling process into its directory of every v1 hierarchy.
    /// The caller must be single-threaded: writing "0" to `tasks` moves only
    /// the calling thread, which spares the threadgroup lock and its RCU
    /// grace period. With `skip_missing`, hierarchies where the cgroup does
    /// not exist (mounted after create) are left alone.
    pub fn enter_v1_self(&self, skip_missing: bool) -> Result<()> {
        for (_, dir) in self.v1_dirs() {
            let tasks = dir.join("tasks");
            match write_existing(&tasks, "0") {
                Err(e) if skip_missing && e.errno() == Some(nix::errno::Errno::ENOENT) => {}
                r => r?,
            }
        }
        Ok(())
    }

    /// Moves `pid` (a whole process) into the cgroup: v1 hierarchies when
    /// `v1`, the v2 one when `v2`. The slow path, for kernels without clone3.
    pub fn add_pid(&self, pid: i32, v1: bool, v2: bool) -> Result<()> {
        let s = pid.to_string();
        if v1 {
            for (_, dir) in self.v1_dirs() {
                write_existing(&dir.join("cgroup.procs"), &s)?;
            }
        }
        if v2 {
            if let Some(d) = self.v2_dir() {
                write_existing(&d.join("cgroup.procs"), &s)?;
            }
        }
        Ok(())
    }

    /// Applies `res` (limits, device rules).
    pub fn set(&self, res: &oci_spec::runtime::LinuxResources) -> Result<()> {
        limits::apply(self, res)
    }

    /// Every process in the cgroup (from whichever hierarchy answers first).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if self.layout.pure_v2 {
            dirs.extend(self.v2_dir());
        } else {
            for c in ["pids", "memory", "freezer", "cpu"] {
                dirs.extend(self.v1_dir(c));
            }
            dirs.extend(self.v1_dirs().map(|(_, d)| d));
        }
        for dir in dirs {
            if let Ok(s) = fs::read_to_string(dir.join("cgroup.procs")) {
                return Ok(parse_pids(&s));
            }
        }
        Err(Error::invalid(format!(
            "cgroup {} has no cgroup.procs",
            self.path
        )))
    }

    /// Removes the cgroup from every hierarchy; missing is fine. A cgroup
    /// still holding processes cannot be removed: dying ones go on their own
    /// (slowly on a loaded host), any straggler (a child forked while delete
    /// swept the cgroup) is killed, as runc's destroy does. About 5 s in all.
    pub fn destroy(&self) -> Result<()> {
        let mut dirs: Vec<PathBuf> = self.v1_dirs().map(|(_, d)| d).collect();
        dirs.extend(self.v2_dir());
        let mut first_err = None;
        for dir in &dirs {
            if let Err(e) = remove_cgroup_dir(dir) {
                first_err.get_or_insert(e);
            }
        }
        if let (Some(u), false) = (&self.layout.v2, self.layout.pure_v2) {
            limits::release_hugetlb(u);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Freezes or thaws the cgroup and waits until the kernel reports it.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let what = if frozen { "freeze" } else { "thaw" };
        let (file, value, done): (PathBuf, &str, Box<dyn Fn() -> bool>) = if self.layout.pure_v2 {
            let dir = self
                .v2_dir()
                .ok_or_else(|| Error::invalid("no cgroup v2 hierarchy"))?;
            let events = dir.join("cgroup.events");
            let want = if frozen { "frozen 1" } else { "frozen 0" };
            (
                dir.join("cgroup.freeze"),
                if frozen { "1" } else { "0" },
                Box::new(move || {
                    fs::read_to_string(&events).is_ok_and(|s| s.lines().any(|l| l == want))
                }),
            )
        } else {
            let dir = self.v1_dir("freezer").ok_or_else(|| {
                Error::invalid(format!(
                    "cannot {what} cgroup {}: no freezer hierarchy is mounted",
                    self.path
                ))
            })?;
            let state = dir.join("freezer.state");
            let want = if frozen { "FROZEN" } else { "THAWED" };
            let st = state.clone();
            (
                state,
                want,
                Box::new(move || fs::read_to_string(&st).is_ok_and(|s| s.trim() == want)),
            )
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            write_existing(&file, value)?;
            if done() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(Error::invalid(format!(
                    "{what} cgroup {}: {} did not settle within 5 s",
                    self.path,
                    file.display()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

fn parse_pids(s: &str) -> Vec<i32> {
    s.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Writes `data` to a file that must already exist (cgroupfs, procfs).
pub(crate) fn write_existing(path: &Path, data: &str) -> Result<()> {
    use std::io::Write;
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(data.as_bytes()))
        .ctx(|| format!("write {:?} to {}", data, path.display()))
}

/// mkdir -p of `rel` below `mount`, calling `made(dir, parent)` for each
/// level this call created.
fn mkdir_levels(
    mount: &Path,
    rel: &str,
    mut made: impl FnMut(&Path, &Path) -> Result<()>,
) -> Result<()> {
    let mut dir = mount.to_path_buf();
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        let parent = dir.clone();
        dir.push(c);
        match fs::create_dir(&dir) {
            Ok(()) => made(&dir, &parent)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).ctx(|| format!("create cgroup {}", dir.display())),
        }
    }
    Ok(())
}

fn cpuset_inherit(dir: &Path, parent: &Path) -> Result<()> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let own = fs::read_to_string(dir.join(f)).unwrap_or_default();
        if own.trim().is_empty() {
            let p = fs::read_to_string(parent.join(f))
                .ctx(|| format!("read {}", parent.join(f).display()))?;
            if !p.trim().is_empty() {
                write_existing(&dir.join(f), p.trim())?;
            }
        }
    }
    Ok(())
}

/// Pure v2: every level above the container's cgroup passes down each
/// controller it has (written at once; one by one if that fails, leaving
/// out what a level refuses, e.g. a cgroup that holds processes).
fn enable_controllers(mount: &Path, rel: &str) -> Result<()> {
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let mut dir = mount.to_path_buf();
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            // Levels below the root may not exist yet.
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).ctx(|| format!("create cgroup {}", dir.display())),
            }
        }
        let have = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let on = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        let missing: Vec<String> = have
            .split_whitespace()
            .filter(|c| !on.split_whitespace().any(|o| o == *c))
            .map(|c| format!("+{c}"))
            .collect();
        if !missing.is_empty() {
            let ctl = dir.join("cgroup.subtree_control");
            if write_existing(&ctl, &missing.join(" ")).is_err() {
                for m in &missing {
                    let _ = write_existing(&ctl, m);
                }
            }
        }
        dir.push(c);
    }
    Ok(())
}

fn remove_cgroup_dir(dir: &Path) -> Result<()> {
    let mut pause = std::time::Duration::from_millis(5);
    for _ in 0..20 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e).ctx(|| format!("remove cgroup {}", dir.display())),
        }
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in parse_pids(&procs) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(500));
    }
    fs::remove_dir(dir).ctx(|| format!("remove cgroup {}", dir.display()))
}

/// Removes the container's cgroup (every hierarchy). Missing is fine.
pub fn destroy(path: &str) -> Result<()> {
    Cgroup::new(path).destroy()
}

/// Applies new resources to a running container (`update`).
pub fn update(path: &str, res: &oci_spec::runtime::LinuxResources) -> Result<()> {
    Cgroup::new(path).set(res)
}

/// Freezes or thaws the container (`pause` / `resume`).
pub fn freeze(path: &str, frozen: bool) -> Result<()> {
    Cgroup::new(path).freeze(frozen)
}

/// Every process in the container's cgroup.
pub fn pids(path: &str) -> Result<Vec<i32>> {
    Cgroup::new(path).pids()
}

/// True when /sys/fs/cgroup is a pure cgroup v2 mount.
pub fn is_v2() -> bool {
    hier::is_cgroup2(hier::ROOT)
}

/// True when the container's freezer reports it frozen (read directly: cheap).
pub fn is_frozen(path: &str) -> bool {
    let rel = path.trim_start_matches('/');
    if is_v2() {
        fs::read_to_string(Path::new(hier::ROOT).join(rel).join("cgroup.freeze"))
            .map(|s| s.trim() == "1")
            .unwrap_or(false)
    } else {
        v1_file(path, "freezer", "freezer.state")
            .and_then(|f| fs::read_to_string(f).ok())
            .is_some_and(|s| s.trim() == "FROZEN")
    }
}

/// A file of the container's cgroup in a v1 hierarchy: where the hierarchy
/// is usually mounted (no mountinfo read: `state` asks often), else where
/// mountinfo says.
fn v1_file(path: &str, controller: &str, file: &str) -> Option<PathBuf> {
    let usual = Path::new(hier::ROOT).join(controller);
    if usual.join("cgroup.procs").exists() {
        return Some(usual.join(path.trim_start_matches('/')).join(file));
    }
    Cgroup::new(path).v1_dir(controller).map(|d| d.join(file))
}

/// True when the kernel OOM-killed a process of this container.
pub fn oom_killed(path: &str) -> bool {
    let rel = path.trim_start_matches('/');
    let file = if is_v2() {
        Some(Path::new(hier::ROOT).join(rel).join("memory.events"))
    } else {
        v1_file(path, "memory", "memory.oom_control")
    };
    file.and_then(|f| fs::read_to_string(f).ok())
        .map(|s| {
            s.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(path_for(None, "c1").unwrap(), "/c1");
        assert_eq!(
            path_for(Some(Path::new("krun/pod1/c")), "x").unwrap(),
            "/krun/pod1/c"
        );
        assert_eq!(path_for(Some(Path::new("/a//b/")), "x").unwrap(), "/a/b");
        assert!(path_for(Some(Path::new("/a/../b")), "x").is_err());
        assert!(path_for(Some(Path::new("system.slice:krun:c1")), "x").is_err());
        assert!(path_for(Some(Path::new("/")), "x").is_err());
    }
}
