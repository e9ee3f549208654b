//! Pod volumes on the node, laid out as the kubelet lays them out under
//! the pod's directory (`<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>`):
//! emptyDir on disk or as a tmpfs (medium Memory, sized by sizeLimit, the
//! pod's memory limit or the node's memory, the smallest), hostPath with
//! its type checks, configMap and (on tmpfs) secret, downwardAPI and
//! projected volumes in the atomic writer layout, fsGroup ownership; then
//! each container's mounts (readOnly, subPath, subPathExpr, propagation).
//! Everything is removed with the pod by [`teardown`]; hostPath is never
//! touched.

pub mod atomic;
pub mod host_mounts;
pub mod host_path;
pub mod ownership;
pub mod payload;
pub mod subpath;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use oci_spec::runtime::Mount;

use crate::manifest::quantity::Quantity;
use crate::spec::{expand, NodeFacts, Objects, PodFacts};

pub const EMPTY_DIR: &str = "kubernetes.io~empty-dir";
pub const CONFIG_MAP: &str = "kubernetes.io~configmap";
pub const SECRET: &str = "kubernetes.io~secret";
pub const DOWNWARD_API: &str = "kubernetes.io~downward-api";
pub const PROJECTED: &str = "kubernetes.io~projected";

/// A volume ready on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub name: String,
    /// What the containers mount.
    pub host_path: PathBuf,
    /// configMap, secret, downwardAPI and projected volumes are always
    /// mounted read-only (CVE-2017-1002102).
    pub read_only: bool,
}

/// Every volume of a pod, ready.
#[derive(Debug, Clone, Default)]
pub struct PodVolumes {
    /// The pod's state directory.
    pub state: PathBuf,
    pub volumes: Vec<Prepared>,
}

/// A volume that could not be set up, as the kubelet's FailedMount says it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
pub struct SetupError {
    pub volume: String,
    pub message: String,
}

/// What setting up a pod's volumes reads.
pub struct SetupInput<'a> {
    pub pod: &'a Pod,
    pub objects: Objects<'a>,
    pub facts: &'a PodFacts,
    pub node: &'a NodeFacts,
    /// `<root>/pods/<uid>`.
    pub state: &'a Path,
}

/// The directory of a volume of `plugin` under the pod's state.
pub fn volume_dir(state: &Path, plugin: &str, name: &str) -> PathBuf {
    state.join("volumes").join(plugin).join(name)
}

fn plugin_of(v: &Volume) -> Option<&'static str> {
    if v.empty_dir.is_some() {
        Some(EMPTY_DIR)
    } else if v.config_map.is_some() {
        Some(CONFIG_MAP)
    } else if v.secret.is_some() {
        Some(SECRET)
    } else if v.downward_api.is_some() {
        Some(DOWNWARD_API)
    } else if v.projected.is_some() {
        Some(PROJECTED)
    } else {
        None
    }
}

/// The size of a memory-backed volume: the smallest of the node's memory,
/// the pod's summed memory limits and the volume's sizeLimit.
pub fn memory_volume_size(pod: &Pod, size_limit: Option<&str>, node_memory: u64) -> u64 {
    let mut size = node_memory;
    let pod_limit = crate::qos::pod_limit_total(pod, "memory");
    if pod_limit > 0 {
        size = size.min(pod_limit as u64);
    }
    if let Some(q) = size_limit.and_then(|s| Quantity::parse(s).ok()) {
        if q.value() > 0 {
            size = size.min(q.value() as u64);
        }
    }
    size
}

/// An emptyDir (and the wrapper of the other volumes): the directory,
/// mounted as a tmpfs for `memory`, mode 0777 (a tmpfs keeps its sticky
/// bit: the kubelet compares permission bits only).
fn empty_dir(dir: &Path, memory: Option<u64>) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    if let Some(size) = memory {
        if !host_mounts::is_tmpfs(dir) {
            host_mounts::mount_tmpfs(dir, Some(size))
                .map_err(|e| format!("mount tmpfs on {}: {e}", dir.display()))?;
        }
    }
    let mode = fs::metadata(dir).map_err(|e| e.to_string())?.mode();
    if mode & 0o777 != 0o777 {
        fs::set_permissions(dir, fs::Permissions::from_mode((mode & 0o7000) | 0o777))
            .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
    }
    Ok(())
}

