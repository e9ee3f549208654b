//! What a pod's QoS class decides, as the kubelet computes it: the values
//! of the pod-level cgroup (pkg/kubelet/cm/helpers_linux.go
//! ResourceConfigForPod, with the sums of k8s.io/component-helpers/resource
//! PodRequests and PodLimits) and each container's oom_score_adj
//! (pkg/kubelet/qos/policy.go). Pure functions; `pod_cgroup` writes them.

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::spec::{
    milli_cpu_to_quota, milli_cpu_to_shares, resource_quantity as quantity, QUOTA_PERIOD,
};
pub use crate::status::qos_class;

/// oom_score_adj of Guaranteed containers.
pub const GUARANTEED_OOM_SCORE_ADJ: i32 = -997;
/// oom_score_adj of BestEffort containers.
pub const BEST_EFFORT_OOM_SCORE_ADJ: i32 = 1000;

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// The pod total of one resource as PodRequests/PodLimits add it up: the
/// regular containers and sidecars summed, at least the peak of any init
/// container (plus the sidecars started before it). `value` reads one
/// container's amount in the unit the caller compares.
fn pod_total(pod: &Pod, value: impl Fn(&Container) -> i64) -> i64 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let mut total: i64 = spec.containers.iter().map(&value).sum();
    let mut sidecars = 0i64;
    let mut init_peak = 0i64;
    for c in spec.init_containers.iter().flatten() {
        let v = value(c);
        let in_use = if is_sidecar(c) {
            total += v;
            sidecars += v;
            sidecars
        } else {
            v + sidecars
        };
        init_peak = init_peak.max(in_use);
    }
    total.max(init_peak)
}

/// The pod's total of a resource's limits (bytes for memory, millicores
/// for cpu), as PodLimits adds them up; 0 when no container has one.
pub fn pod_limit_total(pod: &Pod, name: &str) -> i64 {
    pod_total(pod, |c| {
        quantity(c, true, name).map_or(0, |q| {
            if name == "cpu" {
                q.milli_value()
            } else {
                q.value()
            }
        })
    })
}

/// The pod-level cgroup's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCgroupConfig {
    /// cpu.shares (v1); cpu.weight on v2 is [`cpu_weight`] of it.
    pub cpu_shares: u64,
    /// cpu.cfs_quota_us with cpu.cfs_period_us [`QUOTA_PERIOD`]; None leaves
    /// the pod unlimited.
    pub cpu_quota: Option<i64>,
    /// memory.limit_in_bytes / memory.max; None leaves it unlimited.
    pub memory_limit: Option<i64>,
}

/// ResourceConfigForPod: Guaranteed pods get shares from the summed cpu
/// requests, quota from the summed limits and the summed memory limit;
/// Burstable pods get the shares, and the quota (memory limit) only when
/// every container declares a cpu (memory) limit; BestEffort pods get the
/// minimum shares and nothing else.
pub fn pod_cgroup_config(pod: &Pod) -> PodCgroupConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let qos = qos_class(&spec);
    let milli = |limits: bool, name: &'static str| {
        move |c: &Container| quantity(c, limits, name).map_or(0, |q| q.milli_value())
    };
    let cpu_requests = pod_total(pod, milli(false, "cpu"));
    let cpu_limits = pod_total(pod, milli(true, "cpu"));
    let memory_limits = pod_total(pod, |c| {
        quantity(c, true, "memory").map_or(0, |q| q.value())
    });
    let all = || {
        spec.init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
    };
    let declared =
        |name: &str| all().all(|c| quantity(c, true, name).is_some_and(|q| q.milli_value() != 0));
    let shares = milli_cpu_to_shares(cpu_requests);
    // MilliCPUToQuota leaves 0 for no limit, which the kubelet writes as is
    // (the kernel's "no quota" on v1 is -1: 0 is refused, so krun leaves it).
    let quota = milli_cpu_to_quota(cpu_limits, QUOTA_PERIOD);
    match qos {
        "Guaranteed" => PodCgroupConfig {
            cpu_shares: shares,
            cpu_quota: quota,
            memory_limit: Some(memory_limits).filter(|m| *m > 0),
        },
        "Burstable" => PodCgroupConfig {
            cpu_shares: shares,
            cpu_quota: quota.filter(|_| declared("cpu")),
            memory_limit: Some(memory_limits).filter(|m| *m > 0 && declared("memory")),
        },
        _ => PodCgroupConfig {
            cpu_shares: crate::spec::MIN_SHARES,
            cpu_quota: None,
            memory_limit: None,
        },
    }
}

/// cpu.weight for cpu.shares on cgroup v2: the linear map of [2, 262144]
/// onto [1, 10000] that Kubernetes (CPUSharesToCPUWeight), runc before
/// 1.3 and cgroups-rs use, so the pod and its containers agree.
pub fn cpu_weight(shares: u64) -> u64 {
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    1 + ((shares - 2) * 9999) / 262_142
}

/// GetContainerOOMScoreAdjust: -997 for Guaranteed, 1000 for BestEffort;
/// Burstable containers 1000 - 1000*memoryRequest/capacity within 3..999
/// (a sidecar no higher than the regular container with the smallest
/// request).
pub fn oom_score_adj(pod: &Pod, c: &Container, memory_capacity: u64) -> i32 {
    let spec = pod.spec.clone().unwrap_or_default();
    match qos_class(&spec) {
        "Guaranteed" => return GUARANTEED_OOM_SCORE_ADJ,
        "BestEffort" => return BEST_EFFORT_OOM_SCORE_ADJ,
        _ => {}
    }
    let capacity = (memory_capacity.max(1)).min(i64::MAX as u64) as i128;
    let request = |c: &Container| quantity(c, false, "memory").map_or(0, |q| q.value()) as i128;
    let adj = |req: i128| 1000 - (1000 * req) / capacity;
    let mut score = adj(request(c));
    let sidecar = is_sidecar(c)
        && spec
            .init_containers
            .iter()
            .flatten()
            .any(|i| i.name == c.name);
    if sidecar {
        let min_regular = spec.containers.iter().map(request).min().unwrap_or(0);
        score = score.min(adj(min_regular));
    }
    let floor = (1000 + GUARANTEED_OOM_SCORE_ADJ) as i128;
    if score < floor {
        return floor as i32;
    }
    if score == BEST_EFFORT_OOM_SCORE_ADJ as i128 {
        return BEST_EFFORT_OOM_SCORE_ADJ - 1;
    }
    score as i32
}

/// What a container gets when the host refuses a value: without
/// CAP_SYS_RESOURCE a process may not go below its own oom_score_adj
/// floor, and the supervisor's own current value is always allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OomScore {
    /// What the kubelet would set.
    pub wanted: i32,
    /// What the container gets.
    pub applied: i32,
}

/// Chooses the value to apply: `wanted`, or `own` (the supervisor's value)
/// when `wanted` is lower and the supervisor lacks CAP_SYS_RESOURCE.
pub fn oom_score_for_host(wanted: i32, own: i32, can_lower: bool) -> OomScore {
    let applied = if can_lower || wanted >= own {
        wanted
    } else {
        own
    };
    OomScore { wanted, applied }
}

/// The supervisor's own oom_score_adj and whether it may set lower ones.
pub fn host_oom_floor() -> (i32, bool) {
    let own = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    (own, has_cap_sys_resource())
}

fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|eff| eff & (1 << CAP_SYS_RESOURCE) != 0)
}

#[cfg(test)]
mod tests;
