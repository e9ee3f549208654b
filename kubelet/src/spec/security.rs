//! The effective securityContext of a container (container fields over pod
//! fields, as the kubelet's DetermineEffectiveSecurityContext), turned into
//! the [`Security`] settings the config is built with, and the kubelet's
//! runAsNonRoot check.

use std::str::FromStr;

use k8s_openapi::api::core::v1::{Container, Pod};
use oci_spec::runtime::Capability;

use super::seccomp::{load_localhost, Seccomp};
use super::{Identity, IdentityOverrides, Security, SpecError};

/// Every capability name the kernel has today, for privileged and "ALL".
const ALL_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// What privileged and "ALL" grant: every capability this process may
/// hand on (its bounding set), as containerd's WithAllCurrentCapabilities;
/// asking for more would make the runtime's capset fail (a host whose
/// root lacks CAP_SYS_RESOURCE, say). The names are in the kernel's
/// numbering order, so a name's index is its bit.
pub fn all_capabilities() -> Vec<Capability> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .filter_map(|(_, n)| Capability::from_str(n).ok())
        .collect()
}

/// Named capabilities, and whether "ALL" was among them.
fn capabilities(names: &[String], container: &str) -> Result<(bool, Vec<Capability>), SpecError> {
    let mut all = false;
    let mut out = Vec::new();
    for n in names {
        if n.eq_ignore_ascii_case("ALL") {
            all = true;
            continue;
        }
        let cap = Capability::from_str(n).map_err(|_| {
            SpecError::Config(format!("container {container}: unknown capability \"{n}\""))
        })?;
        out.push(cap);
    }
    Ok((all, out))
}

/// The settings for `c` in `pod`, from both securityContexts.
pub fn effective(pod: &Pod, c: &Container) -> Result<Security, SpecError> {
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let csc = c.security_context.clone().unwrap_or_default();
    let caps = csc.capabilities.clone().unwrap_or_default();
    let privileged = csc.privileged == Some(true);
    let (add_all, add) = capabilities(caps.add.as_deref().unwrap_or_default(), &c.name)?;
    let (drop_all, drop) = capabilities(caps.drop.as_deref().unwrap_or_default(), &c.name)?;
    // The container's profile over the pod's; none when unset (a stock
    // kubelet without SeccompDefault) and never for privileged containers.
    let profile = csc.seccomp_profile.clone().or(psc.seccomp_profile.clone());
    let seccomp = match profile {
        _ if privileged => Seccomp::Unconfined,
        Some(p) if p.type_ == "RuntimeDefault" => Seccomp::RuntimeDefault,
        Some(p) if p.type_ == "Localhost" => {
            Seccomp::Localhost(p.localhost_profile.clone().unwrap_or_default())
        }
        _ => Seccomp::Unconfined,
    };
    Ok(Security {
        identity: IdentityOverrides {
            run_as_user: csc.run_as_user.or(psc.run_as_user),
            run_as_group: csc.run_as_group.or(psc.run_as_group),
            supplemental_groups: psc.supplemental_groups.clone().unwrap_or_default(),
            fs_group: psc.fs_group,
        },
        run_as_non_root: csc.run_as_non_root.or(psc.run_as_non_root) == Some(true),
        read_only_root: csc.read_only_root_filesystem == Some(true),
        no_new_privileges: csc.allow_privilege_escalation == Some(false),
        add_capabilities: add,
        drop_capabilities: drop,
        add_all_capabilities: add_all,
        drop_all_capabilities: drop_all,
        privileged,
        unmasked_proc: csc.proc_mount.as_deref() == Some("Unmasked"),
        sysctls: psc
            .sysctls
            .iter()
            .flatten()
            .map(|s| (s.name.clone(), s.value.clone()))
            .collect(),
        mounts: Vec::new(),
        rootfs_propagation: None,
        seccomp,
        oom_score_adj: None,
    })
}

/// Reads a Localhost seccomp profile from `dir` (the node's seccomp
/// directory); the error is what the runtime reports (CreateContainerError).
pub fn resolve_seccomp(security: &mut Security, dir: &std::path::Path) -> Result<(), String> {
    if let Seccomp::Localhost(rel) = &security.seccomp {
        let p = load_localhost(dir, rel)?;
        security.seccomp = Seccomp::Profile(Box::new(p));
    }
    Ok(())
}

/// The kubelet's verifyRunAsNonRoot, given the image's `User`.
pub fn verify_run_as_non_root(
    security: &Security,
    image_user: &str,
    identity: &Identity,
    pod_ref: &str,
    container: &str,
) -> Result<(), SpecError> {
    if !security.run_as_non_root {
        return Ok(());
    }
    if let Some(uid) = security.identity.run_as_user {
        if uid == 0 {
            return Err(SpecError::Config(format!(
                "container's runAsUser breaks non-root policy (pod: \"{pod_ref}\", container: {container})"
            )));
        }
        return Ok(());
    }
    let user = image_user.split(':').next().unwrap_or("");
    if user.is_empty() || user.parse::<u32>().is_ok() {
        if identity.uid == 0 {
            return Err(SpecError::Config(format!(
                "container has runAsNonRoot and image will run as root (pod: \"{pod_ref}\", container: {container})"
            )));
        }
        return Ok(());
    }
    Err(SpecError::Config(format!(
        "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: \"{pod_ref}\", container: {container})"
    )))
}
