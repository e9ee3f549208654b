//! One container instance: made from the pod, the image and the sandbox
//! (rootfs, bundle, log FIFOs, runtime create and start), watched through
//! its init's pidfd, and removed again once it has exited.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Container;
use krun_images::{ImageRecord, Store};

use crate::log_pump::{self, Fifos, PumpError};
use crate::logs::{LogWriter, Rotation};
use crate::oci_runtime::{self, ContainerStdio, Exit, OciRuntime};
use crate::podstate::PodDirs;
use crate::spec::{self, ContainerInput, NodeFacts, Objects, PodFacts, PodFiles, Sandbox};
use crate::status::{Terminated, Waiting};

/// A created and started container instance.
#[derive(Debug)]
pub struct Live {
    pub id: String,
    pub pid: i32,
    /// The init's start time (with the pid, names it across supervisors).
    pub start_ticks: u64,
    pub pidfd: OwnedFd,
    pub pump: Option<JoinHandle<Result<LogWriter, PumpError>>>,
    pub log: PathBuf,
    pub termination_log: PathBuf,
    pub stop_signal: i32,
    pub started_at: Timestamp,
    /// The stop signal was sent (deletion or a restart).
    pub signaled: bool,
    /// SIGKILL was sent after the grace period.
    pub killed: bool,
}

/// The pod-wide inputs of a container start.
pub struct StartInputs<'a> {
    pub pod: &'a k8s_openapi::api::core::v1::Pod,
    pub container: &'a Container,
    pub image: &'a ImageRecord,
    pub store: &'a Store,
    pub dirs: &'a PodDirs,
    pub runtime: &'a OciRuntime,
    pub sandbox: &'a Sandbox,
    /// Waits for the pod network: the container starts only once it is up.
    pub network_ready: &'a dyn Fn() -> Result<(), String>,
    pub pod_files: &'a PodFiles,
    pub facts: &'a PodFacts,
    pub node: &'a NodeFacts,
    pub objects: Objects<'a>,
    /// The runtime id of this instance.
    pub id: String,
    /// The restart count this instance runs as (names its log file).
    pub restart: u32,
    pub volumes: &'a crate::volumes::PodVolumes,
    pub oom_score_adj: i32,
    /// Where Localhost seccomp profiles are.
    pub seccomp_dir: &'a Path,
}

/// The cgroup of a pod; its containers are under it.
pub fn pod_cgroup(uid: &str) -> String {
    format!("/krun/pod{uid}")
}

fn image_config(
    store: &Store,
    image: &ImageRecord,
) -> Result<oci_spec::image::ImageConfiguration, String> {
    let data = store
        .read_blob(&image.config_digest)
        .map_err(|e| format!("reading the image config of {}: {e}", image.reference))?;
    serde_json::from_slice(&data)
        .map_err(|e| format!("the image config of {} is not valid: {e}", image.reference))
}

/// Makes and starts the instance. On failure everything made is removed
/// and the waiting reason says why (CreateContainerConfigError for a spec
/// that cannot be built, CreateContainerError for the rest).
pub fn start(i: &StartInputs<'_>) -> Result<Live, Waiting> {
    let cdir = i.dirs.container_dir(&i.id);
    let bundle = i.dirs.bundle(&i.id);
    let r = make(i, &cdir, &bundle);
    if r.is_err() {
        remove(i.runtime, i.store, &i.id, &cdir, &bundle);
    }
    r
}

