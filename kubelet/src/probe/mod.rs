//! Probes as the kubelet's prober workers run them: one worker per probe
//! of a container instance, first run `initialDelaySeconds` after the
//! container started, then every `periodSeconds`; a result counts once
//! it repeats `successThreshold` / `failureThreshold` times in a row. A
//! startup probe holds the liveness and readiness probes off until it
//! succeeds; a liveness or startup probe past its failure threshold asks
//! for the container to be killed and stops until the next instance.
//!
//! [`Probes`] is the pure state machine (no clock of its own, no I/O);
//! [`action`] turns a probe or lifecycle handler into what to run,
//! [`runner`] runs it off the supervisor's loop, and [`exec`], [`http`],
//! [`tcp`] and [`grpc`] are the handlers themselves, run from the node.

pub mod action;
pub mod exec;
pub mod grpc;
pub mod http;
pub mod runner;
pub mod tcp;
mod timed;
mod tls;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};

/// The Kubernetes minor version krun's API types are (the `krun` package
/// picks k8s-openapi's v1_35): probes say `kube-probe/1.35`.
pub const KUBE_VERSION: &str = "1.35";

/// The User-Agent of probe requests, as the kubelet sends it.
pub fn user_agent() -> String {
    format!("kube-probe/{KUBE_VERSION}")
}

/// At most this much of a probe's output (command output, response body)
/// is kept, as the kubelet keeps it.
pub const MAX_OUTPUT: usize = 10 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    /// As events name it: "Liveness probe failed: …".
    pub fn title(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }

    pub fn spec(self, c: &Container) -> Option<&Probe> {
        match self {
            Kind::Liveness => c.liveness_probe.as_ref(),
            Kind::Readiness => c.readiness_probe.as_ref(),
            Kind::Startup => c.startup_probe.as_ref(),
        }
    }
}

/// What one run of a handler gave: the kubelet's probe result with its
/// output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success(String),
    /// A success with a note worth an event (a redirect not followed).
    Warning(String),
    Failure(String),
    /// The probe could not be run at all (not the container's answer):
    /// reported, not counted.
    Error(String),
}

/// A probe's timing and thresholds, with the API's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(p: &Probe) -> Timing {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(v.unwrap_or(default).max(min) as u64)
        };
        Timing {
            initial_delay: secs(p.initial_delay_seconds, 0, 0),
            period: secs(p.period_seconds, 10, 1),
            timeout: secs(p.timeout_seconds, 1, 1),
            success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Unknown,
    Success,
    Failure,
}

#[derive(Debug, Clone)]
struct Worker {
    kind: Kind,
    timing: Timing,
    /// The result in force (changes only at a threshold).
    verdict: Verdict,
    last: Option<Verdict>,
    run: u32,
    next_at: Instant,
    busy: bool,
    /// Stopped after asking for a kill: the next instance has new workers.
    on_hold: bool,
}

/// What a finished probe run changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The startup probe passed: the container is started.
    Started,
    /// The container's readiness changed.
    Ready(bool),
    /// A liveness or startup probe failed past its threshold: the
    /// container is to be killed (and restarted by its policy).
    Kill(Kind),
}

/// The probes of one container instance.
#[derive(Debug, Clone)]
pub struct Probes {
    workers: Vec<Worker>,
}

impl Probes {
    /// The probes of `c` for an instance that started at `started_at`.
    pub fn new(c: &Container, started_at: Instant) -> Probes {
        let workers = [Kind::Startup, Kind::Liveness, Kind::Readiness]
            .into_iter()
            .filter_map(|kind| {
                let timing = Timing::of(kind.spec(c)?);
                Some(Worker {
                    kind,
                    timing,
                    // as the kubelet's workers start: not ready, alive,
                    // not known to have started
                    verdict: match kind {
                        Kind::Readiness => Verdict::Failure,
                        Kind::Liveness => Verdict::Success,
                        Kind::Startup => Verdict::Unknown,
                    },
                    last: None,
                    run: 0,
                    next_at: started_at + timing.initial_delay,
                    busy: false,
                    on_hold: false,
                })
            })
            .collect();
        Probes { workers }
    }

