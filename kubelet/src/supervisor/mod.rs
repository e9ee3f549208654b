//! The pod supervisor: one process per pod (`krun` re-executed, detached,
//! child subreaper) that owns the pod from admission to deletion. It makes
//! the sandbox, pulls images, starts containers in the order
//! [`crate::lifecycle::plan`] decides, collects their exits through
//! pidfds, restarts them through the back-off, writes `status.json` on
//! every change, and on a delete request (control socket) or SIGTERM
//! stops everything within the grace period and removes the pod.
//!
//! It never forks: containers are made by running the OCI runtime, the
//! log pumps and image pulls run on threads.

pub mod adopt;
pub(crate) mod container;
pub mod control;
mod health;
mod lean;
mod podsetup;
mod stuck;

use std::fs::File;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use krun_images::{config::RegistriesConf, ImageRecord, NoProgress, PullOptions, Store};
use krun_netplug::Network;

use crate::backoff::{self, Backoff};
use crate::events::{Event, EventLog};
use crate::lifecycle::{self, Target};
use crate::node::{Node, NodePaths};
use crate::pause::Pause;
use crate::podfiles::{self, DnsInputs};
use crate::podstate::{self, DesiredPod, PodDirs, SlotState, StatusFile};
use crate::sandbox::{self, PodSandbox};
use crate::spec::{NodeFacts, Objects, PodFacts, PodFiles};
use crate::status::{self, ContainerRecord, State, Waiting};
use container::Live;
use control::{DeleteReply, Request};

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("{step}: {source}")]
    Sys {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] podstate::StateError),
    #[error("pod {0}: no pod.json (not admitted on this node)")]
    NoPod(String),
    #[error("opening the image store: {0}")]
    Images(#[from] krun_images::Error),
    #[error("opening the node network: {0}")]
    Network(#[from] krun_netplug::Error),
    #[error(transparent)]
    Runtime(#[from] crate::oci_runtime::RuntimeError),
}

fn sys(step: &'static str) -> impl FnOnce(std::io::Error) -> SupervisorError {
    move |source| SupervisorError::Sys { step, source }
}

/// What `krun apply -d` learns on the readiness pipe: one JSON line.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ReadyReport {
    /// The pod is Running (or completed successfully).
    pub ok: bool,
    /// The phase, or why the pod cannot start.
    pub message: String,
}

/// Waiting reasons that mean the pod will not start without a change.
const FAILED_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// When the pod has reached a state `apply -d` reports, the report.
pub fn ready_report(status: &PodStatus) -> Option<ReadyReport> {
    let phase = status.phase.as_deref().unwrap_or("Pending");
    match phase {
        "Running" | "Succeeded" => {
            return Some(ReadyReport {
                ok: true,
                message: phase.into(),
            })
        }
        "Failed" => {}
        _ => {}
    }
    let all = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for s in all {
        let st = s.state.clone().unwrap_or_default();
        if let Some(w) = st.waiting {
            let reason = w.reason.unwrap_or_default();
            if FAILED_REASONS.contains(&reason.as_str()) {
                let msg = w.message.map(|m| format!(": {m}")).unwrap_or_default();
                return Some(ReadyReport {
                    ok: false,
                    message: format!("container {}: {reason}{msg}", s.name),
                });
            }
        }
        if phase == "Failed" {
            if let Some(t) = st.terminated.filter(|t| t.exit_code != 0) {
                return Some(ReadyReport {
                    ok: false,
                    message: format!(
                        "Failed: container {} exited with code {} ({})",
                        s.name,
                        t.exit_code,
                        t.reason.unwrap_or_default()
                    ),
                });
            }
        }
    }
    (phase == "Failed").then(|| ReadyReport {
        ok: false,
        message: "Failed".into(),
    })
}

/// One container of the pod.
struct Slot {
    target: Target,
    container: Container,
    record: ContainerRecord,
    attempts: u32,
    live: Option<Live>,
    /// Do not try to start before this (a failed pull or create).
    retry_at: Option<Timestamp>,
    /// The CrashLoopBackOff already reported for this slot.
    backoff_until: Option<Timestamp>,
    /// Probes, hooks and the stop of the live instance.
    health: health::Health,
}

struct Deletion {
    deadline: Instant,
    /// A delete with no grace period: no preStop, SIGKILL at once.
    forced: bool,
    waiters: Vec<UnixStream>,
    /// When the deletion was asked for (the pod's deletionTimestamp).
    since: Timestamp,
}

struct Supervisor {
    node: Node,
    network: Network,
    store: Store,
    desired: DesiredPod,
    dirs: PodDirs,
    sandbox: Option<PodSandbox>,
    sandbox_retry: Option<Timestamp>,
    /// The pod has completed and its sandbox is gone.
    completed: bool,
    pod_ip: Option<String>,
    pod_files: Option<PodFiles>,
    node_facts: NodeFacts,
    slots: Vec<Slot>,
    backoff: Backoff,
    /// Image pulls and failed creates, keyed by image and container.
    retry_backoff: Backoff,
    events: EventLog,
    deleting: Option<Deletion>,
    start_time: Timestamp,
    last_status: Option<PodStatus>,
    ready: Option<File>,
    tokio: Option<tokio::runtime::Runtime>,
    pull_opts: Option<PullOptions>,
    /// PID 1 of the pod's shared PID namespace (shareProcessNamespace).
    pause: Option<Pause>,
    /// Probe and hook handlers in flight.
    jobs: health::Jobs,
    /// The pod cgroup and volumes.
    setup: podsetup::PodSetup,
}

fn node_facts(name: &str) -> NodeFacts {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    NodeFacts {
        name: name.to_string(),
        cpus,
        memory_bytes,
    }
}

/// Runs the supervisor of pod `uid` until the pod is deleted.
pub fn run(paths: NodePaths, uid: &str) -> Result<(), SupervisorError> {
    lean::one_arena();
    // Before any thread: the signal mask is inherited by every thread.
    let mut sigfd = control::signals().map_err(|e| SupervisorError::Sys {
        step: "block termination signals",
        source: e.into(),
    })?;
    let ready = control::ready_pipe_from_env();
    crate::oci_runtime::become_subreaper()?;
    podstate::check_uid(uid)?;
    let node = Node::new(paths);
    let pod_file = node.paths.pods_dir().join(uid).join(podstate::POD_FILE);
    let desired =
        podstate::load_desired(&pod_file)?.ok_or_else(|| SupervisorError::NoPod(uid.into()))?;
    let dirs = PodDirs::new(&node.paths, &desired.pod)?;
    crate::node::private_dir(&dirs.run).map_err(sys("create the supervisor directory"))?;
    // one supervisor per pod: a re-spawned one waits for no other
    let _lock = adopt::lock(&dirs).map_err(sys("take the supervisor lock"))?;
    std::fs::write(dirs.pid_file(), format!("{}\n", std::process::id()))
        .map_err(sys("write the supervisor pid file"))?;
    let listener = control::listen(&dirs.socket()).map_err(sys("bind the control socket"))?;
    let network = node.network()?;
    let store = Store::under(&node.paths.root)?;
    let jobs = health::Jobs::new().map_err(sys("create the probe eventfd"))?;
    let now = Timestamp::now();
    let spec = desired.pod.spec.clone().unwrap_or_default();
    let mut slots = Vec::new();
    let waiting_init = || Waiting::PodInitializing;
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        slots.push(new_slot(Target::Init(i), c, waiting_init()));
    }
    let has_init = !slots.is_empty();
    for (i, c) in spec.containers.iter().enumerate() {
        let w = if has_init {
            Waiting::PodInitializing
        } else {
            Waiting::ContainerCreating
        };
        slots.push(new_slot(Target::Main(i), c, w));
    }
    let mut sup = Supervisor {
        node_facts: node_facts(&node.name),
        network,
        store,
        dirs,
        sandbox: None,
        sandbox_retry: None,
        completed: false,
        pod_ip: None,
        pod_files: None,
        slots,
        backoff: Backoff::default(),
        retry_backoff: Backoff::default(),
        events: EventLog::default(),
        deleting: None,
        start_time: now,
        last_status: None,
        ready,
        tokio: None,
        pull_opts: None,
        pause: None,
        jobs,
        setup: Default::default(),
        node,
        desired,
    };
    // a supervisor that died left its pod: take it over as it is
    if !adopt::restore(&mut sup) {
        let pod = &sup.desired.pod;
        sup.events.push(Event::scheduled(
            now,
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default(),
            &sup.node.name,
        ));
    }

    loop {
        sup.step();
        sup.publish();
        if sup.deleting.is_some()
            && (sup.slots.iter().all(|s| s.live.is_none()) || stuck::gave_up(&sup))
        {
            break;
        }
        let timeout = sup.next_wake();
        if timeout >= Duration::from_secs(1) {
            lean::trim();
        }
        let (sig_ready, sock_ready, exited) = {
            let mut w = control::Wait::new();
            let sig_i = w.add(&sigfd);
            let sock_i = w.add(&listener);
            // probe and hook results are collected every round
            w.add(&sup.jobs.runner);
            let live: Vec<(usize, usize)> = sup
                .slots
                .iter()
                .enumerate()
                .filter_map(|(k, s)| s.live.as_ref().map(|l| (k, w.add(&l.pidfd))))
                .collect();
            let ready = w.poll(timeout).map_err(sys("poll"))?;
            let exited: Vec<usize> = live
                .into_iter()
                .filter(|(_, fd)| ready[*fd])
                .map(|(k, _)| k)
                .collect();
            (ready[sig_i], ready[sock_i], exited)
        };
        if sig_ready {
            let got = control::drain_signals(&mut sigfd);
            if got.terminate {
                sup.begin_delete(None, None);
            }
        }
        if sock_ready {
            for (stream, req) in control::accept(&listener) {
                match req {
                    Request::Delete {
                        grace_period_seconds,
                    } => sup.begin_delete(grace_period_seconds, Some(stream)),
                }
            }
        }
        for k in exited {
            sup.collect(k);
        }
        sup.job_results();
        reap_orphans(&sup.slots, &sup.jobs.runner.children());
    }
    sup.jobs.runner.cancel_all();
    let waiters = sup
        .deleting
        .as_mut()
        .map(|d| std::mem::take(&mut d.waiters))
        .unwrap_or_default();
    let mut leftovers = sup.remove_all();
    leftovers.extend(stuck::survivors(&sup));
    if !leftovers.is_empty() {
        stuck::note(&mut sup, &leftovers, None);
    }
    let reply = DeleteReply {
        leftovers: leftovers.clone(),
    };
    for w in waiters {
        control::reply(w, &reply);
    }
    if !leftovers.is_empty() {
        // the pod stays (Terminating) until what is left is gone
        stuck::retry(&mut sup, &listener, &mut sigfd, leftovers);
    }
    drop(listener);
    Ok(())
}

