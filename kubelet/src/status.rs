//! Pod and container status as the kubelet computes it, and the
//! `get pods` table as kubectl prints it.

mod table;

pub use table::{format_age, pod_row, pods_table, Table};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};

use crate::manifest::quantity::Quantity;

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminated {
    pub exit_code: i32,
    pub oom_killed: bool,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    /// The termination message (file or log tail).
    pub message: Option<String>,
    pub container_id: Option<String>,
    /// The exit status could not be known (the container ended while no
    /// supervisor watched it and no reaper recorded it): reported as the
    /// kubelet reports a container that vanished.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub status_unknown: bool,
}

impl Terminated {
    /// The reason the runtime reports: OOMKilled, Completed or Error
    /// (ContainerStatusUnknown when the status was lost).
    pub fn reason(&self) -> &'static str {
        if self.status_unknown {
            "ContainerStatusUnknown"
        } else if self.oom_killed {
            "OOMKilled"
        } else if self.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }

    fn to_k8s(&self) -> ContainerStateTerminated {
        ContainerStateTerminated {
            container_id: self.container_id.clone(),
            exit_code: self.exit_code,
            finished_at: Some(Time(self.finished_at)),
            message: self.message.clone(),
            reason: Some(self.reason().to_string()),
            signal: None,
            started_at: self.started_at.map(Time),
        }
    }
}

/// Why a container is not running yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Waiting {
    ContainerCreating,
    PodInitializing,
    CrashLoopBackOff(String),
    ErrImagePull(String),
    ImagePullBackOff(String),
    ErrImageNeverPull(String),
    CreateContainerConfigError(String),
    CreateContainerError(String),
}

impl Waiting {
    pub fn reason(&self) -> &'static str {
        match self {
            Waiting::ContainerCreating => "ContainerCreating",
            Waiting::PodInitializing => "PodInitializing",
            Waiting::CrashLoopBackOff(_) => "CrashLoopBackOff",
            Waiting::ErrImagePull(_) => "ErrImagePull",
            Waiting::ImagePullBackOff(_) => "ImagePullBackOff",
            Waiting::ErrImageNeverPull(_) => "ErrImageNeverPull",
            Waiting::CreateContainerConfigError(_) => "CreateContainerConfigError",
            Waiting::CreateContainerError(_) => "CreateContainerError",
        }
    }

    pub fn message(&self) -> Option<&str> {
        match self {
            Waiting::ContainerCreating | Waiting::PodInitializing => None,
            Waiting::CrashLoopBackOff(m)
            | Waiting::ErrImagePull(m)
            | Waiting::ImagePullBackOff(m)
            | Waiting::ErrImageNeverPull(m)
            | Waiting::CreateContainerConfigError(m)
            | Waiting::CreateContainerError(m) => Some(m),
        }
    }

    /// The message of ImagePullBackOff, as the kubelet words it.
    pub fn image_pull_backoff(image: &str) -> Waiting {
        Waiting::ImagePullBackOff(format!("Back-off pulling image \"{image}\""))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Waiting(Waiting),
    Running { started_at: Timestamp },
    Terminated(Terminated),
}

/// What the supervisor knows about one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    /// The resolved image, `repo@sha256:…`, once pulled.
    pub image_id: String,
    pub container_id: Option<String>,
    pub state: State,
    pub last_terminated: Option<Terminated>,
    pub restart_count: i32,
    pub ready: bool,
    /// Set once the startup probe (if any) has passed.
    pub started: bool,
}

impl ContainerRecord {
    /// A container that has not been created yet.
    pub fn new(c: &Container, waiting: Waiting) -> ContainerRecord {
        ContainerRecord {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            container_id: None,
            state: State::Waiting(waiting),
            last_terminated: None,
            restart_count: 0,
            ready: false,
            started: false,
        }
    }