    fn worker(&self, kind: Kind) -> Option<&Worker> {
        self.workers.iter().find(|w| w.kind == kind)
    }

    pub fn has(&self, kind: Kind) -> bool {
        self.worker(kind).is_some()
    }

    /// Started: no startup probe, or it has succeeded.
    pub fn started(&self) -> bool {
        self.worker(Kind::Startup)
            .is_none_or(|w| w.verdict == Verdict::Success)
    }

    /// Ready: started, and no readiness probe or it says so.
    pub fn ready(&self) -> bool {
        self.started()
            && self
                .worker(Kind::Readiness)
                .is_none_or(|w| w.verdict == Verdict::Success)
    }

    /// Whether `w` may run at all now (startup gating, hold).
    fn eligible(&self, w: &Worker) -> bool {
        if w.on_hold || w.busy {
            return false;
        }
        match w.kind {
            Kind::Startup => !self.started(),
            _ => self.started(),
        }
    }

    /// The probes to run now; each is marked running until [`Probes::finish`].
    pub fn due(&mut self, now: Instant) -> Vec<Kind> {
        let due: Vec<usize> = (0..self.workers.len())
            .filter(|&i| self.eligible(&self.workers[i]) && self.workers[i].next_at <= now)
            .collect();
        let mut kinds = Vec::new();
        for i in due {
            let w = &mut self.workers[i];
            w.busy = true;
            // the next run a period after this one began, as a ticker
            w.next_at = now + w.timing.period;
            kinds.push(w.kind);
        }
        kinds
    }

    /// The timing of a probe (its timeout for the run).
    pub fn timing(&self, kind: Kind) -> Option<Timing> {
        self.worker(kind).map(|w| w.timing)
    }

    /// Records the outcome of a run of `kind`; what it changed.
    pub fn finish(&mut self, kind: Kind, outcome: &Outcome) -> Vec<Change> {
        let (was_started, was_ready) = (self.started(), self.ready());
        let Some(w) = self.workers.iter_mut().find(|w| w.kind == kind) else {
            return Vec::new();
        };
        w.busy = false;
        if w.on_hold {
            return Vec::new();
        }
        let verdict = match outcome {
            Outcome::Success(_) | Outcome::Warning(_) => Verdict::Success,
            Outcome::Failure(_) => Verdict::Failure,
            // the kubelet throws an errored run away
            Outcome::Error(_) => return Vec::new(),
        };
        if w.last == Some(verdict) {
            w.run = w.run.saturating_add(1);
        } else {
            w.last = Some(verdict);
            w.run = 1;
        }
        let threshold = match verdict {
            Verdict::Failure => w.timing.failure_threshold,
            _ => w.timing.success_threshold,
        };
        if w.run < threshold {
            return Vec::new();
        }
        w.verdict = verdict;
        let mut changes = Vec::new();
        if verdict == Verdict::Failure && matches!(kind, Kind::Liveness | Kind::Startup) {
            w.on_hold = true;
            w.run = 0;
            changes.push(Change::Kill(kind));
        }
        if self.started() && !was_started {
            changes.push(Change::Started);
        }
        let ready = self.ready();
        if ready != was_ready {
            changes.push(Change::Ready(ready));
        }
        changes
    }

    /// Stops every probe but readiness (the container is being stopped).
    pub fn hold(&mut self) {
        for w in &mut self.workers {
            if w.kind != Kind::Readiness {
                w.on_hold = true;
            }
        }
    }

    /// When the next probe is due, if one can run.
    pub fn next_wake(&self) -> Option<Instant> {
        self.workers
            .iter()
            .filter(|w| self.eligible(w))
            .map(|w| w.next_at)
            .min()
    }
}

#[cfg(test)]
mod tests;