fn make(i: &StartInputs<'_>, cdir: &Path, bundle: &Path) -> Result<Live, Waiting> {
    let create_err = |e: String| Waiting::CreateContainerError(e);
    let config = image_config(i.store, i.image).map_err(create_err)?;
    let rootfs = cdir.join("rootfs");
    fs::create_dir_all(&rootfs)
        .map_err(|e| create_err(format!("creating {}: {e}", rootfs.display())))?;
    krun_images::rootfs::mount(i.store, i.image, &i.id, cdir, &rootfs)
        .map_err(|e| create_err(e.to_string()))?;
    fs::create_dir_all(bundle)
        .map_err(|e| create_err(format!("creating {}: {e}", bundle.display())))?;
    let termination_log = bundle.join("termination-log");
    fs::write(&termination_log, b"")
        .map_err(|e| create_err(format!("creating {}: {e}", termination_log.display())))?;
    let files = PodFiles {
        termination_log: termination_log.clone(),
        ..i.pod_files.clone()
    };
    let config_err = |e: String| Waiting::CreateContainerConfigError(e);
    let mut security =
        spec::effective_security(i.pod, i.container).map_err(|e| config_err(e.to_string()))?;
    spec::resolve_seccomp(&mut security, i.seccomp_dir).map_err(create_err)?;
    let env = spec::container_env(i.pod, i.container, &i.objects, i.facts, i.node)
        .map_err(|e| config_err(e.to_string()))?;
    let mounts = i
        .volumes
        .container_mounts(i.container, &env)
        .map_err(|e| match e {
            crate::volumes::MountError::Config(m) => config_err(m),
            crate::volumes::MountError::Create(m) => create_err(m),
        })?;
    security.mounts = mounts.mounts;
    security.rootfs_propagation = mounts.rootfs_propagation;
    security.oom_score_adj = Some(i.oom_score_adj);
    let uid = i.pod.metadata.uid.as_deref().unwrap_or_default();
    let built = spec::build(&ContainerInput {
        pod: i.pod,
        container: i.container,
        image: &config,
        rootfs: &rootfs,
        sandbox: i.sandbox,
        files: &files,
        facts: i.facts,
        node: i.node,
        objects: i.objects,
        cgroups_path: format!("{}/{}", pod_cgroup(uid), i.id),
        limit_swap: spec::swap_controller_available(Path::new("/sys/fs/cgroup")),
        security,
    })
    .map_err(|e| match e {
        spec::SpecError::Io { .. } | spec::SpecError::Oci(_) | spec::SpecError::Seccomp(_) => {
            create_err(e.to_string())
        }
        _ => Waiting::CreateContainerConfigError(e.to_string()),
    })?;
    oci_runtime::write_bundle(bundle, &built.spec, &rootfs)
        .map_err(|e| create_err(e.to_string()))?;

    let log = crate::logs::container_log(&i.dirs.logs, &i.container.name, i.restart);
    let writer =
        LogWriter::open(&log, Rotation::default()).map_err(|e| create_err(e.to_string()))?;
    // tty: the runtime sends the pty master to a console socket; else the
    // container writes into two FIFOs
    let (mut pump, stdio, console) = if i.container.tty == Some(true) {
        // in the pod's run directory, not the bundle: a socket path has
        // room for 107 bytes only
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sock = i.dirs.run.join(format!("console-{n}.sock"));
        let _ = fs::remove_file(&sock);
        let l = UnixListener::bind(&sock)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| create_err(format!("binding {}: {e}", sock.display())))?;
        let stdio = ContainerStdio {
            console_socket: Some(sock),
            ..Default::default()
        };
        (None, stdio, Some((l, writer)))
    } else {
        let fifos = Fifos::new(bundle, "io");
        fifos.create().map_err(|e| create_err(e.to_string()))?;
        let (readers, writers) = fifos.open().map_err(|e| create_err(e.to_string()))?;
        let stdio = ContainerStdio {
            stdin: None,
            stdout: Some(writers.stdout),
            stderr: Some(writers.stderr),
            console_socket: None,
        };
        (Some(log_pump::spawn(readers, writer)), stdio, None)
    };
    let created = i.runtime.create(&i.id, bundle, stdio);
    let created = match created {
        Ok(c) => c,
        Err(e) => {
            // the writers went with the runtime process: the pump ends
            if let Some(p) = pump {
                let _ = p.join();
            }
            return Err(create_err(e.to_string()));
        }
    };
    if let Some((l, mut writer)) = console {
        let got = crate::exec::receive_master(&l);
        if let Ok(addr) = l.local_addr() {
            if let Some(p) = addr.as_pathname() {
                let _ = fs::remove_file(p);
            }
        }
        match got {
            Ok(master) => {
                pump = Some(std::thread::spawn(move || {
                    log_pump::pump_terminal(fs::File::from(master), &mut writer).map(|()| writer)
                }));
            }
            Err(e) => {
                let _ = i.runtime.delete(&i.id, true);
                let _ =
                    oci_runtime::wait_exit(&created.pidfd, Some(std::time::Duration::from_secs(5)));
                return Err(create_err(format!("the container's terminal: {e}")));
            }
        }
    }
    let st = (i.network_ready)()
        .map_err(|e| format!("the pod network: {e}"))
        .and_then(|()| i.runtime.start(&i.id).map_err(|e| e.to_string()));
    if let Err(e) = st {
        let _ = i.runtime.delete(&i.id, true);
        let _ = oci_runtime::wait_exit(&created.pidfd, Some(std::time::Duration::from_secs(5)));
        if let Some(p) = pump {
            let _ = p.join();
        }
        return Err(create_err(e));
    }
    Ok(Live {
        id: i.id.clone(),
        pid: created.pid,
        start_ticks: crate::exits::start_ticks(created.pid).unwrap_or(0),
        pidfd: created.pidfd,
        pump,
        log,
        termination_log,
        stop_signal: built.stop_signal,
        started_at: Timestamp::now(),
        signaled: false,
        killed: false,
    })
}

