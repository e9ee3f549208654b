//! What the pod verbs do, apart from printing: admit the pods of manifest
//! files and start their supervisors, wait until they run, delete them,
//! find their containers, follow their logs.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};

use crate::logs::{self, Follower, LogLine, ReadOptions};
use crate::manifest::{self, ManifestError, Object};
use crate::node::Node;
use crate::podstate::{self, DesiredPod, KnownPod, PodDirs};
use crate::supervisor::control::{self, Request, READY_FD_ENV};
use crate::supervisor::ReadyReport;

/// The hidden subcommand a supervisor is started with: `krun supervise UID`.
pub const SUPERVISE: &str = "supervise";

#[derive(Debug, thiserror::Error)]
pub enum PodsError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    State(#[from] podstate::StateError),
    #[error("{0}")]
    Conflict(String),
    #[error("{step}: {source}")]
    Io {
        step: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

type Result<T> = std::result::Result<T, PodsError>;

fn io_step(step: impl Into<String>) -> impl FnOnce(io::Error) -> PodsError {
    let step = step.into();
    move |source| PodsError::Io { step, source }
}

/// Where a document came from: its file and 1-based index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocAt {
    pub file: String,
    pub index: usize,
}

/// The objects of a set of manifest files.
#[derive(Debug, Default, Clone)]
pub struct Manifests {
    /// Each pod with where it came from.
    pub pods: Vec<(Pod, DocAt)>,
    pub config_maps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
}

/// The manifest files `paths` name: a directory stands for its .yaml,
/// .yml and .json files (not its subdirectories), in name order, as
/// kubectl's `-f DIR` reads them.
pub fn manifest_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        let rd = std::fs::read_dir(p).map_err(io_step(format!("reading {}", p.display())))?;
        let mut found: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|f| {
                f.is_file()
                    && f.extension()
                        .and_then(|x| x.to_str())
                        .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
            })
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(PodsError::NotFound(format!(
                "{}: no .yaml, .yml or .json files in the directory",
                p.display()
            )));
        }
        out.extend(found);
    }
    Ok(out)
}

/// Loads and validates every file (a directory: its manifest files)
/// before anything starts: one bad document refuses the lot.
pub fn load(paths: &[PathBuf]) -> Result<Manifests> {
    let mut m = Manifests::default();
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    let mut objects: HashMap<(String, String), String> = HashMap::new();
    for f in &manifest_files(paths)? {
        for doc in manifest::load_file(f)? {
            match doc.object {
                Object::Pod(p) => {
                    let key = (
                        p.metadata.namespace.clone().unwrap_or_default(),
                        p.metadata.name.clone().unwrap_or_default(),
                    );
                    let here = format!("{}: document {}", doc.file, doc.index);
                    if let Some(first) = seen.insert(key.clone(), here.clone()) {
                        return Err(PodsError::Conflict(format!(
                            "{here}: pod \"{}\" in namespace \"{}\" is also defined at {first}",
                            key.1, key.0
                        )));
                    }
                    m.pods.push((
                        *p,
                        DocAt {
                            file: doc.file.clone(),
                            index: doc.index,
                        },
                    ));
                }
                Object::ConfigMap(_) | Object::Secret(_) => {
                    let kind = doc.object.kind();
                    let meta = match &doc.object {
                        Object::ConfigMap(c) => &c.metadata,
                        Object::Secret(s) => &s.metadata,
                        Object::Pod(p) => &p.metadata,
                    };
                    let key = (
                        format!("{kind}/{}", meta.namespace.as_deref().unwrap_or("default")),
                        doc.object.name().to_string(),
                    );
                    let here = format!("{}: document {}", doc.file, doc.index);
                    if let Some(first) = objects.insert(key.clone(), here.clone()) {
                        return Err(PodsError::Conflict(format!(
                            "{here}: {kind} \"{}\" is also defined at {first}",
                            key.1
                        )));
                    }
                    match doc.object {
                        Object::ConfigMap(c) => m.config_maps.push(*c),
                        Object::Secret(s) => m.secrets.push(*s),
                        Object::Pod(_) => {}
                    }
                }
            }
        }
    }
    Ok(m)
}

