//! The files a pod is known by on the node:
//!
//! - `<root>/pods/<uid>/pod.json`: the admitted pod and the ConfigMaps and
//!   Secrets it may refer to (temp file, fsync, rename: it must survive a
//!   crash, it is what a re-spawned supervisor runs);
//! - `<root>/pods/<uid>/containers/`: the containers' writable layers;
//! - `<run root>/supervisors/<uid>/`: the supervisor's pid, control socket,
//!   bundles, log FIFOs, pod files, and `status.json` (the pod with its
//!   status and events, rewritten on every change) that `get` and
//!   `describe` read.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde::{Deserialize, Serialize};

use crate::backoff::Backoff;
use crate::events::EventLog;
use crate::node::NodePaths;
use crate::status::ContainerRecord;

pub const POD_FILE: &str = "pod.json";
pub const STATUS_FILE: &str = "status.json";
pub const SOCKET: &str = "sock";
pub const PID_FILE: &str = "supervisor.pid";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("pod uid {0:?} is not a plain name")]
    BadUid(String),
}

type Result<T> = std::result::Result<T, StateError>;

pub(crate) fn io_err<'a>(
    step: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

/// What the supervisor runs: the pod as admitted, and the objects of the
/// same manifests its env and volumes may name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredPod {
    pub pod: Pod,
    #[serde(default)]
    pub config_maps: Vec<ConfigMap>,
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// The manifest file it came from.
    #[serde(default)]
    pub source: String,
}

impl DesiredPod {
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }
}

/// One container slot of the supervisor, as saved for `get` and for a
/// supervisor that re-adopts the pod.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotState {
    pub record: ContainerRecord,
    /// The runtime's id of the live (or last) container instance.
    pub runtime_id: Option<String>,
    pub pid: Option<i32>,
    /// How many instances were created (names the log file of the next).
    pub attempts: u32,
}

/// `status.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusFile {
    /// The pod with `status` filled in.
    pub pod: Pod,
    pub events: EventLog,
    pub init: Vec<SlotState>,
    pub containers: Vec<SlotState>,
    pub backoff: Backoff,
    pub supervisor_pid: i32,
    /// Set once deletion began.
    pub deleting: bool,
    /// Set once the supervisor is done with the pod (it exits after).
    pub finished: bool,
    pub updated: Timestamp,
}

/// The directories of one pod.
#[derive(Debug, Clone)]
pub struct PodDirs {
    pub uid: String,
    /// `<root>/pods/<uid>`.
    pub state: PathBuf,
    /// `<run root>/supervisors/<uid>`.
    pub run: PathBuf,
    /// `<log root>/<ns>_<name>_<uid>`.
    pub logs: PathBuf,
}

/// A uid becomes a directory name: one plain component.
pub fn check_uid(uid: &str) -> Result<()> {
    let ok = !uid.is_empty()
        && uid.len() <= 128
        && !uid.starts_with('.')
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(StateError::BadUid(uid.into()))
    }
}

impl PodDirs {
    pub fn new(paths: &NodePaths, pod: &Pod) -> Result<PodDirs> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        check_uid(&uid)?;
        Ok(PodDirs {
            state: paths.pods_dir().join(&uid),
            run: paths.supervisors_dir().join(&uid),
            logs: crate::logs::pod_dir(
                &paths.log_root,
                pod.metadata.namespace.as_deref().unwrap_or("default"),
                pod.metadata.name.as_deref().unwrap_or_default(),
                &uid,
            ),
            uid,
        })
    }

    pub fn pod_file(&self) -> PathBuf {
        self.state.join(POD_FILE)
    }
    pub fn status_file(&self) -> PathBuf {
        self.run.join(STATUS_FILE)
    }
    pub fn socket(&self) -> PathBuf {
        self.run.join(SOCKET)
    }
    pub fn pid_file(&self) -> PathBuf {
        self.run.join(PID_FILE)
    }
    /// The pause process of a shared PID namespace.
    pub fn pause_pid_file(&self) -> PathBuf {
        self.run.join("pause.pid")
    }
    /// The writable layer and mount point of one container instance.
    pub fn container_dir(&self, runtime_id: &str) -> PathBuf {
        self.state.join("containers").join(runtime_id)
    }
    /// The bundle (config.json, FIFOs, runtime log) of one instance.
    pub fn bundle(&self, runtime_id: &str) -> PathBuf {
        self.run.join("bundles").join(runtime_id)
    }
}

