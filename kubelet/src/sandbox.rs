//! The pod sandbox: the network, IPC and UTS namespaces a pod's containers
//! share, held by bind mounts at `<run root>/<uid>/ns/{net,ipc,uts}` so
//! they outlive any process; the hostname (the pod's) set in the UTS
//! namespace; a tmpfs for the pod's shared /dev/shm; and the pod's network
//! attachment (eth0, address, routes, hostPorts) made by netplug.
//!
//! The namespaces are made by a throwaway thread: unshare(2) of net, ipc
//! and uts affects only the calling thread, so nothing is forked (the
//! caller may be multi-threaded) and the thread ends once the namespaces
//! are bind-mounted; no process lives in them until a container joins.
//!
//! The attachment is made in two steps: the address first (the pod's
//! /etc/hosts and env need it), then the links on a thread of their own
//! ([`Wiring`]) while the first container is created; the container starts
//! only once they are up.
//!
//! hostNetwork (which also means the host's UTS namespace, as in CRI),
//! hostIPC and hostPID make no namespace of that kind.

use std::fs::{self, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use k8s_openapi::api::core::v1::Pod;
use krun_netplug::{AttachRequest, Attachment, Network, PortMapping, Protocol, Reserved};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::spec::{Ns, Sandbox};

/// Where sandboxes live on a node.
pub const DEFAULT_RUN_ROOT: &str = "/run/krun/pods";
/// The pod's interface, as every CRI runtime names it.
pub const POD_IFNAME: &str = "eth0";
/// containerd's sandbox /dev/shm size (64 MiB).
pub const SHM_SIZE: &str = "65536k";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{step}: {source}")]
    Sys {
        step: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("pod sandbox: {0}")]
    Invalid(String),
    #[error("sandbox {} already exists", .0.display())]
    Exists(PathBuf),
    #[error("attaching the pod network: {0}")]
    Network(#[from] krun_netplug::Error),
    /// Teardown could not remove everything; each entry names what is left.
    #[error("sandbox teardown left: {}", .0.join("; "))]
    Leftovers(Vec<String>),
}

type Result<T> = std::result::Result<T, SandboxError>;

fn io_err<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SandboxError + 'a {
    move |source| SandboxError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

/// The namespace kinds a sandbox may hold, by their /proc/*/ns names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Net,
    Ipc,
    Uts,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Net, Kind::Ipc, Kind::Uts];

    fn name(self) -> &'static str {
        match self {
            Kind::Net => "net",
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
        }
    }

    fn flag(self) -> CloneFlags {
        match self {
            Kind::Net => CloneFlags::CLONE_NEWNET,
            Kind::Ipc => CloneFlags::CLONE_NEWIPC,
            Kind::Uts => CloneFlags::CLONE_NEWUTS,
        }
    }
}

/// A pod's sandbox as made by [`create`].
#[derive(Debug, Clone)]
pub struct PodSandbox {
    pub uid: String,
    /// `<run root>/<uid>`.
    pub dir: PathBuf,
    pub hostname: String,
    pub net: Ns,
    pub ipc: Ns,
    pub uts: Ns,
    /// Host for hostPID, else each container gets its own.
    pub pid: Ns,
    /// The pod's shared /dev/shm (None with hostIPC: the host's is used).
    pub shm: Option<PathBuf>,
    /// The pod's address (None with hostNetwork).
    pub ip: Option<Ipv4Addr>,
    /// The pod network's links (None with hostNetwork).
    pub wiring: Option<Arc<Wiring>>,
}

type Wired = std::result::Result<Attachment, String>;

/// The links of a pod's network attachment, being made on a thread of
/// their own or made.
#[derive(Debug)]
pub struct Wiring {
    thread: Mutex<Option<JoinHandle<Wired>>>,
    outcome: OnceLock<Wired>,
}

