//! Namespace plan for a container: which to create and which to join by path.
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};

/// clone(2) flag of a namespace type.
pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The /proc/<pid>/ns name of a namespace type.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// A namespace to join, already opened.
pub struct Join {
    pub typ: LinuxNamespaceType,
    pub fd: OwnedFd,
    pub path: PathBuf,
}

/// What the config asks for.
pub struct Plan {
    /// Namespaces to create.
    pub new: CloneFlags,
    /// Namespaces to join (opened up front so a bad path fails early).
    pub join: Vec<Join>,
}

impl Plan {
    pub fn from_spec(spec: &Spec) -> Result<Plan> {
        let mut plan = Plan {
            new: CloneFlags::empty(),
            join: Vec::new(),
        };
        let mut seen = CloneFlags::empty();
        for ns in spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_deref())
            .unwrap_or(&[])
        {
            let f = flag(ns.typ());
            if seen.contains(f) {
                return Err(Error::invalid(format!(
                    "namespace {} listed twice",
                    proc_name(ns.typ())
                )));
            }
            seen |= f;
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    let fd = open_ns(p)?;
                    plan.join.push(Join {
                        typ: ns.typ(),
                        fd,
                        path: p.clone(),
                    });
                }
                _ => plan.new |= f,
            }
        }
        Ok(plan)
    }

    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(flag(t)) || self.join.iter().any(|j| j.typ == t)
    }

    pub fn joins(&self, t: LinuxNamespaceType) -> bool {
        self.join.iter().any(|j| j.typ == t)
    }

    /// Joins the listed namespace types, in the order given.
    pub fn setns(&self, types: &[LinuxNamespaceType]) -> Result<()> {
        for t in types {
            for j in self.join.iter().filter(|j| j.typ == *t) {
                setns(&j.fd, flag(j.typ))
                    .ctx(|| format!("join {} namespace {}", proc_name(j.typ), j.path.display()))?;
            }
        }
        Ok(())
    }
}

fn open_ns(p: &Path) -> Result<OwnedFd> {
    let f = std::fs::File::open(p).ctx(|| format!("open namespace {}", p.display()))?;
    Ok(OwnedFd::from(f))
}
