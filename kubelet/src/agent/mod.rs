//! The node agent, `krun kubelet --manifests DIR`: runs the static pods of
//! a manifest directory as the kubelet does, and keeps every pod
//! supervisor of the node alive.
//!
//! - The directory is watched with inotify and listed again every 20 s
//!   ([`manifests`] says which files count and how a file being written
//!   is handled). A new file starts its pods, a changed one recreates its
//!   pods (the old ones deleted gracefully first, then the new), a
//!   removed one deletes its pods. A file that fails to load is reported
//!   and its pods are left alone.
//! - Pods of the directory are the agent's (annotation
//!   `kubernetes.io/config.source: file`, source file in the directory);
//!   others (`krun apply`) are never deleted by it, but their supervisors
//!   are watched like the rest ([`watch`]).
//! - Pods outlive the agent: it runs in the foreground, and on SIGTERM or
//!   SIGINT stops without touching them. Started again, it finds each
//!   pod's supervisor and watches it; static pods whose manifest did not
//!   change keep their UID, so nothing is restarted.
//!
//! The main loop is single-threaded (poll over a signalfd, the inotify fd,
//! the supervisors' pidfds and readiness pipes). A deletion blocks until
//! the pod is gone, so each runs on a thread of its own and reports back
//! through a channel and a wake-up pipe.

pub mod inotify;
pub mod manifests;
pub mod watch;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crate::node::{Node, NodePaths};
use crate::podstate::{self, DesiredPod, KnownPod};
use crate::supervisor::control::{self, Wait};

/// How often the directory is listed again whatever inotify says.
pub const RELIST: Duration = Duration::from_secs(20);
/// How often supervisors are looked for (a pod started by `krun apply`,
/// one that lost its supervisor while the agent was down).
const SCAN: Duration = Duration::from_secs(1);
/// Events on the directory come in bursts: act once they pause.
const DEBOUNCE: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{step}: {source}")]
    Sys {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("--manifests {0}: not a directory")]
    NotADirectory(PathBuf),
}

fn sys(step: &'static str) -> impl FnOnce(std::io::Error) -> AgentError {
    move |source| AgentError::Sys { step, source }
}

/// What `krun kubelet` was asked.
#[derive(Debug, Clone)]
pub struct Config {
    pub manifests: PathBuf,
    /// Overrides `KRUN_NODE_NAME` and the host name.
    pub node_name: Option<String>,
    pub paths: NodePaths,
}

/// One line per action, on stderr (the journal under systemd).
fn say(line: impl AsRef<str>) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "krun kubelet: {}", line.as_ref());
}

struct Agent {
    node: Node,
    dir: manifests::ManifestDir,
    watcher: watch::Watcher,
    /// Deletions in flight, by pod uid: the pod's name.
    deleting: HashMap<String, String>,
    done_tx: mpsc::Sender<(String, String, Result<Vec<String>, String>)>,
    done_rx: mpsc::Receiver<(String, String, Result<Vec<String>, String>)>,
    wake_w: OwnedFd,
    /// Readiness pipes of pods the agent started: (pod name, read end).
    ready: Vec<(String, File)>,
    /// Things already said once (conflicts, waits), so relists stay quiet.
    said: HashSet<String>,
    exits: PathBuf,
}