fn new_slot(target: Target, c: &Container, waiting: Waiting) -> Slot {
    Slot {
        target,
        container: c.clone(),
        record: ContainerRecord::new(c, waiting),
        attempts: 0,
        live: None,
        retry_at: None,
        backoff_until: None,
        health: health::Health::default(),
    }
}

/// Reaps exited children that are not container inits (those are
/// collected through their pidfds, with their status) nor `runtime exec`
/// children of probes and hooks (their workers reap them).
fn reap_orphans(slots: &[Slot], exec_children: &[i32]) {
    let inits: Vec<i32> = slots
        .iter()
        .filter_map(|s| s.live.as_ref().map(|l| l.pid))
        .chain(exec_children.iter().copied())
        .collect();
    while let Some(pid) = crate::exits::exited_child() {
        if inits.contains(&pid) {
            return;
        }
        // SAFETY: reaps that one child, which has exited.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
    }
}

impl Supervisor {
    fn pod(&self) -> &Pod {
        &self.desired.pod
    }

    fn uid(&self) -> &str {
        &self.dirs.uid
    }

    fn records(&self, init: bool) -> Vec<ContainerRecord> {
        self.slots
            .iter()
            .filter(|s| matches!(s.target, Target::Init(_)) == init)
            .map(|s| s.record.clone())
            .collect()
    }

