//! linux.resources written to cgroupfs: v1 files, or their v2 equivalents
//! with the conversions runc and crun use (cpu shares → cpu.weight, blkio
//! weight → io.weight, memory+swap → memory.swap.max).
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxResources,
};

use super::{write_existing, Cgroup};
use crate::error::{Error, Result};

/// Applies `res` to the container's cgroup.
pub fn apply(cg: &Cgroup, res: &LinuxResources) -> Result<()> {
    if cg.pure_v2() {
        apply_v2(cg, res)
    } else {
        apply_v1(cg, res)
    }
}

/// The v1 directory of `controller`, or a clear error naming the setting.
fn need_v1(cg: &Cgroup, controller: &str, setting: &str) -> Result<PathBuf> {
    cg.v1_dir(controller).ok_or_else(|| {
        Error::invalid(format!(
            "{setting} is set but no {controller} cgroup hierarchy is mounted"
        ))
    })
}

fn w(dir: &Path, file: &str, value: impl ToString) -> Result<()> {
    write_existing(&dir.join(file), &value.to_string())
}

/// Device rules every container needs, added after the config's own so a
/// "deny all" default still leaves the standard /dev nodes usable (as runc does).
pub fn default_device_rules(resources: &LinuxResources) -> Vec<LinuxDeviceCgroup> {
    let mut rules: Vec<LinuxDeviceCgroup> = resources.devices().clone().unwrap_or_default();
    let allow = |major: i64, minor: Option<i64>| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(LinuxDeviceType::C));
        r.set_major(Some(major));
        r.set_minor(minor);
        r.set_access(Some("rwm".to_string()));
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
        rules.push(allow(maj, Some(min)));
    }
    rules.push(allow(136, None));
    rules
}

/// A v1 devices.allow/deny line: "c 1:3 rwm", "a *:* rwm".
fn device_line(r: &LinuxDeviceCgroup) -> String {
    let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::P => 'p',
        LinuxDeviceType::A => 'a',
    };
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map_or("*".to_string(), |n| n.to_string())
    };
    let access = r.access().clone().unwrap_or_else(|| "rwm".to_string());
    format!("{typ} {}:{} {access}", num(r.major()), num(r.minor()))
}

fn apply_v1(cg: &Cgroup, res: &LinuxResources) -> Result<()> {
    if res.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        let dir = need_v1(cg, "devices", "linux.resources.devices")?;
        for r in default_device_rules(res) {
            let file = if r.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            };
            w(&dir, file, device_line(&r))?;
        }
    }
    if let Some(m) = res.memory() {
        memory_v1(cg, m)?;
    }
    if let Some(c) = res.cpu() {
        cpu_v1(cg, c)?;
    }
    if let Some(p) = res.pids() {
        let dir = need_v1(cg, "pids", "linux.resources.pids")?;
        w(&dir, "pids.max", pids_value(p.limit()))?;
    }
    if let Some(b) = res.block_io() {
        blkio_v1(cg, b)?;
    }
    if let Some(limits) = res.hugepage_limits().as_ref().filter(|l| !l.is_empty()) {
        if let Some(dir) = cg.v1_dir("hugetlb") {
            for l in limits {
                w(
                    &dir,
                    &format!("hugetlb.{}.limit_in_bytes", l.page_size()),
                    l.limit(),
                )?;
            }
        } else if let Some(u) = &cg.layout.v2 {
            // Hybrid host: hugetlb lives on the v2 mount.
            let avail = fs::read_to_string(u.join("cgroup.controllers")).unwrap_or_default();
            if !avail.split_whitespace().any(|c| c == "hugetlb") {
                return Err(Error::invalid(format!(
                    "hugepageLimits set, but hugetlb is neither mounted as a v1 hierarchy nor available in {} (a v1 hugetlb hierarchy that is no longer mounted but still has cgroups holds it)",
                    u.display()
                )));
            }
            enable_hugetlb(u, cg.rel())?;
            let dir = u.join(cg.rel());
            for l in limits {
                w(&dir, &format!("hugetlb.{}.max", l.page_size()), l.limit())?;
            }
        } else {
            return Err(Error::invalid(
                "hugepageLimits set but no hugetlb cgroup controller is mounted",
            ));
        }
    }
    if let Some(n) = res.network() {
        if let Some(id) = n.class_id() {
            let dir = need_v1(cg, "net_cls", "linux.resources.network.classID")?;
            w(&dir, "net_cls.classid", id)?;
        }
        for p in n.priorities().iter().flatten() {
            let dir = need_v1(cg, "net_prio", "linux.resources.network.priorities")?;
            w(
                &dir,
                "net_prio.ifpriomap",
                format!("{} {}", p.name(), p.priority()),
            )?;
        }
    }
    if let Some(rdma) = res.rdma().as_ref().filter(|r| !r.is_empty()) {
        let dir = need_v1(cg, "rdma", "linux.resources.rdma")?;
        rdma_write(&dir, rdma)?;
    }
    if let Some(u) = res.unified().as_ref().filter(|u| !u.is_empty()) {
        // Hybrid: the keys name files of the v2 hierarchy.
        let dir = cg.v2_dir().ok_or_else(|| {
            Error::invalid(
                "linux.resources.unified needs a cgroup v2 hierarchy, and none is mounted",
            )
        })?;
        unified_write(&dir, u)?;
    }
    Ok(())
}

