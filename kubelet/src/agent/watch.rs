//! The agent's watch over every pod supervisor of the node (static pods
//! and `krun apply` pods alike): a pidfd per supervisor, so a death is
//! seen at once and a new supervisor is spawned to take the pod over
//! (see [`crate::supervisor::adopt`]); back-off when one keeps dying.
//!
//! The agent is a child subreaper: when a supervisor it spawned dies, the
//! container inits reparent to it. It reaps them and writes their exit
//! statuses as exit files for the new supervisor ([`crate::exits`]). For
//! supervisors it did not spawn, it holds pidfds on the live inits from
//! the moment their supervisor died until the new one has them, so the
//! kernel keeps the status of one that ends in between.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::node::Node;
use crate::oci_runtime;
use crate::podstate::{self, PodDirs, POD_FILE};
use crate::supervisor::adopt::Instance;

/// A supervisor that lived shorter than this died "at once": the next
/// re-spawn waits (1 s doubling to 60 s).
const STABLE: Duration = Duration::from_secs(10);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A pod with no supervisor must stay so this long before one is
/// spawned (its own may be starting: `krun apply` saves pod.json first).
const ORPHAN_GRACE: Duration = Duration::from_secs(2);
/// How long the agent holds the inits of a pod whose supervisor died.
const GAP_HOLD: Duration = Duration::from_secs(30);

pub struct Watched {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub since: Instant,
    pub name: String,
}

struct GapInit {
    pid: i32,
    start: u64,
    pidfd: OwnedFd,
    until: Instant,
}

#[derive(Default)]
pub struct Watcher {
    pub watched: HashMap<String, Watched>,
    /// Pods seen without a live supervisor, since when.
    orphans: HashMap<String, Instant>,
    /// Re-spawn back-off: (next delay, not before).
    backoff: HashMap<String, (Duration, Instant)>,
    /// Supervisors this agent spawned (its children).
    children: HashSet<i32>,
    gap: Vec<GapInit>,
}

/// What the watcher did, one line each, and whether pods came or went.
#[derive(Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub pods_gone: bool,
}