fn setup_one(i: &SetupInput<'_>, v: &Volume) -> Result<Prepared, String> {
    let node_memory = i.node.memory_bytes;
    if let Some(h) = &v.host_path {
        host_path::check(Path::new(&h.path), h.type_.as_deref().unwrap_or(""))?;
        return Ok(Prepared {
            name: v.name.clone(),
            host_path: PathBuf::from(&h.path),
            read_only: false,
        });
    }
    let plugin = plugin_of(v).ok_or_else(|| "volume type not supported by krun".to_string())?;
    let dir = volume_dir(i.state, plugin, &v.name);
    let memory = match plugin {
        EMPTY_DIR => v
            .empty_dir
            .as_ref()
            .filter(|e| e.medium.as_deref() == Some("Memory"))
            .map(|e| {
                let limit = e.size_limit.as_ref().map(|q| q.0.as_str());
                memory_volume_size(i.pod, limit, node_memory)
            }),
        CONFIG_MAP => None,
        _ => Some(memory_volume_size(i.pod, None, node_memory)),
    };
    // An emptyDir that exists already may hold what a container put there
    // (a supervisor setting the pod up again): its ownership was applied
    // when it was made, and walking it now could be raced with symlinks.
    let fresh = plugin != EMPTY_DIR || !dir.exists();
    empty_dir(&dir, memory)?;
    let facts = payload::Facts {
        facts: i.facts,
        node: i.node,
    };
    let read_only = plugin != EMPTY_DIR;
    if let Some(p) = payload::payload(i.pod, v, &i.objects, &facts) {
        atomic::write(&dir, &p?).map_err(|e| format!("writing {}: {e}", dir.display()))?;
    }
    let psc = i
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref());
    if let Some(gid) = psc.and_then(|s| s.fs_group).filter(|_| fresh) {
        let on_mismatch =
            psc.and_then(|s| s.fs_group_change_policy.as_deref()) == Some("OnRootMismatch");
        ownership::apply(&dir, gid as u32, read_only, on_mismatch)?;
    }
    Ok(Prepared {
        name: v.name.clone(),
        host_path: dir,
        read_only,
    })
}

/// Sets up every volume of the pod (again after a failure: what exists is
/// kept or rewritten). The first volume that fails stops it.
pub fn setup(i: &SetupInput<'_>) -> Result<PodVolumes, SetupError> {
    let mut out = PodVolumes {
        state: i.state.to_path_buf(),
        volumes: Vec::new(),
    };
    let spec = i.pod.spec.clone().unwrap_or_default();
    for v in spec.volumes.iter().flatten() {
        let p = setup_one(i, v).map_err(|message| SetupError {
            volume: v.name.clone(),
            message,
        })?;
        out.volumes.push(p);
    }
    Ok(out)
}

/// Why a container's mounts cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountError {
    /// The kubelet's CreateContainerConfigError (subPath problems).
    Config(String),
    /// The runtime's CreateContainerError (propagation on a private mount).
    Create(String),
}

/// A container's volume mounts and the rootfs propagation they need.
#[derive(Debug, Clone, Default)]
pub struct ContainerMounts {
    pub mounts: Vec<Mount>,
    /// "rshared" for a Bidirectional mount, "rslave" for HostToContainer,
    /// as containerd sets it.
    pub rootfs_propagation: Option<String>,
}

