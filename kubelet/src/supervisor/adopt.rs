//! A re-spawned supervisor takes over the pod of one that died, without
//! restarting or duplicating a container.
//!
//! What the dead supervisor held, and how each survives or is made again:
//!
//! - its records (restart counts, last states, events, back-off, start
//!   time): `status.json`, rewritten on every change;
//! - each live container instance: `instance.json` in the instance's
//!   bundle, written as soon as it started (pid, start time, stop signal,
//!   restart index). An instance is adopted only if it is still that
//!   process (a pidfd on the pid whose start time matches) and the
//!   runtime's state names the same pid. Bundles without it were half
//!   made and are removed; instances that ended meanwhile are collected
//!   with the status their reaper left (see [`crate::exits`]);
//! - the containers' stdout/stderr: their FIFO ends are read-write (see
//!   [`crate::log_pump`]), so nothing is lost or killed while no one
//!   reads; the read side is opened again and pumped into the same
//!   `<restart>.log`;
//! - the exit statuses of inits it is no longer the parent of:
//!   [`crate::exits`];
//! - the sandbox (namespaces, shm, network attachment) is on disk and is
//!   taken as it is; the pause process by its pid file;
//! - the control socket is bound again; a deletion in progress goes on
//!   with what is left of its grace period;
//! - the readiness pipe of `apply -d` died with it: the waiter falls back
//!   to the status file (see [`crate::pods::Launched::wait_ready`]).
//!
//! A lock held for the supervisor's life keeps two from running one pod.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::container::{self, Live};
use super::{Slot, Supervisor};
use crate::lifecycle::Target;
use crate::log_pump::Fifos;
use crate::logs::{LogWriter, Rotation};
use crate::pause::Pause;
use crate::podstate::{self, PodDirs, SlotState, StatusFile};
use crate::sandbox;
use crate::spec::{Ns, PodFiles};
use crate::status::{State, Terminated};

const INSTANCE_FILE: &str = "instance.json";
const LOCK_FILE: &str = "supervisor.lock";
const DEADLINE_FILE: &str = "delete-deadline";

/// What a supervisor needs to take over a running container instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub container: String,
    /// The instance's number (the last part of its runtime id).
    pub attempt: u32,
    pub pid: i32,
    pub start_ticks: u64,
    pub stop_signal: i32,
    /// The restart count it runs as (names its log file).
    pub restart: u32,
    pub started_at: Timestamp,
}

/// Takes the pod's supervisor lock (held until the process ends); an
/// error when another live supervisor holds it.
pub fn lock(dirs: &PodDirs) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(dirs.run.join(LOCK_FILE))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("another supervisor runs pod {}", dirs.uid),
            ));
        }
        return Err(e);
    }
    Ok(f)
}

/// Records a started instance in its bundle.
pub(super) fn save_instance(dirs: &PodDirs, slot: &Slot) {
    let Some(live) = &slot.live else { return };
    let inst = Instance {
        container: slot.container.name.clone(),
        attempt: slot.attempts.saturating_sub(1),
        pid: live.pid,
        start_ticks: live.start_ticks,
        stop_signal: live.stop_signal,
        restart: slot.record.restart_count.max(0) as u32,
        started_at: live.started_at,
    };
    let path = dirs.bundle(&live.id).join(INSTANCE_FILE);
    let written = serde_json::to_vec(&inst)
        .map_err(|e| e.to_string())
        .and_then(|d| podstate::write_atomic(&path, &d, false).map_err(|e| e.to_string()));
    if let Err(e) = written {
        eprintln!("krun supervisor {}: {e}", dirs.uid);
    }
}

/// Records when a deletion's grace period ends, so a re-spawned
/// supervisor keeps to it.
pub(super) fn save_deadline(dirs: &PodDirs, after: Duration) {
    let at = Timestamp::now().as_second() + after.as_secs() as i64;
    let _ = fs::write(dirs.run.join(DEADLINE_FILE), format!("{at}\n"));
}

