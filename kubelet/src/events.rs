//! Pod events as the kubelet records them (reasons and messages worded as
//! the kubelet words them), kept in order and aggregated the way the event
//! correlator does for `describe`.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::status::format_age;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

/// One occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub time: Timestamp,
    #[serde(rename = "type")]
    pub type_: EventType,
    pub reason: String,
    /// "kubelet" or "default-scheduler".
    pub from: String,
    pub message: String,
}

/// `name_namespace(uid)`, as the kubelet names pods in messages.
pub fn pod_ref(name: &str, namespace: &str, uid: &str) -> String {
    format!("{name}_{namespace}({uid})")
}

fn kubelet(time: Timestamp, type_: EventType, reason: &str, message: String) -> Event {
    Event {
        time,
        type_,
        reason: reason.to_string(),
        from: "kubelet".to_string(),
        message,
    }
}

impl Event {
    pub fn scheduled(time: Timestamp, namespace: &str, pod: &str, node: &str) -> Event {
        Event {
            time,
            type_: EventType::Normal,
            reason: "Scheduled".into(),
            from: "default-scheduler".into(),
            message: format!("Successfully assigned {namespace}/{pod} to {node}"),
        }
    }

    pub fn pulling(time: Timestamp, image: &str) -> Event {
        kubelet(
            time,
            EventType::Normal,
            "Pulling",
            format!("Pulling image \"{image}\""),
        )
    }

    pub fn pulled(
        time: Timestamp,
        image: &str,
        took: Duration,
        with_waiting: Duration,
        size: u64,
    ) -> Event {
        kubelet(
            time,
            EventType::Normal,
            "Pulled",
            format!(
                "Successfully pulled image \"{image}\" in {} ({} including waiting). Image size: {size} bytes.",
                go_duration_ms(took),
                go_duration_ms(with_waiting)
            ),
        )
    }

    pub fn already_present(time: Timestamp, image: &str) -> Event {
        kubelet(
            time,
            EventType::Normal,
            "Pulled",
            format!("Container image \"{image}\" already present on machine"),
        )
    }

    pub fn pull_failed(time: Timestamp, image: &str, error: &str) -> Event {
        kubelet(
            time,
            EventType::Warning,
            "Failed",
            format!("Failed to pull image \"{image}\": {error}"),
        )
    }

    /// "Error: ErrImagePull", "Error: ImagePullBackOff", "Error: CreateContainerConfigError" …
    pub fn failed(time: Timestamp, reason_or_error: &str) -> Event {
        kubelet(
            time,
            EventType::Warning,
            "Failed",
            format!("Error: {reason_or_error}"),
        )
    }

    pub fn pull_backoff(time: Timestamp, image: &str) -> Event {
        kubelet(
            time,
            EventType::Normal,
            "BackOff",
            format!("Back-off pulling image \"{image}\""),
        )
    }

    pub fn created(time: Timestamp, container: &str) -> Event {
        kubelet(
            time,
            EventType::Normal,
            "Created",
            format!("Created container: {container}"),
        )
    }

    pub fn started(time: Timestamp, container: &str) -> Event {
        kubelet(
            time,
            EventType::Normal,
            "Started",
            format!("Started container {container}"),
        )
    }

    pub fn killing(time: Timestamp, container: &str) -> Event {
        kubelet(
            time,
            EventType::Normal,
            "Killing",
            format!("Stopping container {container}"),
        )
    }

    pub fn crash_backoff(time: Timestamp, container: &str, pod_ref: &str) -> Event {
        kubelet(
            time,
            EventType::Warning,
            "BackOff",
            format!("Back-off restarting failed container {container} in pod {pod_ref}"),
        )
    }

    /// Killing with the kubelet's reason for the kill ("Container app
    /// failed liveness probe, will be restarted", "FailedPostStartHook").
    pub fn killing_with(time: Timestamp, message: String) -> Event {
        kubelet(time, EventType::Normal, "Killing", message)
    }

    pub fn probe_warning(time: Timestamp, probe: &str, output: &str) -> Event {
        kubelet(
            time,
            EventType::Warning,
            "ProbeWarning",
            format!("{probe} probe warning: {output}"),
        )
    }

    /// A probe that could not run (its result is not counted).
    pub fn probe_errored(time: Timestamp, probe: &str, error: &str) -> Event {
        kubelet(
            time,
            EventType::Warning,
            "Unhealthy",
            format!("{probe} probe errored and resulted in unknown state: {error}"),
        )
    }

    /// As the kubelet: the hook's own message stays out of the event.
    pub fn failed_post_start_hook(time: Timestamp) -> Event {
        kubelet(
            time,
            EventType::Warning,
            "FailedPostStartHook",
            "PostStartHook failed".into(),
        )
    }

    pub fn failed_pre_stop_hook(time: Timestamp) -> Event {
        kubelet(
            time,
            EventType::Warning,
            "FailedPreStopHook",
            "PreStopHook failed".into(),
        )
    }

    pub fn unhealthy(time: Timestamp, probe: &str, output: &str) -> Event {
        kubelet(
            time,
            EventType::Warning,
            "Unhealthy",
            format!("{probe} probe failed: {output}"),
        )
    }
}

/// Go's Duration.String() to the millisecond, as pull times are printed
/// ("1.234s", "512ms", "1m2.5s").
fn go_duration_ms(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    crate::backoff::go_duration(Duration::from_millis(ms as u64))
}

