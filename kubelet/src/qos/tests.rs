use super::*;
use crate::manifest::{parse_str, Object};

fn pod(containers: &str) -> Pod {
    let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{containers}");
    match parse_str("t.yaml", &yaml).unwrap().remove(0).object {
        Object::Pod(p) => *p,
        _ => unreachable!(),
    }
}

fn ctr(name: &str, res: &str) -> String {
    format!("  - {{name: {name}, image: busybox, resources: {res}}}\n")
}

const GIB: u64 = 1 << 30;

#[test]
fn guaranteed_pod_cgroup_sums_requests_and_limits() {
    let p = pod(&format!(
        "  containers:\n{}{}",
        ctr("a", "{limits: {cpu: 500m, memory: 128Mi}}"),
        ctr("b", "{limits: {cpu: 250m, memory: 64Mi}}")
    ));
    assert_eq!(qos_class(p.spec.as_ref().unwrap()), "Guaranteed");
    assert_eq!(
        pod_cgroup_config(&p),
        PodCgroupConfig {
            cpu_shares: 768,
            cpu_quota: Some(75_000),
            memory_limit: Some(192 << 20),
        }
    );
    let c = &p.spec.as_ref().unwrap().containers[0];
    assert_eq!(oom_score_adj(&p, c, 24 * GIB), -997);
}

#[test]
fn burstable_pod_cgroup_limits_only_when_every_container_declares_one() {
    // b has no cpu limit: no quota; both have memory limits: summed.
    let p = pod(&format!(
        "  containers:\n{}{}",
        ctr(
            "a",
            "{requests: {cpu: 100m, memory: 32Mi}, limits: {cpu: 200m, memory: 64Mi}}"
        ),
        ctr("b", "{requests: {cpu: 50m}, limits: {memory: 16Mi}}")
    ));
    assert_eq!(qos_class(p.spec.as_ref().unwrap()), "Burstable");
    assert_eq!(
        pod_cgroup_config(&p),
        PodCgroupConfig {
            cpu_shares: 153,
            cpu_quota: None,
            memory_limit: Some(80 << 20),
        }
    );
    // a request without any limit: shares only
    let p = pod(&format!(
        "  containers:\n{}",
        ctr("a", "{requests: {cpu: 250m, memory: 1Gi}}")
    ));
    assert_eq!(
        pod_cgroup_config(&p),
        PodCgroupConfig {
            cpu_shares: 256,
            cpu_quota: None,
            memory_limit: None,
        }
    );
    let c = &p.spec.as_ref().unwrap().containers[0];
    // 1000 - 1000 * 1Gi / 24Gi = 1000 - 41 = 959
    assert_eq!(oom_score_adj(&p, c, 24 * GIB), 959);
}

#[test]
fn best_effort_gets_minimum_shares() {
    let p = pod("  containers:\n  - {name: a, image: busybox}\n");
    assert_eq!(qos_class(p.spec.as_ref().unwrap()), "BestEffort");
    assert_eq!(
        pod_cgroup_config(&p),
        PodCgroupConfig {
            cpu_shares: 2,
            cpu_quota: None,
            memory_limit: None,
        }
    );
    let c = &p.spec.as_ref().unwrap().containers[0];
    assert_eq!(oom_score_adj(&p, c, 24 * GIB), 1000);
}

#[test]
fn init_containers_count_at_their_peak() {
    // init needs 2 cpu alone; the regular containers 0.5: the pod needs 2.
    let p = pod(&format!(
        "  initContainers:\n{}  containers:\n{}",
        ctr("init", "{limits: {cpu: '2', memory: 64Mi}}"),
        ctr("a", "{limits: {cpu: 500m, memory: 256Mi}}")
    ));
    let cfg = pod_cgroup_config(&p);
    assert_eq!(cfg.cpu_shares, 2048);
    assert_eq!(cfg.cpu_quota, Some(200_000));
    assert_eq!(cfg.memory_limit, Some(256 << 20));
    // a sidecar adds to the regular containers
    let p = pod(&format!(
        "  initContainers:\n  - {{name: side, image: busybox, restartPolicy: Always, resources: {{limits: {{cpu: 100m, memory: 32Mi}}}}}}\n  containers:\n{}",
        ctr("a", "{limits: {cpu: 500m, memory: 256Mi}}")
    ));
    let cfg = pod_cgroup_config(&p);
    assert_eq!(cfg.cpu_shares, 614);
    assert_eq!(cfg.cpu_quota, Some(60_000));
    assert_eq!(cfg.memory_limit, Some(288 << 20));
}

#[test]
fn burstable_oom_score_bounds() {
    let p = pod(&format!(
        "  containers:\n{}{}",
        ctr("big", "{requests: {memory: 30Gi}}"),
        ctr("none", "{requests: {cpu: 100m}}")
    ));
    let s = &p.spec.as_ref().unwrap().containers;
    assert_eq!(
        oom_score_adj(&p, &s[0], 24 * GIB),
        3,
        "never below 1000-997"
    );
    assert_eq!(
        oom_score_adj(&p, &s[1], 24 * GIB),
        999,
        "never BestEffort's 1000"
    );
    // a sidecar is no likelier to be killed than the smallest regular container
    let p = pod(&format!(
        "  initContainers:\n  - {{name: side, image: busybox, restartPolicy: Always, resources: {{requests: {{memory: 1Mi}}}}}}\n  containers:\n{}",
        ctr("a", "{requests: {memory: 12Gi}}")
    ));
    let side = &p.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
    assert_eq!(oom_score_adj(&p, side, 24 * GIB), 500);
}

#[test]
fn weights_and_host_floor() {
    assert_eq!(cpu_weight(2), 1);
    assert_eq!(cpu_weight(1024), 39);
    assert_eq!(cpu_weight(262_144), 10_000);
    // without CAP_SYS_RESOURCE a negative value falls back to our own
    assert_eq!(
        oom_score_for_host(-997, 0, false),
        OomScore {
            wanted: -997,
            applied: 0
        }
    );
    assert_eq!(oom_score_for_host(-997, 0, true).applied, -997);
    assert_eq!(oom_score_for_host(500, 0, false).applied, 500);
}