    pub fn to_status(&self) -> ContainerStatus {
        let state = match &self.state {
            State::Waiting(w) => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(w.reason().to_string()),
                    message: w.message().map(str::to_string),
                }),
                ..Default::default()
            },
            State::Running { started_at } => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(*started_at)),
                }),
                ..Default::default()
            },
            State::Terminated(t) => ContainerState {
                terminated: Some(t.to_k8s()),
                ..Default::default()
            },
        };
        let last_state = self.last_terminated.as_ref().map(|t| ContainerState {
            terminated: Some(t.to_k8s()),
            ..Default::default()
        });
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            container_id: self.container_id.clone(),
            state: Some(state),
            last_state: Some(last_state.unwrap_or_default()),
            restart_count: self.restart_count,
            ready: self.ready && matches!(self.state, State::Running { .. }),
            started: Some(self.started && matches!(self.state, State::Running { .. })),
            ..Default::default()
        }
    }
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn find<'a>(info: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    info.iter().find(|s| s.name == name)
}

fn st(s: &ContainerStatus) -> ContainerState {
    s.state.clone().unwrap_or_default()
}

fn last_terminated(s: &ContainerStatus) -> Option<ContainerStateTerminated> {
    s.last_state.as_ref().and_then(|l| l.terminated.clone())
}

fn any_regular_started(spec: &PodSpec, info: &[ContainerStatus]) -> bool {
    spec.containers.iter().any(|c| {
        find(info, &c.name).is_some_and(|s| {
            let state = st(s);
            state.running.is_some()
                || state.terminated.is_some()
                || (state.waiting.is_some() && last_terminated(s).is_some())
        })
    })
}