    fn slot_index(&self, t: Target) -> Option<usize> {
        self.slots.iter().position(|s| s.target == t)
    }

    fn pod_ref(&self) -> String {
        let p = self.pod();
        crate::events::pod_ref(
            p.metadata.name.as_deref().unwrap_or_default(),
            p.metadata.namespace.as_deref().unwrap_or("default"),
            self.uid(),
        )
    }

    /// One round: make the sandbox if needed, then carry out the plan.
    fn step(&mut self) {
        let now = Timestamp::now();
        if self.deleting.is_some() {
            self.step_delete();
            self.step_probes();
            self.step_stops();
            return;
        }
        if self.completed {
            return;
        }
        if !self.ensure_pod_setup() {
            return;
        }
        if self.sandbox.is_none() {
            if self.sandbox_retry.is_some_and(|t| t > now) {
                return;
            }
            if let Err(e) = self.make_sandbox() {
                self.sandbox_failed(now, &e);
                return;
            }
        }
        let spec = self.pod().spec.clone().unwrap_or_default();
        let init = self.records(true);
        let main = self.records(false);
        let plan = lifecycle::plan(&spec, &init, &main, &mut self.backoff, now, false);
        let pod_ref = self.pod_ref();
        for (t, until, wait) in &plan.back_off {
            let Some(k) = self.slot_index(*t) else {
                continue;
            };
            let pod = self.pod().clone();
            let s = &mut self.slots[k];
            let ended = match &s.record.state {
                State::Terminated(t) => Some(t.clone()),
                _ => s.record.last_terminated.clone(),
            };
            s.record.last_terminated = ended;
            s.record.state =
                State::Waiting(Waiting::CrashLoopBackOff(backoff::crash_loop_message(
                    *wait,
                    &s.container.name,
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    pod.metadata.namespace.as_deref().unwrap_or("default"),
                    self.dirs.uid.as_str(),
                )));
            if s.backoff_until != Some(*until) {
                s.backoff_until = Some(*until);
                self.events
                    .push(Event::crash_backoff(now, &s.container.name, &pod_ref));
            }
        }
        for t in &plan.start {
            // a postStart hook holds the next starts back, as the
            // kubelet's sequential starts do
            if self.slots.iter().any(|s| s.health.post_start.is_some()) {
                break;
            }
            if let Some(k) = self.slot_index(*t) {
                self.start_slot(k);
            }
        }
        self.stop_in_order(&plan.stop);
        self.step_probes();
        self.step_stops();
        if plan.finished && self.slots.iter().all(|s| s.live.is_none()) {
            // Succeeded or Failed for good: the sandbox goes, the record stays.
            self.stop_pause();
            self.remove_sandbox(None);
            self.completed = true;
        }
    }

