//! `get pods` output, as kubectl prints it (printers.go printPod and its
//! tab writer: minimum width 6, padding 3).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};

/// kubectl's AGE (apimachinery duration.HumanDuration).
pub fn format_age(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// translateTimestampSince: the age of `t` at `now`; a clock a little
/// behind reads as 0s, further behind as `<invalid>`.
fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    let Some(t) = t else {
        return "<unknown>".into();
    };
    let ms = now.as_millisecond() - t.as_millisecond();
    if ms <= -2000 {
        return "<invalid>".into();
    }
    format_age(Duration::from_millis(ms.max(0) as u64))
}

fn is_sidecar(c: Option<&Container>) -> bool {
    c.is_some_and(|c| c.restart_policy.as_deref() == Some("Always"))
}

/// One row: NAME READY STATUS RESTARTS AGE, then IP NODE NOMINATED NODE
/// READINESS GATES with `wide`.
pub fn pod_row(pod: &Pod, now: Timestamp, wide: bool) -> Vec<String> {
    let default_spec = Default::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let default_status = Default::default();
    let status = pod.status.as_ref().unwrap_or(&default_status);
    let init_specs = spec.init_containers.as_deref().unwrap_or_default();
    let init_statuses = status
        .init_container_statuses
        .as_deref()
        .unwrap_or_default();
    let statuses = status.container_statuses.as_deref().unwrap_or_default();
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition_true = |kind: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == kind && c.status == "True")
    };

    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut total = spec.containers.len();
    let mut ready = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;
    let phase = status.phase.clone().unwrap_or_default();
    let mut reason = status
        .reason
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| phase.clone());
    if conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
    {
        reason = "SchedulingGated".into();
    }
    total += init_specs.iter().filter(|c| is_sidecar(Some(c))).count();
    let finished = |s: &k8s_openapi::api::core::v1::ContainerStatus| {
        s.last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref())
            .map(|t| t.0)
    };
    let later = |a: Option<Timestamp>, b: Option<Timestamp>| match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };

    let mut initializing = false;
    for (i, c) in init_statuses.iter().enumerate() {
        let spec_c = init_specs.iter().find(|s| s.name == c.name);
        restarts += c.restart_count;
        last_restart = later(last_restart, finished(c));
        if is_sidecar(spec_c) {
            sidecar_restarts += c.restart_count;
            last_sidecar_restart = later(last_sidecar_restart, finished(c));
        }
        let state = c.state.clone().unwrap_or_default();
        if state.terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if is_sidecar(spec_c) && c.started == Some(true) {
            if c.ready {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = &state.terminated {
            reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => match t.signal.filter(|s| *s != 0) {
                    Some(sig) => format!("Init:Signal:{sig}"),
                    None => format!("Init:ExitCode:{}", t.exit_code),
                },
            };
        } else if let Some(r) = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true("Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in statuses.iter().rev() {
            restarts += c.restart_count;
            last_restart = later(last_restart, finished(c));
            let state = c.state.clone().unwrap_or_default();
            let waiting_reason = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty());
            if let Some(r) = waiting_reason {
                reason = r;
            } else if let Some(t) = &state.terminated {
                reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(r) => r.to_string(),
                    None => match t.signal.filter(|s| *s != 0) {
                        Some(sig) => format!("Signal:{sig}"),
                        None => format!("ExitCode:{}", t.exit_code),
                    },
                };
            } else if c.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true("Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    let terminal = phase == "Succeeded" || phase == "Failed";
    if pod.metadata.deletion_timestamp.is_some() && status.reason.as_deref() == Some("NodeLost") {
        reason = "Unknown".into();
    } else if pod.metadata.deletion_timestamp.is_some() && !terminal {
        reason = "Terminating".into();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };
    let mut row = vec![
        pod.metadata.name.clone().unwrap_or_default(),
        format!("{ready}/{total}"),
        reason,
        restarts_cell,
        since(pod.metadata.creation_timestamp.as_ref().map(|t| t.0), now),
    ];
    if wide {
        let none = |v: Option<&str>| v.filter(|s| !s.is_empty()).unwrap_or("<none>").to_string();
        let ip = status
            .pod_ips
            .as_ref()
            .and_then(|ips| ips.first())
            .map(|p| p.ip.as_str());
        row.push(none(ip));
        row.push(none(spec.node_name.as_deref()));
        row.push(none(status.nominated_node_name.as_deref()));
        let gates = spec.readiness_gates.as_deref().unwrap_or_default();
        row.push(if gates.is_empty() {
            "<none>".into()
        } else {
            let ok = gates
                .iter()
                .filter(|g| condition_true(&g.condition_type))
                .count();
            format!("{ok}/{}", gates.len())
        });
    }
    row
}

/// Rows under headers, aligned the way kubectl's tab writer aligns them.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn render(&self) -> String {
        let text: String = self
            .rows
            .iter()
            .map(|r| format!("{}\n", r.join("\t")))
            .collect();
        crate::tabwriter::align(&text, 6, 3)
    }
}

/// The whole `get pods` table; with `namespaces` (`-A`) a NAMESPACE
/// column comes first, as kubectl prints it.
pub fn pods_table(pods: &[Pod], now: Timestamp, wide: bool, namespaces: bool) -> String {
    let mut headers: Vec<String> = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        .map(String::from)
        .into();
    if wide {
        headers.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"].map(String::from));
    }
    if namespaces {
        headers.insert(0, "NAMESPACE".into());
    }
    let mut table = Table {
        rows: vec![headers],
    };
    table.rows.extend(pods.iter().map(|p| {
        let mut row = pod_row(p, now, wide);
        if namespaces {
            row.insert(
                0,
                p.metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            );
        }
        row
    }));
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_as_kubectl_prints_them() {
        let s = Duration::from_secs;
        let cases = [
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (182, "3m2s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 25 * 60, "3h25m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (51 * 3600, "2d3h"),
            (48 * 3600, "2d"),
            (8 * 86400, "8d"),
            (730 * 86400, "2y"),
            (745 * 86400, "2y15d"),
            (8 * 365 * 86400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(format_age(s(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn clock_skew() {
        let now: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        let ahead: Timestamp = "2026-01-01T00:00:11Z".parse().unwrap();
        let far: Timestamp = "2026-01-01T00:00:13Z".parse().unwrap();
        assert_eq!(since(Some(ahead), now), "0s");
        assert_eq!(since(Some(far), now), "<invalid>");
        assert_eq!(since(None, now), "<unknown>");
    }

    #[test]
    fn tab_writer_alignment() {
        let t = Table {
            rows: vec![
                vec!["NAME".into(), "READY".into(), "AGE".into()],
                vec!["flask-app".into(), "1/1".into(), "5s".into()],
            ],
        };
        assert_eq!(
            t.render(),
            "NAME        READY   AGE\nflask-app   1/1     5s\n"
        );
    }
}
