//! The API server's (and the kubelet's admission) rules for
//! securityContext and the volume sources krun fills: seccompProfile,
//! procMount, allowPrivilegeEscalation, sysctls against the kubelet's safe
//! set, projected sources, downward API files, item paths and modes,
//! emptyDir medium, and volumeMounts' subPath, subPathExpr and
//! mountPropagation.

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, KeyToPath, PodSpec, SeccompProfile, SecurityContext, Volume,
    VolumeMount,
};

use super::quantity::Quantity;
use super::DocRef;

type Result<T = ()> = std::result::Result<T, super::ManifestError>;

/// The kubelet's safe sysctls (pkg/kubelet/sysctl/safe_sysctls.go);
/// anything else is refused as the kubelet refuses it without
/// --allowed-unsafe-sysctls (reason SysctlForbidden).
pub const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

fn seccomp(doc: &DocRef<'_>, path: &str, p: &SeccompProfile) -> Result {
    match p.type_.as_str() {
        "RuntimeDefault" | "Unconfined" => {
            if p.localhost_profile.is_some() {
                return Err(doc.err(
                    format!("{path}.localhostProfile"),
                    "can only be set if type is \"Localhost\"",
                ));
            }
        }
        "Localhost" => {
            let lp = p.localhost_profile.as_deref().unwrap_or("");
            if lp.is_empty() {
                return Err(doc.err(
                    format!("{path}.localhostProfile"),
                    "must be set when seccomp type is Localhost",
                ));
            }
            if lp.starts_with('/') || lp.split('/').any(|e| e == "..") {
                return Err(doc.err(
                    format!("{path}.localhostProfile"),
                    format!("invalid value \"{lp}\": must be a relative path without '..'"),
                ));
            }
        }
        other => {
            return Err(doc.err(
                format!("{path}.type"),
                format!("unsupported value \"{other}\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\""),
            ))
        }
    }
    Ok(())
}

fn container_security(doc: &DocRef<'_>, path: &str, sc: &SecurityContext) -> Result {
    let at = |f: &str| format!("{path}.securityContext.{f}");
    if let Some(p) = &sc.seccomp_profile {
        seccomp(doc, &at("seccompProfile"), p)?;
    }
    if let Some(pm) = sc.proc_mount.as_deref() {
        if pm != "Default" && pm != "Unmasked" {
            return Err(doc.err(
                at("procMount"),
                format!("unsupported value \"{pm}\": supported values: \"Default\", \"Unmasked\""),
            ));
        }
    }
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            return Err(doc.err(
                at("allowPrivilegeEscalation"),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        let adds = sc.capabilities.as_ref().and_then(|c| c.add.as_ref());
        if adds.is_some_and(|a| a.iter().any(|c| c == "SYS_ADMIN" || c == "CAP_SYS_ADMIN")) {
            return Err(doc.err(
                at("allowPrivilegeEscalation"),
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ));
        }
    }
    Ok(())
}

/// Pod-level securityContext and each container's.
pub(crate) fn pod(doc: &DocRef<'_>, spec: &PodSpec) -> Result {
    if let Some(psc) = &spec.security_context {
        if let Some(p) = &psc.seccomp_profile {
            seccomp(doc, "spec.securityContext.seccompProfile", p)?;
        }
        if let Some(p) = psc.fs_group_change_policy.as_deref() {
            if p != "OnRootMismatch" && p != "Always" {
                return Err(doc.err(
                    "spec.securityContext.fsGroupChangePolicy",
                    format!("unsupported value \"{p}\": supported values: \"OnRootMismatch\", \"Always\""),
                ));
            }
        }
        for (i, s) in psc.sysctls.iter().flatten().enumerate() {
            let name = s.name.replace('/', ".");
            let path = format!("spec.securityContext.sysctls[{i}].name");
            if !SAFE_SYSCTLS.contains(&name.as_str()) {
                return Err(doc.err(
                    path,
                    format!("forbidden sysctl: \"{name}\" not allowlisted (SysctlForbidden: the kubelet's safe sysctls are {})", SAFE_SYSCTLS.join(", ")),
                ));
            }
            let (ns, host) = if name.starts_with("net.") {
                ("net", spec.host_network == Some(true))
            } else {
                ("ipc", spec.host_ipc == Some(true))
            };
            if host {
                return Err(doc.err(
                    path,
                    format!("forbidden sysctl: \"{name}\" not allowed with host {ns} enabled"),
                ));
            }
        }
    }
    let groups = [
        (
            "spec.initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("spec.containers", spec.containers.as_slice()),
    ];
    for (group, list) in groups {
        for (i, c) in list.iter().enumerate() {
            let path = format!("{group}[{i}]");
            if let Some(sc) = &c.security_context {
                container_security(doc, &path, sc)?;
            }
            mounts(doc, &path, c)?;
        }
    }
    Ok(())
}

fn mounts(doc: &DocRef<'_>, path: &str, c: &Container) -> Result {
    let privileged = c
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false);
    for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = |f: &str| format!("{path}.volumeMounts[{j}].{f}");
        mount(doc, &mp, m, privileged)?;
    }
    Ok(())
}