fn read_instance(bundle: &Path) -> Option<Instance> {
    serde_json::from_slice(&fs::read(bundle.join(INSTANCE_FILE)).ok()?).ok()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Takes over from the supervisor that ran the pod before, if one did
/// (a status file is there). False for a new pod.
pub(super) fn restore(sup: &mut Supervisor) -> bool {
    let prev = match podstate::load_status(&sup.dirs) {
        Ok(Some(p)) => p,
        Ok(None) => return false,
        Err(e) => {
            // unreadable: the records are lost, but live containers must
            // still not be started twice
            eprintln!("krun supervisor {}: {e}", sup.dirs.uid);
            adopt_instances(sup);
            return true;
        }
    };
    eprintln!(
        "krun supervisor {}: taking over from supervisor {}",
        sup.dirs.uid, prev.supervisor_pid
    );
    restore_records(sup, &prev);
    restore_sandbox(sup, &prev);
    adopt_instances(sup);
    if prev.deleting {
        let left = fs::read_to_string(sup.dirs.run.join(DEADLINE_FILE))
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .map(|at| (at - Timestamp::now().as_second()).max(0));
        sup.begin_delete(left.or(Some(-1)), None);
    }
    true
}

fn restore_records(sup: &mut Supervisor, prev: &StatusFile) {
    sup.events = prev.events.clone();
    sup.backoff = prev.backoff.clone();
    if let Some(t) = prev.pod.status.as_ref().and_then(|s| s.start_time.as_ref()) {
        sup.start_time = t.0;
    }
    sup.last_status = prev.pod.status.clone();
    let saved = |init: bool| -> &Vec<SlotState> {
        if init {
            &prev.init
        } else {
            &prev.containers
        }
    };
    for s in &mut sup.slots {
        let init = matches!(s.target, Target::Init(_));
        if let Some(st) = saved(init)
            .iter()
            .find(|st| st.record.name == s.container.name)
        {
            s.record = st.record.clone();
            s.attempts = st.attempts;
        }
    }
}

fn restore_sandbox(sup: &mut Supervisor, prev: &StatusFile) {
    let pod = sup.desired.pod.clone();
    let sb = match sandbox::reopen(&sup.node.paths.sandbox_root(), &sup.network, &pod) {
        Ok(Some(sb)) => sb,
        Ok(None) => {
            // no sandbox: the pod completed (its sandbox went), or the
            // old supervisor died before making it
            let phase = prev.pod.status.as_ref().and_then(|s| s.phase.as_deref());
            sup.completed = matches!(phase, Some("Succeeded" | "Failed"));
            return;
        }
        Err(e) => {
            eprintln!("krun supervisor {}: the pod sandbox: {e}", sup.dirs.uid);
            return;
        }
    };
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network == Some(true);
    if !host_network && sb.ip.is_none() {
        // made only half: make it again
        let _ = sandbox::teardown(&sup.node.paths.sandbox_root(), &sup.network, &sup.dirs.uid);
        return;
    }
    let mut sb = sb;
    if spec.share_process_namespace == Some(true) && spec.host_pid != Some(true) {
        match Pause::adopt(&sup.dirs.pause_pid_file()) {
            Some(p) => {
                sb.pid = Ns::Join(p.namespace());
                sup.pause = Some(p);
            }
            // the namespace's init is gone, and every process with it
            None => match sup.start_pause() {
                Ok(ns) => sb.pid = Ns::Join(ns),
                Err(e) => eprintln!("krun supervisor {}: {e}", sup.dirs.uid),
            },
        }
    }
    let ip = sb.pod_ip().map(|a| a.to_string());
    let dir = sup.dirs.run.join("files");
    let files = PodFiles {
        hosts: dir.join("hosts"),
        resolv_conf: dir.join("resolv.conf"),
        hostname: dir.join("hostname"),
        termination_log: dir.join("termination-log"),
    };
    let files = if files.hosts.exists() && files.resolv_conf.exists() {
        Some(files)
    } else {
        sup.write_pod_files(&sb, ip.as_deref()).ok()
    };
    sup.pod_ip = ip.or_else(|| Some(crate::node::Node::host_ip(&sup.network)));
    sup.pod_files = files;
    sup.sandbox = Some(sb);
}

/// Every container instance of the pod on the node: adopted when it is
/// the live process its instance file names, collected when it ended
/// meanwhile, removed when it was never recorded as started.
fn adopt_instances(sup: &mut Supervisor) {
    let uid = sup.dirs.uid.clone();
    let bundles = sup.dirs.run.join("bundles");
    let mut ids = names_in(&bundles);
    ids.extend(names_in(&sup.dirs.state.join("containers")));
    let prefix = format!("{uid}-");
    ids.extend(
        names_in(&sup.node.runtime.root)
            .into_iter()
            .filter(|n| n.starts_with(&prefix)),
    );
    ids.sort();
    ids.dedup();
    for id in ids {
        let bundle = sup.dirs.bundle(&id);
        let inst = read_instance(&bundle);
        let k = inst.as_ref().and_then(|i| {
            sup.slots
                .iter()
                .position(|s| s.container.name == i.container)
        });
        match (inst, k) {
            (Some(inst), Some(k)) if sup.slots[k].live.is_none() => take(sup, k, &id, &inst),
            _ => {
                eprintln!("krun supervisor {uid}: removing container instance {id} (never recorded as started)");
                remove(sup, &id);
            }
        }
    }
    // a record that says running with no instance left: it ended unseen
    let now = Timestamp::now();
    for s in &mut sup.slots {
        if s.live.is_none() {
            if let State::Running { started_at } = s.record.state.clone() {
                let t = unknown_end(Some(started_at), now, s.record.container_id.clone());
                end_record(s, t);
            }
        }
    }
}

fn remove(sup: &Supervisor, id: &str) {
    let left = container::remove(
        &sup.node.runtime,
        &sup.store,
        id,
        &sup.dirs.container_dir(id),
        &sup.dirs.bundle(id),
    );
    for l in left {
        eprintln!("krun supervisor {}: {l}", sup.dirs.uid);
    }
}

fn unknown_end(started_at: Option<Timestamp>, now: Timestamp, id: Option<String>) -> Terminated {
    Terminated {
        exit_code: 128 + libc::SIGKILL,
        oom_killed: false,
        started_at,
        finished_at: now,
        message: Some(crate::exits::UNKNOWN_MESSAGE.into()),
        container_id: id,
        status_unknown: true,
    }
}

fn end_record(s: &mut Slot, t: Terminated) {
    s.record.state = State::Terminated(t);
    s.record.ready = false;
    s.record.started = false;
}

/// The instance `id` of slot `k`, recorded by `inst`.
fn take(sup: &mut Supervisor, k: usize, id: &str, inst: &Instance) {
    let uid = sup.dirs.uid.clone();
    let runtime_id = format!("krun://{id}");
    let s = &mut sup.slots[k];
    s.attempts = s.attempts.max(inst.attempt + 1);
    if s.record.container_id.as_deref() != Some(runtime_id.as_str()) {
        // started, but the old supervisor died before it said so
        let previous = match &s.record.state {
            State::Terminated(t) => Some(t.clone()),
            _ => s.record.last_terminated.clone(),
        };
        s.record.last_terminated = previous;
        s.record.container_id = Some(runtime_id.clone());
        s.record.restart_count = inst.restart as i32;
        s.record.state = State::Running {
            started_at: inst.started_at,
        };
    }
    match verify(sup, id, inst) {
        Ok(pidfd) => {
            let bundle = sup.dirs.bundle(id);
            let log = crate::logs::container_log(&sup.dirs.logs, &inst.container, inst.restart);
            let fifos = Fifos::new(&bundle, "io");
            let pump = if fifos.stdout.exists() {
                match fifos
                    .open_readers()
                    .map_err(|e| e.to_string())
                    .and_then(|r| {
                        LogWriter::open(&log, Rotation::default())
                            .map(|w| (r, w))
                            .map_err(|e| e.to_string())
                    }) {
                    Ok((r, w)) => Some(crate::log_pump::spawn(r, w)),
                    Err(e) => {
                        eprintln!("krun supervisor {uid}: the logs of {id}: {e}");
                        None
                    }
                }
            } else {
                // a terminal's master went with the old supervisor
                None
            };
            let s = &mut sup.slots[k];
            s.live = Some(Live {
                id: id.to_string(),
                pid: inst.pid,
                start_ticks: inst.start_ticks,
                pidfd,
                pump,
                log,
                termination_log: bundle.join("termination-log"),
                stop_signal: inst.stop_signal,
                started_at: inst.started_at,
                signaled: false,
                killed: false,
            });
            s.record.state = State::Running {
                started_at: inst.started_at,
            };
            s.retry_at = None;
            eprintln!(
                "krun supervisor {uid}: adopted container {} (instance {id}, pid {})",
                inst.container, inst.pid
            );
        }
        Err(why) => {
            // it ended while no supervisor watched: its status, if a reaper kept it
            let exits = crate::exits::dir_of(&sup.dirs);
            let now = Timestamp::now();
            let exit = crate::exits::zombie_status(inst.pid, inst.start_ticks)
                .or_else(|| crate::exits::take(&exits, inst.pid, inst.start_ticks))
                .map(crate::exits::decode);
            eprintln!(
                "krun supervisor {uid}: container {} (instance {id}) is gone ({why}); exit {}",
                inst.container,
                exit.map_or("unknown".to_string(), |e| e.code().to_string())
            );
            let t = match exit {
                Some(e) => {
                    let c = &sup.slots[k].container;
                    let fallback =
                        c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
                    let log =
                        crate::logs::container_log(&sup.dirs.logs, &inst.container, inst.restart);
                    let message = crate::podfiles::termination_message(
                        &sup.dirs.bundle(id).join("termination-log"),
                        fallback,
                        e.code(),
                        &log,
                    );
                    Terminated {
                        exit_code: e.code(),
                        oom_killed: sup.node.runtime.state(id).is_ok_and(|s| s.oom_killed),
                        started_at: Some(inst.started_at),
                        finished_at: now,
                        message: (!message.is_empty()).then_some(message),
                        container_id: Some(runtime_id),
                        status_unknown: false,
                    }
                }
                None => unknown_end(Some(inst.started_at), now, Some(runtime_id)),
            };
            end_record(&mut sup.slots[k], t);
            remove(sup, id);
        }
    }
}

/// A pidfd on the instance's init if it is still the recorded process:
/// same pid and start time, and the runtime's state names that pid.
fn verify(sup: &Supervisor, id: &str, inst: &Instance) -> Result<std::os::fd::OwnedFd, String> {
    // the pidfd first: what is checked after is about the process it holds
    let pidfd = crate::oci_runtime::pidfd_open(inst.pid).map_err(|e| e.to_string())?;
    match crate::exits::start_ticks(inst.pid) {
        Some(t) if t == inst.start_ticks => {}
        _ => return Err(format!("pid {} is another process now", inst.pid)),
    }
    if crate::exits::state(inst.pid) == Some('Z') {
        // exited, not yet reaped: the loop collects it at once
        return Ok(pidfd);
    }
    let st = sup.node.runtime.state(id).map_err(|e| e.to_string())?;
    if st.pid != inst.pid || !matches!(st.status.as_str(), "running" | "paused" | "created") {
        return Err(format!(
            "the runtime reports it {} with pid {}",
            st.status, st.pid
        ));
    }
    Ok(pidfd)
}

/// Where a re-spawned supervisor's instance file lives (for tests).
pub fn instance_file(dirs: &PodDirs, id: &str) -> PathBuf {
    dirs.bundle(id).join(INSTANCE_FILE)
}