/// An image a container of the manifests runs, and where it is named.
#[derive(Debug, Clone)]
pub struct ImageUse {
    pub image: String,
    pub policy: krun_images::PullPolicy,
    pub at: DocAt,
    pub pod: String,
    /// `spec.containers[0].image`.
    pub field: String,
}

/// Every image the manifests' pods run, in order, once per image.
pub fn image_uses(m: &Manifests) -> Vec<ImageUse> {
    let mut out: Vec<ImageUse> = Vec::new();
    for (pod, at) in &m.pods {
        let spec = pod.spec.clone().unwrap_or_default();
        let init = spec
            .init_containers
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| (format!("spec.initContainers[{i}].image"), c.clone()));
        let main = spec
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("spec.containers[{i}].image"), c.clone()));
        for (field, c) in init.chain(main) {
            let image = c.image.clone().unwrap_or_default();
            if out.iter().any(|u| u.image == image) {
                continue;
            }
            let policy = match c.image_pull_policy.as_deref() {
                Some("Always") => krun_images::PullPolicy::Always,
                Some("Never") => krun_images::PullPolicy::Never,
                _ => krun_images::PullPolicy::IfNotPresent,
            };
            out.push(ImageUse {
                image,
                policy,
                at: at.clone(),
                pod: pod.metadata.name.clone().unwrap_or_default(),
                field,
            });
        }
    }
    out
}

impl ImageUse {
    /// A failure to get this image, as a manifest error naming the
    /// file, the document and the field.
    pub fn error(&self, message: impl std::fmt::Display) -> ManifestError {
        ManifestError::Invalid(Box::new(manifest::FieldError {
            file: self.at.file.clone(),
            index: self.at.index,
            label: format!("Pod {}", self.pod),
            path: self.field.clone(),
            message: message.to_string(),
        }))
    }
}

/// What `apply` did with one pod.
#[derive(Debug)]
pub enum Applied {
    /// Admitted and its supervisor started.
    Created(Launched),
    /// A pod of that name with the same spec is already there.
    Unchanged(Box<KnownPod>),
}

/// A started supervisor.
#[derive(Debug)]
pub struct Launched {
    pub name: String,
    pub namespace: String,
    pub dirs: PodDirs,
    pub child: Child,
    ready: Option<File>,
}

fn same_spec(a: &Pod, b: &Pod) -> bool {
    a.spec == b.spec && a.metadata.labels == b.metadata.labels
}

/// Admits the manifests' pods and starts a supervisor for each new one.
/// A pod that exists with another spec is refused (pods are immutable;
/// delete it first), before any pod is started.
pub fn apply(node: &Node, m: &Manifests) -> Result<Vec<Applied>> {
    let known = podstate::admitted(&node.paths)?;
    let mut plan = Vec::new();
    for (pod, at) in &m.pods {
        let file = &at.file;
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        match known
            .iter()
            .find(|(d, _)| d.name() == name && d.namespace() == ns)
        {
            Some((d, dirs)) if same_spec(&d.pod, pod) => {
                plan.push((pod, file, Some((d.clone(), dirs.clone()))))
            }
            Some(_) => {
                return Err(PodsError::Conflict(format!(
                    "{file}: pod \"{name}\" in namespace \"{ns}\" already exists with a different spec (pods are immutable: delete it first)"
                )))
            }
            None => plan.push((pod, file, None)),
        }
    }
    let mut out = Vec::new();
    for (pod, file, existing) in plan {
        if let Some(k) = existing {
            out.push(Applied::Unchanged(Box::new(podstate::with_status(k))));
            continue;
        }
        let mut pod = pod.clone();
        crate::identity::admit(&mut pod, &node.name, Timestamp::now())
            .map_err(io_step("making a pod uid"))?;
        let desired = DesiredPod {
            pod,
            config_maps: m.config_maps.clone(),
            secrets: m.secrets.clone(),
            source: file.clone(),
        };
        out.push(Applied::Created(launch(node, &desired)?));
    }
    Ok(out)
}