/// Collects an exited instance: its exit status (reaped through the
/// pidfd), OOM kill, termination message; then removes the instance.
/// None while it still runs.
pub fn collect(
    live: &mut Live,
    c: &Container,
    runtime: &OciRuntime,
    store: &Store,
    dirs: &PodDirs,
) -> Option<Terminated> {
    let mut unknown = false;
    let exit = match oci_runtime::try_reap(&live.pidfd) {
        Ok(Some(e)) => e,
        Ok(None) => return None,
        // not our child (adopted from a supervisor that died): the zombie,
        // the pidfd or the agent's exit file tell, else nobody can
        Err(_) => {
            let exits = crate::exits::dir_of(dirs);
            let wait = std::time::Duration::from_secs(1);
            match crate::exits::status_of(&live.pidfd, live.pid, live.start_ticks, &exits, wait) {
                Some(e) => e,
                None => {
                    unknown = true;
                    Exit::Signal(libc::SIGKILL)
                }
            }
        }
    };
    let finished_at = Timestamp::now();
    let oom_killed = runtime
        .state(&live.id)
        .map(|s| s.oom_killed)
        .unwrap_or(false);
    // every process of the container has gone with its init (own pid
    // namespace), so the pump reaches end of file
    if let Some(p) = live.pump.take() {
        let _ = p.join();
    }
    let fallback = c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
    let message = crate::podfiles::termination_message(
        &live.termination_log,
        fallback,
        exit.code(),
        &live.log,
    );
    remove(
        runtime,
        store,
        &live.id,
        &dirs.container_dir(&live.id),
        &dirs.bundle(&live.id),
    );
    Some(Terminated {
        exit_code: exit.code(),
        oom_killed,
        started_at: Some(live.started_at),
        finished_at,
        message: if unknown {
            Some(crate::exits::UNKNOWN_MESSAGE.into())
        } else {
            (!message.is_empty()).then_some(message)
        },
        container_id: Some(format!("krun://{}", live.id)),
        status_unknown: unknown,
    })
}

/// Removes an instance whatever state it is in: runtime container,
/// rootfs mount and writable layer, bundle. Returns what it could not.
pub fn remove(
    runtime: &OciRuntime,
    store: &Store,
    id: &str,
    cdir: &Path,
    bundle: &Path,
) -> Vec<String> {
    let mut left = Vec::new();
    if runtime.root.join(id).exists() {
        if let Err(e) = runtime.delete(id, true) {
            left.push(format!("container {id}: {e}"));
        }
    }
    if cdir.exists() {
        if let Err(e) = krun_images::rootfs::unmount(store, id, cdir, &cdir.join("rootfs")) {
            left.push(format!("rootfs of {id}: {e}"));
        }
        if let Err(e) = fs::remove_dir_all(cdir) {
            left.push(format!("{}: {e}", cdir.display()));
        }
    }
    match fs::remove_dir_all(bundle) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            left.push(format!("{}: {e}", bundle.display()))
        }
        _ => {}
    }
    left
}
