//! The supervisor's side of probes, lifecycle hooks and container stops,
//! as the kubelet's prober manager and killContainer do them:
//!
//! - a started instance gets its probe workers ([`crate::probe::Probes`]);
//!   with a postStart hook it is not reported Running (nor probed) until
//!   the hook has finished, and a failed hook kills it
//!   (FailedPostStartHook);
//! - probe results drive `started` and `ready`; a liveness or startup
//!   probe past its threshold kills the instance ("Container X failed
//!   liveness probe, will be restarted"), and the restart policy and
//!   back-off take it from there;
//! - a stop runs the preStop hook first, then sends the stop signal, and
//!   SIGKILL once the grace period (counted from the start of preStop)
//!   is over, but never sooner than 2 s after the stop signal.
//!
//! Every handler runs through [`Runner`], never on the loop's thread.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::{Slot, Supervisor};
use crate::events::Event;
use crate::lifecycle::Target;
use crate::probe::action::{self, Action};
use crate::probe::runner::{ExecTarget, JobId, Request, Runner};
use crate::probe::{Change, Kind, Outcome, Probes};
use crate::status::{ContainerRecord, State, Waiting};

/// The kubelet's minimum time between the stop signal and SIGKILL.
const MIN_GRACE: Duration = Duration::from_secs(2);

/// The probes, hooks and stop of one container instance.
#[derive(Debug, Default)]
pub(super) struct Health {
    pub probes: Option<Probes>,
    /// The postStart hook is running: not Running yet.
    pub post_start: Option<JobId>,
    pub stop: Option<Stop>,
}

#[derive(Debug)]
pub(super) struct Stop {
    /// SIGKILL no earlier than this.
    pub deadline: Instant,
    /// No grace at all: no preStop, SIGKILL at the deadline.
    pub forced: bool,
    pub pre_stop: Option<JobId>,
    pub signaled_at: Option<Instant>,
}