/// A sandbox dropped while its links are being made waits for them, so a
/// teardown after it never races the wiring thread.
impl Drop for Wiring {
    fn drop(&mut self) {
        let t = self.thread.get_mut().map(Option::take).unwrap_or_default();
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

impl Wiring {
    fn done(a: Attachment) -> Wiring {
        Wiring {
            thread: Mutex::new(None),
            outcome: OnceLock::from(Ok(a)),
        }
    }

    fn start(network: &Network, r: Reserved) -> Wiring {
        let net = network.clone();
        let spawned = std::thread::Builder::new()
            .name("pod-network".into())
            .spawn(move || net.wire(r).map_err(|e| e.to_string()));
        match spawned {
            Ok(t) => Wiring {
                thread: Mutex::new(Some(t)),
                outcome: OnceLock::new(),
            },
            // the reservation went with the closure: teardown releases it
            Err(e) => Wiring {
                thread: Mutex::new(None),
                outcome: OnceLock::from(Err(format!("starting the pod network thread: {e}"))),
            },
        }
    }

    /// Waits until the links are made; the attachment, or why it failed
    /// (everything of it undone by then, the lease included).
    pub fn wait(&self) -> std::result::Result<&Attachment, String> {
        // held while joining: a second caller waits for the first
        let mut thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = thread.take() {
            let r = t
                .join()
                .unwrap_or_else(|_| Err("wiring the pod network: the thread panicked".into()));
            let _ = self.outcome.set(r);
        }
        match self.outcome.get() {
            Some(r) => r.as_ref().map_err(Clone::clone),
            None => Err("the pod network was not wired".into()),
        }
    }
}

impl PodSandbox {
    /// What a container of this pod joins, for [`crate::spec::build`].
    pub fn spec_sandbox(&self) -> Sandbox {
        Sandbox {
            net: self.net.clone(),
            ipc: self.ipc.clone(),
            uts: self.uts.clone(),
            pid: self.pid.clone(),
            shm: self
                .shm
                .clone()
                .or_else(|| (self.ipc == Ns::Host).then(|| PathBuf::from("/dev/shm"))),
        }
    }

    /// The pod's IP (status.podIP), None with hostNetwork.
    pub fn pod_ip(&self) -> Option<Ipv4Addr> {
        self.ip
    }

    /// Waits for the pod network (see [`Wiring`]); why it failed.
    pub fn network_ready(&self) -> std::result::Result<(), String> {
        self.attachment().map(drop)
    }

    /// The pod's network attachment once wired (None with hostNetwork).
    pub fn attachment(&self) -> std::result::Result<Option<&Attachment>, String> {
        self.wiring.as_ref().map(|w| w.wait()).transpose()
    }
}

/// The sandbox directory of a pod.
pub fn sandbox_dir(run_root: &Path, uid: &str) -> Result<PathBuf> {
    // the uid names a directory: the CNI id rules keep it one plain component
    krun_netplug::network::validate_id(uid)
        .map_err(|e| SandboxError::Invalid(format!("pod uid: {e}")))?;
    Ok(run_root.join(uid))
}

fn ns_path(dir: &Path, kind: Kind) -> PathBuf {
    dir.join("ns").join(kind.name())
}

/// The host's namespace, or the sandbox's own of that kind.
fn own_ns(dir: &Path, host: bool, kind: Kind) -> Ns {
    if host {
        Ns::Host
    } else {
        Ns::Join(ns_path(dir, kind))
    }
}

/// The pod's hostname as the kubelet chooses it (spec.hostname or the pod
/// name cut to 63 characters, see [`crate::podfiles::hostname_and_domain`]).
pub fn pod_hostname(pod: &Pod) -> Result<String> {
    let (name, _) = crate::podfiles::hostname_and_domain(pod);
    if name.is_empty() {
        return Err(SandboxError::Invalid("the pod has no metadata.name".into()));
    }
    Ok(name)
}

/// The pod's hostPorts (containers' ports with a hostPort), as netplug
/// port mappings.
pub fn host_ports(pod: &Pod) -> Result<Vec<PortMapping>> {
    let mut out = Vec::new();
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice());
    for c in containers.unwrap_or_default() {
        for p in c.ports.iter().flatten() {
            let Some(host_port) = p.host_port.filter(|p| *p != 0) else {
                continue;
            };
            let bad = |what: String| {
                SandboxError::Invalid(format!(
                    "container {:?} hostPort {host_port}: {what}",
                    c.name
                ))
            };
            let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                other => return Err(bad(format!("protocol {other} is not supported"))),
            };
            let host_ip = match p.host_ip.as_deref().filter(|s| !s.is_empty()) {
                None => None,
                Some(s) => Some(
                    s.parse::<Ipv4Addr>()
                        .map_err(|_| bad(format!("hostIP {s:?} is not an IPv4 address")))?,
                ),
            };
            let host_port = u16::try_from(host_port).map_err(|_| bad("out of range".into()))?;
            let container_port = u16::try_from(p.container_port)
                .map_err(|_| bad(format!("containerPort {} out of range", p.container_port)))?;
            out.push(PortMapping {
                host_port,
                container_port,
                protocol,
                host_ip,
            });
        }
    }
    Ok(out)
}