/// Writes `data` to `path` through a temp file and rename; with `durable`
/// the data is fsynced first.
pub fn write_atomic(path: &Path, data: &[u8], durable: bool) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(io_err("write", &tmp))?;
    f.write_all(data).map_err(io_err("write", &tmp))?;
    if durable {
        f.sync_all().map_err(io_err("sync", &tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err("rename into place", path))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

pub fn save_desired(dirs: &PodDirs, desired: &DesiredPod) -> Result<()> {
    crate::node::private_dir(&dirs.state).map_err(io_err("create pod directory", &dirs.state))?;
    let data = serde_json::to_vec(desired).map_err(|e| StateError::Corrupt {
        path: dirs.pod_file(),
        detail: e.to_string(),
    })?;
    write_atomic(&dirs.pod_file(), &data, true)
}

pub fn load_desired(path: &Path) -> Result<Option<DesiredPod>> {
    read_json(path)
}

pub fn save_status(dirs: &PodDirs, status: &StatusFile) -> Result<()> {
    let data = serde_json::to_vec(status).map_err(|e| StateError::Corrupt {
        path: dirs.status_file(),
        detail: e.to_string(),
    })?;
    write_atomic(&dirs.status_file(), &data, false)
}

pub fn load_status(dirs: &PodDirs) -> Result<Option<StatusFile>> {
    read_json(&dirs.status_file())
}

/// A pod known to the node.
#[derive(Debug, Clone)]
pub struct KnownPod {
    pub desired: DesiredPod,
    pub dirs: PodDirs,
    pub status: Option<StatusFile>,
}

impl KnownPod {
    pub fn name(&self) -> &str {
        self.desired.name()
    }
    pub fn namespace(&self) -> &str {
        self.desired.namespace()
    }
    /// The pod with the latest status the supervisor wrote (the desired
    /// pod alone before the first one).
    pub fn current(&self) -> Pod {
        self.status
            .as_ref()
            .map(|s| s.pod.clone())
            .unwrap_or_else(|| self.desired.pod.clone())
    }
    pub fn events(&self) -> EventLog {
        self.status
            .as_ref()
            .map(|s| s.events.clone())
            .unwrap_or_default()
    }
}

/// Every pod of the node with its status, oldest first. Directories
/// without a readable pod.json (a pod being removed) are skipped.
pub fn list(paths: &NodePaths) -> Result<Vec<KnownPod>> {
    Ok(admitted(paths)?.into_iter().map(with_status).collect())
}

/// Every pod of the node without its status (what admission compares
/// against: it need not parse each pod's status), oldest first.
pub fn admitted(paths: &NodePaths) -> Result<Vec<(DesiredPod, PodDirs)>> {
    let dir = paths.pods_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list pods in", &dir)(e)),
    };
    let mut pods = Vec::new();
    for e in entries {
        let e = e.map_err(io_err("list pods in", &dir))?;
        let Some(uid) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if check_uid(&uid).is_err() {
            continue;
        }
        let Some(desired) = load_desired(&e.path().join(POD_FILE))? else {
            continue;
        };
        let dirs = PodDirs::new(paths, &desired.pod)?;
        pods.push((desired, dirs));
    }
    let key = |d: &DesiredPod| {
        (
            d.pod.metadata.creation_timestamp.clone().map(|t| t.0),
            d.pod.metadata.name.clone(),
        )
    };
    pods.sort_by_cached_key(|(d, _)| key(d));
    Ok(pods)
}

/// An admitted pod with the status its supervisor last wrote.
pub fn with_status((desired, dirs): (DesiredPod, PodDirs)) -> KnownPod {
    let status = load_status(&dirs).unwrap_or(None);
    KnownPod {
        desired,
        dirs,
        status,
    }
}

/// The pod named `name` in `namespace`.
pub fn find(paths: &NodePaths, namespace: &str, name: &str) -> Result<Option<KnownPod>> {
    Ok(admitted(paths)?
        .into_iter()
        .find(|(d, _)| d.name() == name && d.namespace() == namespace)
        .map(with_status))
}
