//! The OCI runtime config of one pod container, built from the pod, the
//! container and the image config the way the kubelet and containerd build
//! it together. securityContext fields of issue 7 (capabilities, privileged,
//! seccomp, sysctls, procMount) enter through [`Security`].

mod env;
mod expand;
mod resources;
mod seccomp;
mod security;
mod signal;
mod user;

pub use env::{container_env, merge as merge_env, secret_data, Objects, DEFAULT_PATH};
pub(crate) use env::{field_value, resource_value};
pub use expand::expand;
pub use resources::{
    linux_resources, milli_cpu_to_quota, milli_cpu_to_shares, quantity as resource_quantity,
    swap_controller_available, MIN_SHARES, QUOTA_PERIOD,
};
pub use seccomp::{load_localhost as load_seccomp_profile, Profile as SeccompProfile, Seccomp};
pub use security::{
    all_capabilities, effective as effective_security, resolve_seccomp, verify_run_as_non_root,
};
pub use signal::parse as parse_signal;
pub use user::{resolve as resolve_user, Identity, IdentityOverrides};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespace, LinuxNamespaceType, Mount,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// What the kubelet reports as CreateContainerConfigError.
    #[error("{0}")]
    Config(String),
    #[error("no command specified")]
    NoCommand,
    #[error("{0}")]
    User(String),
    #[error("invalid stop signal \"{0}\" in the image config")]
    Signal(String),
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A seccomp profile that cannot be used (CreateContainerError).
    #[error("{0}")]
    Seccomp(String),
    #[error("building the OCI config: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
}

/// How the container gets one of its namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ns {
    /// A namespace of its own.
    New,
    /// The pod sandbox's, by the path of its bind mount.
    Join(PathBuf),
    /// The host's (hostNetwork, hostIPC, hostPID).
    Host,
}

/// The pod sandbox the container joins.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub net: Ns,
    pub ipc: Ns,
    pub uts: Ns,
    pub pid: Ns,
    /// The sandbox's /dev/shm to bind, or None for a private one.
    pub shm: Option<PathBuf>,
}

/// Files the kubelet writes for each pod and container, bind-mounted in.
#[derive(Debug, Clone)]
pub struct PodFiles {
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
    pub hostname: PathBuf,
    /// Mounted at the container's terminationMessagePath.
    pub termination_log: PathBuf,
}

/// Pod facts the downward API exposes.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    pub pod_ip: Option<String>,
    pub host_ip: Option<String>,
}

/// The node, for spec.nodeName and for limits that are not set.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub name: String,
    pub cpus: u32,
    pub memory_bytes: u64,
}

/// securityContext-driven settings; the default is what a pod without a
/// securityContext gets.
#[derive(Debug, Clone, Default)]
pub struct Security {
    pub identity: IdentityOverrides,
    pub read_only_root: bool,
    /// `allowPrivilegeEscalation: false`.
    pub no_new_privileges: bool,
    /// capabilities.add and .drop; "ALL" is kept apart, as containerd
    /// applies it first: add ALL, drop ALL, then the named adds and drops.
    pub add_capabilities: Vec<Capability>,
    pub drop_capabilities: Vec<Capability>,
    pub add_all_capabilities: bool,
    pub drop_all_capabilities: bool,
    /// runAsNonRoot: refuse to run as uid 0.
    pub run_as_non_root: bool,
    /// Every capability, no masked or read-only paths, /sys writable.
    pub privileged: bool,
    /// procMount: Unmasked.
    pub unmasked_proc: bool,
    /// Pod sysctls, in order.
    pub sysctls: Vec<(String, String)>,
    /// Extra mounts (volumes), destination inside the container.
    pub mounts: Vec<Mount>,
    /// linux.rootfsPropagation, when a volume mount needs one.
    pub rootfs_propagation: Option<String>,
    /// seccompProfile (a Localhost one read by [`resolve_seccomp`]).
    pub seccomp: Seccomp,
    /// process.oomScoreAdj.
    pub oom_score_adj: Option<i32>,
}

/// Everything one container's config is made of.
#[derive(Debug, Clone)]
pub struct ContainerInput<'a> {
    /// The pod, defaulted by the manifest loader, with its uid set.
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub image: &'a ImageConfiguration,
    /// The container's root filesystem (already mounted).
    pub rootfs: &'a Path,
    pub sandbox: &'a Sandbox,
    pub files: &'a PodFiles,
    pub facts: &'a PodFacts,
    pub node: &'a NodeFacts,
    pub objects: Objects<'a>,
    pub cgroups_path: String,
    /// Limit swap to the memory limit (the host has a swap controller).
    pub limit_swap: bool,
    pub security: Security,
}