/// Saves the pod and starts its supervisor, detached in a session of its
/// own, with a pipe on which it reports once the pod runs or cannot.
pub fn launch(node: &Node, desired: &DesiredPod) -> Result<Launched> {
    let dirs = PodDirs::new(&node.paths, &desired.pod)?;
    podstate::save_desired(&dirs, desired)?;
    let r = spawn_supervisor(node, &dirs);
    if r.is_err() {
        let _ = std::fs::remove_dir_all(&dirs.state);
        let _ = std::fs::remove_dir_all(&dirs.run);
    }
    let (child, ready) = r?;
    Ok(Launched {
        name: desired.pod.metadata.name.clone().unwrap_or_default(),
        namespace: desired
            .pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        dirs,
        child,
        ready: Some(ready),
    })
}

/// Starts a supervisor for a pod already admitted (its pod.json saved):
/// the node agent's re-spawn of one that died. Returns it and the read
/// end of its readiness pipe.
pub fn respawn(node: &Node, dirs: &PodDirs) -> Result<(Child, File)> {
    spawn_supervisor(node, dirs)
}

fn spawn_supervisor(node: &Node, dirs: &PodDirs) -> Result<(Child, File)> {
    crate::node::private_dir(&dirs.run)
        .map_err(io_step(format!("creating {}", dirs.run.display())))?;
    let log_path = dirs.run.join("supervisor.log");
    let log =
        File::create(&log_path).map_err(io_step(format!("creating {}", log_path.display())))?;
    let (r, w): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| PodsError::Io {
            step: "making the readiness pipe".into(),
            source: e.into(),
        })?;
    let exe = std::env::current_exe().map_err(io_step("finding the krun executable"))?;
    let p = &node.paths;
    let mut cmd = Command::new(exe);
    cmd.arg(SUPERVISE)
        .arg(&dirs.uid)
        .env("KRUN_ROOT", &p.root)
        .env("KRUN_RUN_ROOT", &p.run_root)
        .env("KRUN_LOG_ROOT", &p.log_root)
        .env("KRUN_CONFIG_DIR", &p.config_dir)
        .env("KRUN_RUNTIME", &node.runtime.binary)
        .env("KRUN_NODE_NAME", &node.name)
        .env(READY_FD_ENV, "3")
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            log.try_clone().map_err(io_step("duplicating the log fd"))?,
        ))
        .stderr(Stdio::from(log));
    let wfd = w.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls (setsid,
    // dup2, fcntl) run.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if wfd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(wfd, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(io_step("starting the pod supervisor"))?;
    drop(w);
    Ok((child, File::from(r)))
}

impl Launched {
    /// The readiness pipe, for a caller that polls it itself.
    pub fn take_ready(&mut self) -> Option<File> {
        self.ready.take()
    }

    /// Waits until the supervisor reports the pod Running (or completed)
    /// or why it cannot start; at most `timeout`.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<ReadyReport> {
        let Some(f) = self.ready.take() else {
            return Err(PodsError::Failed("already waited".into()));
        };
        let mut p = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(PodsError::Failed(format!(
                    "pod \"{}\" is not running after {}s (see krun describe pod {})",
                    self.name,
                    timeout.as_secs(),
                    self.name
                )));
            }
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut p, 1, ms) };
            if n > 0 {
                break;
            }
            if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return Err(io_step("waiting for the supervisor")(
                    io::Error::last_os_error(),
                ));
            }
        }
        let mut line = String::new();
        BufReader::new(f)
            .read_line(&mut line)
            .map_err(io_step("reading the supervisor's report"))?;
        if line.trim().is_empty() {
            // the supervisor died before it answered; a re-spawned one
            // (the node agent's) goes on, and writes the status file
            if let Some(r) = self.report_from_status(deadline) {
                return Ok(r);
            }
            let log = std::fs::read_to_string(self.dirs.run.join("supervisor.log"))
                .ok()
                .and_then(|t| t.lines().last().map(str::to_string))
                .unwrap_or_else(|| "no message".into());
            return Err(PodsError::Failed(format!(
                "the supervisor of pod \"{}\" exited before the pod ran: {log}",
                self.name
            )));
        }
        serde_json::from_str(line.trim())
            .map_err(|e| PodsError::Failed(format!("the supervisor's report: {e}")))
    }
}

