use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn container(probes: serde_json::Value) -> Container {
    let mut v = serde_json::json!({"name": "app", "image": "b"});
    for (k, p) in probes.as_object().unwrap() {
        v[k] = p.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn ok() -> Outcome {
    Outcome::Success(String::new())
}
fn fail() -> Outcome {
    Outcome::Failure("no".into())
}

/// Runs every due probe at `now` with `result(kind)`; the changes.
fn tick(
    p: &mut Probes,
    now: Instant,
    result: impl Fn(Kind) -> Outcome,
) -> Vec<(Kind, Vec<Change>)> {
    p.due(now)
        .into_iter()
        .map(|k| (k, p.finish(k, &result(k))))
        .collect()
}

#[test]
fn defaults_are_the_apis() {
    let c = container(serde_json::json!({"livenessProbe": {"exec": {"command": ["true"]}}}));
    assert_eq!(
        Timing::of(c.liveness_probe.as_ref().unwrap()),
        Timing {
            initial_delay: S(0),
            period: S(10),
            timeout: S(1),
            success_threshold: 1,
            failure_threshold: 3
        }
    );
}

#[test]
fn no_probes_is_started_and_ready_at_once() {
    let p = Probes::new(&container(serde_json::json!({})), Instant::now());
    assert!(p.started() && p.ready());
    assert_eq!(p.next_wake(), None);
}

#[test]
fn initial_delay_then_every_period() {
    let t0 = Instant::now();
    let c = container(serde_json::json!({
        "readinessProbe": {"exec": {"command": ["true"]}, "initialDelaySeconds": 5, "periodSeconds": 2}
    }));
    let mut p = Probes::new(&c, t0);
    assert!(!p.ready(), "not ready before the first success");
    assert_eq!(p.next_wake(), Some(t0 + S(5)));
    assert!(p.due(t0 + S(4)).is_empty());
    let runs: Vec<u64> = (0..=12)
        .filter(|s| !tick(&mut p, t0 + S(*s), |_| ok()).is_empty())
        .collect();
    assert_eq!(runs, [5, 7, 9, 11]);
    assert!(p.ready());
}

#[test]
fn a_running_probe_is_not_started_twice() {
    let t0 = Instant::now();
    let c = container(
        serde_json::json!({"livenessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1}}),
    );
    let mut p = Probes::new(&c, t0);
    assert_eq!(p.due(t0), [Kind::Liveness]);
    assert!(p.due(t0 + S(5)).is_empty(), "still running");
    assert_eq!(p.next_wake(), None);
    p.finish(Kind::Liveness, &ok());
    // overdue: runs at once
    assert_eq!(p.due(t0 + S(5)), [Kind::Liveness]);
}

#[test]
fn liveness_kills_after_failure_threshold_consecutive_failures() {
    let t0 = Instant::now();
    let c = container(serde_json::json!({
        "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 3}
    }));
    let mut p = Probes::new(&c, t0);
    // two failures, a success (the run resets), then three failures
    let results = [fail(), fail(), ok(), fail(), fail(), fail()];
    let mut kills = Vec::new();
    for (s, r) in results.iter().enumerate() {
        for (_, changes) in tick(&mut p, t0 + S(s as u64), |_| r.clone()) {
            if changes.contains(&Change::Kill(Kind::Liveness)) {
                kills.push(s);
            }
        }
    }
    assert_eq!(kills, [5]);
    // on hold until the next instance
    assert!(p.due(t0 + S(100)).is_empty());
}

#[test]
fn readiness_needs_success_threshold_and_toggles() {
    let t0 = Instant::now();
    let c = container(serde_json::json!({
        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1,
                           "successThreshold": 2, "failureThreshold": 1}
    }));
    let mut p = Probes::new(&c, t0);
    let seq = [ok(), ok(), fail(), ok(), ok()];
    let mut changes = Vec::new();
    for (s, r) in seq.iter().enumerate() {
        for (_, ch) in tick(&mut p, t0 + S(s as u64), |_| r.clone()) {
            changes.extend(ch.into_iter().map(|c| (s, c)));
        }
    }
    assert_eq!(
        changes,
        [
            (1, Change::Ready(true)),
            (2, Change::Ready(false)),
            (4, Change::Ready(true))
        ]
    );
}

#[test]
fn errors_do_not_count() {
    let t0 = Instant::now();
    let c = container(serde_json::json!({
        "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 2}
    }));
    let mut p = Probes::new(&c, t0);
    let seq = [
        fail(),
        Outcome::Error("x".into()),
        Outcome::Error("x".into()),
    ];
    for (s, r) in seq.iter().enumerate() {
        for (_, ch) in tick(&mut p, t0 + S(s as u64), |_| r.clone()) {
            assert!(ch.is_empty());
        }
    }
    let last = tick(&mut p, t0 + S(3), |_| fail());
    assert_eq!(last, [(Kind::Liveness, vec![Change::Kill(Kind::Liveness)])]);
}

#[test]
fn startup_holds_liveness_and_readiness_off_until_it_succeeds() {
    let t0 = Instant::now();
    let c = container(serde_json::json!({
        "startupProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 30},
        "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 1},
        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}
    }));
    let mut p = Probes::new(&c, t0);
    assert!(!p.started() && !p.ready());
    // the startup probe fails 4 times: liveness (which would kill at once) never runs
    for s in 0..4 {
        let ran = tick(&mut p, t0 + S(s), |_| fail());
        assert_eq!(ran, [(Kind::Startup, vec![])]);
    }
    let ran = tick(&mut p, t0 + S(4), |_| ok());
    assert_eq!(ran, [(Kind::Startup, vec![Change::Started])]);
    assert!(p.started() && !p.ready());
    // now liveness and readiness run, startup no more
    let ran = tick(&mut p, t0 + S(4), |_| ok());
    let kinds: Vec<Kind> = ran.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, [Kind::Liveness, Kind::Readiness]);
    assert_eq!(ran[1].1, [Change::Ready(true)]);
    let ran = tick(&mut p, t0 + S(5), |k| {
        if k == Kind::Liveness {
            fail()
        } else {
            ok()
        }
    });
    assert_eq!(ran[0], (Kind::Liveness, vec![Change::Kill(Kind::Liveness)]));
}

#[test]
fn a_startup_probe_past_its_threshold_kills() {
    let t0 = Instant::now();
    let c = container(serde_json::json!({
        "startupProbe": {"exec": {"command": ["true"]}, "periodSeconds": 2, "failureThreshold": 2}
    }));
    let mut p = Probes::new(&c, t0);
    assert_eq!(tick(&mut p, t0, |_| fail()), [(Kind::Startup, vec![])]);
    assert_eq!(p.next_wake(), Some(t0 + S(2)));
    assert_eq!(
        tick(&mut p, t0 + S(2), |_| fail()),
        [(Kind::Startup, vec![Change::Kill(Kind::Startup)])]
    );
    assert!(!p.started());
}

#[test]
fn a_warning_is_a_success_and_hold_keeps_readiness() {
    let t0 = Instant::now();
    let c = container(serde_json::json!({
        "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}
    }));
    let mut p = Probes::new(&c, t0);
    let ran = tick(&mut p, t0, |_| Outcome::Warning("redirect".into()));
    assert_eq!(ran[1].1, [Change::Ready(true)]);
    p.hold();
    assert_eq!(p.due(t0 + S(1)), [Kind::Readiness]);
}
