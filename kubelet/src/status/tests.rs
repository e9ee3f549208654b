use super::*;
use crate::manifest::{parse_str, Object};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn pod(yaml: &str) -> Pod {
    match parse_str("t.yaml", yaml).unwrap().remove(0).object {
        Object::Pod(p) => *p,
        other => panic!("{}", other.kind()),
    }
}

const T0: &str = "2026-01-01T00:00:00Z";

fn running(c: &Container, since: &str) -> ContainerRecord {
    let mut r = ContainerRecord::new(c, Waiting::ContainerCreating);
    r.state = State::Running {
        started_at: ts(since),
    };
    r.ready = true;
    r.started = true;
    r
}

fn exited(code: i32, at: &str) -> Terminated {
    Terminated {
        exit_code: code,
        oom_killed: false,
        started_at: Some(ts(T0)),
        finished_at: ts(at),
        message: None,
        container_id: None,
        status_unknown: false,
    }
}

/// The pod with its status computed from the records, as `get pods` sees it.
fn with_status(
    mut p: Pod,
    init: &[ContainerRecord],
    regular: &[ContainerRecord],
    now: &str,
) -> Pod {
    p.metadata.creation_timestamp = Some(Time(ts(T0)));
    let facts = PodFacts {
        pod_ip: Some("10.88.0.5".into()),
        host_ip: Some("127.0.0.1".into()),
        start_time: Some(ts(T0)),
        sandbox_ready: true,
        terminal: false,
    };
    p.status = Some(pod_status(&p, init, regular, &facts, None, ts(now)));
    p
}

fn row(p: &Pod, now: &str) -> Vec<String> {
    pod_row(p, ts(now), false)
}

const ONE: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app, image: busybox}]\n";

fn one(policy: &str) -> Pod {
    pod(&ONE.replace("spec:\n", &format!("spec:\n  restartPolicy: {policy}\n")))
}

#[test]
fn running_pod_row_and_wide() {
    let p = one("Always");
    let c = &p.spec.as_ref().unwrap().containers[0];
    let p = with_status(p.clone(), &[], &[running(c, T0)], "2026-01-01T00:03:02Z");
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(
        row(&p, "2026-01-01T00:03:02Z"),
        ["web", "1/1", "Running", "0", "3m2s"]
    );
    let table = pods_table(
        std::slice::from_ref(&p),
        ts("2026-01-01T00:00:05Z"),
        true,
        false,
    );
    let all = pods_table(&[p], ts("2026-01-01T00:00:05Z"), false, true);
    assert!(all.starts_with("NAMESPACE   NAME"), "{all}");
    assert_eq!(
        table,
        "NAME   READY   STATUS    RESTARTS   AGE   IP          NODE     NOMINATED NODE   READINESS GATES\n\
         web    1/1     Running   0          5s    10.88.0.5   <none>   <none>           <none>\n"
    );
}

#[test]
fn waiting_reasons_show_as_status() {
    let p = one("Always");
    let c = p.spec.as_ref().unwrap().containers[0].clone();
    let cases = [
        (Waiting::ContainerCreating, "ContainerCreating"),
        (
            Waiting::ErrImagePull("manifest unknown".into()),
            "ErrImagePull",
        ),
        (
            Waiting::image_pull_backoff("busybox:nope"),
            "ImagePullBackOff",
        ),
    ];
    for (w, want) in cases {
        let r = ContainerRecord::new(&c, w);
        let p = with_status(p.clone(), &[], &[r], "2026-01-01T00:00:07Z");
        assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
        assert_eq!(
            row(&p, "2026-01-01T00:00:07Z"),
            ["web", "0/1", want, "0", "7s"]
        );
    }
    let r = ContainerRecord::new(&c, Waiting::image_pull_backoff("busybox:nope"));
    let status = r.to_status();
    let waiting = status.state.unwrap().waiting.unwrap();
    assert_eq!(
        waiting.message.as_deref(),
        Some("Back-off pulling image \"busybox:nope\"")
    );
}