impl Launched {
    /// The report a re-spawned supervisor's status file gives, waiting
    /// until `deadline` while a live supervisor runs the pod (one must
    /// come within a few seconds).
    fn report_from_status(&self, deadline: Instant) -> Option<ReadyReport> {
        let respawn_by = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let st = podstate::load_status(&self.dirs).ok().flatten();
            let alive = st.as_ref().is_some_and(|s| {
                s.supervisor_pid != self.child.id() as i32 && pid_alive(s.supervisor_pid)
            });
            if alive {
                if let Some(r) = st
                    .as_ref()
                    .and_then(|s| s.pod.status.as_ref())
                    .and_then(crate::supervisor::ready_report)
                {
                    return Some(r);
                }
            } else if Instant::now() >= respawn_by || !self.dirs.state.exists() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// Deletes a pod: its supervisor stops the containers (stop signal, the
/// grace period, SIGKILL) and removes everything; with no live
/// supervisor everything is removed here. Returns what was left.
pub fn delete(node: &Node, pod: &KnownPod, grace_period: Option<i64>) -> Result<Vec<String>> {
    let req = Request::Delete {
        grace_period_seconds: grace_period,
    };
    // Held across the request, so the wait below is for this supervisor
    // whatever its pid becomes.
    let supervisor = pod
        .status
        .as_ref()
        .and_then(|s| crate::oci_runtime::pidfd_open(s.supervisor_pid).ok());
    let mut answered = control::request(&pod.dirs.socket(), &req);
    if answered
        .as_ref()
        .is_err_and(|e| e.kind() == io::ErrorKind::UnexpectedEof)
    {
        // the supervisor died during the delete: ask the one the node
        // agent re-spawns (it goes on with the deletion by itself)
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            std::thread::sleep(Duration::from_millis(200));
            answered = control::request(&pod.dirs.socket(), &req);
            if answered.is_ok() || !pod.dirs.state.exists() || Instant::now() >= until {
                break;
            }
        }
        if !pod.dirs.state.exists() && answered.is_err() {
            return Ok(Vec::new());
        }
    }
    match answered {
        Ok(reply) if !reply.leftovers.is_empty() => {
            // the supervisor keeps at what is left (the pod stays
            // Terminating): nothing to wait for or remove here
            Ok(reply.leftovers)
        }
        Ok(reply) => {
            let mut left = reply.leftovers;
            if let Some(fd) = &supervisor {
                // it answers last thing before it exits
                if !crate::oci_runtime::wait_exited(fd, Some(Duration::from_secs(10)))
                    .unwrap_or(false)
                {
                    left.push(format!(
                        "the supervisor of pod \"{}\" did not exit",
                        pod.name()
                    ));
                }
            }
            // the supervisor removed its own directories; anything still
            // there (it died half-way) goes now
            if pod.dirs.state.exists() || pod.dirs.run.exists() {
                left.extend(remove_without_supervisor(node, &pod.dirs));
            }
            Ok(left)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(remove_without_supervisor(node, &pod.dirs))
        }
        Err(e) => Err(io_step(format!(
            "asking the supervisor of pod \"{}\" to delete it",
            pod.name()
        ))(e)),
    }
}

fn remove_without_supervisor(node: &Node, dirs: &PodDirs) -> Vec<String> {
    let store = match krun_images::Store::under(&node.paths.root) {
        Ok(s) => s,
        Err(e) => return vec![format!("image store: {e}")],
    };
    let network = node.network().ok();
    crate::cleanup::remove_pod(node, &store, network.as_ref(), dirs)
}

/// The names of a pod's containers, init containers first, in order.
fn container_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
        .map(|c| c.name.clone())
        .collect()
}

