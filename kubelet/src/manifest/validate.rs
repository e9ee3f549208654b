//! Validation as the API server does it (pkg/apis/core/validation), for the
//! fields krun acts on. The first problem found is reported.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, HTTPGetAction, Pod, PodSpec, Probe, ResourceRequirements, Secret,
    Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names;
use super::quantity::Quantity;
use super::{DocRef, Document, ManifestError, Object};

type Result<T = ()> = std::result::Result<T, ManifestError>;

const REQUIRED: &str = "required field is missing";

/// Volume sources krun can provide (issue 7 implements them).
pub const SUPPORTED_VOLUMES: &[&str] = &[
    "emptyDir",
    "hostPath",
    "configMap",
    "secret",
    "downwardAPI",
    "projected",
];

/// What a resourceFieldRef may name (env and downwardAPI volumes).
pub(crate) const RESOURCE_FIELDS: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];

fn invalid(value: &str, why: &str) -> String {
    format!("invalid value \"{value}\": {why}")
}

fn metadata(doc: &DocRef<'_>, meta: &ObjectMeta) -> Result {
    match meta.name.as_deref() {
        None | Some("") => return Err(doc.err("metadata.name", REQUIRED)),
        Some(name) => names::dns1123_subdomain(name)
            .map_err(|e| doc.err("metadata.name", invalid(name, &e)))?,
    }
    if let Some(ns) = meta.namespace.as_deref() {
        names::dns1123_label(ns).map_err(|e| doc.err("metadata.namespace", invalid(ns, &e)))?;
    }
    for (key, value) in meta.labels.iter().flatten() {
        let path = format!("metadata.labels.{key}");
        names::qualified_name(key).map_err(|e| doc.err(&path, format!("invalid key: {e}")))?;
        names::label_value(value).map_err(|e| doc.err(&path, invalid(value, &e)))?;
    }
    for key in meta.annotations.iter().flatten().map(|(k, _)| k) {
        names::qualified_name(key).map_err(|e| {
            doc.err(
                format!("metadata.annotations.{key}"),
                format!("invalid key: {e}"),
            )
        })?;
    }
    Ok(())
}

fn one_of(doc: &DocRef<'_>, path: &str, value: Option<&str>, allowed: &[&str]) -> Result {
    match value {
        None => Err(doc.err(path, REQUIRED)),
        Some(v) if allowed.contains(&v) => Ok(()),
        Some(v) => Err(doc.err(
            path,
            format!(
                "unsupported value \"{v}\": supported values: \"{}\"",
                allowed.join("\", \"")
            ),
        )),
    }
}

pub(crate) fn pod(doc: &DocRef<'_>, pod: &Pod) -> Result {
    metadata(doc, &pod.metadata)?;
    let Some(spec) = &pod.spec else {
        return Err(doc.err("spec", REQUIRED));
    };
    pod_spec(doc, spec)
}