/// The pod phase, as the kubelet's getPhase computes it from the statuses
/// of all containers (init and regular). `terminal` is set once the pod
/// will run nothing again (deleted, or past its active deadline).
pub fn phase(spec: &PodSpec, info: &[ContainerStatus], terminal: bool) -> &'static str {
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let mut pending_init = 0;
    let mut failed_init = 0;
    for c in init.iter().filter(|c| !is_sidecar(c)) {
        let Some(s) = find(info, &c.name) else {
            pending_init += 1;
            continue;
        };
        let state = st(s);
        if state.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &state.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if state.waiting.is_some() {
            match last_terminated(s) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in init.iter().filter(|c| is_sidecar(c)) {
        let Some(s) = find(info, &c.name) else {
            unknown += 1;
            continue;
        };
        let state = st(s);
        if state.running.is_some() {
            if s.started != Some(true) {
                pending_init += 1;
            }
            running += 1;
        } else if state.terminated.is_some() {
        } else if state.waiting.is_some() {
            if last_terminated(s).is_none() {
                pending_init += 1;
                waiting += 1;
            }
        } else {
            pending_init += 1;
            unknown += 1;
        }
    }
    for c in &spec.containers {
        let Some(s) = find(info, &c.name) else {
            unknown += 1;
            continue;
        };
        let state = st(s);
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            if last_terminated(s).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }
    if failed_init > 0 && restart_policy == "Never" {
        return "Failed";
    }
    if (pending_init > 0 && !any_regular_started(spec, info)) || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 && unknown == 0 {
        if terminal {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if restart_policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if restart_policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

/// The QoS class: Guaranteed when every container has equal cpu and memory
/// requests and limits, BestEffort when none has any, else Burstable.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let all: Vec<&Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .collect();
    let get = |c: &Container, limits: bool, name: &str| {
        let r = c.resources.as_ref()?;
        let map = if limits { &r.limits } else { &r.requests };
        map.as_ref()?
            .get(name)
            .and_then(|q| Quantity::parse(&q.0).ok())
            .filter(|q| q.milli_value() != 0)
    };
    let any = all.iter().any(|c| {
        ["cpu", "memory"]
            .iter()
            .any(|n| get(c, true, n).is_some() || get(c, false, n).is_some())
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = all.iter().all(|c| {
        ["cpu", "memory"]
            .iter()
            .all(|n| match (get(c, true, n), get(c, false, n)) {
                (Some(l), Some(r)) => l.milli_value() == r.milli_value(),
                (Some(_), None) => true,
                _ => false,
            })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Facts about the pod that are not container states.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    pub pod_ip: Option<String>,
    pub host_ip: Option<String>,
    pub start_time: Option<Timestamp>,
    /// The sandbox (namespaces, network) is up.
    pub sandbox_ready: bool,
    /// Deleted or past its deadline: nothing will be restarted.
    pub terminal: bool,
}

fn condition(
    kind: &str,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
    previous: Option<&PodStatus>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    // Keep the transition time while the status stays the same.
    let since = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    PodCondition {
        type_: kind.to_string(),
        status: status.to_string(),
        last_transition_time: Some(since),
        reason: if ok { None } else { reason },
        message: if ok { None } else { message },
        ..Default::default()
    }
}

/// The whole PodStatus from the container records, as the kubelet reports it.
pub fn pod_status(
    pod: &Pod,
    init: &[ContainerRecord],
    containers: &[ContainerRecord],
    facts: &PodFacts,
    previous: Option<&PodStatus>,
    now: Timestamp,
) -> PodStatus {
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    // A completed init container reads as ready, as the kubelet reports it.
    let init_statuses: Vec<ContainerStatus> = init
        .iter()
        .map(|r| {
            let mut s = r.to_status();
            if matches!(&r.state, State::Terminated(t) if t.exit_code == 0) {
                s.ready = true;
            }
            s
        })
        .collect();
    let statuses: Vec<ContainerStatus> =
        containers.iter().map(ContainerRecord::to_status).collect();
    let all: Vec<ContainerStatus> = init_statuses
        .iter()
        .chain(statuses.iter())
        .cloned()
        .collect();
    let phase = phase(spec, &all, facts.terminal);

    let specs_init = spec.init_containers.as_deref().unwrap_or_default();
    let incomplete: Vec<&str> = specs_init
        .iter()
        .filter(|c| {
            let s = find(&init_statuses, &c.name);
            if is_sidecar(c) {
                s.is_none_or(|s| s.started != Some(true))
            } else {
                s.and_then(|s| s.state.as_ref()?.terminated.as_ref())
                    .is_none_or(|t| t.exit_code != 0)
            }
        })
        .map(|c| c.name.as_str())
        .collect();
    let unready: Vec<&str> = spec
        .containers
        .iter()
        .filter(|c| !find(&statuses, &c.name).is_some_and(|s| s.ready))
        .map(|c| c.name.as_str())
        .chain(
            specs_init
                .iter()
                .filter(|c| {
                    is_sidecar(c) && !find(&init_statuses, &c.name).is_some_and(|s| s.ready)
                })
                .map(|c| c.name.as_str()),
        )
        .collect();
    // As the kubelet: initialized once every init container completed, a
    // regular container ever started, or the pod succeeded.
    let done = phase == "Succeeded";
    let initialized = incomplete.is_empty() || done || any_regular_started(spec, &all);
    let (ready_reason, ready_message) = if done {
        (Some("PodCompleted".to_string()), None)
    } else {
        (
            Some("ContainersNotReady".to_string()),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let ready = unready.is_empty() && !done;
    let conditions = vec![
        condition(
            "PodReadyToStartContainers",
            facts.sandbox_ready,
            None,
            None,
            previous,
            now,
        ),
        condition(
            "Initialized",
            initialized,
            Some("ContainersNotInitialized".into()),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
            previous,
            now,
        ),
        condition(
            "Ready",
            ready,
            ready_reason.clone(),
            ready_message.clone(),
            previous,
            now,
        ),
        condition(
            "ContainersReady",
            ready,
            ready_reason,
            ready_message,
            previous,
            now,
        ),
        condition("PodScheduled", true, None, None, previous, now),
    ];
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: facts.host_ip.clone(),
        host_ips: facts.host_ip.clone().map(|ip| vec![HostIP { ip }]),
        pod_ip: facts.pod_ip.clone(),
        pod_ips: facts.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        start_time: facts.start_time.map(Time),
        qos_class: Some(qos_class(spec).to_string()),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(statuses),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
