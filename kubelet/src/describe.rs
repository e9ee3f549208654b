//! `describe pod`, laid out as kubectl's describePod lays it out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStatus, EnvVar, Pod, Probe, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::events::EventLog;
use crate::status::{format_age, qos_class};

/// kubectl's time.RFC1123Z, in UTC.
fn rfc1123z(t: Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

fn multiline(out: &mut String, title: &str, map: Option<&BTreeMap<String, String>>, sep: &str) {
    let _ = write!(out, "{title}:\t");
    let entries: Vec<(&String, &String)> = map
        .iter()
        .flat_map(|m| m.iter())
        .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
        .collect();
    if entries.is_empty() {
        out.push_str("<none>\n");
        return;
    }
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i != 0 {
            out.push('\t');
        }
        // Annotations longer than 140 characters are cut.
        let v = if sep == ": " && v.chars().count() > 140 {
            format!("{}...", v.chars().take(140).collect::<String>())
        } else {
            v.clone()
        };
        let _ = writeln!(out, "{k}{sep}{v}");
    }
}

fn port_str(p: &IntOrString) -> String {
    match p {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// kubectl's DescribeProbe.
pub fn probe_line(p: &Probe) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(0),
        p.period_seconds.unwrap_or(0),
        p.success_threshold.unwrap_or(0),
        p.failure_threshold.unwrap_or(0)
    );
    if let Some(e) = &p.exec {
        return format!(
            "exec [{}] {attrs}",
            e.command.as_deref().unwrap_or_default().join(" ")
        );
    }
    if let Some(h) = &p.http_get {
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let host = h.host.as_deref().unwrap_or("");
        let port = port_str(&h.port);
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        return format!(
            "http-get {scheme}://{host}:{port}{} {attrs}",
            h.path.as_deref().unwrap_or("")
        );
    }
    if let Some(t) = &p.tcp_socket {
        return format!(
            "tcp-socket {}:{} {attrs}",
            t.host.as_deref().unwrap_or(""),
            port_str(&t.port)
        );
    }
    if let Some(g) = &p.grpc {
        return format!(
            "grpc <pod>:{} {} {attrs}",
            g.port,
            g.service.as_deref().unwrap_or("")
        );
    }
    format!("unknown {attrs}")
}

fn state_lines(out: &mut String, name: &str, state: &ContainerState) {
    if let Some(r) = &state.running {
        let _ = writeln!(out, "    {name}:\tRunning");
        if let Some(t) = &r.started_at {
            let _ = writeln!(out, "      Started:\t{}", rfc1123z(t.0));
        }
    } else if let Some(t) = &state.terminated {
        let _ = writeln!(out, "    {name}:\tTerminated");
        if let Some(r) = t.reason.as_deref().filter(|r| !r.is_empty()) {
            let _ = writeln!(out, "      Reason:\t{r}");
        }
        if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
            let _ = writeln!(out, "      Message:\t{m}");
        }
        let _ = writeln!(out, "      Exit Code:\t{}", t.exit_code);
        if let Some(sig) = t.signal.filter(|s| *s > 0) {
            let _ = writeln!(out, "      Signal:\t{sig}");
        }
        let time = |x: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
            x.as_ref()
                .map(|t| rfc1123z(t.0))
                .unwrap_or_else(|| "Mon, 01 Jan 0001 00:00:00 +0000".into())
        };
        let _ = writeln!(out, "      Started:\t{}", time(&t.started_at));
        let _ = writeln!(out, "      Finished:\t{}", time(&t.finished_at));
    } else {
        let _ = writeln!(out, "    {name}:\tWaiting");
        if let Some(r) = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty())
        {
            let _ = writeln!(out, "      Reason:\t{r}");
        }
    }
}

/// What a fieldRef resolves to in this pod, as describe shows it.
fn field_value(pod: &Pod, path: &str) -> String {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => {
            status.and_then(|s| s.pod_ip.clone()).unwrap_or_default()
        }
        "status.hostIP" | "status.hostIPs" => {
            status.and_then(|s| s.host_ip.clone()).unwrap_or_default()
        }
        other => {
            let keyed = |prefix: &str| {
                other
                    .strip_prefix(prefix)
                    .and_then(|r| r.strip_suffix("']"))
            };
            if let Some(k) = keyed("metadata.labels['") {
                meta.labels
                    .as_ref()
                    .and_then(|m| m.get(k))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(k) = keyed("metadata.annotations['") {
                meta.annotations
                    .as_ref()
                    .and_then(|m| m.get(k))
                    .cloned()
                    .unwrap_or_default()
            } else {
                String::new()
            }
        }
    }
}