#[test]
fn crash_loop_counts_restarts_with_their_age() {
    let p = one("Always");
    let c = p.spec.as_ref().unwrap().containers[0].clone();
    let mut r = ContainerRecord::new(
        &c,
        Waiting::CrashLoopBackOff(
            "back-off 20s restarting failed container=app pod=web_default(u)".into(),
        ),
    );
    r.restart_count = 3;
    r.last_terminated = Some(exited(1, "2026-01-01T00:01:00Z"));
    let p = with_status(p, &[], &[r], "2026-01-01T00:01:05Z");
    // Waiting after a termination counts as stopped: with Always the pod is Running.
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(
        row(&p, "2026-01-01T00:01:05Z"),
        ["web", "0/1", "CrashLoopBackOff", "3 (5s ago)", "65s"]
    );
}

#[test]
fn phases_for_every_restart_policy_and_exit_code() {
    let cases = [
        ("Always", 0, "Running", "Completed"),
        ("Always", 1, "Running", "Error"),
        ("OnFailure", 0, "Succeeded", "Completed"),
        ("OnFailure", 1, "Running", "Error"),
        ("Never", 0, "Succeeded", "Completed"),
        ("Never", 1, "Failed", "Error"),
    ];
    for (policy, code, phase, status) in cases {
        let p = one(policy);
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        let mut r = ContainerRecord::new(&c, Waiting::ContainerCreating);
        r.state = State::Terminated(exited(code, "2026-01-01T00:00:03Z"));
        let p = with_status(p, &[], &[r], "2026-01-01T00:00:04Z");
        let st = p.status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some(phase), "{policy} exit {code}");
        assert_eq!(
            row(&p, "2026-01-01T00:00:04Z")[2],
            status,
            "{policy} exit {code}"
        );
        if phase == "Succeeded" {
            let ready = st
                .conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "Ready")
                .unwrap();
            assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
        }
    }
    // OOMKilled is its own reason.
    let p = one("Never");
    let c = p.spec.as_ref().unwrap().containers[0].clone();
    let mut r = ContainerRecord::new(&c, Waiting::ContainerCreating);
    let mut t = exited(137, "2026-01-01T00:00:03Z");
    t.oom_killed = true;
    r.state = State::Terminated(t);
    let p = with_status(p, &[], &[r], "2026-01-01T00:00:04Z");
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Failed"));
    assert_eq!(row(&p, "2026-01-01T00:00:04Z")[2], "OOMKilled");
}

const INIT: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  restartPolicy: Never\n  initContainers:\n  - {name: one, image: busybox}\n  - {name: two, image: busybox}\n  containers: [{name: app, image: busybox}]\n";