    /// The sandbox could not be made (or its network not wired): an
    /// event, the report to `apply -d`, another try in 10 s.
    fn sandbox_failed(&mut self, now: Timestamp, e: &str) {
        self.events.push(Event {
            time: now,
            type_: crate::events::EventType::Warning,
            reason: "FailedCreatePodSandBox".into(),
            from: "kubelet".into(),
            message: format!("Failed to create pod sandbox: {e}"),
        });
        self.report(ReadyReport {
            ok: false,
            message: format!("creating the pod sandbox: {e}"),
        });
        self.sandbox_retry = Some(backoff::after(now, Duration::from_secs(10)));
    }

    /// Removes the sandbox (`sb`, a copy of it, or the one held). Dropping
    /// the last copy waits for links still being wired, so the teardown
    /// never races them.
    fn remove_sandbox(&mut self, sb: Option<PodSandbox>) {
        drop(sb);
        self.sandbox = None;
        let _ = sandbox::teardown(&self.node.paths.sandbox_root(), &self.network, self.uid());
    }

    fn make_sandbox(&mut self) -> Result<(), String> {
        let pod = self.pod().clone();
        let mut sb = sandbox::create(&self.node.paths.sandbox_root(), &self.network, &pod)
            .map_err(|e| e.to_string())?;
        let spec = pod.spec.clone().unwrap_or_default();
        if spec.share_process_namespace == Some(true) && spec.host_pid != Some(true) {
            match self.start_pause() {
                Ok(ns) => sb.pid = crate::spec::Ns::Join(ns),
                Err(e) => {
                    self.remove_sandbox(Some(sb));
                    return Err(e);
                }
            }
        }
        let ip = sb.pod_ip().map(|a| a.to_string());
        let files = match self.write_pod_files(&sb, ip.as_deref()) {
            Ok(f) => f,
            Err(e) => {
                self.remove_sandbox(Some(sb));
                return Err(e);
            }
        };
        self.pod_ip = ip.or_else(|| Some(Node::host_ip(&self.network)));
        self.pod_files = Some(files);
        self.sandbox = Some(sb);
        Ok(())
    }