/// The built config and what the supervisor needs beside it.
#[derive(Debug, Clone)]
pub struct BuiltSpec {
    pub spec: Spec,
    /// The image's STOPSIGNAL, SIGTERM by default.
    pub stop_signal: i32,
    pub identity: Identity,
}

/// Docker's and containerd's default capability set.
pub const DEFAULT_CAPABILITIES: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// containerd's masked paths.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// containerd's read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The process arguments, as Kubernetes chooses them: `command` replaces
/// the image's Entrypoint (and drops its Cmd), `args` replace Cmd; both
/// have `$(VAR)` expanded with the container's variables.
pub fn process_args(
    c: &Container,
    image_entrypoint: &[String],
    image_cmd: &[String],
    env: &[(String, String)],
) -> Result<Vec<String>, SpecError> {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let expand_all =
        |list: &[String]| -> Vec<String> { list.iter().map(|s| expand(s, lookup)).collect() };
    let command = c.command.as_deref().unwrap_or_default();
    let args = c.args.as_deref().unwrap_or_default();
    let mut out = if command.is_empty() {
        image_entrypoint.to_vec()
    } else {
        expand_all(command)
    };
    if !args.is_empty() {
        out.extend(expand_all(args));
    } else if command.is_empty() {
        out.extend(image_cmd.iter().cloned());
    }
    if out.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(out)
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

fn bind(dest: &str, source: &Path, read_only: bool) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some("bind".to_string()));
    m.set_source(Some(source.to_path_buf()));
    let rw = if read_only { "ro" } else { "rw" };
    m.set_options(Some(vec!["rbind".into(), "rprivate".into(), rw.into()]));
    m
}

/// The mounts every container gets, then the pod's files and volumes,
/// sorted by depth; a pod mount replaces a default one at the same place.
fn mounts(input: &ContainerInput<'_>) -> Vec<Mount> {
    let sys_mode = if input.security.privileged {
        "rw"
    } else {
        "ro"
    };
    let mut defaults = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        ),
    ];
    let mut extra = Vec::new();
    match &input.sandbox.shm {
        Some(shm) => extra.push(bind("/dev/shm", shm, false)),
        None => defaults.push(mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )),
    }
    extra.push(bind("/etc/hosts", &input.files.hosts, false));
    extra.push(bind("/etc/resolv.conf", &input.files.resolv_conf, false));
    extra.push(bind("/etc/hostname", &input.files.hostname, false));
    let message_path = input
        .container
        .termination_message_path
        .as_deref()
        .unwrap_or("/dev/termination-log");
    extra.push(bind(message_path, &input.files.termination_log, false));
    extra.extend(input.security.mounts.iter().cloned());
    let depth = |m: &Mount| m.destination().components().count();
    extra.sort_by_key(depth);
    defaults.retain(|d| !extra.iter().any(|e| e.destination() == d.destination()));
    defaults.extend(extra);
    defaults
}

fn namespaces(sandbox: &Sandbox) -> Vec<LinuxNamespace> {
    let mut out = Vec::new();
    let mut add = |typ: LinuxNamespaceType, ns: &Ns| {
        let path = match ns {
            Ns::Host => return,
            Ns::New => None,
            Ns::Join(p) => Some(p.clone()),
        };
        let mut n = LinuxNamespace::default();
        n.set_typ(typ);
        n.set_path(path);
        out.push(n);
    };
    add(LinuxNamespaceType::Pid, &sandbox.pid);
    add(LinuxNamespaceType::Network, &sandbox.net);
    add(LinuxNamespaceType::Ipc, &sandbox.ipc);
    add(LinuxNamespaceType::Uts, &sandbox.uts);
    add(LinuxNamespaceType::Mount, &Ns::New);
    add(LinuxNamespaceType::Cgroup, &Ns::New);
    out
}