/// What a pod's sandbox is made of: its directory and which namespaces
/// are the host's.
struct Shape {
    uid: String,
    dir: PathBuf,
    host_network: bool,
    host_ipc: bool,
    host_pid: bool,
}

impl Shape {
    fn of(run_root: &Path, pod: &Pod) -> Result<Shape> {
        let uid = pod
            .metadata
            .uid
            .clone()
            .ok_or_else(|| SandboxError::Invalid("the pod has no metadata.uid".into()))?;
        let dir = sandbox_dir(run_root, &uid)?;
        let spec = pod.spec.as_ref();
        Ok(Shape {
            uid,
            dir,
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            host_ipc: spec.and_then(|s| s.host_ipc).unwrap_or(false),
            host_pid: spec.and_then(|s| s.host_pid).unwrap_or(false),
        })
    }

    /// The sandbox of this shape: the namespaces a container joins (the
    /// host's where the pod asks for them), /dev/shm unless hostIPC.
    fn sandbox(self, hostname: String, ip: Option<Ipv4Addr>, wiring: Option<Wiring>) -> PodSandbox {
        let own = |host: bool, kind: Kind| own_ns(&self.dir, host, kind);
        PodSandbox {
            hostname,
            net: own(self.host_network, Kind::Net),
            ipc: own(self.host_ipc, Kind::Ipc),
            uts: own(self.host_network, Kind::Uts),
            pid: if self.host_pid { Ns::Host } else { Ns::New },
            shm: (!self.host_ipc).then(|| self.dir.join("shm")),
            ip,
            wiring: wiring.map(Arc::new),
            uid: self.uid,
            dir: self.dir,
        }
    }
}

/// Makes the pod's sandbox under `run_root`. On failure everything made so
/// far is removed again. `pod` must carry its uid (metadata.uid).
pub fn create(run_root: &Path, network: &Network, pod: &Pod) -> Result<PodSandbox> {
    let shape = Shape::of(run_root, pod)?;
    let hostname = pod_hostname(pod)?;
    let ports = host_ports(pod)?;

    fs::create_dir_all(run_root).map_err(io_err("create run root", run_root))?;
    match fs::create_dir(&shape.dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(SandboxError::Exists(shape.dir));
        }
        Err(e) => return Err(io_err("create sandbox directory", &shape.dir)(e)),
    }
    match make(&shape, network, &hostname, ports) {
        Ok(reserved) => {
            let ip = reserved.as_ref().map(Reserved::ip);
            let wiring = reserved.map(|r| Wiring::start(network, r));
            Ok(shape.sandbox(hostname, ip, wiring))
        }
        Err(e) => {
            // the directory is ours (create_dir succeeded): remove it all
            let _ = teardown(run_root, network, &shape.uid);
            Err(e)
        }
    }
}