impl Stop {
    fn kill_at(&self) -> Option<Instant> {
        let sent = self.signaled_at?;
        Some(if self.forced {
            self.deadline
        } else {
            self.deadline.max(sent + MIN_GRACE)
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Purpose {
    Probe(Kind),
    PostStart,
    PreStop,
}

/// Whose a running job is.
#[derive(Debug, Clone)]
pub(super) struct Owner {
    slot: usize,
    /// The runtime id of the instance: a later instance ignores it.
    instance: String,
    purpose: Purpose,
}

/// The jobs in flight and what they are for.
pub(super) struct Jobs {
    pub runner: Runner,
    owners: HashMap<JobId, Owner>,
}

impl Jobs {
    pub fn new() -> std::io::Result<Jobs> {
        Ok(Jobs {
            runner: Runner::new()?,
            owners: HashMap::new(),
        })
    }
}

fn is_sidecar(s: &Slot) -> bool {
    s.container.restart_policy.as_deref() == Some("Always")
}

impl Supervisor {
    fn exec_target(&self, instance: &str) -> ExecTarget {
        ExecTarget {
            runtime: self.node.runtime.clone(),
            id: instance.to_string(),
            scratch: self.dirs.run.join("exec"),
        }
    }

    fn pod_grace(&self) -> Duration {
        let secs = self
            .pod()
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        Duration::from_secs(secs.max(0) as u64)
    }

    fn start_job(
        &mut self,
        k: usize,
        purpose: Purpose,
        action: Action,
        deadline: Option<Instant>,
    ) -> Option<JobId> {
        let instance = self.slots[k].live.as_ref()?.id.clone();
        let req = Request {
            action,
            hook: !matches!(purpose, Purpose::Probe(_)),
            deadline,
            exec: self.exec_target(&instance),
        };
        let id = self.jobs.runner.start(req);
        self.jobs.owners.insert(
            id,
            Owner {
                slot: k,
                instance,
                purpose,
            },
        );
        Some(id)
    }

    /// A new instance of slot `k` has started: its probes, and its
    /// postStart hook before it counts as Running.
    pub(super) fn instance_started(&mut self, k: usize) {
        let now = Instant::now();
        let c = self.slots[k].container.clone();
        let probes = Probes::new(&c, now);
        let s = &mut self.slots[k];
        s.record.started = probes.started();
        s.record.ready = probes.ready();
        s.health = Health {
            probes: Some(probes),
            ..Default::default()
        };
        let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else {
            return;
        };
        s.record.started = false;
        s.record.ready = false;
        let ip = self.pod_ip.clone().unwrap_or_default();
        match action::for_hook(hook, &c, &ip) {
            Ok(a) => {
                let job = self.start_job(k, Purpose::PostStart, a, None);
                self.slots[k].health.post_start = job;
            }
            Err(_) => self.post_start_failed(k),
        }
    }

    fn post_start_failed(&mut self, k: usize) {
        let now = Timestamp::now();
        let s = &mut self.slots[k];
        s.health.post_start = None;
        s.record.started = false;
        s.record.ready = false;
        // as the kubelet: the hook's message stays out of the event
        self.events.push(Event::failed_post_start_hook(now));
        let grace = self.pod_grace();
        self.begin_stop(k, grace, false, "FailedPostStartHook".into());
    }

    /// The records as `get` shows them: a container whose postStart hook
    /// runs is not Running yet (the kubelet reports it once the hook is
    /// done).
    pub(super) fn shown_records(&self, init: bool) -> Vec<ContainerRecord> {
        self.slots
            .iter()
            .filter(|s| matches!(s.target, Target::Init(_)) == init)
            .map(|s| {
                let mut r = s.record.clone();
                if s.health.post_start.is_some() {
                    r.state = State::Waiting(Waiting::ContainerCreating);
                }
                r
            })
            .collect()
    }

    /// Starts the probes that are due.
    pub(super) fn step_probes(&mut self) {
        let now = Instant::now();
        for k in 0..self.slots.len() {
            let s = &mut self.slots[k];
            if s.live.is_none()
                || s.health.post_start.is_some()
                || !matches!(s.record.state, State::Running { .. })
            {
                continue;
            }
            let Some(probes) = s.health.probes.as_mut() else {
                continue;
            };
            let due = probes.due(now);
            for kind in due {
                let c = &self.slots[k].container;
                let (Some(spec), Some(timing)) = (
                    kind.spec(c),
                    self.slots[k]
                        .health
                        .probes
                        .as_ref()
                        .and_then(|p| p.timing(kind)),
                ) else {
                    continue;
                };
                let ip = self.pod_ip.clone().unwrap_or_default();
                match action::for_probe(spec, c, &ip) {
                    Ok(a) => {
                        self.start_job(k, Purpose::Probe(kind), a, Some(now + timing.timeout));
                    }
                    Err(e) => self.probe_result(k, kind, Outcome::Error(e)),
                }
            }
        }
    }

    /// Results of finished jobs.
    pub(super) fn job_results(&mut self) {
        for (id, outcome) in self.jobs.runner.collect(Instant::now()) {
            let Some(owner) = self.jobs.owners.remove(&id) else {
                continue;
            };
            let k = owner.slot;
            let current = self.slots[k]
                .live
                .as_ref()
                .is_some_and(|l| l.id == owner.instance);
            if !current {
                continue;
            }
            match owner.purpose {
                Purpose::Probe(kind) => self.probe_result(k, kind, outcome),
                Purpose::PostStart => {
                    if self.slots[k].health.post_start != Some(id) {
                        continue;
                    }
                    match outcome {
                        Outcome::Success(_) | Outcome::Warning(_) => {
                            let s = &mut self.slots[k];
                            s.health.post_start = None;
                            if let Some(p) = &s.health.probes {
                                s.record.started = p.started();
                                s.record.ready = p.ready();
                            }
                        }
                        // as the kubelet, the hook's message stays out of the event
                        Outcome::Failure(_) | Outcome::Error(_) => self.post_start_failed(k),
                    }
                }
                Purpose::PreStop => {
                    if let Some(stop) = self.slots[k].health.stop.as_mut() {
                        stop.pre_stop = None;
                    }
                    if matches!(outcome, Outcome::Failure(_) | Outcome::Error(_)) {
                        self.events
                            .push(Event::failed_pre_stop_hook(Timestamp::now()));
                    }
                    self.step_stops();
                }
            }
        }
    }

    fn probe_result(&mut self, k: usize, kind: Kind, outcome: Outcome) {
        let now = Timestamp::now();
        match &outcome {
            Outcome::Success(_) => {}
            Outcome::Warning(o) => self.events.push(Event::probe_warning(now, kind.title(), o)),
            Outcome::Failure(o) => self.events.push(Event::unhealthy(now, kind.title(), o)),
            Outcome::Error(e) => self.events.push(Event::probe_errored(now, kind.title(), e)),
        }
        let s = &mut self.slots[k];
        let Some(probes) = s.health.probes.as_mut() else {
            return;
        };
        let changes = probes.finish(kind, &outcome);
        s.record.started = probes.started();
        s.record.ready = probes.ready();
        for ch in changes {
            let Change::Kill(kind) = ch else { continue };
            let s = &self.slots[k];
            let what = if kind == Kind::Liveness {
                "liveness"
            } else {
                "startup"
            };
            let policy = self
                .pod()
                .spec
                .as_ref()
                .and_then(|p| p.restart_policy.clone())
                .unwrap_or_else(|| "Always".into());
            let restart = is_sidecar(s) || policy != "Never";
            let mut message = format!("Container {} failed {what} probe", s.container.name);
            if restart {
                message.push_str(", will be restarted");
            }
            let grace = kind
                .spec(&s.container)
                .and_then(|p| p.termination_grace_period_seconds)
                .map(|g| Duration::from_secs(g.max(0) as u64))
                .unwrap_or_else(|| self.pod_grace());
            self.begin_stop(k, grace, false, message);
        }
    }

    /// Starts stopping slot `k`: the Killing event, preStop (unless
    /// forced), then the stop signal.
    pub(super) fn begin_stop(&mut self, k: usize, grace: Duration, forced: bool, message: String) {
        let now = Instant::now();
        let deadline = now + grace;
        if self.slots[k].live.is_none() {
            return;
        }
        if let Some(stop) = self.slots[k].health.stop.as_mut() {
            // a second stop can only hurry the first
            stop.deadline = stop.deadline.min(deadline);
            stop.forced |= forced;
            self.step_stops();
            return;
        }
        self.events
            .push(Event::killing_with(Timestamp::now(), message));
        let s = &mut self.slots[k];
        if let Some(p) = s.health.probes.as_mut() {
            p.hold();
        }
        if let Some(job) = s.health.post_start.take() {
            self.jobs.runner.cancel(job);
        }
        let hook = self.slots[k]
            .container
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.clone());
        let mut pre_stop = None;
        if let Some(h) = hook.filter(|_| !forced && !grace.is_zero()) {
            let c = self.slots[k].container.clone();
            let ip = self.pod_ip.clone().unwrap_or_default();
            match action::for_hook(&h, &c, &ip) {
                Ok(a) => pre_stop = self.start_job(k, Purpose::PreStop, a, Some(deadline)),
                Err(_) => self
                    .events
                    .push(Event::failed_pre_stop_hook(Timestamp::now())),
            }
        }
        self.slots[k].health.stop = Some(Stop {
            deadline,
            forced: forced || grace.is_zero(),
            pre_stop,
            signaled_at: None,
        });
        self.step_stops();
    }

    /// Stop signals once preStop is done (or out of time), SIGKILL once
    /// the grace period is.
    pub(super) fn step_stops(&mut self) {
        let now = Instant::now();
        let mut killed = Vec::new();
        for k in 0..self.slots.len() {
            let s = &mut self.slots[k];
            let (Some(live), Some(stop)) = (s.live.as_mut(), s.health.stop.as_mut()) else {
                continue;
            };
            if stop.signaled_at.is_none() {
                if let Some(job) = stop.pre_stop {
                    if self.jobs.runner.running(job) && now < stop.deadline {
                        continue;
                    }
                    // out of time: the hook is given up
                    self.jobs.runner.cancel(job);
                    stop.pre_stop = None;
                }
                live.signaled = true;
                stop.signaled_at = Some(now);
                let _ = self.node.runtime.kill(&live.id, live.stop_signal, false);
            }
            if !live.killed && stop.kill_at().is_some_and(|t| now >= t) {
                live.killed = true;
                let _ = self.node.runtime.kill(&live.id, libc::SIGKILL, true);
                killed.push(live.id.clone());
            }
        }
        // a frozen cgroup keeps SIGKILL pending until thawed: the
        // container's, or on deletion the whole pod's
        for id in killed {
            let scope = if self.deleting.is_some() {
                None
            } else {
                Some(id.as_str())
            };
            super::stuck::thaw_and_kill(&self.dirs.uid, scope);
        }
    }

    /// Slot `k`'s instance has exited: its jobs are called off.
    pub(super) fn instance_ended(&mut self, k: usize) {
        let mine: Vec<JobId> = self
            .jobs
            .owners
            .iter()
            .filter(|(_, o)| o.slot == k)
            .map(|(id, _)| *id)
            .collect();
        for id in mine {
            self.jobs.owners.remove(&id);
            self.jobs.runner.cancel(id);
        }
        self.slots[k].health = Health::default();
    }

    /// When probes, hooks or stops next need the loop.
    pub(super) fn health_wake(&self) -> Option<Instant> {
        let mut wake = self.jobs.runner.wake_at();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        };
        for s in &self.slots {
            let Some(live) = &s.live else { continue };
            if s.health.post_start.is_none() && matches!(s.record.state, State::Running { .. }) {
                consider(s.health.probes.as_ref().and_then(Probes::next_wake));
            }
            if let Some(stop) = &s.health.stop {
                match stop.signaled_at {
                    None => consider(Some(stop.deadline)),
                    Some(_) if !live.killed => consider(stop.kill_at()),
                    Some(_) => {}
                }
            }
        }
        wake
    }

    /// Stops the containers a finished pod leaves running (sidecars, last
    /// first, one at a time).
    pub(super) fn stop_in_order(&mut self, order: &[Target]) {
        let slots: Vec<usize> = order.iter().filter_map(|t| self.slot_index(*t)).collect();
        if slots
            .iter()
            .any(|&k| self.slots[k].live.is_some() && self.slots[k].health.stop.is_some())
        {
            return;
        }
        if let Some(&k) = slots.iter().find(|&&k| self.slots[k].live.is_some()) {
            let grace = self.pod_grace();
            let name = self.slots[k].container.name.clone();
            self.begin_stop(k, grace, false, format!("Stopping container {name}"));
        }
    }
}