/// Runs the agent until SIGTERM or SIGINT.
pub fn run(cfg: Config) -> Result<(), AgentError> {
    // before any thread: every thread inherits the mask
    let mut sigfd = control::signals().map_err(|e| AgentError::Sys {
        step: "block termination signals",
        source: e.into(),
    })?;
    crate::oci_runtime::become_subreaper().map_err(|e| AgentError::Sys {
        step: "become child subreaper",
        source: std::io::Error::other(e.to_string()),
    })?;
    let dir = std::path::absolute(&cfg.manifests).map_err(sys("resolve --manifests"))?;
    if dir.exists() && !dir.is_dir() {
        return Err(AgentError::NotADirectory(dir));
    }
    let mut node = Node::new(cfg.paths);
    if let Some(n) = cfg.node_name.filter(|n| !n.is_empty()) {
        node.name = n;
    }
    let ino = inotify::Inotify::new().map_err(sys("inotify_init1"))?;
    let mut watching = ino.watch(&dir).is_ok();
    let (wake_r, wake_w) = nix::unistd::pipe2(
        nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK,
    )
    .map_err(|e| AgentError::Sys {
        step: "make the wake-up pipe",
        source: e.into(),
    })?;
    let (done_tx, done_rx) = mpsc::channel();
    let exits = crate::exits::dir(&node.paths);
    let mut a = Agent {
        dir: manifests::ManifestDir::new(dir.clone()),
        watcher: watch::Watcher::default(),
        deleting: HashMap::new(),
        done_tx,
        done_rx,
        wake_w,
        ready: Vec::new(),
        said: HashSet::new(),
        exits,
        node,
    };
    say(format!(
        "node {}, static pods from {}",
        a.node.name,
        dir.display()
    ));
    // first the pods already there (their supervisors), then the files
    a.scan();
    let mut settled: HashSet<String> = HashSet::new();
    let mut again = a.refresh(&settled).map(|d| Instant::now() + d);
    let mut next_relist = Instant::now() + RELIST;
    let mut next_scan = Instant::now() + SCAN;
    let mut pending: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let mut wake = next_relist.min(next_scan);
        for t in [pending, again].into_iter().flatten() {
            wake = wake.min(t);
        }
        let timeout = wake
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        let (sig, ev, woke, exited, ready) = {
            let mut w = Wait::new();
            let si = w.add(&sigfd);
            let ii = w.add(&ino);
            let wi = w.add(&wake_r);
            let sups: Vec<(String, usize)> = a
                .watcher
                .pidfds()
                .map(|(u, fd)| (u.clone(), w.add(fd)))
                .collect();
            let rd: Vec<usize> = a.ready.iter().map(|(_, f)| w.add(f)).collect();
            let r = w.poll(timeout).map_err(sys("poll"))?;
            let exited: Vec<String> = sups
                .into_iter()
                .filter(|(_, i)| r[*i])
                .map(|(u, _)| u)
                .collect();
            let ready: Vec<usize> = rd
                .into_iter()
                .enumerate()
                .filter(|(_, i)| r[*i])
                .map(|(k, _)| k)
                .collect();
            (r[si], r[ii], r[wi], exited, ready)
        };
        if sig {
            let got = control::drain_signals(&mut sigfd);
            if got.child {
                a.watcher.reap(&a.exits);
            }
            if got.terminate {
                say("stopping; the pods keep running");
                return Ok(());
            }
        }
        if ev {
            for e in ino.read() {
                if e.lost_watch() {
                    watching = false;
                }
                if let Some(n) = e.name.filter(|n| crate::identity::is_manifest_file(n)) {
                    if e.mask & (libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE) != 0 {
                        settled.insert(n);
                    } else if e.mask & (libc::IN_MODIFY | libc::IN_CREATE) != 0 {
                        settled.remove(&n);
                    }
                }
                pending = Some(Instant::now() + DEBOUNCE);
            }
        }
        for k in ready.into_iter().rev() {
            let (name, f) = a.ready.remove(k);
            let mut line = String::new();
            let _ = BufReader::new(f).read_line(&mut line);
            match serde_json::from_str::<crate::supervisor::ReadyReport>(line.trim()) {
                Ok(r) if r.ok => say(format!("pod/{name} is {}", r.message)),
                Ok(r) => say(format!("pod/{name} is not running: {}", r.message)),
                Err(_) => {}
            }
        }
        let mut changed = false;
        if woke {
            let mut b = [0u8; 64];
            let _ = nix::unistd::read(&wake_r, &mut b);
            changed |= a.deletions_done();
        }
        if !exited.is_empty() {
            let mut rep = watch::Report::default();
            for u in exited {
                a.watcher.exited(&a.node, &u, &mut rep);
            }
            changed |= a.report(rep);
        }
        let now = Instant::now();
        if now >= next_scan {
            next_scan = now + SCAN;
            changed |= a.scan();
            a.watcher.tend_gap(&a.exits);
        }
        let relist = now >= next_relist;
        if relist || pending.is_some_and(|t| now >= t) || again.is_some_and(|t| now >= t) {
            if relist {
                next_relist = now + RELIST;
                crate::exits::gc(&a.exits, Duration::from_secs(600));
                if !watching {
                    watching = ino.watch(&dir).is_ok();
                }
            }
            pending = None;
            again = a.refresh(&settled).map(|d| Instant::now() + d);
            settled.clear();
        } else if changed {
            a.reconcile();
        }
    }
}