#[test]
fn init_containers_in_the_status_column() {
    let p = pod(INIT);
    let spec = p.spec.clone().unwrap();
    let inits = spec.init_containers.unwrap();
    let app = ContainerRecord::new(&spec.containers[0], Waiting::PodInitializing);
    let now = "2026-01-01T00:00:02Z";

    let first = running(&inits[0], T0);
    let second = ContainerRecord::new(&inits[1], Waiting::PodInitializing);
    let q = with_status(
        p.clone(),
        &[first.clone(), second.clone()],
        std::slice::from_ref(&app),
        now,
    );
    assert_eq!(q.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(row(&q, now), ["web", "0/1", "Init:0/2", "0", "2s"]);
    let init_cond = q.status.as_ref().unwrap().conditions.clone().unwrap();
    let init_cond = init_cond.iter().find(|c| c.type_ == "Initialized").unwrap();
    assert_eq!(
        init_cond.message.as_deref(),
        Some("containers with incomplete status: [one two]")
    );

    let mut done = first.clone();
    done.state = State::Terminated(exited(0, "2026-01-01T00:00:01Z"));
    let q = with_status(
        p.clone(),
        &[done.clone(), running(&inits[1], now)],
        std::slice::from_ref(&app),
        now,
    );
    assert_eq!(row(&q, now)[2], "Init:1/2");

    let mut failed = ContainerRecord::new(&inits[1], Waiting::ContainerCreating);
    failed.state = State::Terminated(exited(2, now));
    let q = with_status(
        p.clone(),
        &[done.clone(), failed],
        std::slice::from_ref(&app),
        now,
    );
    assert_eq!(q.status.as_ref().unwrap().phase.as_deref(), Some("Failed"));
    assert_eq!(row(&q, now)[2], "Init:Error");

    let mut looping = ContainerRecord::new(&inits[1], Waiting::CrashLoopBackOff("back-off".into()));
    looping.restart_count = 2;
    looping.last_terminated = Some(exited(1, "2026-01-01T00:00:01Z"));
    let mut q = pod(&INIT.replace("Never", "Always"));
    q = with_status(q, &[done.clone(), looping], std::slice::from_ref(&app), now);
    assert_eq!(q.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(
        row(&q, now),
        ["web", "0/1", "Init:CrashLoopBackOff", "2 (1s ago)", "2s"]
    );
}

#[test]
fn terminating_overrides_while_not_terminal() {
    let p = one("Always");
    let c = p.spec.as_ref().unwrap().containers[0].clone();
    let mut p = with_status(p, &[], &[running(&c, T0)], "2026-01-01T00:00:09Z");
    p.metadata.deletion_timestamp = Some(Time(ts("2026-01-01T00:00:08Z")));
    assert_eq!(row(&p, "2026-01-01T00:00:09Z")[2], "Terminating");
}

#[test]
fn completed_with_a_running_sibling_reads_running() {
    let p = pod("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  restartPolicy: OnFailure\n  containers: [{name: a, image: busybox}, {name: b, image: busybox}]\n");
    let cs = p.spec.clone().unwrap().containers;
    let mut a = ContainerRecord::new(&cs[0], Waiting::ContainerCreating);
    a.state = State::Terminated(exited(0, "2026-01-01T00:00:01Z"));
    let b = running(&cs[1], T0);
    let p = with_status(p, &[], &[a, b], "2026-01-01T00:00:02Z");
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
    // a is not ready, so the pod is not Ready: kubectl prints NotReady.
    assert_eq!(
        row(&p, "2026-01-01T00:00:02Z")[1..3],
        ["1/2".to_string(), "NotReady".to_string()]
    );
}

#[test]
fn qos_classes() {
    let base = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: a, image: b, resources: RES}]\n";
    let q = |res: &str| qos_class(pod(&base.replace("RES", res)).spec.as_ref().unwrap());
    assert_eq!(q("{}"), "BestEffort");
    assert_eq!(q("{limits: {cpu: 1, memory: 1Gi}}"), "Guaranteed");
    assert_eq!(q("{limits: {cpu: 1}}"), "Burstable");
    assert_eq!(
        q("{requests: {memory: 1Gi}, limits: {cpu: 1, memory: 2Gi}}"),
        "Burstable"
    );
}

#[test]
fn condition_transition_times_are_kept() {
    let p = one("Always");
    let c = p.spec.as_ref().unwrap().containers[0].clone();
    let facts = PodFacts {
        sandbox_ready: true,
        ..Default::default()
    };
    let first = pod_status(
        &p,
        &[],
        &[running(&c, T0)],
        &facts,
        None,
        ts("2026-01-01T00:00:01Z"),
    );
    let second = pod_status(
        &p,
        &[],
        &[running(&c, T0)],
        &facts,
        Some(&first),
        ts("2026-01-01T00:00:09Z"),
    );
    let ready = |s: &PodStatus| {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .cloned()
            .unwrap()
    };
    assert_eq!(
        ready(&second).last_transition_time,
        Some(Time(ts("2026-01-01T00:00:01Z")))
    );
    let mut r = running(&c, T0);
    r.ready = false;
    let third = pod_status(
        &p,
        &[],
        &[r],
        &facts,
        Some(&second),
        ts("2026-01-01T00:00:20Z"),
    );
    assert_eq!(ready(&third).status, "False");
    assert_eq!(
        ready(&third).last_transition_time,
        Some(Time(ts("2026-01-01T00:00:20Z")))
    );
    assert_eq!(
        ready(&third).message.as_deref(),
        Some("containers with unready status: [app]")
    );
}
