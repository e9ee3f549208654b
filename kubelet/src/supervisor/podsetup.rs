//! What the kubelet does for a pod before its sandbox and containers: the
//! pod-level cgroup with the pod's limits, and the volumes (with the
//! kubelet's FailedMount events and a growing retry delay while one
//! cannot be set up). Also each container's oom_score_adj, lowered only
//! as far as the host allows, with a Warning event when it is not what
//! the kubelet would set.

use std::collections::HashSet;
use std::time::Duration;

use jiff::Timestamp;

use super::{ReadyReport, Supervisor};
use crate::backoff;
use crate::events::{Event, EventType};
use crate::qos;
use crate::spec::PodFacts;
use crate::volumes::{self, PodVolumes, SetupInput};

const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The kubelet's longest wait between two tries of a volume operation.
const MAX_RETRY: Duration = Duration::from_secs(122);

/// The pod-wide setup state of a supervisor.
#[derive(Debug, Default)]
pub(crate) struct PodSetup {
    cgroup: bool,
    pub(crate) volumes: Option<PodVolumes>,
    pub(crate) retry_at: Option<Timestamp>,
    delay: Option<Duration>,
    /// Containers already warned about their oom_score_adj.
    oom_warned: HashSet<String>,
}

fn warning(now: Timestamp, reason: &str, message: String) -> Event {
    Event {
        time: now,
        type_: EventType::Warning,
        reason: reason.into(),
        from: "kubelet".into(),
        message,
    }
}

impl PodSetup {
    fn fail(&mut self, now: Timestamp) {
        let d = self.delay.map_or(FIRST_RETRY, |d| (d * 2).min(MAX_RETRY));
        self.delay = Some(d);
        self.retry_at = Some(backoff::after(now, d));
    }
}

impl Supervisor {
    /// True once the pod's cgroup and volumes are ready.
    pub(super) fn ensure_pod_setup(&mut self) -> bool {
        let now = Timestamp::now();
        if self.setup.cgroup && self.setup.volumes.is_some() {
            return true;
        }
        if self.setup.retry_at.is_some_and(|t| t > now) {
            return false;
        }
        if !self.setup.cgroup {
            let cfg = qos::pod_cgroup_config(self.pod());
            if let Err(e) = crate::pod_cgroup::ensure(self.uid(), &cfg) {
                let msg = format!("unable to ensure pod container exists: {e}");
                self.events
                    .push(warning(now, "FailedCreatePodContainer", msg.clone()));
                // the status first: what `apply -d` says, `get` shows
                self.publish();
                self.report(ReadyReport {
                    ok: false,
                    message: msg,
                });
                self.setup.fail(now);
                return false;
            }
            self.setup.cgroup = true;
        }
        let facts = PodFacts {
            pod_ip: self.pod_ip.clone(),
            host_ip: Some(crate::node::Node::host_ip(&self.network)),
        };
        let r = volumes::setup(&SetupInput {
            pod: &self.desired.pod,
            objects: crate::spec::Objects {
                config_maps: &self.desired.config_maps,
                secrets: &self.desired.secrets,
            },
            facts: &facts,
            node: &self.node_facts,
            state: &self.dirs.state,
        });
        match r {
            Ok(v) => {
                self.setup.volumes = Some(v);
                self.setup.retry_at = None;
                true
            }
            Err(e) => {
                self.events.push(warning(now, "FailedMount", e.to_string()));
                self.publish();
                self.report(ReadyReport {
                    ok: false,
                    message: format!("FailedMount: {e}"),
                });
                self.setup.fail(now);
                false
            }
        }
    }

    /// The oom_score_adj container `k` runs with.
    pub(super) fn oom_score_adj(&mut self, k: usize) -> i32 {
        let c = &self.slots[k].container;
        let wanted = qos::oom_score_adj(self.pod(), c, self.node_facts.memory_bytes);
        let (own, can_lower) = qos::host_oom_floor();
        let s = qos::oom_score_for_host(wanted, own, can_lower);
        if s.applied != s.wanted && self.setup.oom_warned.insert(c.name.clone()) {
            let msg = format!(
                "container {}: oom_score_adj {} ({} QoS) needs CAP_SYS_RESOURCE, which krun lacks on this host; it runs with {}",
                c.name,
                s.wanted,
                qos::qos_class(self.pod().spec.as_ref().unwrap_or(&Default::default())),
                s.applied
            );
            self.events
                .push(warning(Timestamp::now(), "OOMScoreAdjustLimited", msg));
        }
        s.applied
    }
}