/// The sandbox of `pod` as an earlier supervisor made it, taken over by
/// a re-spawned one (its namespaces, shm and attachment stay as they
/// are); None when there is none.
pub fn reopen(run_root: &Path, network: &Network, pod: &Pod) -> Result<Option<PodSandbox>> {
    let shape = Shape::of(run_root, pod)?;
    if !shape.dir.is_dir() {
        return Ok(None);
    }
    let attachment = if shape.host_network {
        None
    } else {
        network.attachment(&shape.uid, POD_IFNAME)?
    };
    let ip = attachment.as_ref().map(|a| a.address.addr);
    let hostname = pod_hostname(pod)?;
    Ok(Some(shape.sandbox(
        hostname,
        ip,
        attachment.map(Wiring::done),
    )))
}

/// Makes the sandbox's namespaces and /dev/shm under its (new, empty)
/// directory and reserves its address.
fn make(
    shape: &Shape,
    network: &Network,
    hostname: &str,
    ports: Vec<PortMapping>,
) -> Result<Option<Reserved>> {
    let (dir, host_network, host_ipc) = (&shape.dir, shape.host_network, shape.host_ipc);
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| match k {
            Kind::Net | Kind::Uts => !host_network,
            Kind::Ipc => !host_ipc,
        })
        .collect();
    if !kinds.is_empty() {
        let ns_dir = dir.join("ns");
        fs::create_dir(&ns_dir).map_err(io_err("create namespace directory", &ns_dir))?;
        for k in &kinds {
            let p = ns_path(dir, *k);
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o444)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                .open(&p)
                .map_err(io_err("create namespace mount point", &p))?;
        }
        let name = (!host_network).then_some(hostname);
        make_namespaces(dir, &kinds, name)?;
    }
    if !host_ipc {
        let shm = dir.join("shm");
        fs::create_dir(&shm).map_err(io_err("create shm directory", &shm))?;
        let opts = format!("mode=1777,size={SHM_SIZE}");
        mount(
            Some("shm"),
            &shm,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(opts.as_str()),
        )
        .map_err(|source| SandboxError::Sys {
            step: "mount the pod's /dev/shm tmpfs",
            source,
        })?;
    }
    if host_network {
        // the pod's address is the node's (the bridge gateway, status.hostIP):
        // it must be on the node even when no other pod brought the bridge up,
        // or probes of the pod would leave the node
        network.setup()?;
        Ok(None)
    } else {
        let mut req = AttachRequest::pod(&shape.uid, &ns_path(dir, Kind::Net));
        req.port_mappings = ports;
        Ok(Some(network.reserve(&req)?))
    }
}

/// Unshares `kinds` on a thread of its own, names the new UTS namespace,
/// and bind-mounts each namespace onto its file under `dir/ns`.
fn make_namespaces(dir: &Path, kinds: &[Kind], hostname: Option<&str>) -> Result<()> {
    let flags = kinds.iter().fold(CloneFlags::empty(), |f, k| f | k.flag());
    std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            // this thread alone moves into the new namespaces and then ends
            unshare(flags).map_err(|source| SandboxError::Sys {
                step: "unshare the pod namespaces",
                source,
            })?;
            if let (Some(name), true) = (hostname, kinds.contains(&Kind::Uts)) {
                nix::unistd::sethostname(name).map_err(|source| SandboxError::Sys {
                    step: "set the pod hostname",
                    source,
                })?;
            }
            for k in kinds {
                let src = PathBuf::from("/proc/thread-self/ns").join(k.name());
                let dst = ns_path(dir, *k);
                mount(
                    Some(&src),
                    &dst,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| io_err("bind-mount the namespace onto", &dst)(e.into()))?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(SandboxError::Invalid("namespace thread panicked".into())))
    })
}

