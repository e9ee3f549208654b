//! How the container process is scheduled: process.scheduler
//! (sched_setattr), process.ioPriority (ioprio_set), process.execCPUAffinity
//! (sched_setaffinity) and linux.personality.
use nix::errno::Errno;
use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Process,
};

use crate::error::{Context, Error, Result};

/// struct sched_attr (SCHED_ATTR_SIZE_VER1).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// Applies process.scheduler and process.ioPriority (before privileges are dropped).
pub fn apply(p: &Process) -> Result<()> {
    if let Some(s) = p.scheduler() {
        let policy = match s.policy() {
            LinuxSchedulerPolicy::SchedOther => 0,
            LinuxSchedulerPolicy::SchedFifo => 1,
            LinuxSchedulerPolicy::SchedRr => 2,
            LinuxSchedulerPolicy::SchedBatch => 3,
            LinuxSchedulerPolicy::SchedIso => {
                return Err(Error::invalid(
                    "process.scheduler.policy SCHED_ISO is not implemented by Linux",
                ))
            }
            LinuxSchedulerPolicy::SchedIdle => 5,
            LinuxSchedulerPolicy::SchedDeadline => 6,
        };
        let mut flags = 0u64;
        for f in s.flags().iter().flatten() {
            flags |= match f {
                LinuxSchedulerFlag::SchedResetOnFork => 0x01,
                LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
                LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
                LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
                LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
                LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
                LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
            };
        }
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            policy,
            flags,
            nice: s.nice().unwrap_or(0),
            priority: s.priority().unwrap_or(0).max(0) as u32,
            runtime: s.runtime().unwrap_or(0),
            deadline: s.deadline().unwrap_or(0),
            period: s.period().unwrap_or(0),
            ..Default::default()
        };
        // SAFETY: the kernel reads `attr` of the size it declares.
        let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
        if r != 0 {
            return Err(Errno::last()).ctx(|| format!("sched_setattr {:?}", s.policy()));
        }
    }
    if let Some(io) = p.io_priority() {
        let class: i64 = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        if !(0..=7).contains(&io.priority()) {
            return Err(Error::invalid(format!(
                "process.ioPriority.priority {} is out of range (0-7)",
                io.priority()
            )));
        }
        const IOPRIO_WHO_PROCESS: i64 = 1;
        // SAFETY: plain syscall with integer arguments.
        let r = unsafe {
            libc::syscall(
                libc::SYS_ioprio_set,
                IOPRIO_WHO_PROCESS,
                0,
                (class << 13) | io.priority(),
            )
        };
        if r != 0 {
            return Err(Errno::last()).ctx(|| format!("ioprio_set {:?}", io.class()));
        }
    }
    Ok(())
}

/// Parses a cpu list ("0-3,7") into a cpu_set_t.
fn cpu_set(list: &str) -> Result<libc::cpu_set_t> {
    let bad = || Error::invalid(format!("execCPUAffinity {list:?}: not a cpu list"));
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: usize = a.trim().parse().map_err(|_| bad())?;
        let b: usize = b.trim().parse().map_err(|_| bad())?;
        if a > b || b >= libc::CPU_SETSIZE as usize {
            return Err(bad());
        }
        for c in a..=b {
            // SAFETY: c < CPU_SETSIZE, checked above.
            unsafe { libc::CPU_SET(c, &mut set) };
        }
    }
    Ok(set)
}

fn set_affinity(list: &str) -> Result<()> {
    let set = cpu_set(list)?;
    // SAFETY: the kernel reads the set of the given size.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(Errno::last()).ctx(|| format!("sched_setaffinity {list}"));
    }
    Ok(())
}

/// execCPUAffinity.initial: where the runtime's child runs while it joins the container.
pub fn affinity_initial(p: &Process) -> Result<()> {
    match p
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.initial().as_deref())
    {
        Some(l) if !l.is_empty() => set_affinity(l),
        _ => Ok(()),
    }
}

/// execCPUAffinity.final: where the container process runs.
pub fn affinity_final(p: &Process) -> Result<()> {
    match p
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.cpu_affinity_final().as_deref())
    {
        Some(l) if !l.is_empty() => set_affinity(l),
        _ => Ok(()),
    }
}

/// linux.personality: the execution domain of the container process.
pub fn personality(p: Option<&LinuxPersonality>) -> Result<()> {
    let Some(p) = p else { return Ok(()) };
    if let Some(f) = p.flags().as_ref().and_then(|f| f.first()) {
        return Err(Error::invalid(format!(
            "linux.personality.flags: unknown flag {f:?}"
        )));
    }
    let persona: libc::c_ulong = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    // SAFETY: plain syscall with an integer argument.
    if unsafe { libc::personality(persona) } < 0 {
        return Err(Errno::last()).ctx(|| format!("personality {}", p.domain()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        let s = cpu_set("0-2,5").unwrap();
        // SAFETY: indices below CPU_SETSIZE.
        unsafe {
            assert!(libc::CPU_ISSET(0, &s) && libc::CPU_ISSET(2, &s) && libc::CPU_ISSET(5, &s));
            assert!(!libc::CPU_ISSET(3, &s));
        }
        assert!(cpu_set("3-1").is_err());
        assert!(cpu_set("x").is_err());
    }
}
