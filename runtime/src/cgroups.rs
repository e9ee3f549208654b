//! cgroups for containers, through cgroups-rs's FsManager (v1, hybrid, v2).
//! On a hybrid host the process is also placed in the v2 hierarchy mounted
//! at /sys/fs/cgroup/unified, where hugetlb may live.
use std::fs;
use std::path::{Path, PathBuf};

use cgroups_rs::manager::{FsManager, Manager};
use cgroups_rs::{CgroupPid, FreezerState};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use crate::error::{Context, Error, Result};

const ROOT: &str = "/sys/fs/cgroup";
const HYBRID_UNIFIED: &str = "/sys/fs/cgroup/unified";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

fn is_cgroup2(path: &str) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// True when /sys/fs/cgroup is a pure cgroup v2 mount.
pub fn is_v2() -> bool {
    is_cgroup2(ROOT)
}

/// The v2 hierarchy of a hybrid host, when there is one.
fn hybrid_unified() -> Option<&'static str> {
    (!is_v2() && is_cgroup2(HYBRID_UNIFIED)).then_some(HYBRID_UNIFIED)
}

/// The cgroup path for a container: cgroupsPath from the config, else `/<id>`.
/// Systemd-style `slice:prefix:name` paths need systemd, which is absent.
pub fn path_for(cgroups_path: Option<&Path>, id: &str) -> Result<String> {
    let p = match cgroups_path {
        Some(p) => p.to_string_lossy().into_owned(),
        None => format!("/{id}"),
    };
    if cgroups_rs::manager::is_systemd_cgroup(&p) {
        return Err(Error::invalid(format!(
            "cgroupsPath {p:?} is a systemd unit path, but systemd is not running on this host"
        )));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(Error::invalid(format!(
            "cgroupsPath {p:?} must not contain \"..\""
        )));
    }
    Ok(format!("/{}", p.trim_start_matches('/')))
}

fn manager(path: &str) -> Result<FsManager> {
    FsManager::new(path.trim_start_matches('/')).ctx(|| format!("open cgroup {path}"))
}

/// Device rules every container needs, added after the config's own so a
/// "deny all" default still leaves the standard /dev nodes usable (as runc does).
fn default_device_rules(resources: &LinuxResources) -> Vec<LinuxDeviceCgroup> {
    let mut rules: Vec<LinuxDeviceCgroup> = resources.devices().clone().unwrap_or_default();
    let allow = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    for (maj, min) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        rules.push(allow(LinuxDeviceType::C, Some(maj), Some(min), "rwm"));
    }
    rules.push(allow(LinuxDeviceType::C, Some(136), None, "rwm"));
    rules
}

/// Creates the container's cgroup and moves `pid` into it (no limits yet:
/// they are applied with [`set`] once the init has built /dev, as runc does,
/// so a device "deny" rule cannot stop the runtime creating device nodes).
pub fn create(path: &str, pid: i32) -> Result<FsManager> {
    let mut mgr = manager(path)?;
    mgr.add_proc(CgroupPid::from(pid as u64))
        .ctx(|| format!("add pid {pid} to cgroup {path}"))?;
    if let Some(dir) = hybrid_unified().map(|u| PathBuf::from(u).join(path.trim_start_matches('/')))
    {
        fs::create_dir_all(&dir).ctx(|| format!("create cgroup {}", dir.display()))?;
        crate::sys::write_file(&dir.join("cgroup.procs"), &pid.to_string())?;
    }
    Ok(mgr)
}

/// Applies `res` to a cgroup opened by [`create`].
pub fn set(mgr: &mut FsManager, path: &str, res: &LinuxResources) -> Result<()> {
    set_resources(mgr, path, res)
}

