//! A container's environment as the kubelet computes it (envFrom, then env
//! in order with `$(VAR)` expansion against what came before; valueFrom
//! from the downward API, resources, ConfigMaps and Secrets), merged over
//! the image's environment as containerd does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

use super::expand::expand;
use super::{NodeFacts, PodFacts, SpecError};
use crate::manifest::names;
use crate::manifest::quantity::Quantity;

/// ConfigMaps and Secrets that env and volumes may reference.
#[derive(Debug, Clone, Copy, Default)]
pub struct Objects<'a> {
    pub config_maps: &'a [ConfigMap],
    pub secrets: &'a [Secret],
}

impl<'a> Objects<'a> {
    pub(crate) fn config_map(&self, namespace: &str, name: &str) -> Option<&'a ConfigMap> {
        self.config_maps.iter().find(|c| {
            c.metadata.name.as_deref() == Some(name)
                && c.metadata.namespace.as_deref().unwrap_or("default") == namespace
        })
    }

    pub(crate) fn secret(&self, namespace: &str, name: &str) -> Option<&'a Secret> {
        self.secrets.iter().find(|s| {
            s.metadata.name.as_deref() == Some(name)
                && s.metadata.namespace.as_deref().unwrap_or("default") == namespace
        })
    }
}

/// A ConfigMap's string data.
fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = cm.data.clone().unwrap_or_default();
    for (k, v) in cm.binary_data.iter().flatten() {
        out.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
    }
    out
}

/// A Secret's data, with stringData written over it as the API server does.
pub fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone().into_bytes());
    }
    out
}

/// Ordered environment with replace-in-place semantics.
#[derive(Debug, Default, Clone)]
struct EnvList(Vec<(String, String)>);

impl EnvList {
    fn set(&mut self, name: &str, value: String) {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_string(), value)),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn config_error(msg: String) -> SpecError {
    SpecError::Config(msg)
}

/// The container's own variables (not the image's), in order.
pub fn container_env(
    pod: &Pod,
    c: &Container,
    objects: &Objects<'_>,
    facts: &PodFacts,
    node: &NodeFacts,
) -> Result<Vec<(String, String)>, SpecError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env = EnvList::default();
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let data: BTreeMap<String, String> = if let Some(r) = &from.config_map_ref {
            match objects.config_map(ns, &r.name) {
                Some(cm) => config_map_data(cm),
                None if r.optional == Some(true) => continue,
                None => return Err(config_error(format!("configmap \"{}\" not found", r.name))),
            }
        } else if let Some(r) = &from.secret_ref {
            match objects.secret(ns, &r.name) {
                Some(s) => secret_data(s)
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                    .collect(),
                None if r.optional == Some(true) => continue,
                None => return Err(config_error(format!("secret \"{}\" not found", r.name))),
            }
        } else {
            continue;
        };
        for (k, v) in data {
            let name = format!("{prefix}{k}");
            // The kubelet skips keys that are not valid variable names.
            if names::env_var_name(&name).is_ok() {
                env.set(&name, v);
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => {
                let raw = e.value.as_deref().unwrap_or("");
                expand(raw, |name| env.get(name))
            }
            Some(from) => {
                if let Some(f) = &from.field_ref {
                    field_value(pod, &f.field_path, facts, node)?
                } else if let Some(r) = &from.resource_field_ref {
                    resource_value(pod, c, r, node)?
                } else if let Some(r) = &from.config_map_key_ref {
                    let Some(cm) = objects.config_map(ns, &r.name) else {
                        if r.optional == Some(true) {
                            continue;
                        }
                        return Err(config_error(format!("configmap \"{}\" not found", r.name)));
                    };
                    match config_map_data(cm).remove(&r.key) {
                        Some(v) => v,
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(config_error(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                r.key, r.name
                            )))
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let Some(s) = objects.secret(ns, &r.name) else {
                        if r.optional == Some(true) {
                            continue;
                        }
                        return Err(config_error(format!("secret \"{}\" not found", r.name)));
                    };
                    match secret_data(s).remove(&r.key) {
                        Some(v) => String::from_utf8_lossy(&v).into_owned(),
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(config_error(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                r.key, r.name
                            )))
                        }
                    }
                } else {
                    return Err(config_error(format!(
                        "env {}: unsupported valueFrom",
                        e.name
                    )));
                }
            }
        };
        env.set(&e.name, value);
    }
    Ok(env.0)
}

