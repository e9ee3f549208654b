//! Restart and image-pull back-off, as the kubelet's flowcontrol.Backoff
//! does it: 10 s doubling to a 300 s cap, per key, no jitter; an entry is
//! forgotten (the next failure starts again at 10 s) once the time since its
//! last update exceeds twice the cap, i.e. after 10 minutes of running.
//!
//! Times are wall-clock timestamps, as the kubelet's, so the state can be
//! saved and taken over by a re-spawned supervisor.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// `later - earlier`, zero when `later` is not later.
pub fn elapsed(earlier: Timestamp, later: Timestamp) -> Duration {
    let ms = later.as_millisecond() - earlier.as_millisecond();
    Duration::from_millis(ms.max(0) as u64)
}

/// `t + d`, saturating at the end of time.
pub fn after(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// kubelet's backOffPeriod.
pub const INITIAL: Duration = Duration::from_secs(10);
/// kubelet's MaxContainerBackOff.
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    backoff: Duration,
    last_update: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

/// What to do with a container that has just exited and may be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Restart now; the back-off for the next failure is now this long.
    Now { next_backoff: Duration },
    /// Still backing off: CrashLoopBackOff until `until` (the whole
    /// back-off is `backoff`).
    Wait { until: Timestamp, backoff: Duration },
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(INITIAL, MAX)
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    fn expired(&self, event_time: Timestamp, last_update: Timestamp) -> bool {
        elapsed(last_update, event_time) > self.max * 2
    }

    /// The current back-off of `key` (zero when there is none).
    pub fn get(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.backoff)
    }

    /// Record a failure at `event_time`: start at the initial period, or
    /// double up to the cap.
    pub fn next(&mut self, key: &str, event_time: Timestamp, now: Timestamp) {
        let backoff = match self.entries.get(key) {
            Some(e) if !self.expired(event_time, e.last_update) => (e.backoff * 2).min(self.max),
            _ => self.initial,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                backoff,
                last_update: now,
            },
        );
    }

    /// Whether less than the back-off has passed since `event_time` (for
    /// containers: since the exit).
    pub fn is_in_backoff_since(&self, key: &str, event_time: Timestamp, now: Timestamp) -> bool {
        match self.entries.get(key) {
            Some(e) if !self.expired(event_time, e.last_update) => {
                elapsed(event_time, now) < e.backoff
            }
            _ => false,
        }
    }

    /// Whether less than the back-off has passed since the last failure was
    /// recorded (for image pulls).
    pub fn is_in_backoff_since_update(&self, key: &str, now: Timestamp) -> bool {
        match self.entries.get(key) {
            Some(e) if !self.expired(now, e.last_update) => elapsed(e.last_update, now) < e.backoff,
            _ => false,
        }
    }

    /// When the back-off since the last update ends, if one is running.
    pub fn ends_at(&self, key: &str) -> Option<Timestamp> {
        self.entries
            .get(key)
            .map(|e| after(e.last_update, e.backoff))
    }

    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Forget entries that can no longer matter.
    pub fn gc(&mut self, now: Timestamp) {
        let limit = self.max * 2;
        self.entries
            .retain(|_, e| elapsed(e.last_update, now) <= limit);
    }

    /// The kubelet's decision for a container that exited at `finished_at`
    /// and whose restart policy wants it restarted.
    pub fn restart(&mut self, key: &str, finished_at: Timestamp, now: Timestamp) -> Restart {
        if self.is_in_backoff_since(key, finished_at, now) {
            let backoff = self.get(key);
            return Restart::Wait {
                until: after(finished_at, backoff),
                backoff,
            };
        }
        self.next(key, finished_at, now);
        Restart::Now {
            next_backoff: self.get(key),
        }
    }
}

/// A duration as Go's `time.Duration.String` prints it ("10s", "1m20s",
/// "5m0s"), to whole milliseconds, as kubelet messages show back-offs.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let secs = if rest % 1000 == 0 {
        format!("{}s", rest / 1000)
    } else {
        let frac = format!("{:03}", rest % 1000);
        format!("{}.{}s", rest / 1000, frac.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// The CrashLoopBackOff message, as the kubelet words it.
pub fn crash_loop_message(
    backoff: Duration,
    container: &str,
    pod: &str,
    namespace: &str,
    uid: &str,
) -> String {
    format!(
        "back-off {} restarting failed container={container} pod={pod}_{namespace}({uid})",
        go_duration(backoff)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    /// A container that crashes one second after each start, restarted as
    /// soon as the back-off allows: the kubelet's restart times.
    #[test]
    fn crash_loop_sequence_matches_the_kubelet() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut b = Backoff::default();
        let mut now = t0;
        let mut restarts = Vec::new();
        let mut waits = Vec::new();
        for _ in 0..9 {
            now = after(now, S(1)); // runs for one second, then exits
            let exited = now;
            match b.restart("app", exited, now) {
                Restart::Now { .. } => {}
                Restart::Wait { until, backoff } => {
                    waits.push(backoff.as_secs());
                    now = until;
                    assert!(!b.is_in_backoff_since("app", exited, now));
                    assert!(matches!(b.restart("app", exited, now), Restart::Now { .. }));
                }
            }
            restarts.push(elapsed(t0, now).as_secs());
        }
        // The first restart is immediate, then 10 s, 20 s, 40 s ... capped at 300 s.
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(restarts, [1, 12, 33, 74, 155, 316, 617, 918, 1219]);
    }

    #[test]
    fn resets_after_ten_minutes_of_running() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut b = Backoff::default();
        b.next("app", t0, t0);
        b.next("app", t0, t0);
        b.next("app", t0, t0);
        assert_eq!(b.get("app"), S(40));
        // Exactly 600 s is not yet stable; a failure doubles.
        let mut c = b.clone();
        c.next("app", after(t0, S(600)), after(t0, S(600)));
        assert_eq!(c.get("app"), S(80));
        // After more than 10 minutes the next failure restarts at once and starts over.
        let exit = after(t0, S(601));
        assert_eq!(
            b.restart("app", exit, exit),
            Restart::Now {
                next_backoff: S(10)
            }
        );
    }

    #[test]
    fn image_pull_backoff_since_update() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut b = Backoff::default();
        assert!(!b.is_in_backoff_since_update("img", t0));
        b.next("img", t0, t0); // ErrImagePull
        assert!(b.is_in_backoff_since_update("img", after(t0, S(9)))); // ImagePullBackOff
        assert!(!b.is_in_backoff_since_update("img", after(t0, S(10)))); // pull again
        b.next("img", after(t0, S(10)), after(t0, S(10)));
        assert_eq!(b.get("img"), S(20));
        assert_eq!(b.ends_at("img"), Some(after(t0, S(30))));
        b.gc(after(t0, S(700)));
        assert_eq!(b.get("img"), Duration::ZERO);
    }

    #[test]
    fn go_durations_and_message() {
        assert_eq!(go_duration(S(10)), "10s");
        assert_eq!(go_duration(S(80)), "1m20s");
        assert_eq!(go_duration(S(300)), "5m0s");
        assert_eq!(go_duration(S(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(
            crash_loop_message(S(20), "app", "web", "default", "u-1"),
            "back-off 20s restarting failed container=app pod=web_default(u-1)"
        );
    }
}