/// Events seen in a describe table: identical ones folded, with a count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregated {
    pub type_: EventType,
    pub reason: String,
    pub from: String,
    pub message: String,
    pub count: u32,
    pub first: Timestamp,
    pub last: Timestamp,
}

/// A pod's events in the order they happened, bounded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventLog {
    pub events: Vec<Event>,
}

/// Older events are dropped past this many.
pub const MAX_EVENTS: usize = 1000;

impl EventLog {
    pub fn push(&mut self, e: Event) {
        if self.events.len() == MAX_EVENTS {
            self.events.remove(0);
        }
        self.events.push(e);
    }

    /// Identical events (type, reason, source, message) folded into one,
    /// ordered by their first occurrence.
    pub fn aggregate(&self) -> Vec<Aggregated> {
        let mut out: Vec<Aggregated> = Vec::new();
        for e in &self.events {
            let same = out.iter_mut().find(|a| {
                a.type_ == e.type_
                    && a.reason == e.reason
                    && a.from == e.from
                    && a.message == e.message
            });
            match same {
                Some(a) => {
                    a.count += 1;
                    a.last = a.last.max(e.time);
                }
                None => out.push(Aggregated {
                    type_: e.type_,
                    reason: e.reason.clone(),
                    from: e.from.clone(),
                    message: e.message.clone(),
                    count: 1,
                    first: e.time,
                    last: e.time,
                }),
            }
        }
        out
    }

    /// The Events section of `describe`, as kubectl prints it.
    pub fn describe(&self, now: Timestamp) -> String {
        crate::tabwriter::align(&self.describe_tabbed(now), 0, 2)
    }

    /// The same, before alignment: `describe` aligns its "<none>" case
    /// with the lines above it.
    pub fn describe_tabbed(&self, now: Timestamp) -> String {
        let mut rows = self.aggregate();
        if rows.is_empty() {
            return "Events:\t<none>\n".into();
        }
        // kubectl sorts by the last occurrence.
        rows.sort_by_key(|a| a.last);
        let age = |t: Timestamp| {
            let ms = (now.as_millisecond() - t.as_millisecond()).max(0) as u64;
            format_age(Duration::from_millis(ms))
        };
        let mut out = String::from(
            "Events:\n  Type\tReason\tAge\tFrom\tMessage\n  ----\t------\t----\t----\t-------\n",
        );
        for a in rows {
            let when = if a.count > 1 {
                format!("{} (x{} over {})", age(a.last), a.count, age(a.first))
            } else {
                age(a.last)
            };
            let kind = match a.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            };
            out.push_str(&format!(
                "  {kind}\t{}\t{when}\t{}\t{}\n",
                a.reason,
                a.from,
                a.message.trim()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        format!("2026-01-01T00:{s}Z").parse().unwrap()
    }

    #[test]
    fn kubelet_wording() {
        let t = at("00:00");
        assert_eq!(
            Event::pulling(t, "busybox").message,
            "Pulling image \"busybox\""
        );
        assert_eq!(
            Event::pulled(t, "busybox", Duration::from_millis(1234), Duration::from_millis(1500), 2_155_603).message,
            "Successfully pulled image \"busybox\" in 1.234s (1.5s including waiting). Image size: 2155603 bytes."
        );
        assert_eq!(
            Event::pulled(t, "b", Duration::from_millis(87), Duration::from_millis(87), 1).message,
            "Successfully pulled image \"b\" in 87ms (87ms including waiting). Image size: 1 bytes."
        );
        assert_eq!(
            Event::crash_backoff(t, "app", &pod_ref("web", "default", "u1")).message,
            "Back-off restarting failed container app in pod web_default(u1)"
        );
        assert_eq!(
            Event::failed(t, "ErrImagePull").message,
            "Error: ErrImagePull"
        );
        assert_eq!(Event::killing(t, "app").message, "Stopping container app");
    }

    #[test]
    fn describe_folds_repeats() {
        let mut log = EventLog::default();
        assert_eq!(log.describe(at("00:00")), "Events:  <none>\n");
        log.push(Event::scheduled(at("00:00"), "default", "web", "node-1"));
        log.push(Event::already_present(at("00:01"), "busybox"));
        for s in ["00:01", "00:12", "00:33"] {
            log.push(Event::created(at(s), "app"));
        }
        log.push(Event::crash_backoff(at("00:02"), "app", "web_default(u1)"));
        log.push(Event::crash_backoff(at("00:13"), "app", "web_default(u1)"));
        let text = log.describe(at("01:00"));
        assert_eq!(
            text,
            "Events:\n\
             \x20 Type     Reason     Age                From               Message\n\
             \x20 ----     ------     ----               ----               -------\n\
             \x20 Normal   Scheduled  60s                default-scheduler  Successfully assigned default/web to node-1\n\
             \x20 Normal   Pulled     59s                kubelet            Container image \"busybox\" already present on machine\n\
             \x20 Warning  BackOff    47s (x2 over 58s)  kubelet            Back-off restarting failed container app in pod web_default(u1)\n\
             \x20 Normal   Created    27s (x3 over 59s)  kubelet            Created container: app\n"
        );
    }

    #[test]
    fn bounded() {
        let mut log = EventLog::default();
        for i in 0..(MAX_EVENTS + 5) {
            log.push(Event::started(at("00:00"), &format!("c{i}")));
        }
        assert_eq!(log.events.len(), MAX_EVENTS);
        assert_eq!(log.events[0].message, "Started container c5");
    }
}