fn env_lines(out: &mut String, pod: &Pod, c: &Container) {
    let env: &[EnvVar] = c.env.as_deref().unwrap_or_default();
    if let Some(from) = c.env_from.as_deref().filter(|f| !f.is_empty()) {
        out.push_str("    Environment Variables from:\n");
        for f in from {
            let (name, kind, optional) = match (&f.config_map_ref, &f.secret_ref) {
                (Some(r), _) => (r.name.clone(), "ConfigMap", r.optional == Some(true)),
                (None, Some(r)) => (r.name.clone(), "Secret", r.optional == Some(true)),
                (None, None) => continue,
            };
            match f.prefix.as_deref().filter(|p| !p.is_empty()) {
                None => {
                    let _ = writeln!(out, "      {name}\t{kind}\tOptional: {optional}");
                }
                Some(p) => {
                    let _ = writeln!(
                        out,
                        "      {name}\t{kind} with prefix '{p}'\tOptional: {optional}"
                    );
                }
            }
        }
    }
    if env.is_empty() {
        out.push_str("    Environment:\t<none>\n");
        return;
    }
    out.push_str("    Environment:\n");
    for e in env {
        let Some(from) = &e.value_from else {
            for (i, line) in e.value.as_deref().unwrap_or("").split('\n').enumerate() {
                if i == 0 {
                    let _ = writeln!(out, "      {}:\t{line}", e.name);
                } else {
                    let _ = writeln!(out, "      \t{line}");
                }
            }
            continue;
        };
        if let Some(f) = &from.field_ref {
            let _ = writeln!(
                out,
                "      {}:\t{} ({}:{})",
                e.name,
                field_value(pod, &f.field_path),
                f.api_version.as_deref().unwrap_or("v1"),
                f.field_path
            );
        } else if let Some(r) = &from.resource_field_ref {
            let _ = writeln!(
                out,
                "      {}:\t{} ({})",
                e.name,
                resource_value(c, &r.resource),
                r.resource
            );
        } else if let Some(r) = &from.secret_key_ref {
            let _ = writeln!(
                out,
                "      {}:\t<set to the key '{}' in secret '{}'>\tOptional: {}",
                e.name,
                r.key,
                r.name,
                r.optional == Some(true)
            );
        } else if let Some(r) = &from.config_map_key_ref {
            let _ = writeln!(
                out,
                "      {}:\t<set to the key '{}' of config map '{}'>\tOptional: {}",
                e.name,
                r.key,
                r.name,
                r.optional == Some(true)
            );
        }
    }
}

/// A container's own request or limit as describe shows it; limits that
/// are not set read "node allocatable".
fn resource_value(c: &Container, resource: &str) -> String {
    let Some((kind, name)) = resource.split_once('.') else {
        return String::new();
    };
    let r = c.resources.as_ref();
    let map = if kind == "limits" {
        r.and_then(|r| r.limits.as_ref())
    } else {
        r.and_then(|r| r.requests.as_ref())
    };
    match map.and_then(|m| m.get(name)) {
        Some(q) => q.0.clone(),
        None if kind == "limits" && (name == "cpu" || name == "memory") => {
            "node allocatable".into()
        }
        None => "0".into(),
    }
}