/// subPathExpr with the container's variables, as the kubelet expands it.
pub fn expand_sub_path(expr: &str, env: &[(String, String)]) -> Result<String, String> {
    let missing = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let out = expand(expr, |k| {
        let v = env
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str());
        match v {
            Some(v) if !v.is_empty() => Some(v),
            _ => {
                missing.borrow_mut().insert(k.to_string());
                Some("")
            }
        }
    });
    let missing = missing.into_inner();
    if !missing.is_empty() {
        return Err(format!(
            "missing value for {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(out)
}

fn propagation_check(source: &Path, want_shared: bool) -> Result<(), String> {
    let (mountpoint, fields) = host_mounts::mount_of(source)
        .ok_or_else(|| format!("no mount found for {}", source.display()))?;
    let shared = fields.iter().any(|f| f.starts_with("shared:"));
    let slave = fields.iter().any(|f| f.starts_with("master:"));
    if want_shared && !shared {
        return Err(format!(
            "path \"{}\" is mounted on \"{}\" but it is not a shared mount",
            source.display(),
            mountpoint.display()
        ));
    }
    if !want_shared && !shared && !slave {
        return Err(format!(
            "path \"{}\" is mounted on \"{}\" but it is not a shared or slave mount",
            source.display(),
            mountpoint.display()
        ));
    }
    Ok(())
}

impl PodVolumes {
    fn get(&self, name: &str) -> Option<&Prepared> {
        self.volumes.iter().find(|v| v.name == name)
    }

    /// The OCI mounts of `c`'s volumeMounts; subPaths are resolved safely
    /// and pinned (see [`subpath`]). `env` is the container's own
    /// environment, for subPathExpr.
    pub fn container_mounts(
        &self,
        c: &Container,
        env: &[(String, String)],
    ) -> Result<ContainerMounts, MountError> {
        let mut out = ContainerMounts::default();
        for (n, m) in c.volume_mounts.iter().flatten().enumerate() {
            let vol = self.get(&m.name).ok_or_else(|| {
                MountError::Config(format!(
                    "cannot find volume \"{}\" to mount into container \"{}\"",
                    m.name, c.name
                ))
            })?;
            let expr = m.sub_path_expr.as_deref().filter(|s| !s.is_empty());
            let sub = match expr {
                Some(e) => {
                    let s = expand_sub_path(e, env).map_err(MountError::Config)?;
                    if s.starts_with('/') {
                        return Err(MountError::Config(format!(
                            "error SubPath `{s}` must not be an absolute path"
                        )));
                    }
                    if s.split('/').any(|p| p == "..") {
                        return Err(MountError::Config(format!(
                            "unable to provision SubPath `{s}`: must not contain '..'"
                        )));
                    }
                    Some(s)
                }
                None => m.sub_path.clone().filter(|s| !s.is_empty()),
            };
            let source = match sub {
                Some(s) => {
                    let failed = || {
                        MountError::Config(format!(
                            "failed to prepare subPath for volumeMount \"{}\" of container \"{}\"",
                            m.name, c.name
                        ))
                    };
                    let fd = subpath::open(&vol.host_path, &s).map_err(|e| {
                        eprintln!("krun: subPath {s:?} of volume {}: {e}", m.name);
                        failed()
                    })?;
                    let pin = subpath::pin_path(&self.state, &m.name, &c.name, n);
                    subpath::bind(&fd, &pin).map_err(|e| {
                        eprintln!("krun: subPath {s:?} of volume {}: {e}", m.name);
                        failed()
                    })?;
                    pin
                }
                None => vol.host_path.clone(),
            };
            let prop = match m.mount_propagation.as_deref() {
                Some("Bidirectional") => {
                    propagation_check(&source, true).map_err(MountError::Create)?;
                    out.rootfs_propagation = Some("rshared".into());
                    "rshared"
                }
                Some("HostToContainer") => {
                    propagation_check(&source, false).map_err(MountError::Create)?;
                    if out.rootfs_propagation.is_none() {
                        out.rootfs_propagation = Some("rslave".into());
                    }
                    "rslave"
                }
                _ => "rprivate",
            };
            let ro = m.read_only == Some(true) || vol.read_only;
            let mut mount = Mount::default();
            let dest = if m.mount_path.starts_with('/') {
                PathBuf::from(&m.mount_path)
            } else {
                Path::new("/").join(&m.mount_path)
            };
            mount.set_destination(dest);
            mount.set_typ(Some("bind".into()));
            mount.set_source(Some(source));
            mount.set_options(Some(vec![
                "rbind".into(),
                prop.into(),
                if ro { "ro" } else { "rw" }.into(),
            ]));
            out.mounts.push(mount);
        }
        Ok(out)
    }
}

/// Unmounts and removes the pod's volumes and subPath pins (hostPath
/// volumes live elsewhere and are left alone). What could not be removed
/// is returned; then the caller must not remove the state directory.
pub fn teardown(state: &Path) -> Vec<String> {
    let mut left = Vec::new();
    for sub in ["volume-subpaths", "volumes"] {
        let dir = state.join(sub);
        let still = host_mounts::unmount_all_under(&dir);
        if !still.is_empty() {
            // never remove files through a mount that is still there
            left.extend(still);
            continue;
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => left.push(format!("{}: {e}", dir.display())),
        }
    }
    left
}

#[cfg(test)]
mod tests;