/// The pid of a live `krun supervise UID` from its pid file.
fn live_supervisor(dirs: &PodDirs) -> Option<(i32, OwnedFd)> {
    let pid: i32 = fs::read_to_string(dirs.pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let fd = oci_runtime::pidfd_open(pid).ok()?;
    // checked after the pidfd is held: it is about that process
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let ok = args.get(1) == Some(&crate::pods::SUPERVISE.as_bytes())
        && args.get(2) == Some(&dirs.uid.as_bytes());
    (ok && crate::exits::state(pid) != Some('Z')).then_some((pid, fd))
}

fn pod_name(dirs: &PodDirs) -> String {
    podstate::load_desired(&dirs.pod_file())
        .ok()
        .flatten()
        .and_then(|d| d.pod.metadata.name)
        .unwrap_or_else(|| dirs.uid.clone())
}

impl Watcher {
    /// Records a supervisor the agent just spawned.
    pub fn add_child(&mut self, uid: &str, name: &str, pid: i32) {
        self.children.insert(pid);
        self.orphans.remove(uid);
        // our unreaped child: its pid cannot be reused before we reap it
        if let Ok(fd) = oci_runtime::pidfd_open(pid) {
            self.watched.insert(
                uid.to_string(),
                Watched {
                    pid,
                    pidfd: fd,
                    since: Instant::now(),
                    name: name.to_string(),
                },
            );
        }
    }

    /// Looks at every pod of the node: starts watching supervisors it did
    /// not know, spawns one for a pod that has none, forgets pods gone.
    pub fn scan(&mut self, node: &Node, rep: &mut Report) {
        let dir = node.paths.pods_dir();
        let uids: Vec<String> = fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|u| podstate::check_uid(u).is_ok())
                    .filter(|u| dir.join(u).join(POD_FILE).exists())
                    .collect()
            })
            .unwrap_or_default();
        let before = self.watched.len();
        self.watched.retain(|u, _| uids.contains(u));
        if self.watched.len() != before {
            rep.pods_gone = true;
        }
        self.orphans.retain(|u, _| uids.contains(u));
        let now = Instant::now();
        for uid in uids {
            if self.watched.contains_key(&uid) {
                continue;
            }
            let Some(dirs) = dirs_of(node, &uid) else {
                continue;
            };
            if let Some((pid, pidfd)) = live_supervisor(&dirs) {
                let name = pod_name(&dirs);
                rep.lines
                    .push(format!("watching pod/{name} (supervisor {pid})"));
                self.orphans.remove(&uid);
                self.watched.insert(
                    uid,
                    Watched {
                        pid,
                        pidfd,
                        since: now,
                        name,
                    },
                );
                continue;
            }
            let first = *self.orphans.entry(uid.clone()).or_insert(now);
            let young = fs::metadata(dirs.pod_file())
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_none_or(|a| a < ORPHAN_GRACE);
            if now.duration_since(first) >= ORPHAN_GRACE && !young {
                self.respawn(node, &dirs, "has no supervisor", rep);
            }
        }
    }

    /// A supervisor's pidfd polled readable: it exited.
    pub fn exited(&mut self, node: &Node, uid: &str, rep: &mut Report) {
        let Some(w) = self.watched.remove(uid) else {
            return;
        };
        let Some(dirs) = dirs_of(node, uid).filter(|d| d.pod_file().exists()) else {
            // it finished deleting the pod
            rep.pods_gone = true;
            return;
        };
        if w.since.elapsed() >= STABLE {
            self.backoff.remove(uid);
        }
        self.hold_inits(&dirs);
        let why = format!("lost its supervisor (pid {})", w.pid);
        self.respawn(node, &dirs, &why, rep);
    }

    fn respawn(&mut self, node: &Node, dirs: &PodDirs, why: &str, rep: &mut Report) {
        let uid = dirs.uid.clone();
        let now = Instant::now();
        let name = pod_name(dirs);
        if let Some((_, not_before)) = self.backoff.get(&uid) {
            if now < *not_before {
                return;
            }
        }
        let delay = self
            .backoff
            .get(&uid)
            .map_or(Duration::from_secs(1), |(d, _)| (*d * 2).min(MAX_DELAY));
        self.backoff.insert(uid.clone(), (delay, now + delay));
        match crate::pods::respawn(node, dirs) {
            Ok((child, _ready)) => {
                let pid = child.id() as i32;
                rep.lines.push(format!(
                    "pod/{name} {why}: started supervisor {pid} to take it over"
                ));
                self.add_child(&uid, &name, pid);
            }
            Err(e) => rep
                .lines
                .push(format!("pod/{name} {why}: re-spawning its supervisor: {e}")),
        }
    }

    /// Holds pidfds on the pod's live inits while it has no supervisor.
    fn hold_inits(&mut self, dirs: &PodDirs) {
        let bundles = dirs.run.join("bundles");
        let Ok(rd) = fs::read_dir(&bundles) else {
            return;
        };
        for e in rd.flatten() {
            let Some(inst) = fs::read(e.path().join("instance.json"))
                .ok()
                .and_then(|d| serde_json::from_slice::<Instance>(&d).ok())
            else {
                continue;
            };
            if self.children.contains(&inst.pid) || self.gap.iter().any(|g| g.pid == inst.pid) {
                continue;
            }
            let Ok(fd) = oci_runtime::pidfd_open(inst.pid) else {
                continue;
            };
            if crate::exits::start_ticks(inst.pid) == Some(inst.start_ticks) {
                self.gap.push(GapInit {
                    pid: inst.pid,
                    start: inst.start_ticks,
                    pidfd: fd,
                    until: Instant::now() + GAP_HOLD,
                });
            }
        }
    }

    /// Writes the exit files of held inits that ended and were reaped
    /// elsewhere; lets go of the others after a while.
    pub fn tend_gap(&mut self, exits: &Path) {
        let now = Instant::now();
        self.gap.retain(|g| {
            if let Some(s) = crate::exits::pidfd_status(&g.pidfd) {
                let _ = crate::exits::write(exits, g.pid, g.start, s);
                return false;
            }
            now < g.until
        });
    }

    /// Reaps every exited child: supervisors it spawned, and container
    /// inits (or pause processes) orphaned to it, whose statuses become
    /// exit files.
    pub fn reap(&mut self, exits: &Path) {
        while let Some(pid) = crate::exits::exited_child() {
            // read while it is a zombie: with the pid it names the process
            let start = crate::exits::start_ticks(pid);
            let mut status = 0;
            // SAFETY: reaps that one child, which has exited.
            unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if self.children.remove(&pid) {
                continue;
            }
            if let Some(start) = start {
                let _ = crate::exits::write(exits, pid, start, status);
            }
        }
    }

    /// The pidfds to poll, by pod uid.
    pub fn pidfds(&self) -> impl Iterator<Item = (&String, &OwnedFd)> {
        self.watched.iter().map(|(u, w)| (u, &w.pidfd))
    }
}

fn dirs_of(node: &Node, uid: &str) -> Option<PodDirs> {
    let d = podstate::load_desired(&node.paths.pods_dir().join(uid).join(POD_FILE))
        .ok()
        .flatten()?;
    PodDirs::new(&node.paths, &d.pod).ok()
}