fn mount(
    doc: &DocRef<'_>,
    mp: &dyn Fn(&str) -> String,
    m: &VolumeMount,
    privileged: bool,
) -> Result {
    if m.mount_path.split('/').any(|e| e == "..") {
        return Err(doc.err(
            mp("mountPath"),
            format!("invalid value \"{}\": must not contain '..'", m.mount_path),
        ));
    }
    let sub = m.sub_path.as_deref().filter(|s| !s.is_empty());
    let expr = m.sub_path_expr.as_deref().filter(|s| !s.is_empty());
    if sub.is_some() && expr.is_some() {
        return Err(doc.err(
            mp("subPathExpr"),
            "subPathExpr and subPath are mutually exclusive",
        ));
    }
    if let Some(e) = expr {
        if e.starts_with('/') {
            return Err(doc.err(
                mp("subPathExpr"),
                format!("invalid value \"{e}\": must be a relative path"),
            ));
        }
    }
    if m.mount_propagation.as_deref() == Some("Bidirectional") && !privileged {
        return Err(doc.err(
            mp("mountPropagation"),
            "Bidirectional mount propagation is available only to privileged containers",
        ));
    }
    Ok(())
}

fn item_paths(doc: &DocRef<'_>, path: &str, items: Option<&[KeyToPath]>) -> Result {
    for (k, it) in items.unwrap_or_default().iter().enumerate() {
        let ip = format!("{path}.items[{k}]");
        if it.key.is_empty() {
            return Err(doc.err(format!("{ip}.key"), "required field is missing"));
        }
        file_path(doc, &format!("{ip}.path"), &it.path)?;
        file_mode(doc, &format!("{ip}.mode"), it.mode)?;
    }
    Ok(())
}

fn file_path(doc: &DocRef<'_>, path: &str, p: &str) -> Result {
    if p.is_empty() {
        return Err(doc.err(path, "required field is missing"));
    }
    crate::volumes::atomic::valid_path(p).map_err(|e| doc.err(path, e))
}

fn file_mode(doc: &DocRef<'_>, path: &str, mode: Option<i32>) -> Result {
    if let Some(m) = mode {
        if !(0..=0o777).contains(&m) {
            return Err(doc.err(
                path,
                format!("{m} must be a number between 0 and 0777 (octal), both inclusive"),
            ));
        }
    }
    Ok(())
}

/// Fields a downwardAPI volume file may reference.
const VOLUME_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
];