fn container_lines(out: &mut String, pod: &Pod, c: &Container, status: Option<&ContainerStatus>) {
    let _ = writeln!(out, "  {}:", c.name);
    if let Some(s) = status {
        let _ = writeln!(
            out,
            "    Container ID:\t{}",
            s.container_id.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(out, "    Image:\t{}", c.image.as_deref().unwrap_or(""));
    if let Some(s) = status {
        let _ = writeln!(out, "    Image ID:\t{}", s.image_id);
    }
    let ports = c.ports.as_deref().unwrap_or_default();
    let list = |f: &dyn Fn(&k8s_openapi::api::core::v1::ContainerPort) -> i32| {
        ports
            .iter()
            .map(|p| format!("{}/{}", f(p), p.protocol.as_deref().unwrap_or("TCP")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let container_ports = list(&|p| p.container_port);
    let host_ports = list(&|p| p.host_port.unwrap_or(0));
    let or_none = |s: String| {
        if s.is_empty() {
            "<none>".to_string()
        } else {
            s
        }
    };
    let label =
        |s: &str, one: &'static str, many: &'static str| if s.contains(',') { many } else { one };
    let _ = writeln!(
        out,
        "    {}:\t{}",
        label(&container_ports, "Port", "Ports"),
        or_none(container_ports.clone())
    );
    let _ = writeln!(
        out,
        "    {}:\t{}",
        label(&host_ports, "Host Port", "Host Ports"),
        or_none(host_ports.clone())
    );
    for (title, list) in [("Command", &c.command), ("Args", &c.args)] {
        if let Some(list) = list.as_deref().filter(|l| !l.is_empty()) {
            let _ = writeln!(out, "    {title}:");
            for item in list {
                for line in item.split('\n') {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
    }
    if let Some(s) = status {
        state_lines(out, "State", &s.state.clone().unwrap_or_default());
        if let Some(last) = s.last_state.as_ref().filter(|l| l.terminated.is_some()) {
            state_lines(out, "Last State", last);
        }
        let _ = writeln!(
            out,
            "    Ready:\t{}",
            if s.ready { "True" } else { "False" }
        );
        let _ = writeln!(out, "    Restart Count:\t{}", s.restart_count);
    }
    if let Some(r) = &c.resources {
        for (title, map) in [("Limits", &r.limits), ("Requests", &r.requests)] {
            if let Some(map) = map.as_ref().filter(|m| !m.is_empty()) {
                let _ = writeln!(out, "    {title}:");
                for (k, v) in map {
                    let _ = writeln!(out, "      {k}:\t{}", v.0);
                }
            }
        }
    }
    for (title, p) in [
        ("Liveness", &c.liveness_probe),
        ("Readiness", &c.readiness_probe),
        ("Startup", &c.startup_probe),
    ] {
        if let Some(p) = p {
            let _ = writeln!(out, "    {title}:\t{}", probe_line(p));
        }
    }
    env_lines(out, pod, c);
    let mut mounts = c.volume_mounts.clone().unwrap_or_default();
    if mounts.is_empty() {
        out.push_str("    Mounts:\t<none>\n");
    } else {
        out.push_str("    Mounts:\n");
        mounts.sort_by(|a, b| a.mount_path.cmp(&b.mount_path));
        for m in mounts {
            let mut flags = vec![if m.read_only == Some(true) {
                "ro".to_string()
            } else {
                "rw".to_string()
            }];
            if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                flags.push(format!("path={sub:?}"));
            }
            let _ = writeln!(
                out,
                "      {} from {} ({})",
                m.mount_path,
                m.name,
                flags.join(",")
            );
        }
    }
}

fn volume_lines(out: &mut String, v: &Volume) {
    let _ = writeln!(out, "  {}:", v.name);
    if let Some(h) = &v.host_path {
        let t = h.type_.as_deref().unwrap_or("<none>");
        let _ = write!(out, "    Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{t}\n", h.path);
    } else if let Some(e) = &v.empty_dir {
        let limit = e
            .size_limit
            .as_ref()
            .filter(|q| {
                crate::manifest::quantity::Quantity::parse(&q.0).is_ok_and(|x| x.milli_value() > 0)
            })
            .map_or_else(|| "<unset>".to_string(), |q| q.0.clone());
        let _ = write!(
            out,
            "    Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{}\n    SizeLimit:\t{limit}\n",
            e.medium.as_deref().unwrap_or("")
        );
    } else if let Some(s) = &v.secret {
        let _ = write!(
            out,
            "    Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{}\n    Optional:\t{}\n",
            s.secret_name.as_deref().unwrap_or(""),
            s.optional == Some(true)
        );
    } else if let Some(c) = &v.config_map {
        let _ = write!(
            out,
            "    Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{}\n",
            c.name,
            c.optional == Some(true)
        );
    } else if let Some(d) = &v.downward_api {
        out.push_str("    Type:\tDownwardAPI (a volume populated by information about the pod)\n    Items:\n");
        for item in d.items.iter().flatten() {
            if let Some(f) = &item.field_ref {
                let _ = writeln!(out, "      {} -> {}", f.field_path, item.path);
            }
            if let Some(r) = &item.resource_field_ref {
                let _ = writeln!(out, "      {} -> {}", r.resource, item.path);
            }
        }
    } else if v.projected.is_some() {
        out.push_str(
            "    Type:\tProjected (a volume that contains injected data from multiple sources)\n",
        );
    }
}

/// The whole `describe pod` text for a pod with its status and events.
pub fn describe_pod(pod: &Pod, events: &EventLog, now: Timestamp) -> String {
    let mut out = String::new();
    let meta = &pod.metadata;
    let default_spec = Default::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let default_status = Default::default();
    let status = pod.status.as_ref().unwrap_or(&default_status);
    let _ = writeln!(out, "Name:\t{}", meta.name.as_deref().unwrap_or(""));
    let _ = writeln!(
        out,
        "Namespace:\t{}",
        meta.namespace.as_deref().unwrap_or("")
    );
    if let Some(p) = spec.priority {
        let _ = writeln!(out, "Priority:\t{p}");
    }
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        let _ = writeln!(out, "Service Account:\t{sa}");
    }
    match spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        None => out.push_str("Node:\t<none>\n"),
        Some(n) => {
            let _ = writeln!(
                out,
                "Node:\t{n}/{}",
                status.host_ip.as_deref().unwrap_or("")
            );
        }
    }
    if let Some(t) = &status.start_time {
        let _ = writeln!(out, "Start Time:\t{}", rfc1123z(t.0));
    }
    multiline(&mut out, "Labels", meta.labels.as_ref(), "=");
    multiline(&mut out, "Annotations", meta.annotations.as_ref(), ": ");
    let phase = status.phase.as_deref().unwrap_or("");
    match &meta.deletion_timestamp {
        Some(t) if phase != "Failed" && phase != "Succeeded" => {
            let ms = (now.as_millisecond() - t.0.as_millisecond()).max(0) as u64;
            let _ = writeln!(
                out,
                "Status:\tTerminating (lasts {})",
                format_age(std::time::Duration::from_millis(ms))
            );
            let _ = writeln!(
                out,
                "Termination Grace Period:\t{}s",
                meta.deletion_grace_period_seconds.unwrap_or(0)
            );
        }
        _ => {
            let _ = writeln!(out, "Status:\t{phase}");
        }
    }
    if let Some(r) = status.reason.as_deref().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "Reason:\t{r}");
    }
    if let Some(m) = status.message.as_deref().filter(|m| !m.is_empty()) {
        let _ = writeln!(out, "Message:\t{m}");
    }
    let _ = writeln!(out, "IP:\t{}", status.pod_ip.as_deref().unwrap_or(""));
    match status.pod_ips.as_deref().filter(|ips| !ips.is_empty()) {
        None => out.push_str("IPs:\t<none>\n"),
        Some(ips) => {
            out.push_str("IPs:\n");
            for ip in ips {
                let _ = writeln!(out, "  IP:\t{}", ip.ip);
            }
        }
    }
    let groups = [
        (
            "Init Containers",
            spec.init_containers.as_deref().unwrap_or_default(),
            status
                .init_container_statuses
                .as_deref()
                .unwrap_or_default(),
        ),
        (
            "Containers",
            spec.containers.as_slice(),
            status.container_statuses.as_deref().unwrap_or_default(),
        ),
    ];
    for (title, containers, statuses) in groups {
        if containers.is_empty() && title == "Init Containers" {
            continue;
        }
        let _ = writeln!(out, "{title}:");
        for c in containers {
            container_lines(&mut out, pod, c, statuses.iter().find(|s| s.name == c.name));
        }
    }
    if let Some(conds) = status.conditions.as_deref().filter(|c| !c.is_empty()) {
        out.push_str("Conditions:\n  Type\tStatus\n");
        for c in conds {
            let _ = writeln!(out, "  {} \t{} ", c.type_, c.status);
        }
    }
    match spec.volumes.as_deref().filter(|v| !v.is_empty()) {
        None => out.push_str("Volumes:\t<none>\n"),
        Some(vs) => {
            out.push_str("Volumes:\n");
            for v in vs {
                volume_lines(&mut out, v);
            }
        }
    }
    let qos = status
        .qos_class
        .clone()
        .unwrap_or_else(|| qos_class(spec).to_string());
    let _ = writeln!(out, "QoS Class:\t{qos}");
    multiline(&mut out, "Node-Selectors", spec.node_selector.as_ref(), "=");
    out.push_str("Tolerations:\t<none>\n");
    // kubectl flushes before a non-empty event table, so it aligns on its own.
    let tabbed = events.describe_tabbed(now);
    if tabbed.starts_with("Events:\t") {
        out.push_str(&tabbed);
        crate::tabwriter::align(&out, 0, 2)
    } else {
        let mut text = crate::tabwriter::align(&out, 0, 2);
        text.push_str(&crate::tabwriter::align(&tabbed, 0, 2));
        text
    }
}

#[cfg(test)]
mod tests;