/// The container of `pod` a verb is about: the named one, else the
/// first (as kubectl defaults it; the bool says it was defaulted).
pub fn pick_container(pod: &Pod, name: Option<&str>) -> Result<(String, bool)> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let all = container_names(pod);
    match name {
        Some(n) if all.iter().any(|c| c == n) => Ok((n.to_string(), false)),
        Some(n) => Err(PodsError::NotFound(format!(
            "container {n} is not valid for pod {pod_name}"
        ))),
        None => pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first().map(|c| (c, s.containers.len() > 1)))
            .map(|(c, defaulted)| (c.name.clone(), defaulted))
            .ok_or_else(|| PodsError::NotFound(format!("pod {pod_name} has no containers"))),
    }
}

/// The restart count of the container as last reported.
pub fn restart_count(pod: &KnownPod, container: &str) -> Option<i32> {
    let p = pod.current();
    let st = p.status?;
    st.init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .find(|s| s.name == container)
        .map(|s| s.restart_count)
}

/// Whether the container runs now.
pub fn is_running(pod: &KnownPod, container: &str) -> bool {
    let p = pod.current();
    p.status.is_some_and(|st| {
        st.init_container_statuses
            .iter()
            .flatten()
            .chain(st.container_statuses.iter().flatten())
            .any(|s| s.name == container && s.state.as_ref().is_some_and(|x| x.running.is_some()))
    })
}

/// The runtime id of the container's live instance.
pub fn runtime_id(pod: &KnownPod, container: &str) -> Option<String> {
    let st = pod.status.as_ref()?;
    st.init
        .iter()
        .chain(st.containers.iter())
        .find(|s| s.record.name == container)
        .and_then(|s| s.runtime_id.clone())
}

/// The log file of the container's current run, or with `previous` of
/// the run before it.
pub fn log_file(pod: &KnownPod, container: &str, previous: bool) -> Result<PathBuf> {
    let restarts = restart_count(pod, container).unwrap_or(0);
    let n = if previous {
        if restarts == 0 {
            return Err(PodsError::NotFound(format!(
                "previous terminated container \"{container}\" in pod \"{}\" not found",
                pod.name()
            )));
        }
        restarts - 1
    } else {
        restarts
    };
    Ok(logs::container_log(
        &pod.dirs.logs,
        container,
        n.max(0) as u32,
    ))
}

/// Reads a log file that may not exist yet (nothing logged).
pub fn read_log(path: &Path, opts: ReadOptions) -> Result<(Vec<LogLine>, Option<Follower>)> {
    if !path.exists() {
        return Ok((Vec::new(), None));
    }
    logs::read_log(path, opts)
        .map(|(l, f)| (l, Some(f)))
        .map_err(|e| PodsError::Failed(e.to_string()))
}

/// Follows the logs of every container of a pod, across restarts: each
/// container's newest `<restart>.log`, drained before moving to the next.
pub struct PodLogs {
    dirs: PodDirs,
    names: Vec<String>,
    current: HashMap<String, (u32, Follower)>,
}

impl PodLogs {
    pub fn new(pod: &Pod, dirs: PodDirs) -> PodLogs {
        PodLogs {
            dirs,
            names: container_names(pod),
            current: HashMap::new(),
        }
    }

    /// Lines logged since the last call, with their container's name.
    pub fn poll(&mut self) -> Vec<(String, LogLine)> {
        let mut out = Vec::new();
        for name in &self.names {
            // the open file still reads once the pod's logs are removed
            let mut have = None;
            if let Some((n, f)) = self.current.get_mut(name) {
                out.extend(
                    f.poll()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|l| (name.clone(), l)),
                );
                have = Some(*n);
            }
            let newest = logs::restarts_with_logs(&self.dirs.logs.join(name))
                .ok()
                .and_then(|v| v.into_iter().max());
            let Some(newest) = newest.filter(|n| Some(*n) != have) else {
                continue;
            };
            // a new run: start at its first line
            let path = logs::container_log(&self.dirs.logs, name, newest);
            if let Ok((lines, f)) = logs::read_log(&path, ReadOptions::default()) {
                out.extend(lines.into_iter().map(|l| (name.clone(), l)));
                self.current.insert(name.clone(), (newest, f));
            }
        }
        out
    }
}