fn pids_value(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    }
}

fn memory_v1(cg: &Cgroup, m: &LinuxMemory) -> Result<()> {
    let dir = need_v1(cg, "memory", "linux.resources.memory")?;
    let limit = m.limit().filter(|l| *l != 0);
    let mut swap = m.swap().filter(|s| *s != 0);
    if limit == Some(-1) && swap.is_none() {
        swap = Some(-1);
    }
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    if let Some(s) = swap {
        if !memsw.exists() {
            // Without swap accounting, memory+swap equal to the limit (or
            // unlimited) asks for nothing beyond the limit itself.
            if s != -1 && Some(s) != limit {
                return Err(Error::invalid(format!(
                    "memory.swap {s} is set but swap accounting is off on this host ({} missing)",
                    memsw.display()
                )));
            }
            swap = None;
        }
    }
    match (limit, swap) {
        (Some(l), Some(s)) => {
            // memsw may never be below the limit: raise whichever must go first.
            let cur: i64 = fs::read_to_string(dir.join("memory.limit_in_bytes"))
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(i64::MAX);
            if s == -1 || cur < s {
                w(&dir, "memory.memsw.limit_in_bytes", s)?;
                w(&dir, "memory.limit_in_bytes", l)?;
            } else {
                w(&dir, "memory.limit_in_bytes", l)?;
                w(&dir, "memory.memsw.limit_in_bytes", s)?;
            }
        }
        (Some(l), None) => w(&dir, "memory.limit_in_bytes", l)?,
        (None, Some(s)) => w(&dir, "memory.memsw.limit_in_bytes", s)?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        w(&dir, "memory.soft_limit_in_bytes", r)?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(Error::invalid(format!(
                "memory.swappiness {s} is out of range (0-100)"
            )));
        }
        w(&dir, "memory.swappiness", s)?;
    }
    if m.disable_oom_killer() == Some(true) {
        w(&dir, "memory.oom_control", 1)?;
    }
    // kernel and kernelTCP are ignored as runc ignores them: the kernel
    // dropped kmem limits (and they never worked well).
    Ok(())
}

fn cpu_v1(cg: &Cgroup, c: &LinuxCpu) -> Result<()> {
    let any_cpu = c.shares().is_some_and(|s| s != 0)
        || c.quota().is_some_and(|q| q != 0)
        || c.period().is_some_and(|p| p != 0)
        || c.realtime_period().is_some_and(|p| p != 0)
        || c.realtime_runtime().is_some_and(|r| r != 0)
        || c.burst().is_some();
    if any_cpu {
        let dir = need_v1(cg, "cpu", "linux.resources.cpu")?;
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            w(&dir, "cpu.shares", s)?;
        }
        let quota = c.quota().filter(|q| *q != 0);
        let period = c.period().filter(|p| *p != 0);
        if let Some(p) = period {
            // A new period may be refused next to the old quota (and the
            // other way round): try the other order before failing.
            if w(&dir, "cpu.cfs_period_us", p).is_err() {
                if let Some(q) = quota {
                    w(&dir, "cpu.cfs_quota_us", q)?;
                }
                w(&dir, "cpu.cfs_period_us", p)?;
            }
        }
        if let Some(q) = quota {
            w(&dir, "cpu.cfs_quota_us", q)?;
        }
        if let Some(b) = c.burst() {
            w(&dir, "cpu.cfs_burst_us", b)?;
        }
        if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
            w(&dir, "cpu.rt_period_us", p)?;
        }
        if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
            w(&dir, "cpu.rt_runtime_us", r)?;
        }
    }
    if c.idle().is_some_and(|i| i != 0) {
        return Err(Error::invalid(
            "linux.resources.cpu.idle needs cgroup v2 (this host uses v1 for cpu)",
        ));
    }
    cpuset(cg, c, None)
}

