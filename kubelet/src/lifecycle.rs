//! What a pod should do next, decided as the kubelet's computePodActions
//! decides it: init containers one at a time (sidecars, with restartPolicy
//! Always, started in order and kept running), then the main containers,
//! restarts by restart policy through the CrashLoopBackOff back-off, and
//! sidecars stopped in reverse order once the main containers are done.
//!
//! The supervisor calls [`plan`] after every change (an exit, a probe
//! result, a timer) and carries the plan out; the plan itself does nothing.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::backoff::{Backoff, Restart};
use crate::status::{ContainerRecord, State, Terminated};

/// A container of the pod, by its place in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Init(usize),
    Main(usize),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Create and start these, in this order.
    pub start: Vec<Target>,
    /// Exited and to be restarted, but backing off until the time given
    /// (CrashLoopBackOff with this back-off).
    pub back_off: Vec<(Target, Timestamp, Duration)>,
    /// Stop these, in this order.
    pub stop: Vec<Target>,
    /// Nothing runs and nothing will run again: the pod is done.
    pub finished: bool,
    /// When to plan again if nothing else happens first.
    pub wake_at: Option<Timestamp>,
}

/// Whether a container that ended this way is started again.
pub fn should_restart(restart_policy: &str, exit_code: i32) -> bool {
    match restart_policy {
        "Always" => true,
        "OnFailure" => exit_code != 0,
        _ => false,
    }
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// The back-off key of a container (one Backoff per pod).
pub fn backoff_key(target: Target, name: &str) -> String {
    match target {
        Target::Init(_) => format!("init/{name}"),
        Target::Main(_) => name.to_string(),
    }
}

/// How the container last ended, if it is not running now.
fn ended(r: &ContainerRecord) -> Option<&Terminated> {
    match &r.state {
        State::Terminated(t) => Some(t),
        State::Waiting(_) => r.last_terminated.as_ref(),
        State::Running { .. } => None,
    }
}

fn never_ran(r: &ContainerRecord) -> bool {
    matches!(r.state, State::Waiting(_)) && r.last_terminated.is_none()
}

struct Planner<'a> {
    backoff: &'a mut Backoff,
    now: Timestamp,
    plan: Plan,
}

impl Planner<'_> {
    /// Restart `target` now or once its back-off has passed.
    fn restart(&mut self, target: Target, r: &ContainerRecord, t: &Terminated) {
        let key = backoff_key(target, &r.name);
        match self.backoff.restart(&key, t.finished_at, self.now) {
            Restart::Now { .. } => self.plan.start.push(target),
            Restart::Wait { until, backoff } => {
                self.plan.back_off.push((target, until, backoff));
                self.plan.wake_at = Some(self.plan.wake_at.map_or(until, |w| w.min(until)));
            }
        }
    }
}