/// Removes a pod's sandbox: its network attachment, namespace mounts, shm
/// and directory. Idempotent: what is already gone is skipped. Everything
/// that could not be removed is reported in [`SandboxError::Leftovers`].
pub fn teardown(run_root: &Path, network: &Network, uid: &str) -> Result<()> {
    let dir = sandbox_dir(run_root, uid)?;
    let mut left = Vec::new();
    let net = ns_path(&dir, Kind::Net);
    let attached = match network.attachment(uid, POD_IFNAME) {
        Ok(a) => a.is_some(),
        Err(e) => {
            left.push(format!("network attachment record: {e}"));
            true
        }
    };
    if attached || net.exists() {
        if let Err(e) = network.detach(uid, POD_IFNAME, Some(&net)) {
            left.push(format!("network attachment {uid}/{POD_IFNAME}: {e}"));
        }
    }
    for p in Kind::ALL
        .iter()
        .map(|k| ns_path(&dir, *k))
        .chain([dir.join("shm")])
    {
        unmount_all(&p, &mut left);
    }
    for k in Kind::ALL {
        let p = ns_path(&dir, k);
        if let Err(e) = fs::remove_file(&p) {
            if e.kind() != io::ErrorKind::NotFound {
                left.push(format!("{}: {e}", p.display()));
            }
        }
    }
    for d in [dir.join("shm"), dir.join("ns"), dir.clone()] {
        if let Err(e) = fs::remove_dir(&d) {
            if e.kind() != io::ErrorKind::NotFound {
                left.push(format!("{}: {e}", d.display()));
            }
        }
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(SandboxError::Leftovers(left))
    }
}

/// Unmounts every mount stacked on `path` (lazily: a container still
/// starting may hold the namespace; it then goes with that container).
fn unmount_all(path: &Path, left: &mut Vec<String>) {
    for _ in 0..16 {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            // not a mount point (any more), or not there at all
            Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => return,
            Err(e) => {
                left.push(format!("unmount {}: {e}", path.display()));
                return;
            }
        }
    }
    left.push(format!("unmount {}: still mounted", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, ports: Vec<ContainerPort>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some("u-1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(ports),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn hostname_is_the_pod_name_cut_to_63_without_trailing_dash() {
        assert_eq!(pod_hostname(&pod("web", vec![])).unwrap(), "web");
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        assert_eq!(pod_hostname(&pod(&long, vec![])).unwrap(), "a".repeat(62));
        let mut p = pod("web", vec![]);
        p.spec.as_mut().unwrap().hostname = Some("front".into());
        assert_eq!(pod_hostname(&p).unwrap(), "front");
    }

    #[test]
    fn host_ports_become_port_mappings_and_bad_ones_are_named() {
        let port = |hp: Option<i32>, proto: &str, ip: Option<&str>| ContainerPort {
            container_port: 80,
            host_port: hp,
            protocol: Some(proto.into()),
            host_ip: ip.map(Into::into),
            ..Default::default()
        };
        let p = pod(
            "web",
            vec![
                port(Some(8080), "TCP", None),
                port(None, "TCP", None),
                port(Some(5353), "UDP", Some("127.0.0.1")),
            ],
        );
        let m = host_ports(&p).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].host_port, m[0].container_port), (8080, 80));
        assert_eq!(m[0].protocol, Protocol::Tcp);
        assert_eq!(m[1].protocol, Protocol::Udp);
        assert_eq!(m[1].host_ip, Some(Ipv4Addr::LOCALHOST));
        let e = host_ports(&pod("web", vec![port(Some(9), "SCTP", None)])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "pod sandbox: container \"c\" hostPort 9: protocol SCTP is not supported"
        );
        let e = host_ports(&pod("web", vec![port(Some(9), "TCP", Some("::1"))])).unwrap_err();
        assert!(
            e.to_string().contains("hostIP \"::1\" is not an IPv4"),
            "{e}"
        );
    }

    #[test]
    fn a_uid_that_is_not_one_path_component_is_refused() {
        for bad in ["../etc", "a/b", ".hidden", ""] {
            assert!(
                sandbox_dir(Path::new("/run/krun/pods"), bad).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            sandbox_dir(Path::new("/r"), "0b7c-11").unwrap(),
            PathBuf::from("/r/0b7c-11")
        );
    }
}