/// cpuset.cpus / cpuset.mems (same files on v1 and v2).
fn cpuset(cg: &Cgroup, c: &LinuxCpu, v2: Option<&Path>) -> Result<()> {
    let sets = [("cpuset.cpus", c.cpus()), ("cpuset.mems", c.mems())];
    if sets
        .iter()
        .all(|(_, v)| v.as_deref().is_none_or(str::is_empty))
    {
        return Ok(());
    }
    let dir = match v2 {
        Some(d) => d.to_path_buf(),
        None => need_v1(cg, "cpuset", "linux.resources.cpu.cpus/mems")?,
    };
    for (file, v) in sets {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            w(&dir, file, v)?;
        }
    }
    Ok(())
}

fn blkio_v1(cg: &Cgroup, b: &LinuxBlockIo) -> Result<()> {
    let dir = need_v1(cg, "blkio", "linux.resources.blockIO")?;
    // CFQ's blkio.weight is gone from current kernels; BFQ has its own file.
    let weight_file = if dir.join("blkio.weight").exists() {
        "blkio.weight"
    } else {
        "blkio.bfq.weight"
    };
    if let Some(v) = b.weight() {
        w(&dir, weight_file, v)?;
    }
    if let Some(v) = b.leaf_weight() {
        w(&dir, "blkio.leaf_weight", v)?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(v) = d.weight() {
            let f = format!("{weight_file}_device");
            w(&dir, &f, format!("{}:{} {v}", d.major(), d.minor()))?;
        }
        if let Some(v) = d.leaf_weight() {
            w(
                &dir,
                "blkio.leaf_weight_device",
                format!("{}:{} {v}", d.major(), d.minor()),
            )?;
        }
    }
    for (file, list) in [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ] {
        for d in list.iter().flatten() {
            w(
                &dir,
                file,
                format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            )?;
        }
    }
    Ok(())
}

fn rdma_write(
    dir: &Path,
    rdma: &std::collections::HashMap<String, oci_spec::runtime::LinuxRdma>,
) -> Result<()> {
    for (dev, l) in rdma {
        let mut line = dev.clone();
        if let Some(h) = l.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        w(dir, "rdma.max", line)?;
    }
    Ok(())
}

fn unified_write(dir: &Path, u: &std::collections::HashMap<String, String>) -> Result<()> {
    for (k, v) in u {
        if k.contains('/') || k.starts_with('.') || k.is_empty() {
            return Err(Error::invalid(format!(
                "linux.resources.unified: {k:?} is not a cgroup file name"
            )));
        }
        w(dir, k, v)?;
    }
    Ok(())
}

/// cgroup v1 cpu.shares [2, 262144] → v2 cpu.weight [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    1 + ((shares - 2) * 9999) / 262_142
}