fn pod_spec(doc: &DocRef<'_>, spec: &PodSpec) -> Result {
    if spec.containers.is_empty() {
        return Err(doc.err("spec.containers", REQUIRED));
    }
    one_of(
        doc,
        "spec.restartPolicy",
        spec.restart_policy.as_deref(),
        &["Always", "OnFailure", "Never"],
    )?;
    one_of(
        doc,
        "spec.dnsPolicy",
        spec.dns_policy.as_deref(),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    )?;
    if let Some(g) = spec.termination_grace_period_seconds {
        if g < 0 {
            return Err(doc.err(
                "spec.terminationGracePeriodSeconds",
                format!("{g} must be greater than or equal to 0"),
            ));
        }
    }
    if let Some(d) = spec.active_deadline_seconds {
        if d < 1 {
            return Err(doc.err(
                "spec.activeDeadlineSeconds",
                format!("{d} must be greater than or equal to 1"),
            ));
        }
    }
    for (path, value) in [
        ("spec.hostname", &spec.hostname),
        ("spec.subdomain", &spec.subdomain),
    ] {
        if let Some(v) = value {
            names::dns1123_label(v).map_err(|e| doc.err(path, invalid(v, &e)))?;
        }
    }
    if spec.host_pid == Some(true) && spec.share_process_namespace == Some(true) {
        return Err(doc.err(
            "spec.shareProcessNamespace",
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    let volumes = volumes(doc, spec.volumes.as_deref().unwrap_or_default(), spec)?;

    let host_network = spec.host_network == Some(true);
    let mut names: HashMap<&str, String> = HashMap::new();
    let mut host_ports: HashMap<(i32, String, String), String> = HashMap::new();
    let groups = [
        (
            "spec.initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
            true,
        ),
        ("spec.containers", spec.containers.as_slice(), false),
    ];
    for (group, list, init) in groups {
        for (i, c) in list.iter().enumerate() {
            let path = format!("{group}[{i}]");
            if let Some(first) = names.get(c.name.as_str()) {
                return Err(doc.err(
                    format!("{path}.name"),
                    format!("duplicate container name \"{}\" (also {first})", c.name),
                ));
            }
            names.insert(&c.name, format!("{path}.name"));
            container(doc, &path, c, init, host_network, &volumes)?;
            for (j, p) in c.ports.iter().flatten().enumerate() {
                let hp = p.host_port.unwrap_or(0);
                if hp == 0 {
                    continue;
                }
                let key = (
                    hp,
                    p.protocol.clone().unwrap_or_default(),
                    p.host_ip.clone().unwrap_or_default(),
                );
                let here = format!("{path}.ports[{j}].hostPort");
                if let Some(first) = host_ports.get(&key) {
                    return Err(doc.err(
                        here,
                        format!("duplicate host port {hp}/{} (also {first})", key.1),
                    ));
                }
                host_ports.insert(key, here);
            }
        }
    }
    super::security::pod(doc, spec)
}

fn volumes<'a>(doc: &DocRef<'_>, list: &'a [Volume], spec: &PodSpec) -> Result<HashSet<&'a str>> {
    let mut seen = HashSet::new();
    for (i, v) in list.iter().enumerate() {
        let path = format!("spec.volumes[{i}]");
        if v.name.is_empty() {
            return Err(doc.err(format!("{path}.name"), REQUIRED));
        }
        names::dns1123_label(&v.name)
            .map_err(|e| doc.err(format!("{path}.name"), invalid(&v.name, &e)))?;
        if !seen.insert(v.name.as_str()) {
            return Err(doc.err(
                format!("{path}.name"),
                format!("duplicate volume name \"{}\"", v.name),
            ));
        }
        let encoded = serde_json::to_value(v).map_err(|e| doc.err(&path, e.to_string()))?;
        let sources: Vec<&String> = encoded
            .as_object()
            .map(|o| o.keys().filter(|k| *k != "name").collect())
            .unwrap_or_default();
        match sources.as_slice() {
            [one] if SUPPORTED_VOLUMES.contains(&one.as_str()) => {}
            [one] => {
                return Err(doc.err(
                    format!("{path}.{one}"),
                    format!(
                        "volume type not supported by krun (supported: {})",
                        SUPPORTED_VOLUMES.join(", ")
                    ),
                ))
            }
            [] => return Err(doc.err(&path, "must specify a volume type")),
            [_, second, ..] => {
                return Err(doc.err(
                    format!("{path}.{second}"),
                    "may not specify more than 1 volume type",
                ))
            }
        }
        for (key, mode) in [
            (
                "configMap",
                v.config_map.as_ref().and_then(|s| s.default_mode),
            ),
            ("secret", v.secret.as_ref().and_then(|s| s.default_mode)),
            (
                "downwardAPI",
                v.downward_api.as_ref().and_then(|s| s.default_mode),
            ),
            (
                "projected",
                v.projected.as_ref().and_then(|s| s.default_mode),
            ),
        ] {
            if let Some(m) = mode {
                if !(0..=0o777).contains(&m) {
                    return Err(doc.err(
                        format!("{path}.{key}.defaultMode"),
                        format!("{m} must be a number between 0 and 0777 (octal), both inclusive"),
                    ));
                }
            }
        }
        if let Some(h) = &v.host_path {
            if !h.path.starts_with('/') {
                return Err(doc.err(
                    format!("{path}.hostPath.path"),
                    invalid(&h.path, "must be an absolute path"),
                ));
            }
            one_of(
                doc,
                &format!("{path}.hostPath.type"),
                h.type_.as_deref(),
                &[
                    "",
                    "DirectoryOrCreate",
                    "Directory",
                    "FileOrCreate",
                    "File",
                    "Socket",
                    "CharDevice",
                    "BlockDevice",
                ],
            )?;
        }
        if let Some(cm) = &v.config_map {
            if cm.name.is_empty() {
                return Err(doc.err(format!("{path}.configMap.name"), REQUIRED));
            }
        }
        if let Some(s) = &v.secret {
            if s.secret_name.as_deref().unwrap_or("").is_empty() {
                return Err(doc.err(format!("{path}.secret.secretName"), REQUIRED));
            }
        }
        super::security::volume_source(doc, &path, v, spec)?;
    }
    Ok(seen)
}

fn container(
    doc: &DocRef<'_>,
    path: &str,
    c: &Container,
    init: bool,
    host_network: bool,
    volumes: &HashSet<&str>,
) -> Result {
    let at = |field: &str| format!("{path}.{field}");
    if c.name.is_empty() {
        return Err(doc.err(at("name"), REQUIRED));
    }
    names::dns1123_label(&c.name).map_err(|e| doc.err(at("name"), invalid(&c.name, &e)))?;
    match c.image.as_deref() {
        None | Some("") => return Err(doc.err(at("image"), REQUIRED)),
        Some(image) if image.trim() != image => {
            return Err(doc.err(
                at("image"),
                invalid(image, "must not have leading or trailing whitespace"),
            ))
        }
        Some(_) => {}
    }
    one_of(
        doc,
        &at("imagePullPolicy"),
        c.image_pull_policy.as_deref(),
        &["Always", "IfNotPresent", "Never"],
    )?;
    one_of(
        doc,
        &at("terminationMessagePolicy"),
        c.termination_message_policy.as_deref(),
        &["File", "FallbackToLogsOnError"],
    )?;
    if let Some(p) = &c.termination_message_path {
        if !p.starts_with('/') {
            return Err(doc.err(
                at("terminationMessagePath"),
                invalid(p, "must be an absolute path"),
            ));
        }
    }
    let sidecar = match c.restart_policy.as_deref() {
        None => false,
        Some("Always") if init => true,
        Some(other) if init => {
            return Err(doc.err(
                at("restartPolicy"),
                format!("unsupported value \"{other}\": supported values: \"Always\""),
            ))
        }
        Some(_) => {
            return Err(doc.err(
                at("restartPolicy"),
                "may not be set for non-init containers",
            ))
        }
    };
    let mut port_names = HashSet::new();
    for (j, p) in c.ports.iter().flatten().enumerate() {
        let pp = |f: &str| format!("{path}.ports[{j}].{f}");
        if !(1..=65535).contains(&p.container_port) {
            return Err(doc.err(
                pp("containerPort"),
                format!("{} is out of range 1-65535", p.container_port),
            ));
        }
        if let Some(hp) = p.host_port {
            if hp != 0 && !(1..=65535).contains(&hp) {
                return Err(doc.err(pp("hostPort"), format!("{hp} is out of range 1-65535")));
            }
            if host_network && hp != p.container_port {
                return Err(doc.err(
                    pp("hostPort"),
                    format!(
                        "{hp} must match containerPort {} when hostNetwork is true",
                        p.container_port
                    ),
                ));
            }
        }
        one_of(
            doc,
            &pp("protocol"),
            p.protocol.as_deref(),
            &["TCP", "UDP", "SCTP"],
        )?;
        if let Some(name) = &p.name {
            names::port_name(name).map_err(|e| doc.err(pp("name"), invalid(name, &e)))?;
            if !port_names.insert(name.as_str()) {
                return Err(doc.err(pp("name"), format!("duplicate port name \"{name}\"")));
            }
        }
        if let Some(ip) = &p.host_ip {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(doc.err(pp("hostIP"), invalid(ip, "must be a valid IP address")));
            }
        }
    }
    let container_ports: HashSet<&str> = c
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.as_deref())
        .collect();
    env(doc, path, c.env.as_deref().unwrap_or_default())?;
    for (j, from) in c.env_from.iter().flatten().enumerate() {
        let fp = format!("{path}.envFrom[{j}]");
        match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), None) if r.name.is_empty() => {
                return Err(doc.err(format!("{fp}.configMapRef.name"), REQUIRED))
            }
            (None, Some(r)) if r.name.is_empty() => {
                return Err(doc.err(format!("{fp}.secretRef.name"), REQUIRED))
            }
            (Some(_), None) | (None, Some(_)) => {}
            (None, None) => {
                return Err(doc.err(&fp, "must specify one of: `configMapRef` or `secretRef`"))
            }
            (Some(_), Some(_)) => {
                return Err(doc.err(&fp, "may not have more than one field specified at a time"))
            }
        }
        if let Some(prefix) = from.prefix.as_deref().filter(|p| !p.is_empty()) {
            names::env_var_name(prefix)
                .map_err(|e| doc.err(format!("{fp}.prefix"), invalid(prefix, &e)))?;
        }
    }
    if let Some(r) = &c.resources {
        resources(doc, &at("resources"), r)?;
    }
    let mut mount_paths = HashSet::new();
    for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = |f: &str| format!("{path}.volumeMounts[{j}].{f}");
        if m.name.is_empty() {
            return Err(doc.err(mp("name"), REQUIRED));
        }
        if !volumes.contains(m.name.as_str()) {
            return Err(doc.err(
                mp("name"),
                format!("volume \"{}\" not found in spec.volumes", m.name),
            ));
        }
        if m.mount_path.is_empty() {
            return Err(doc.err(mp("mountPath"), REQUIRED));
        }
        if !mount_paths.insert(m.mount_path.as_str()) {
            return Err(doc.err(
                mp("mountPath"),
                format!("duplicate mount path \"{}\"", m.mount_path),
            ));
        }
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            relative_path(sub).map_err(|e| doc.err(mp("subPath"), invalid(sub, e)))?;
        }
        if let Some(prop) = &m.mount_propagation {
            one_of(
                doc,
                &mp("mountPropagation"),
                Some(prop),
                &["None", "HostToContainer", "Bidirectional"],
            )?;
        }
    }
    let probes = [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ];
    for (field, probe) in probes {
        let Some(probe) = probe else { continue };
        if init && !sidecar {
            return Err(doc.err(
                at(field),
                "may not be set for init containers without restartPolicy=Always",
            ));
        }
        self::probe(
            doc,
            &at(field),
            probe,
            field != "readinessProbe",
            &container_ports,
        )?;
    }
    if let Some(lc) = &c.lifecycle {
        if init && !sidecar {
            return Err(doc.err(
                at("lifecycle"),
                "may not be set for init containers without restartPolicy=Always",
            ));
        }
        for (field, h) in [("postStart", &lc.post_start), ("preStop", &lc.pre_stop)] {
            let Some(h) = h else { continue };
            let hp = at(&format!("lifecycle.{field}"));
            let count = [
                h.exec.is_some(),
                h.http_get.is_some(),
                h.tcp_socket.is_some(),
                h.sleep.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if count != 1 {
                return Err(doc.err(
                    &hp,
                    "must specify exactly one handler type (exec, httpGet, sleep)",
                ));
            }
            if let Some(http) = &h.http_get {
                port_ref(
                    doc,
                    &format!("{hp}.httpGet.port"),
                    &http.port,
                    &container_ports,
                )?;
                http_headers(doc, &format!("{hp}.httpGet"), http)?;
            }
            if let Some(sl) = h.sleep.as_ref().filter(|sl| sl.seconds < 0) {
                return Err(doc.err(
                    format!("{hp}.sleep.seconds"),
                    format!("{} must be greater than or equal to 0", sl.seconds),
                ));
            }
        }
    }
    Ok(())
}