    /// The pause process of a shared PID namespace; its namespace's path.
    fn start_pause(&mut self) -> Result<PathBuf, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("finding the krun executable: {e}"))?;
        let pause = Pause::spawn(&exe).map_err(|e| format!("starting the pause process: {e}"))?;
        let ns = pause.namespace();
        if let Err(e) = std::fs::write(self.dirs.pause_pid_file(), format!("{}\n", pause.pid())) {
            pause.stop();
            return Err(format!("writing the pause pid file: {e}"));
        }
        self.pause = Some(pause);
        Ok(ns)
    }

    fn stop_pause(&mut self) {
        if let Some(p) = self.pause.take() {
            p.stop();
            let _ = std::fs::remove_file(self.dirs.pause_pid_file());
        }
    }

    /// /etc/hosts, /etc/resolv.conf and /etc/hostname of the pod.
    fn write_pod_files(&self, sb: &PodSandbox, ip: Option<&str>) -> Result<PodFiles, String> {
        let pod = self.pod();
        let dir = self.dirs.run.join("files");
        let err = |what: &str, e: std::io::Error| format!("writing the pod's {what}: {e}");
        std::fs::create_dir_all(&dir).map_err(|e| err("files", e))?;
        let hosts = match ip {
            Some(ip) => podfiles::hosts_file(pod, &[ip.to_string()]),
            None => podfiles::host_network_hosts_file(
                pod,
                &std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
            ),
        };
        let node_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let (dns, warning) = podfiles::pod_dns(
            pod,
            DnsInputs {
                node_resolv: &node_resolv,
                cluster_dns: None,
            },
        );
        // ClusterFirst without a cluster DNS falls back to the node's
        // resolv.conf as the kubelet does; krun has no cluster DNS, so its
        // warning would be on every pod and is not recorded.
        let _ = warning;
        let files = PodFiles {
            hosts: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
            hostname: dir.join("hostname"),
            termination_log: dir.join("termination-log"),
        };
        std::fs::write(&files.hosts, hosts).map_err(|e| err("hosts", e))?;
        std::fs::write(&files.resolv_conf, dns.render()).map_err(|e| err("resolv.conf", e))?;
        std::fs::write(&files.hostname, format!("{}\n", sb.hostname))
            .map_err(|e| err("hostname", e))?;
        Ok(files)
    }

    fn pull_opts(&mut self) -> Result<PullOptions, String> {
        if let Some(o) = &self.pull_opts {
            return Ok(o.clone());
        }
        let conf = RegistriesConf::load_default().map_err(|e| e.to_string())?;
        let o = PullOptions::new(conf);
        self.pull_opts = Some(o.clone());
        Ok(o)
    }

    /// The container's image, pulled as its imagePullPolicy says, with
    /// the kubelet's events and image-pull back-off.
    fn ensure_image(&mut self, k: usize) -> Result<ImageRecord, Waiting> {
        let now = Timestamp::now();
        let image = self.slots[k].container.image.clone().unwrap_or_default();
        let key = format!("image/{image}");
        if self.retry_backoff.is_in_backoff_since_update(&key, now) {
            let until = self.retry_backoff.ends_at(&key);
            let s = &mut self.slots[k];
            if s.backoff_until != until {
                s.backoff_until = until;
                self.events.push(Event::pull_backoff(now, &image));
                self.events.push(Event::failed(now, "ImagePullBackOff"));
            }
            s.retry_at = until;
            return Err(Waiting::image_pull_backoff(&image));
        }
        let policy = self.slots[k].container.image_pull_policy.clone();
        if policy.as_deref() != Some("Always") {
            match self.store.find(&image) {
                Ok(Some(rec)) => {
                    self.events.push(Event::already_present(now, &image));
                    return Ok(rec);
                }
                Ok(None) => {}
                Err(e) => return Err(Waiting::ErrImagePull(e.to_string())),
            }
            if policy.as_deref() == Some("Never") {
                let msg =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                self.events.push(Event::failed(now, "ErrImageNeverPull"));
                self.slots[k].retry_at = Some(backoff::after(now, Duration::from_secs(10)));
                return Err(Waiting::ErrImageNeverPull(msg));
            }
        }
        self.events.push(Event::pulling(now, &image));
        let t0 = Instant::now();
        let pulled = self.pull(&image);
        let done = Timestamp::now();
        match pulled {
            Ok(rec) => {
                self.retry_backoff.reset(&key);
                let took = t0.elapsed();
                self.events
                    .push(Event::pulled(done, &image, took, took, rec.size));
                Ok(rec)
            }
            Err(msg) => {
                self.events.push(Event::pull_failed(done, &image, &msg));
                self.events.push(Event::failed(done, "ErrImagePull"));
                self.retry_backoff.next(&key, done, done);
                // the next round (a second on) reports ImagePullBackOff
                self.slots[k].retry_at = Some(backoff::after(done, Duration::from_secs(1)));
                Err(Waiting::ErrImagePull(msg))
            }
        }
    }

    fn pull(&mut self, image: &str) -> Result<ImageRecord, String> {
        let opts = self.pull_opts()?;
        if self.tokio.is_none() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("starting the pull runtime: {e}"))?;
            self.tokio = Some(rt);
        }
        let rt = self.tokio.as_ref().ok_or("no pull runtime")?;
        let rec = rt
            .block_on(krun_images::pull(
                &self.store,
                image,
                &opts,
                Arc::new(NoProgress),
            ))
            .map_err(|e| e.to_string())?;
        // The layers just committed are made durable off this thread (one
        // syncfs); until then a marker has a later boot re-pull them.
        let store = self.store.clone();
        let uid = self.uid().to_string();
        std::thread::spawn(move || {
            if let Err(e) = store.settle() {
                eprintln!("krun supervisor {uid}: syncing pulled layers: {e}");
            }
        });
        Ok(rec)
    }

    fn start_slot(&mut self, k: usize) {
        let now = Timestamp::now();
        if self.slots[k].live.is_some() || self.slots[k].retry_at.is_some_and(|t| t > now) {
            return;
        }
        let (Some(sb), Some(files), Some(volumes)) = (
            self.sandbox.clone(),
            self.pod_files.clone(),
            self.setup.volumes.clone(),
        ) else {
            return;
        };
        let oom_score_adj = self.oom_score_adj(k);
        let image = match self.ensure_image(k) {
            Ok(rec) => rec,
            Err(w) => {
                self.set_waiting(k, w);
                return;
            }
        };
        let s = &self.slots[k];
        let previous = match &s.record.state {
            State::Terminated(t) => Some(t.clone()),
            State::Waiting(_) => s.record.last_terminated.clone(),
            State::Running { .. } => None,
        };
        let restart = if previous.is_some() {
            s.record.restart_count + 1
        } else {
            s.record.restart_count
        };
        let id = format!("{}-{}-{}", self.dirs.uid, s.container.name, s.attempts);
        let sandbox = sb.spec_sandbox();
        let facts = PodFacts {
            pod_ip: self.pod_ip.clone(),
            host_ip: Some(Node::host_ip(&self.network)),
        };
        let started = {
            let inputs = container::StartInputs {
                pod: &self.desired.pod,
                container: &s.container,
                image: &image,
                store: &self.store,
                dirs: &self.dirs,
                runtime: &self.node.runtime,
                sandbox: &sandbox,
                network_ready: &|| sb.network_ready(),
                pod_files: &files,
                facts: &facts,
                node: &self.node_facts,
                objects: Objects {
                    config_maps: &self.desired.config_maps,
                    secrets: &self.desired.secrets,
                },
                id,
                restart: restart.max(0) as u32,
                volumes: &volumes,
                oom_score_adj,
                seccomp_dir: &self.node.paths.seccomp_dir(),
            };
            container::start(&inputs)
        };
        let image_id = format!("{}@{}", image.repository, image.manifest_digest);
        let name = self.slots[k].container.name.clone();
        self.slots[k].attempts += 1;
        match started {
            Ok(live) => {
                let t = live.started_at;
                self.events.push(Event::created(t, &name));
                self.events.push(Event::started(t, &name));
                let s = &mut self.slots[k];
                s.record.container_id = Some(format!("krun://{}", live.id));
                s.record.image_id = image_id;
                s.record.state = State::Running { started_at: t };
                s.record.restart_count = restart;
                s.record.last_terminated = previous;
                s.record.ready = true;
                s.record.started = true;
                s.retry_at = None;
                s.live = Some(live);
                adopt::save_instance(&self.dirs, &self.slots[k]);
                self.retry_backoff.reset(&format!("create/{name}"));
                self.instance_started(k);
            }
            Err(w) => match sb.network_ready() {
                Err(e) => {
                    // the container never ran: the pod network is what failed
                    self.remove_sandbox(Some(sb));
                    self.sandbox_failed(Timestamp::now(), &e);
                    self.set_waiting(k, Waiting::ContainerCreating);
                }
                Ok(()) => self.start_failed(k, &name, w),
            },
        }
    }

    /// A create or start that failed: an event, the back-off, the reason.
    fn start_failed(&mut self, k: usize, name: &str, w: Waiting) {
        let done = Timestamp::now();
        self.events
            .push(Event::failed(done, w.message().unwrap_or(w.reason())));
        let key = format!("create/{name}");
        self.retry_backoff.next(&key, done, done);
        self.slots[k].retry_at = self.retry_backoff.ends_at(&key);
        self.set_waiting(k, w);
    }

    /// The slot waits for `w`, keeping how it last ended.
    fn set_waiting(&mut self, k: usize, w: Waiting) {
        let s = &mut self.slots[k];
        if let State::Terminated(t) = &s.record.state {
            s.record.last_terminated = Some(t.clone());
        }
        s.record.state = State::Waiting(w);
    }

    /// A container's init has exited: record how, remove the instance.
    fn collect(&mut self, k: usize) {
        let s = &mut self.slots[k];
        let Some(live) = s.live.as_mut() else {
            return;
        };
        let Some(t) = container::collect(
            live,
            &s.container,
            &self.node.runtime,
            &self.store,
            &self.dirs,
        ) else {
            return;
        };
        s.live = None;
        s.record.state = State::Terminated(t);
        s.record.ready = false;
        s.record.started = false;
        self.instance_ended(k);
    }

    fn begin_delete(&mut self, grace: Option<i64>, waiter: Option<UnixStream>) {
        let pod_grace = self
            .pod()
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        // As the API server: a negative grace means the pod's own.
        let secs = grace.filter(|g| *g >= 0).unwrap_or(pod_grace).max(0) as u64;
        let deadline = Instant::now() + Duration::from_secs(secs);
        match &mut self.deleting {
            Some(d) => {
                // A later delete may shorten the grace period, never lengthen it.
                d.deadline = d.deadline.min(deadline);
                d.forced |= secs == 0;
                d.waiters.extend(waiter);
            }
            None => {
                self.deleting = Some(Deletion {
                    deadline,
                    forced: secs == 0,
                    waiters: waiter.into_iter().collect(),
                    since: Timestamp::now(),
                });
                // as the kubelet: no liveness or startup kills while the
                // pod terminates; readiness goes on
                for s in &mut self.slots {
                    if let Some(p) = s.health.probes.as_mut() {
                        p.hold();
                    }
                }
            }
        }
        if let Some(d) = &self.deleting {
            adopt::save_deadline(
                &self.dirs,
                d.deadline.saturating_duration_since(Instant::now()),
            );
        }
    }

    /// Deleting: main containers are stopped together (preStop, stop
    /// signal), then sidecars one at a time in reverse order, then any
    /// init container; past the deadline everything left gets SIGKILL.
    fn step_delete(&mut self) {
        let Some((deadline, forced)) = self.deleting.as_ref().map(|d| (d.deadline, d.forced))
        else {
            return;
        };
        let now = Instant::now();
        let is_sidecar = |s: &Slot| s.container.restart_policy.as_deref() == Some("Always");
        let main: Vec<usize> = (0..self.slots.len())
            .filter(|&k| {
                matches!(self.slots[k].target, Target::Main(_)) && self.slots[k].live.is_some()
            })
            .collect();
        let mut to_stop: Vec<usize> = if !main.is_empty() {
            main
        } else if let Some(k) = (0..self.slots.len())
            .rev()
            .find(|&k| is_sidecar(&self.slots[k]) && self.slots[k].live.is_some())
        {
            vec![k]
        } else {
            (0..self.slots.len())
                .filter(|&k| self.slots[k].live.is_some())
                .collect()
        };
        if now >= deadline {
            // out of time: whatever still waits its turn goes now
            to_stop = (0..self.slots.len())
                .filter(|&k| self.slots[k].live.is_some())
                .collect();
        }
        for k in to_stop {
            if self.slots[k].health.stop.is_some() {
                continue;
            }
            // none left at the deadline: no preStop, SIGKILL at once
            let left = deadline.saturating_duration_since(now);
            let name = self.slots[k].container.name.clone();
            self.begin_stop(k, left, forced, format!("Stopping container {name}"));
        }
        for s in &mut self.slots {
            if let (Some(_), Some(stop)) = (&s.live, s.health.stop.as_mut()) {
                stop.deadline = stop.deadline.min(deadline);
                stop.forced |= forced;
            }
        }
    }

    fn next_wake(&self) -> Duration {
        let now = Timestamp::now();
        let mut wake: Option<Timestamp> = None;
        let mut consider = |t: Option<Timestamp>| {
            if let Some(t) = t {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        };
        for s in &self.slots {
            if s.live.is_none() {
                consider(s.retry_at);
                if let State::Waiting(Waiting::CrashLoopBackOff(_)) = s.record.state {
                    consider(s.backoff_until);
                }
            }
        }
        consider(self.sandbox_retry.filter(|_| self.sandbox.is_none()));
        consider(self.setup.retry_at);
        let mut d = wake.map_or(Duration::from_secs(3600), |w| backoff::elapsed(now, w));
        if let Some(t) = self.health_wake() {
            d = d.min(t.saturating_duration_since(Instant::now()));
        }
        if let Some(del) = &self.deleting {
            // the grace period's end, then when waiting for SIGKILL ends
            let now = Instant::now();
            let at = if now < del.deadline {
                del.deadline
            } else {
                del.deadline + stuck::KILL_WAIT
            };
            d = d.min(at.saturating_duration_since(now));
        }
        // never a busy loop, never later than asked
        d.max(Duration::from_millis(1))
    }

    /// Writes status.json and answers the readiness pipe once there is
    /// something to say.
    fn publish(&mut self) {
        let now = Timestamp::now();
        let init = self.shown_records(true);
        let main = self.shown_records(false);
        let facts = status::PodFacts {
            pod_ip: self.pod_ip.clone(),
            host_ip: Some(Node::host_ip(&self.network)),
            start_time: Some(self.start_time),
            sandbox_ready: self.sandbox.is_some(),
            terminal: self.deleting.is_some(),
        };
        let st = status::pod_status(
            self.pod(),
            &init,
            &main,
            &facts,
            self.last_status.as_ref(),
            now,
        );
        let report = ready_report(&st);
        let mut pod = self.pod().clone();
        if let Some(d) = &self.deleting {
            // as the API server marks a pod being deleted: Terminating
            pod.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(d.since),
            );
        }
        pod.status = Some(st.clone());
        self.last_status = Some(st);
        let slot_state = |s: &Slot| SlotState {
            record: s.record.clone(),
            runtime_id: s.live.as_ref().map(|l| l.id.clone()),
            pid: s.live.as_ref().map(|l| l.pid),
            attempts: s.attempts,
        };
        let file = StatusFile {
            pod,
            events: self.events.clone(),
            init: self
                .slots
                .iter()
                .filter(|s| matches!(s.target, Target::Init(_)))
                .map(slot_state)
                .collect(),
            containers: self
                .slots
                .iter()
                .filter(|s| matches!(s.target, Target::Main(_)))
                .map(slot_state)
                .collect(),
            backoff: self.backoff.clone(),
            supervisor_pid: std::process::id() as i32,
            deleting: self.deleting.is_some(),
            finished: false,
            updated: now,
        };
        if let Err(e) = podstate::save_status(&self.dirs, &file) {
            eprintln!("krun supervisor {}: {e}", self.uid());
        }
        // after the status is written: what `apply -d` says, `get` shows
        if let Some(r) = report {
            self.report(r);
        }
    }

    fn report(&mut self, r: ReadyReport) {
        if let Some(mut f) = self.ready.take() {
            if let Ok(mut line) = serde_json::to_vec(&r) {
                line.push(b'\n');
                let _ = f.write_all(&line);
            }
        }
    }

    /// Everything of the pod off the node.
    fn remove_all(&mut self) -> Vec<String> {
        // waits for links still being wired (see remove_sandbox)
        self.sandbox = None;
        self.stop_pause();
        crate::cleanup::remove_pod(&self.node, &self.store, Some(&self.network), &self.dirs)
    }
}