/// blkio weight [10, 1000] → io.weight [1, 10000].
pub fn blkio_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// OCI memory.swap is memory+swap; v2's memory.swap.max is swap alone.
pub fn swap_v2(swap: i64, limit: Option<i64>) -> Result<Option<String>> {
    let limit = limit.unwrap_or(0);
    if swap == 0 {
        // Unlimited memory with swap left unset means unlimited swap too.
        return Ok((limit == -1).then(|| "max".to_string()));
    }
    if swap == -1 || limit == -1 {
        return Ok(Some(if swap == -1 {
            "max".to_string()
        } else {
            swap.to_string()
        }));
    }
    if limit <= 0 {
        return Err(Error::invalid(format!(
            "memory.swap {swap} needs memory.limit (swap is counted with memory)"
        )));
    }
    if swap < limit {
        return Err(Error::invalid(format!(
            "memory.swap {swap} is below memory.limit {limit} (it counts memory+swap)"
        )));
    }
    Ok(Some((swap - limit).to_string()))
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

fn apply_v2(cg: &Cgroup, res: &LinuxResources) -> Result<()> {
    let dir = cg
        .v2_dir()
        .ok_or_else(|| Error::invalid("no cgroup v2 hierarchy is mounted"))?;
    if res.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        // v2 has no devices.allow: the rules become a BPF device program.
        crate::devfilter::attach(&dir, &default_device_rules(res))?;
    }
    if let Some(m) = res.memory() {
        if let Some(l) = m.limit().filter(|l| *l != 0) {
            w(&dir, "memory.max", max_or(l))?;
        }
        if let Some(s) = swap_v2(m.swap().unwrap_or(0), m.limit())? {
            w(&dir, "memory.swap.max", s)?;
        }
        if let Some(r) = m.reservation().filter(|r| *r != 0) {
            w(&dir, "memory.low", max_or(r))?;
        }
        if m.swappiness().is_some() {
            return Err(Error::invalid(
                "linux.resources.memory.swappiness is not available on cgroup v2",
            ));
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(Error::invalid(
                "linux.resources.memory.disableOOMKiller is not available on cgroup v2",
            ));
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            w(&dir, "cpu.weight", shares_to_weight(s))?;
        }
        let quota = c.quota().filter(|q| *q != 0);
        let period = c.period().filter(|p| *p != 0);
        if quota.is_some() || period.is_some() {
            let cur = fs::read_to_string(dir.join("cpu.max")).unwrap_or_default();
            let mut it = cur.split_whitespace();
            let (cq, cp) = (
                it.next().unwrap_or("max").to_string(),
                it.next().unwrap_or("100000").to_string(),
            );
            let q = quota.map_or(cq, max_or);
            let p = period.map_or(cp, |p| p.to_string());
            w(&dir, "cpu.max", format!("{q} {p}"))?;
        }
        if let Some(b) = c.burst() {
            w(&dir, "cpu.max.burst", b)?;
        }
        if let Some(i) = c.idle() {
            w(&dir, "cpu.idle", i)?;
        }
        if c.realtime_period().is_some_and(|p| p != 0)
            || c.realtime_runtime().is_some_and(|r| r != 0)
        {
            return Err(Error::invalid(
                "linux.resources.cpu realtimePeriod/realtimeRuntime are not available on cgroup v2",
            ));
        }
        cpuset(cg, c, Some(&dir))?;
    }
    if let Some(p) = res.pids() {
        w(&dir, "pids.max", pids_value(p.limit()))?;
    }
    if let Some(b) = res.block_io() {
        // leafWeight was a CFQ knob; v2's io controller has none (runc ignores it too).
        let bfq = !dir.join("io.weight").exists() && dir.join("io.bfq.weight").exists();
        let (file, conv): (&str, fn(u16) -> u64) = if bfq {
            ("io.bfq.weight", u64::from)
        } else {
            ("io.weight", blkio_to_io_weight)
        };
        if let Some(v) = b.weight() {
            w(&dir, file, format!("default {}", conv(v)))?;
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(v) = d.weight() {
                w(
                    &dir,
                    file,
                    format!("{}:{} {}", d.major(), d.minor(), conv(v)),
                )?;
            }
        }
        for (key, list) in [
            ("rbps", b.throttle_read_bps_device()),
            ("wbps", b.throttle_write_bps_device()),
            ("riops", b.throttle_read_iops_device()),
            ("wiops", b.throttle_write_iops_device()),
        ] {
            for d in list.iter().flatten() {
                w(
                    &dir,
                    "io.max",
                    format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
                )?;
            }
        }
    }
    for l in res.hugepage_limits().iter().flatten() {
        w(&dir, &format!("hugetlb.{}.max", l.page_size()), l.limit())?;
    }
    if let Some(n) = res.network() {
        if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(Error::invalid(
                "linux.resources.network (net_cls/net_prio) needs cgroup v1; this host is cgroup v2",
            ));
        }
    }
    if let Some(rdma) = res.rdma().as_ref().filter(|r| !r.is_empty()) {
        rdma_write(&dir, rdma)?;
    }
    if let Some(u) = res.unified().as_ref().filter(|u| !u.is_empty()) {
        unified_write(&dir, u)?;
    }
    Ok(())
}

/// Enables the hugetlb controller on every level above the container's
/// cgroup in the hybrid v2 hierarchy, so `hugetlb.*.max` exists.
fn enable_hugetlb(unified: &Path, rel: &str) -> Result<()> {
    let mut dir = unified.to_path_buf();
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        let ctl = dir.join("cgroup.subtree_control");
        let on = fs::read_to_string(&ctl).unwrap_or_default();
        if !on.split_whitespace().any(|x| x == "hugetlb") {
            write_existing(&ctl, "+hugetlb")?;
        }
        dir.push(c);
    }
    Ok(())
}

/// Hands hugetlb back once no cgroup below the hybrid v2 root has a limit: while
/// enabled there, no v1 hugetlb hierarchy can be mounted (crun needs one).
pub fn release_hugetlb(unified: &Path) {
    let ctl = unified.join("cgroup.subtree_control");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(swap_v2(0, Some(-1)).unwrap().as_deref(), Some("max"));
        assert_eq!(swap_v2(0, Some(100)).unwrap(), None);
        assert_eq!(swap_v2(-1, Some(100)).unwrap().as_deref(), Some("max"));
        assert_eq!(swap_v2(200, Some(100)).unwrap().as_deref(), Some("100"));
        assert!(swap_v2(50, Some(100)).is_err());
        assert!(swap_v2(50, None).is_err());
    }

    #[test]
    fn device_lines() {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(false);
        r.set_access(Some("rwm".into()));
        assert_eq!(device_line(&r), "a *:* rwm");
        r.set_typ(Some(LinuxDeviceType::C));
        r.set_major(Some(136));
        assert_eq!(device_line(&r), "c 136:* rwm");
    }
}