pub(crate) fn field_value(
    pod: &Pod,
    path: &str,
    facts: &PodFacts,
    node: &NodeFacts,
) -> Result<String, SpecError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();
    let value = match path {
        "metadata.name" => text(meta.name.as_ref()),
        "metadata.namespace" => text(meta.namespace.as_ref()),
        "metadata.uid" => text(meta.uid.as_ref()),
        "spec.nodeName" => node.name.clone(),
        "spec.serviceAccountName" => text(spec.and_then(|s| s.service_account_name.as_ref())),
        "status.hostIP" => facts.host_ip.clone().unwrap_or_default(),
        "status.hostIPs" => facts.host_ip.clone().unwrap_or_default(),
        "status.podIP" => facts.pod_ip.clone().unwrap_or_default(),
        "status.podIPs" => facts.pod_ip.clone().unwrap_or_default(),
        other => {
            let keyed = |prefix: &str| {
                other
                    .strip_prefix(prefix)
                    .and_then(|r| r.strip_suffix("']"))
            };
            if let Some(key) = keyed("metadata.labels['") {
                meta.labels
                    .as_ref()
                    .and_then(|m| m.get(key))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(key) = keyed("metadata.annotations['") {
                meta.annotations
                    .as_ref()
                    .and_then(|m| m.get(key))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return Err(config_error(format!("unsupported fieldPath: {other}")));
            }
        }
    };
    Ok(value)
}

pub(crate) fn resource_value(
    pod: &Pod,
    c: &Container,
    r: &k8s_openapi::api::core::v1::ResourceFieldSelector,
    node: &NodeFacts,
) -> Result<String, SpecError> {
    let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
        None => c,
        Some(name) => pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|x| x.name == name)
            .ok_or_else(|| config_error(format!("container {name} not found")))?,
    };
    let (kind, resource) = r
        .resource
        .split_once('.')
        .ok_or_else(|| config_error(format!("unsupported resource {}", r.resource)))?;
    let get = |limits: bool| {
        let res = target.resources.as_ref()?;
        let map = if limits { &res.limits } else { &res.requests };
        map.as_ref()?
            .get(resource)
            .and_then(|q| Quantity::parse(&q.0).ok())
    };
    let node_capacity = || -> Option<Quantity> {
        match resource {
            "cpu" => Quantity::parse(&node.cpus.to_string()).ok(),
            "memory" => Quantity::parse(&node.memory_bytes.to_string()).ok(),
            _ => None,
        }
    };
    // Limits that are not set read as the node's capacity, as in the kubelet.
    let value = match kind {
        "limits" => get(true).or_else(node_capacity),
        _ => get(false),
    };
    let divisor = match &r.divisor {
        Some(d) => Quantity::parse(&d.0).map_err(|e| config_error(e.to_string()))?,
        None => Quantity::parse("1").map_err(|e| config_error(e.to_string()))?,
    };
    Ok(match value {
        Some(v) => v.divided_by(&divisor).to_string(),
        None => "0".into(),
    })
}

/// The final process environment, built as containerd builds it: the
/// default PATH, HOSTNAME, the image's variables, then the container's; a
/// later name replaces an earlier one in place.
pub fn merge(image_env: &[String], hostname: &str, container: &[(String, String)]) -> Vec<String> {
    let mut env = EnvList::default();
    env.set("PATH", DEFAULT_PATH.into());
    env.set("HOSTNAME", hostname.to_string());
    for entry in image_env {
        let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
        env.set(k, v.to_string());
    }
    for (k, v) in container {
        env.set(k, v.clone());
    }
    env.0.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