/// Asks the pod's supervisor to delete it and waits until it is gone.
/// Never removes anything itself: that would run processes from this
/// thread, which the agent's reaper (it reaps every child, container
/// inits orphaned to it among them) could reap before their waiter. A pod
/// without a live supervisor gets one from the watcher within seconds.
fn delete_through_supervisor(k: &KnownPod) -> Result<Vec<String>, String> {
    let req = control::Request::Delete {
        grace_period_seconds: None,
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if !k.dirs.state.exists() {
            return Ok(Vec::new());
        }
        match control::request(&k.dirs.socket(), &req) {
            Ok(reply) if !reply.leftovers.is_empty() => return Ok(reply.leftovers),
            Ok(_) => {
                // it answers just before it exits, its directories removed
                let gone_by = Instant::now() + Duration::from_secs(10);
                while k.dirs.state.exists() && Instant::now() < gone_by {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return Ok(Vec::new());
            }
            // no supervisor listening (yet), or it died while deleting
            Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(format!("asking its supervisor: {e}")),
        }
    }
}

impl Agent {
    /// Looks for supervisors; true when pods went.
    fn scan(&mut self) -> bool {
        let mut rep = watch::Report::default();
        self.watcher.scan(&self.node, &mut rep);
        self.report(rep)
    }

    fn report(&mut self, rep: watch::Report) -> bool {
        for l in rep.lines {
            say(l);
        }
        rep.pods_gone
    }

    /// Reads the directory again and reconciles; when to look again at
    /// files still being written.
    fn refresh(&mut self, settled: &HashSet<String>) -> Option<Duration> {
        let r = self
            .dir
            .refresh(&self.node.name, SystemTime::now(), settled);
        for n in &r.notes {
            say(n);
        }
        self.reconcile();
        r.again_in
    }

    fn is_ours(&self, k: &KnownPod) -> bool {
        let from_file = k
            .desired
            .pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::identity::CONFIG_SOURCE))
            .is_some_and(|s| s == "file");
        from_file && Path::new(&k.desired.source).parent() == Some(self.dir.path.as_path())
    }

    /// Makes the node's static pods what the directory says.
    fn reconcile(&mut self) {
        let known = match podstate::list(&self.node.paths) {
            Ok(k) => k,
            Err(e) => {
                say(format!("listing the node's pods: {e}"));
                return;
            }
        };
        // the pods of the files, first file (by name) first
        let mut want: Vec<(String, DesiredPod)> = Vec::new();
        let mut names: HashMap<(String, String), String> = HashMap::new();
        let mut notes = Vec::new();
        for (file, st) in &self.dir.files {
            for d in &st.pods {
                let key = (
                    d.pod
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                    d.pod.metadata.name.clone().unwrap_or_default(),
                );
                if let Some(first) = names.get(&key) {
                    notes.push(format!(
                        "{}: pod {}/{} is also in {first}: not started",
                        self.dir.path.join(file).display(),
                        key.0,
                        key.1
                    ));
                    continue;
                }
                names.insert(key, file.clone());
                want.push((file.clone(), d.clone()));
            }
        }
        for n in notes {
            self.say_once(n);
        }
        let uid_of =
            |p: &k8s_openapi::api::core::v1::Pod| p.metadata.uid.clone().unwrap_or_default();
        let wanted: HashSet<String> = want.iter().map(|(_, d)| uid_of(&d.pod)).collect();
        // pods whose file went or changed
        let mut to_delete = Vec::new();
        for k in &known {
            let uid = k.dirs.uid.clone();
            if !self.is_ours(k) || wanted.contains(&uid) || self.deleting.contains_key(&uid) {
                continue;
            }
            let file = Path::new(&k.desired.source);
            let why = match file.file_name().and_then(|n| n.to_str()) {
                Some(n) if self.dir.files.contains_key(n) => "changed",
                _ => "removed",
            };
            say(format!(
                "deleting pod/{} (its manifest {} was {why})",
                k.name(),
                file.display()
            ));
            to_delete.push(k.clone());
        }
        for k in to_delete {
            self.delete(k);
        }
        // pods to start
        let mut starts: Vec<DesiredPod> = Vec::new();
        for (file, d) in &want {
            let uid = uid_of(&d.pod);
            if known.iter().any(|k| k.dirs.uid == uid) {
                continue;
            }
            let name = d.pod.metadata.name.clone().unwrap_or_default();
            let ns = d
                .pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            let same_name = known
                .iter()
                .find(|k| k.name() == name && k.namespace() == ns);
            match same_name {
                Some(k) if self.is_ours(k) => {
                    // its old version is still being deleted: next round
                    continue;
                }
                Some(_) => {
                    self.say_once(format!(
                        "{}: pod {ns}/{name} not started: a pod of that name exists that is not from the manifest directory",
                        self.dir.path.join(file).display()
                    ));
                    continue;
                }
                None => starts.push(d.clone()),
            }
        }
        for d in starts {
            self.start(&d);
        }
    }

    fn say_once(&mut self, line: String) {
        if self.said.insert(line.clone()) {
            say(line);
        }
    }

    fn start(&mut self, d: &DesiredPod) {
        let name = d.pod.metadata.name.clone().unwrap_or_default();
        // creationTimestamp is when this pod is made, not when the file was read
        let mut d = d.clone();
        d.pod.metadata.creation_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        match crate::pods::launch(&self.node, &d) {
            Ok(mut l) => {
                let pid = l.child.id() as i32;
                say(format!(
                    "starting pod/{name} from {} (supervisor {pid})",
                    d.source
                ));
                self.watcher.add_child(&l.dirs.uid, &name, pid);
                if let Some(r) = l.take_ready() {
                    self.ready.push((name, r));
                }
            }
            Err(e) => say(format!("starting pod/{name} from {}: {e}", d.source)),
        }
    }

    fn delete(&mut self, k: KnownPod) {
        let uid = k.dirs.uid.clone();
        let name = k.name().to_string();
        self.deleting.insert(uid.clone(), name.clone());
        let tx = self.done_tx.clone();
        let wake = self.wake_w.try_clone();
        std::thread::spawn(move || {
            let r = delete_through_supervisor(&k);
            let _ = tx.send((uid, name, r));
            if let Ok(w) = wake {
                let _ = File::from(w).write_all(b"x");
            }
        });
    }

    /// Reports finished deletions; true when any finished.
    fn deletions_done(&mut self) -> bool {
        let mut any = false;
        while let Ok((uid, name, r)) = self.done_rx.try_recv() {
            any = true;
            self.deleting.remove(&uid);
            match r {
                Ok(left) if left.is_empty() => say(format!("pod/{name} deleted")),
                Ok(left) => say(format!(
                    "pod/{name} deleted, but left behind (its supervisor retries): {}",
                    left.join("; ")
                )),
                Err(e) => say(format!("deleting pod/{name}: {e}")),
            }
        }
        any
    }
}