/// Decide the next steps. `init` and `main` hold one record per container
/// of the spec, in spec order. `deleting` stops everything.
pub fn plan(
    spec: &PodSpec,
    init: &[ContainerRecord],
    main: &[ContainerRecord],
    backoff: &mut Backoff,
    now: Timestamp,
    deleting: bool,
) -> Plan {
    let init_specs = spec.init_containers.as_deref().unwrap_or_default();
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let running = |r: &ContainerRecord| matches!(r.state, State::Running { .. });
    let sidecars_running_reversed = || {
        init_specs
            .iter()
            .enumerate()
            .rev()
            .filter(|(i, c)| is_sidecar(c) && init.get(*i).is_some_and(running))
            .map(|(i, _)| Target::Init(i))
            .collect::<Vec<_>>()
    };
    let mut p = Planner {
        backoff,
        now,
        plan: Plan::default(),
    };

    if deleting {
        // Main containers first, then sidecars in reverse order.
        p.plan.stop.extend(
            main.iter()
                .enumerate()
                .filter(|(_, r)| running(r))
                .map(|(i, _)| Target::Main(i)),
        );
        p.plan.stop.extend(sidecars_running_reversed());
        let regular_init_running = init_specs
            .iter()
            .enumerate()
            .filter(|(i, c)| !is_sidecar(c) && init.get(*i).is_some_and(running))
            .map(|(i, _)| Target::Init(i));
        p.plan.stop.extend(regular_init_running);
        p.plan.finished = p.plan.stop.is_empty();
        return p.plan;
    }

    // Every main container is done for good (after it ran): nothing is
    // started again, sidecars included, and the sidecars stop, last
    // first (the kubelet's KillPod once no regular container is kept).
    let main_done = !main.is_empty()
        && main
            .iter()
            .all(|r| !running(r) && ended(r).is_some_and(|t| !should_restart(policy, t.exit_code)));
    if main_done {
        p.plan.stop = sidecars_running_reversed();
        p.plan.finished = p.plan.stop.is_empty();
        return p.plan;
    }

    // Init containers, one at a time.
    for (i, c) in init_specs.iter().enumerate() {
        let Some(r) = init.get(i) else { break };
        let target = Target::Init(i);
        if is_sidecar(c) {
            if never_ran(r) {
                p.plan.start.push(target);
                return p.plan;
            }
            if let Some(t) = ended(r) {
                let t = t.clone();
                p.restart(target, r, &t);
                // Until it has started once, the next init container waits.
                if !r.started && r.restart_count == 0 {
                    return p.plan;
                }
                continue;
            }
            if !r.started {
                return p.plan;
            }
            continue;
        }
        match &r.state {
            State::Terminated(t) if t.exit_code == 0 => continue,
            State::Running { .. } => return p.plan,
            _ if never_ran(r) => {
                p.plan.start.push(target);
                return p.plan;
            }
            _ => {
                let Some(t) = ended(r).cloned() else {
                    return p.plan;
                };
                if policy == "Never" {
                    // The pod failed to initialize: stop what runs, done.
                    p.plan.stop = sidecars_running_reversed();
                    p.plan.finished = p.plan.stop.is_empty();
                    return p.plan;
                }
                p.restart(target, r, &t);
                return p.plan;
            }
        }
    }

    // Main containers.
    let mut active = false;
    for (i, r) in main.iter().enumerate() {
        let target = Target::Main(i);
        if never_ran(r) {
            p.plan.start.push(target);
            active = true;
            continue;
        }
        if running(r) {
            active = true;
            continue;
        }
        if let Some(t) = ended(r).cloned() {
            if should_restart(policy, t.exit_code) {
                p.restart(target, r, &t);
                active = true;
            }
        }
    }
    if active {
        return p.plan;
    }
    // Every main container is done for good: sidecars stop, last first.
    p.plan.stop = sidecars_running_reversed();
    p.plan.finished = p.plan.stop.is_empty();
    p.plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::after;
    use crate::manifest::{parse_str, Object};
    use crate::status::Waiting;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn t0() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn spec(yaml: &str) -> PodSpec {
        match parse_str("t.yaml", yaml).unwrap().remove(0).object {
            Object::Pod(p) => p.spec.unwrap(),
            other => panic!("{}", other.kind()),
        }
    }

    fn records(list: &[Container]) -> Vec<ContainerRecord> {
        list.iter()
            .map(|c| ContainerRecord::new(c, Waiting::ContainerCreating))
            .collect()
    }

    fn run(r: &mut ContainerRecord, at: Timestamp) {
        if let State::Terminated(t) = &r.state {
            r.last_terminated = Some(t.clone());
            r.restart_count += 1;
        } else if r.last_terminated.is_some() {
            r.restart_count += 1;
        }
        r.state = State::Running { started_at: at };
        r.started = true;
    }

    fn exit(r: &mut ContainerRecord, code: i32, at: Timestamp) {
        r.state = State::Terminated(Terminated {
            exit_code: code,
            oom_killed: false,
            started_at: None,
            finished_at: at,
            message: None,
            container_id: None,
            status_unknown: false,
        });
    }

    const INITS: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  restartPolicy: POLICY\n  initContainers: [{name: one, image: b}, {name: two, image: b}]\n  containers: [{name: app, image: b}, {name: side, image: b}]\n";

    #[test]
    fn init_containers_run_one_at_a_time_then_the_main_ones() {
        let s = spec(&INITS.replace("POLICY", "Always"));
        let mut init = records(s.init_containers.as_ref().unwrap());
        let mut main = records(&s.containers);
        let mut b = Backoff::default();
        let now = t0();
        assert_eq!(
            plan(&s, &init, &main, &mut b, now, false).start,
            [Target::Init(0)]
        );
        run(&mut init[0], now);
        assert_eq!(
            plan(&s, &init, &main, &mut b, now, false),
            Plan::default(),
            "waits for init 0"
        );
        exit(&mut init[0], 0, now);
        assert_eq!(
            plan(&s, &init, &main, &mut b, now, false).start,
            [Target::Init(1)]
        );
        run(&mut init[1], now);
        exit(&mut init[1], 0, now);
        assert_eq!(
            plan(&s, &init, &main, &mut b, now, false).start,
            [Target::Main(0), Target::Main(1)]
        );
        run(&mut main[0], now);
        run(&mut main[1], now);
        assert_eq!(plan(&s, &init, &main, &mut b, now, false), Plan::default());
    }

    #[test]
    fn failed_init_container() {
        // Never: the pod is done.
        let s = spec(&INITS.replace("POLICY", "Never"));
        let mut init = records(s.init_containers.as_ref().unwrap());
        let main = records(&s.containers);
        let mut b = Backoff::default();
        run(&mut init[0], t0());
        exit(&mut init[0], 1, t0());
        let p = plan(&s, &init, &main, &mut b, t0(), false);
        assert!(p.finished && p.start.is_empty(), "{p:?}");
        // OnFailure: restarted with back-off, the next one waits.
        let s = spec(&INITS.replace("POLICY", "OnFailure"));
        let p = plan(&s, &init, &main, &mut b, t0(), false);
        assert_eq!(p.start, [Target::Init(0)]);
        run(&mut init[0], t0());
        exit(&mut init[0], 1, after(t0(), S(1)));
        let p = plan(&s, &init, &main, &mut b, after(t0(), S(1)), false);
        assert_eq!(p.back_off, [(Target::Init(0), after(t0(), S(11)), S(10))]);
        assert_eq!(p.wake_at, Some(after(t0(), S(11))));
    }

    const ONE: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  restartPolicy: POLICY\n  containers: [{name: app, image: b}]\n";

    #[test]
    fn restart_policies() {
        let cases = [
            ("Always", 0, true),
            ("Always", 1, true),
            ("OnFailure", 0, false),
            ("OnFailure", 1, true),
            ("Never", 0, false),
            ("Never", 1, false),
        ];
        for (policy, code, restarts) in cases {
            let s = spec(&ONE.replace("POLICY", policy));
            let mut main = records(&s.containers);
            let mut b = Backoff::default();
            run(&mut main[0], t0());
            exit(&mut main[0], code, after(t0(), S(5)));
            let p = plan(&s, &[], &main, &mut b, after(t0(), S(5)), false);
            assert_eq!(!p.start.is_empty(), restarts, "{policy} {code}");
            assert_eq!(p.finished, !restarts, "{policy} {code}");
        }
    }

    #[test]
    fn crash_loop_waits_out_the_back_off() {
        let s = spec(&ONE.replace("POLICY", "Always"));
        let mut main = records(&s.containers);
        let mut b = Backoff::default();
        let mut now = t0();
        let mut restart_times = Vec::new();
        let mut starts = 0;
        while starts < 5 {
            let p = plan(&s, &[], &main, &mut b, now, false);
            if p.start == [Target::Main(0)] {
                run(&mut main[0], now);
                starts += 1;
                restart_times.push(crate::backoff::elapsed(t0(), now).as_secs());
                now = after(now, S(1));
                exit(&mut main[0], 1, now);
            } else {
                let (_, until, backoff) = p.back_off[0];
                // The supervisor shows CrashLoopBackOff while it waits.
                if let State::Terminated(t) = &main[0].state {
                    main[0].last_terminated = Some(t.clone());
                }
                main[0].state = State::Waiting(Waiting::CrashLoopBackOff(format!(
                    "back-off {}",
                    backoff.as_secs()
                )));
                assert_eq!(p.wake_at, Some(until));
                now = until;
            }
        }
        assert_eq!(restart_times, [0, 1, 12, 33, 74]);
    }

    const SIDECAR: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  restartPolicy: Never\n  initContainers: [{name: proxy, image: b, restartPolicy: Always}, {name: logs, image: b, restartPolicy: Always}, {name: setup, image: b}]\n  containers: [{name: job, image: b}]\n";

    #[test]
    fn sidecars_start_in_order_and_stop_last_in_reverse() {
        let s = spec(SIDECAR);
        let mut init = records(s.init_containers.as_ref().unwrap());
        let mut main = records(&s.containers);
        let mut b = Backoff::default();
        let now = t0();
        assert_eq!(
            plan(&s, &init, &main, &mut b, now, false).start,
            [Target::Init(0)]
        );
        run(&mut init[0], now);
        init[0].started = false; // startup probe still running
        assert_eq!(
            plan(&s, &init, &main, &mut b, now, false).start,
            Vec::<Target>::new()
        );
        init[0].started = true;
        assert_eq!(
            plan(&s, &init, &main, &mut b, now, false).start,
            [Target::Init(1)]
        );
        run(&mut init[1], now);
        assert_eq!(
            plan(&s, &init, &main, &mut b, now, false).start,
            [Target::Init(2)]
        );
        run(&mut init[2], now);
        exit(&mut init[2], 0, now);
        assert_eq!(
            plan(&s, &init, &main, &mut b, now, false).start,
            [Target::Main(0)]
        );
        run(&mut main[0], now);
        // A sidecar that dies while the job runs comes back.
        exit(&mut init[1], 2, after(now, S(3)));
        assert_eq!(
            plan(&s, &init, &main, &mut b, after(now, S(3)), false).start,
            [Target::Init(1)]
        );
        run(&mut init[1], after(now, S(3)));
        // The job ends: sidecars stop, the last started first.
        exit(&mut main[0], 0, after(now, S(9)));
        let p = plan(&s, &init, &main, &mut b, after(now, S(9)), false);
        assert_eq!(p.stop, [Target::Init(1), Target::Init(0)]);
        assert!(!p.finished);
        // the last sidecar has stopped: it is not restarted, the first one stops
        exit(&mut init[1], 143, after(now, S(10)));
        let p = plan(&s, &init, &main, &mut b, after(now, S(10)), false);
        assert_eq!(p.stop, [Target::Init(0)]);
        assert!(p.start.is_empty() && !p.finished, "{p:?}");
        exit(&mut init[0], 143, after(now, S(11)));
        let p = plan(&s, &init, &main, &mut b, after(now, S(11)), false);
        assert!(p.finished && p.start.is_empty(), "{p:?}");
    }

    #[test]
    fn deleting_stops_main_containers_then_sidecars() {
        let s = spec(SIDECAR);
        let mut init = records(s.init_containers.as_ref().unwrap());
        let mut main = records(&s.containers);
        let mut b = Backoff::default();
        run(&mut init[0], t0());
        run(&mut init[1], t0());
        run(&mut init[2], t0());
        exit(&mut init[2], 0, t0());
        run(&mut main[0], t0());
        let p = plan(&s, &init, &main, &mut b, t0(), true);
        assert_eq!(p.stop, [Target::Main(0), Target::Init(1), Target::Init(0)]);
        assert!(p.start.is_empty() && !p.finished);
    }
}