fn downward_files(
    doc: &DocRef<'_>,
    path: &str,
    items: &[DownwardAPIVolumeFile],
    containers: &[&str],
) -> Result {
    for (k, it) in items.iter().enumerate() {
        let ip = format!("{path}.items[{k}]");
        file_path(doc, &format!("{ip}.path"), &it.path)?;
        file_mode(doc, &format!("{ip}.mode"), it.mode)?;
        match (&it.field_ref, &it.resource_field_ref) {
            (Some(f), None) => {
                let fp = f.field_path.as_str();
                let keyed = ["metadata.labels['", "metadata.annotations['"]
                    .iter()
                    .any(|p| fp.starts_with(p) && fp.ends_with("']"));
                if !VOLUME_FIELDS.contains(&fp) && !keyed {
                    return Err(doc.err(
                        format!("{ip}.fieldRef.fieldPath"),
                        format!("unsupported value \"{fp}\": supported values: \"metadata.annotations\", \"metadata.labels\", \"metadata.name\", \"metadata.namespace\", \"metadata.uid\""),
                    ));
                }
            }
            (None, Some(r)) => {
                let name = r.container_name.as_deref().unwrap_or("");
                if name.is_empty() {
                    return Err(doc.err(
                        format!("{ip}.resourceFieldRef.containerName"),
                        "required field is missing",
                    ));
                }
                if !containers.contains(&name) {
                    return Err(doc.err(
                        format!("{ip}.resourceFieldRef.containerName"),
                        format!("container \"{name}\" not found in the pod"),
                    ));
                }
                if !super::validate::RESOURCE_FIELDS.contains(&r.resource.as_str()) {
                    return Err(doc.err(
                        format!("{ip}.resourceFieldRef.resource"),
                        format!("unsupported value \"{}\"", r.resource),
                    ));
                }
            }
            _ => {
                return Err(doc.err(
                    &ip,
                    "must specify exactly one of: `fieldRef` or `resourceFieldRef`",
                ))
            }
        }
    }
    Ok(())
}

/// The parts of a volume's source the kubelet acts on.
pub(crate) fn volume_source(doc: &DocRef<'_>, path: &str, v: &Volume, spec: &PodSpec) -> Result {
    let containers: Vec<&str> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .map(|c| c.name.as_str())
        .collect();
    if let Some(e) = &v.empty_dir {
        if let Some(m) = e.medium.as_deref().filter(|m| !m.is_empty()) {
            if m != "Memory" {
                return Err(doc.err(
                    format!("{path}.emptyDir.medium"),
                    format!("unsupported value \"{m}\": krun supports \"\" (disk) and \"Memory\""),
                ));
            }
        }
        if let Some(q) = &e.size_limit {
            Quantity::parse(&q.0)
                .map_err(|err| doc.err(format!("{path}.emptyDir.sizeLimit"), err.to_string()))?;
        }
    }
    if let Some(c) = &v.config_map {
        item_paths(doc, &format!("{path}.configMap"), c.items.as_deref())?;
    }
    if let Some(s) = &v.secret {
        item_paths(doc, &format!("{path}.secret"), s.items.as_deref())?;
    }
    if let Some(d) = &v.downward_api {
        let items = d.items.as_deref().unwrap_or_default();
        downward_files(doc, &format!("{path}.downwardAPI"), items, &containers)?;
    }
    if let Some(p) = &v.projected {
        for (k, s) in p.sources.iter().flatten().enumerate() {
            let sp = format!("{path}.projected.sources[{k}]");
            let refused = [
                (
                    "serviceAccountToken",
                    s.service_account_token.is_some(),
                    "krun has no API server to issue service account tokens",
                ),
                (
                    "clusterTrustBundle",
                    s.cluster_trust_bundle.is_some(),
                    "krun has no API server to read ClusterTrustBundles from",
                ),
                (
                    "podCertificate",
                    s.pod_certificate.is_some(),
                    "krun has no API server to issue pod certificates",
                ),
            ];
            for (field, set, why) in refused {
                if set {
                    return Err(doc.err(format!("{sp}.{field}"), format!("not supported: {why}")));
                }
            }
            let count = [
                s.config_map.is_some(),
                s.secret.is_some(),
                s.downward_api.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if count != 1 {
                return Err(doc.err(&sp, "may not specify more than 1 volume type per source"));
            }
            if let Some(c) = &s.config_map {
                if c.name.is_empty() {
                    return Err(
                        doc.err(format!("{sp}.configMap.name"), "required field is missing")
                    );
                }
                item_paths(doc, &format!("{sp}.configMap"), c.items.as_deref())?;
            }
            if let Some(c) = &s.secret {
                if c.name.is_empty() {
                    return Err(doc.err(format!("{sp}.secret.name"), "required field is missing"));
                }
                item_paths(doc, &format!("{sp}.secret"), c.items.as_deref())?;
            }
            if let Some(d) = &s.downward_api {
                let items = d.items.as_deref().unwrap_or_default();
                downward_files(doc, &format!("{sp}.downwardAPI"), items, &containers)?;
            }
        }
    }
    Ok(())
}