/// subPath and item paths: relative, without `..` elements.
fn relative_path(p: &str) -> std::result::Result<(), &'static str> {
    if p.starts_with('/') {
        return Err("must be a relative path");
    }
    if p.split('/').any(|e| e == "..") {
        return Err("must not contain '..'");
    }
    Ok(())
}

fn env(doc: &DocRef<'_>, path: &str, list: &[EnvVar]) -> Result {
    for (j, e) in list.iter().enumerate() {
        let ep = format!("{path}.env[{j}]");
        if e.name.is_empty() {
            return Err(doc.err(format!("{ep}.name"), REQUIRED));
        }
        names::env_var_name(&e.name)
            .map_err(|err| doc.err(format!("{ep}.name"), invalid(&e.name, &err)))?;
        let Some(from) = &e.value_from else { continue };
        if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
            return Err(doc.err(
                format!("{ep}.valueFrom"),
                "may not be specified when `value` is not empty",
            ));
        }
        let set = [
            from.field_ref.is_some(),
            from.resource_field_ref.is_some(),
            from.config_map_key_ref.is_some(),
            from.secret_key_ref.is_some(),
            from.file_key_ref.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set != 1 {
            return Err(doc.err(
                format!("{ep}.valueFrom"),
                "must specify exactly one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        }
        if let Some(f) = &from.field_ref {
            let fp = format!("{ep}.valueFrom.fieldRef.fieldPath");
            if !field_path_supported(&f.field_path) {
                return Err(doc.err(
                    fp,
                    format!("unsupported value \"{}\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"metadata.labels['<KEY>']\", \"metadata.annotations['<KEY>']\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"", f.field_path),
                ));
            }
            if f.api_version.as_deref().is_some_and(|v| v != "v1") {
                return Err(doc.err(
                    format!("{ep}.valueFrom.fieldRef.apiVersion"),
                    "only \"v1\" is supported",
                ));
            }
        }
        if let Some(r) = &from.resource_field_ref {
            one_of(
                doc,
                &format!("{ep}.valueFrom.resourceFieldRef.resource"),
                Some(&r.resource),
                RESOURCE_FIELDS,
            )?;
            if let Some(d) = &r.divisor {
                quantity(doc, &format!("{ep}.valueFrom.resourceFieldRef.divisor"), d)?;
            }
        }
        if let Some(r) = &from.config_map_key_ref {
            if r.name.is_empty() {
                return Err(doc.err(format!("{ep}.valueFrom.configMapKeyRef.name"), REQUIRED));
            }
            names::config_map_key(&r.key).map_err(|err| {
                doc.err(
                    format!("{ep}.valueFrom.configMapKeyRef.key"),
                    invalid(&r.key, &err),
                )
            })?;
        }
        if let Some(r) = &from.secret_key_ref {
            if r.name.is_empty() {
                return Err(doc.err(format!("{ep}.valueFrom.secretKeyRef.name"), REQUIRED));
            }
            names::config_map_key(&r.key).map_err(|err| {
                doc.err(
                    format!("{ep}.valueFrom.secretKeyRef.key"),
                    invalid(&r.key, &err),
                )
            })?;
        }
        if from.file_key_ref.is_some() {
            return Err(doc.err(
                format!("{ep}.valueFrom.fileKeyRef"),
                "not supported by krun",
            ));
        }
    }
    Ok(())
}

/// The downward API fields an env var may reference.
pub fn field_path_supported(path: &str) -> bool {
    const PLAIN: &[&str] = &[
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "spec.nodeName",
        "spec.serviceAccountName",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
    ];
    if PLAIN.contains(&path) {
        return true;
    }
    for prefix in ["metadata.labels['", "metadata.annotations['"] {
        if let Some(key) = path.strip_prefix(prefix).and_then(|r| r.strip_suffix("']")) {
            return names::qualified_name(key).is_ok();
        }
    }
    false
}

fn quantity(doc: &DocRef<'_>, path: &str, q: &K8sQuantity) -> Result<Quantity> {
    Quantity::parse(&q.0).map_err(|e| doc.err(path, e.to_string()))
}

fn resource_name_ok(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage")
        || name.starts_with("hugepages-")
        || (name.contains('/') && names::qualified_name(name).is_ok())
}

fn resources(doc: &DocRef<'_>, path: &str, r: &ResourceRequirements) -> Result {
    let mut parsed: [BTreeMap<&str, Quantity>; 2] = Default::default();
    for (k, (field, map)) in [("limits", &r.limits), ("requests", &r.requests)]
        .into_iter()
        .enumerate()
    {
        for (name, value) in map.iter().flatten() {
            let p = format!("{path}.{field}.{name}");
            if !resource_name_ok(name) {
                return Err(doc.err(p, format!("unsupported resource name \"{name}\": must be cpu, memory, ephemeral-storage, hugepages-<size> or a domain-qualified name")));
            }
            let q = quantity(doc, &p, value)?;
            if q.is_negative() {
                return Err(doc.err(p, format!("{} must be greater than or equal to 0", value.0)));
            }
            parsed[k].insert(name.as_str(), q);
        }
    }
    let [limits, requests] = &parsed;
    for (name, req) in requests {
        if let Some(lim) = limits.get(name) {
            if req.milli_value() > lim.milli_value() {
                return Err(doc.err(
                    format!("{path}.requests.{name}"),
                    format!(
                        "\"{}\" must be less than or equal to {name} limit of {}",
                        r.requests
                            .as_ref()
                            .and_then(|m| m.get(*name))
                            .map(|q| q.0.as_str())
                            .unwrap_or(""),
                        r.limits
                            .as_ref()
                            .and_then(|m| m.get(*name))
                            .map(|q| q.0.as_str())
                            .unwrap_or(""),
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn port_ref(doc: &DocRef<'_>, path: &str, port: &IntOrString, named: &HashSet<&str>) -> Result {
    match port {
        IntOrString::Int(n) if !(1..=65535).contains(n) => {
            Err(doc.err(path, format!("{n} is out of range 1-65535")))
        }
        IntOrString::Int(_) => Ok(()),
        IntOrString::String(s) => {
            names::port_name(s).map_err(|e| doc.err(path, invalid(s, &e)))?;
            if named.contains(s.as_str()) {
                Ok(())
            } else {
                Err(doc.err(
                    path,
                    format!("port name \"{s}\" is not one of the container's ports"),
                ))
            }
        }
    }
}

/// httpHeaders names are HTTP tokens (values are checked when sent).
fn http_headers(doc: &DocRef<'_>, path: &str, h: &HTTPGetAction) -> Result {
    for (i, hd) in h.http_headers.iter().flatten().enumerate() {
        let token = !hd.name.is_empty()
            && hd
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(doc.err(
                format!("{path}.httpHeaders[{i}].name"),
                invalid(
                    &hd.name,
                    "a valid HTTP header must consist of alphanumeric characters or '-'",
                ),
            ));
        }
    }
    Ok(())
}

fn probe(
    doc: &DocRef<'_>,
    path: &str,
    p: &Probe,
    success_must_be_one: bool,
    named: &HashSet<&str>,
) -> Result {
    let handlers = [
        p.exec.is_some(),
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
        p.grpc.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if handlers != 1 {
        return Err(doc.err(
            path,
            "must specify exactly one handler type (exec, httpGet, tcpSocket, grpc)",
        ));
    }
    for (field, value, min) in [
        ("initialDelaySeconds", p.initial_delay_seconds, 0),
        ("timeoutSeconds", p.timeout_seconds, 1),
        ("periodSeconds", p.period_seconds, 1),
        ("successThreshold", p.success_threshold, 1),
        ("failureThreshold", p.failure_threshold, 1),
    ] {
        if let Some(v) = value {
            if v < min {
                return Err(doc.err(
                    format!("{path}.{field}"),
                    format!("{v} must be greater than or equal to {min}"),
                ));
            }
        }
    }
    if success_must_be_one && p.success_threshold.is_some_and(|s| s != 1) {
        return Err(doc.err(format!("{path}.successThreshold"), "must be 1"));
    }
    if let Some(h) = &p.http_get {
        port_ref(doc, &format!("{path}.httpGet.port"), &h.port, named)?;
        http_headers(doc, &format!("{path}.httpGet"), h)?;
        one_of(
            doc,
            &format!("{path}.httpGet.scheme"),
            h.scheme.as_deref(),
            &["HTTP", "HTTPS"],
        )?;
    }
    if let Some(t) = &p.tcp_socket {
        port_ref(doc, &format!("{path}.tcpSocket.port"), &t.port, named)?;
    }
    if let Some(g) = &p.grpc {
        if !(1..=65535).contains(&g.port) {
            return Err(doc.err(
                format!("{path}.grpc.port"),
                format!("{} is out of range 1-65535", g.port),
            ));
        }
    }
    if let Some(e) = &p.exec {
        if e.command.as_deref().unwrap_or_default().is_empty() {
            return Err(doc.err(format!("{path}.exec.command"), REQUIRED));
        }
    }
    Ok(())
}

fn data_keys<'a>(doc: &DocRef<'_>, field: &str, keys: impl Iterator<Item = &'a String>) -> Result {
    for key in keys {
        names::config_map_key(key)
            .map_err(|e| doc.err(format!("{field}.{key}"), format!("invalid key: {e}")))?;
    }
    Ok(())
}

pub(crate) fn config_map(doc: &DocRef<'_>, cm: &ConfigMap) -> Result {
    metadata(doc, &cm.metadata)?;
    data_keys(doc, "data", cm.data.iter().flat_map(|m| m.keys()))?;
    data_keys(
        doc,
        "binaryData",
        cm.binary_data.iter().flat_map(|m| m.keys()),
    )?;
    if let (Some(d), Some(b)) = (&cm.data, &cm.binary_data) {
        if let Some(k) = d.keys().find(|k| b.contains_key(*k)) {
            return Err(doc.err(
                format!("binaryData.{k}"),
                "duplicate of key present in data",
            ));
        }
    }
    Ok(())
}

pub(crate) fn secret(doc: &DocRef<'_>, s: &Secret) -> Result {
    metadata(doc, &s.metadata)?;
    data_keys(doc, "data", s.data.iter().flat_map(|m| m.keys()))?;
    data_keys(
        doc,
        "stringData",
        s.string_data.iter().flat_map(|m| m.keys()),
    )?;
    Ok(())
}

/// Checks across documents: no two objects of one kind share a namespace and name.
pub(crate) fn cross_document(docs: &[Document]) -> Result {
    let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for d in docs {
        let ns = match &d.object {
            Object::Pod(p) => p.metadata.namespace.as_deref(),
            Object::ConfigMap(c) => c.metadata.namespace.as_deref(),
            Object::Secret(s) => s.metadata.namespace.as_deref(),
        }
        .unwrap_or("");
        let key = (d.object.kind(), ns, d.object.name());
        if let Some(first) = seen.insert(key, d.index) {
            let doc = DocRef {
                file: &d.file,
                index: d.index,
                label: format!("{} {}", d.object.kind(), d.object.name()),
            };
            return Err(doc.err(
                "metadata.name",
                format!(
                    "{} \"{}\" is already defined by document {first}",
                    d.object.kind(),
                    d.object.name()
                ),
            ));
        }
    }
    Ok(())
}