/// Build the config of `input.container`.
pub fn build(input: &ContainerInput<'_>) -> Result<BuiltSpec, SpecError> {
    let c = input.container;
    let pod = input.pod;
    let config = input.image.config().clone().unwrap_or_default();
    let image_env = config.env().clone().unwrap_or_default();
    let entrypoint = config.entrypoint().clone().unwrap_or_default();
    let cmd = config.cmd().clone().unwrap_or_default();

    let own_env = container_env(pod, c, &input.objects, input.facts, input.node)?;
    let args = process_args(c, &entrypoint, &cmd, &own_env)?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let spec_hostname = pod.spec.as_ref().and_then(|s| s.hostname.clone());
    let hostname = spec_hostname.unwrap_or_else(|| pod_name.clone());
    let private_uts = input.sandbox.uts != Ns::Host;
    let env_hostname = if private_uts {
        hostname.clone()
    } else {
        input.node.name.clone()
    };
    let env = merge_env(&image_env, &env_hostname, &own_env);

    let image_user = config.user().clone().unwrap_or_default();
    let identity = resolve_user(input.rootfs, &image_user, &input.security.identity)?;
    let pod_ref = crate::events::pod_ref(
        &pod_name,
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or(""),
    );
    verify_run_as_non_root(&input.security, &image_user, &identity, &pod_ref, &c.name)?;
    let privileged = input.security.privileged;
    let cwd = c
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| config.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());

    let sec = &input.security;
    let mut caps: std::collections::HashSet<Capability> = if privileged || sec.add_all_capabilities
    {
        all_capabilities().into_iter().collect()
    } else {
        DEFAULT_CAPABILITIES.iter().copied().collect()
    };
    if sec.drop_all_capabilities && !privileged {
        caps.clear();
    }
    caps.extend(sec.add_capabilities.iter().copied());
    if !privileged {
        for d in &sec.drop_capabilities {
            caps.remove(d);
        }
    }
    let seccomp = match &sec.seccomp {
        Seccomp::Unconfined => None,
        Seccomp::RuntimeDefault => Some(seccomp::to_oci(&SeccompProfile::docker_default(), &caps)),
        Seccomp::Profile(p) => Some(seccomp::to_oci(p, &caps)),
        Seccomp::Localhost(path) => Some(Err(format!(
            "seccomp profile {path} was not read before building the config"
        ))),
    }
    .transpose()
    .map_err(SpecError::Seccomp)?;
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        // Nothing inheritable or ambient, as containerd: a non-root user
        // keeps no capability across execve.
        .inheritable(std::collections::HashSet::new())
        .ambient(std::collections::HashSet::new())
        .build()?;
    let user = UserBuilder::default()
        .uid(identity.uid)
        .gid(identity.gid)
        .additional_gids(identity.additional_gids.clone())
        .build()?;
    let process = ProcessBuilder::default()
        .terminal(c.tty == Some(true))
        .user(user)
        .args(args)
        .env(env)
        .cwd(PathBuf::from(cwd))
        .capabilities(capabilities)
        .no_new_privileges(input.security.no_new_privileges)
        .build()?;
    let mut process = process;
    // Limits are inherited from the supervisor, as under containerd's CRI.
    process.set_rlimits(None);
    process.set_oom_score_adj(sec.oom_score_adj);
    let linux = LinuxBuilder::default()
        .namespaces(namespaces(input.sandbox))
        .resources(linux_resources(c, input.limit_swap))
        .cgroups_path(PathBuf::from(&input.cgroups_path))
        .build()?;
    let mut linux = linux;
    // Privileged containers and procMount Unmasked see /proc and /sys whole.
    // (The library's own defaults are replaced either way.)
    if !privileged && !input.security.unmasked_proc {
        linux.set_masked_paths(Some(MASKED_PATHS.iter().map(|s| s.to_string()).collect()));
        linux.set_readonly_paths(Some(READONLY_PATHS.iter().map(|s| s.to_string()).collect()));
    } else {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
    }
    linux.set_seccomp(seccomp);
    linux.set_rootfs_propagation(sec.rootfs_propagation.clone());
    if !input.security.sysctls.is_empty() {
        linux.set_sysctl(Some(input.security.sysctls.iter().cloned().collect()));
    }
    let root = RootBuilder::default()
        .path(input.rootfs.to_path_buf())
        .readonly(input.security.read_only_root)
        .build()?;
    let mut annotations = HashMap::new();
    let meta = &pod.metadata;
    annotations.insert("io.kubernetes.pod.name".to_string(), pod_name.clone());
    annotations.insert(
        "io.kubernetes.pod.namespace".to_string(),
        meta.namespace.clone().unwrap_or_default(),
    );
    annotations.insert(
        "io.kubernetes.pod.uid".to_string(),
        meta.uid.clone().unwrap_or_default(),
    );
    annotations.insert("io.kubernetes.container.name".to_string(), c.name.clone());
    let builder = SpecBuilder::default()
        .version("1.2.0")
        .root(root)
        .process(process)
        .mounts(mounts(input))
        .linux(linux)
        .annotations(annotations);
    let mut spec = builder.build()?;
    // A hostname needs a UTS namespace of the container's (or the
    // sandbox's); the builder's default name must not leak in either way.
    spec.set_hostname(private_uts.then_some(hostname));
    spec.set_domainname(None);
    spec.set_hooks(None);
    let stop_signal = parse_signal(config.stop_signal().as_deref())?;
    Ok(BuiltSpec {
        spec,
        stop_signal,
        identity,
    })
}

#[cfg(test)]
mod tests;
