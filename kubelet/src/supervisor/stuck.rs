//! Deleting a pod that resists: containers that do not die at SIGKILL,
//! and things that cannot be removed.
//!
//! A frozen cgroup (the v1 freezer or v2 cgroup.freeze, set by anyone,
//! at the container's level or the pod's) keeps its processes in D state
//! with SIGKILL pending until thawed. At the end of the grace period the
//! pod's cgroups are thawed from the top in every hierarchy and, on v2,
//! killed whole with cgroup.kill. A process still there [`KILL_WAIT`]
//! later is truly stuck (uninterruptible I/O): the deletion goes on
//! without it, says what is left, and keeps trying with back-off until
//! everything is gone; the pod stays listed as Terminating meanwhile.

use std::fs;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use nix::sys::signalfd::SignalFd;

use super::container::pod_cgroup;
use super::control::{self, DeleteReply, Request};
use super::Supervisor;
use crate::events::{Event, EventType};

/// How long after SIGKILL a container may take to die before the
/// deletion goes on without it.
pub const KILL_WAIT: Duration = Duration::from_secs(10);
/// The longest pause between two attempts at what is left.
const RETRY_MAX: Duration = Duration::from_secs(60);

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The pod's cgroup directory and every one below it, parents first.
fn tree(top: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![top.to_path_buf()];
    while let Some(d) = todo.pop() {
        if !d.is_dir() {
            continue;
        }
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push(e.path());
                }
            }
        }
        out.push(d);
    }
    out
}

/// The places a pod's cgroup may be: the v2 root (pure v2) and each
/// mounted hierarchy under it (v1 controllers, `unified` on a hybrid
/// host).
fn pod_dirs(uid: &str) -> Vec<PathBuf> {
    let rel = pod_cgroup(uid);
    let rel = rel.trim_start_matches('/');
    let root = Path::new(CGROUP_ROOT);
    let mut v = vec![root.join(rel)];
    if let Ok(rd) = fs::read_dir(root) {
        v.extend(rd.flatten().map(|e| e.path().join(rel)));
    }
    v.into_iter().filter(|p| p.is_dir()).collect()
}

/// Thaws every frozen cgroup of the pod (parents first, since a child
/// stays frozen under a frozen parent) and kills what is in it on v2; with
/// `container`, only that container's cgroup (the rest of the pod runs on).
pub fn thaw_and_kill(uid: &str, container: Option<&str>) {
    let tops = pod_dirs(uid)
        .into_iter()
        .map(|d| container.map_or(d.clone(), |c| d.join(c)))
        .filter(|d| d.is_dir());
    for top in tops {
        for d in tree(&top) {
            let v1 = d.join("freezer.state");
            if v1.exists() {
                let _ = fs::write(&v1, "THAWED");
            }
            let v2 = d.join("cgroup.freeze");
            if v2.exists() {
                let _ = fs::write(&v2, "0");
            }
        }
        // v2 (5.14+): SIGKILL to every process below, frozen or not
        let kill = top.join("cgroup.kill");
        if kill.exists() {
            let _ = fs::write(&kill, "1");
        }
    }
}

/// What a still-live container init is doing, for the report.
fn describe(pid: i32) -> String {
    match crate::exits::state(pid) {
        Some('D') => "in uninterruptible sleep (D)".to_string(),
        Some(c) => format!("in state {c}"),
        None => "gone".to_string(),
    }
}

/// The containers that outlived SIGKILL by [`KILL_WAIT`], each named.
pub(super) fn survivors(sup: &Supervisor) -> Vec<String> {
    sup.slots
        .iter()
        .filter_map(|s| {
            let l = s.live.as_ref()?;
            // gone (or a zombie) is not stuck: the next collect sees it
            crate::exits::state(l.pid).filter(|c| *c != 'Z')?;
            Some(format!(
                "container {} (pid {}) did not exit after SIGKILL: {}",
                s.container.name,
                l.pid,
                describe(l.pid)
            ))
        })
        .collect()
}

/// True once the deletion should stop waiting for containers.
pub(super) fn gave_up(sup: &Supervisor) -> bool {
    sup.deleting
        .as_ref()
        .is_some_and(|d| Instant::now() >= d.deadline + KILL_WAIT)
        && sup.slots.iter().any(|s| s.live.is_some())
}

/// Keeps removing what is left with back-off until nothing is, answering
/// delete requests with what is left meanwhile. Returns once the pod is
/// gone (or on a second termination signal with nothing to report).
pub(super) fn retry(
    sup: &mut Supervisor,
    listener: &UnixListener,
    sigfd: &mut SignalFd,
    mut left: Vec<String>,
) {
    let mut delay = FIRST_RETRY;
    loop {
        let until = Instant::now() + delay;
        loop {
            let wait = until.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break;
            }
            let (sig, sock) = {
                let mut w = control::Wait::new();
                let si = w.add(sigfd);
                let so = w.add(listener);
                match w.poll(wait) {
                    Ok(r) => (r[si], r[so]),
                    Err(_) => (false, false),
                }
            };
            if sig {
                // a termination signal changes nothing: the pod is going
                let _ = control::drain_signals(sigfd);
            }
            if sock {
                for (stream, req) in control::accept(listener) {
                    match req {
                        Request::Delete { .. } => control::reply(
                            stream,
                            &DeleteReply {
                                leftovers: left.clone(),
                            },
                        ),
                    }
                }
            }
        }
        // collect the containers that died meanwhile, push the rest again
        for k in 0..sup.slots.len() {
            if sup.slots[k].live.is_some() {
                sup.collect(k);
            }
        }
        thaw_and_kill(&sup.dirs.uid, None);
        left = sup.remove_all();
        left.extend(survivors(sup));
        if left.is_empty() {
            eprintln!(
                "krun supervisor {}: everything of the pod is gone now",
                sup.dirs.uid
            );
            return;
        }
        delay = (delay * 2).min(RETRY_MAX);
        note(sup, &left, Some(delay));
    }
}

const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Says what is left (a Warning event, the status file) before the next
/// attempt; the first time before the delete is answered, so whoever
/// asked sees it at once.
pub(super) fn note(sup: &mut Supervisor, left: &[String], delay: Option<Duration>) {
    let delay = delay.unwrap_or(FIRST_RETRY);
    let msg = format!(
        "error killing pod: could not remove everything (retrying in {}s): {}",
        delay.as_secs(),
        left.join("; ")
    );
    eprintln!("krun supervisor {}: {msg}", sup.dirs.uid);
    sup.events.push(Event {
        time: Timestamp::now(),
        type_: EventType::Warning,
        reason: "FailedKillPod".into(),
        from: "kubelet".into(),
        message: msg,
    });
    sup.publish();
}