/// Moves `pid` into an existing container cgroup (`exec`); never removes it.
pub fn join(path: &str, pid: i32) -> Result<()> {
    let mut mgr = manager(path)?;
    mgr.add_proc(CgroupPid::from(pid as u64))
        .ctx(|| format!("add pid {pid} to cgroup {path}"))?;
    if let Some(dir) = hybrid_unified().map(|u| PathBuf::from(u).join(path.trim_start_matches('/')))
    {
        if dir.exists() {
            crate::sys::write_file(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
    }
    Ok(())
}

fn set_resources(mgr: &mut FsManager, path: &str, res: &LinuxResources) -> Result<()> {
    let mut res = res.clone();
    if mgr.v2() {
        // v2 has no devices.allow: the rules become a BPF device program.
        if res.devices().as_ref().is_some_and(|d| !d.is_empty()) {
            let rules = default_device_rules(&res);
            let dir = PathBuf::from(ROOT).join(path.trim_start_matches('/'));
            crate::devfilter::attach(&dir, &rules)?;
        }
        res.set_devices(None);
    } else if res.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        res.set_devices(Some(default_device_rules(&res)));
    }
    // On a hybrid host hugetlb lives on the v2 mount, which FsManager does not drive.
    let mut hybrid_huge = None;
    if !mgr.v2() && !mgr.mounts().contains_key("hugetlb") {
        hybrid_huge = res.hugepage_limits().clone();
        res.set_hugepage_limits(None);
    }
    mgr.set(&res)
        .ctx(|| format!("set resources of cgroup {path}"))?;
    if let Some(limits) = hybrid_huge.filter(|l| !l.is_empty()) {
        let Some(u) = hybrid_unified() else {
            return Err(Error::invalid(
                "hugepageLimits set but no hugetlb cgroup controller is mounted",
            ));
        };
        let rel = path.trim_start_matches('/');
        enable_hugetlb(u, rel)?;
        let dir = PathBuf::from(u).join(rel);
        for l in limits {
            let f = dir.join(format!("hugetlb.{}.max", l.page_size()));
            crate::sys::write_file(&f, &l.limit().to_string())?;
        }
    }
    Ok(())
}

/// Enables the hugetlb controller on every level above the container's
/// cgroup in the hybrid v2 hierarchy, so `hugetlb.*.max` exists.
fn enable_hugetlb(unified: &str, rel: &str) -> Result<()> {
    let mut dir = PathBuf::from(unified);
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    for c in comps {
        let ctl = dir.join("cgroup.subtree_control");
        let on = fs::read_to_string(&ctl).unwrap_or_default();
        if !on.split_whitespace().any(|x| x == "hugetlb") {
            crate::sys::write_file(&ctl, "+hugetlb")?;
        }
        dir.push(c);
    }
    Ok(())
}

/// Hands hugetlb back once no cgroup below the hybrid v2 root has a limit: while
/// enabled there, no v1 hugetlb hierarchy can be mounted (crun needs one).
fn release_hugetlb(unified: &str) {
    let ctl = PathBuf::from(unified).join("cgroup.subtree_control");
    let on = fs::read_to_string(&ctl).unwrap_or_default();
    if !on.split_whitespace().any(|x| x == "hugetlb") {
        return;
    }
    let busy = fs::read_dir(unified)
        .map(|rd| {
            rd.flatten().any(|e| {
                fs::read_to_string(e.path().join("hugetlb.2MB.max"))
                    // Unlimited reads "max" or a page-aligned i64::MAX.
                    .is_ok_and(|v| {
                        v.trim()
                            .parse::<u64>()
                            .is_ok_and(|n| n < (i64::MAX as u64) / 2)
                    })
            })
        })
        .unwrap_or(true);
    if !busy {
        let _ = fs::write(&ctl, "-hugetlb");
    }
}

/// Applies new resources to a running container (`update`).
pub fn update(path: &str, res: &LinuxResources) -> Result<()> {
    let mut mgr = manager(path)?;
    set_resources(&mut mgr, path, res)
}

/// Removes the container's cgroup (every hierarchy). Missing is fine.
pub fn destroy(path: &str) -> Result<()> {
    let mut mgr = manager(path)?;
    // A cgroup still holding processes cannot be removed yet. Dying ones go
    // on their own (slowly on a loaded host); any straggler, such as a child
    // forked while delete swept the cgroup, is killed as runc's destroy does.
    // Retry with a growing pause, about 5 s in all.
    let mut last = Ok(());
    let mut pause = std::time::Duration::from_millis(5);
    for _ in 0..20 {
        last = mgr.destroy().ctx(|| format!("remove cgroup {path}"));
        if last.is_ok() {
            break;
        }
        for pid in pids(path).unwrap_or_default() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(500));
    }
    if let Some(u) = hybrid_unified() {
        let dir = PathBuf::from(u).join(path.trim_start_matches('/'));
        if dir.exists() {
            let _ = fs::remove_dir(&dir);
        }
        release_hugetlb(u);
    }
    last
}

/// Freezes or thaws the container (`pause` / `resume`).
pub fn freeze(path: &str, frozen: bool) -> Result<()> {
    let mgr = manager(path)?;
    let st = if frozen {
        FreezerState::Frozen
    } else {
        FreezerState::Thawed
    };
    mgr.freeze(st)
        .ctx(|| format!("{} cgroup {path}", if frozen { "freeze" } else { "thaw" }))
}

/// Every process in the container's cgroup.
pub fn pids(path: &str) -> Result<Vec<i32>> {
    let rel = path.trim_start_matches('/');
    let candidates = if is_v2() {
        vec![PathBuf::from(ROOT).join(rel)]
    } else {
        ["pids", "memory", "freezer", "cpu"]
            .iter()
            .map(|c| PathBuf::from(ROOT).join(c).join(rel))
            .collect()
    };
    for dir in candidates {
        if let Ok(s) = fs::read_to_string(dir.join("cgroup.procs")) {
            return Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect());
        }
    }
    Err(Error::invalid(format!("cgroup {path} has no cgroup.procs")))
}

/// True when the container's freezer reports it frozen (read directly: cheap).
pub fn is_frozen(path: &str) -> bool {
    let rel = path.trim_start_matches('/');
    if is_v2() {
        fs::read_to_string(PathBuf::from(ROOT).join(rel).join("cgroup.freeze"))
            .map(|s| s.trim() == "1")
            .unwrap_or(false)
    } else {
        fs::read_to_string(
            PathBuf::from(ROOT)
                .join("freezer")
                .join(rel)
                .join("freezer.state"),
        )
        .map(|s| s.trim() == "FROZEN")
        .unwrap_or(false)
    }
}

/// True when the kernel OOM-killed a process of this container.
pub fn oom_killed(path: &str) -> bool {
    let rel = path.trim_start_matches('/');
    let file = if is_v2() {
        PathBuf::from(ROOT).join(rel).join("memory.events")
    } else {
        PathBuf::from(ROOT)
            .join("memory")
            .join(rel)
            .join("memory.oom_control")
    };
    fs::read_to_string(file)
        .map(|s| {
            s.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
        .unwrap_or(false)
}
