//! The files of configMap, secret, downwardAPI and projected volumes, as
//! the kubelet's MakePayload builds them: every key (or only the listed
//! items, each at its path), each with its item mode or the volume's
//! defaultMode; a missing object or key is an error unless optional.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, ProjectedVolumeSource, Volume,
};

use super::atomic::{FileProjection, Payload};
use crate::manifest::defaults::DEFAULT_FILE_MODE;
use crate::spec::{NodeFacts, Objects, PodFacts};

fn config_map_bytes(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        out.insert(k.clone(), v.0.clone());
    }
    out
}

fn mode(item: Option<i32>, default: Option<i32>) -> u32 {
    item.or(default).unwrap_or(DEFAULT_FILE_MODE) as u32 & 0o777
}

/// `data` as files: every key, or the `items` at their paths.
fn project(
    out: &mut Payload,
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: bool,
    missing_key: &str,
) -> Result<(), String> {
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                out.insert(
                    k,
                    FileProjection {
                        data: v,
                        mode: mode(None, default_mode),
                    },
                );
            }
        }
        Some(items) => {
            for it in items {
                let Some(v) = data.get(&it.key) else {
                    if optional {
                        continue;
                    }
                    return Err(format!("{missing_key}: {}", it.key));
                };
                out.insert(
                    it.path.clone(),
                    FileProjection {
                        data: v.clone(),
                        mode: mode(it.mode, default_mode),
                    },
                );
            }
        }
    }
    Ok(())
}

/// Which object a volume source projects, and its data when it exists.
struct Source<'a> {
    /// "configmap" or "secret", as the kubelet's messages name them.
    kind: &'static str,
    name: &'a str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&'a [KeyToPath]>,
    optional: bool,
}

/// An object's keys (or items) into `out`.
fn object_files(out: &mut Payload, s: Source<'_>, default_mode: Option<i32>) -> Result<(), String> {
    let missing_key = match s.kind {
        "configmap" => "configmap references non-existent config key",
        _ => "references non-existent secret key",
    };
    match s.data {
        Some(data) => project(out, data, s.items, default_mode, s.optional, missing_key),
        None if s.optional => Ok(()),
        None => Err(format!("{} \"{}\" not found", s.kind, s.name)),
    }
}

fn config_map_source<'a>(
    objects: &Objects<'_>,
    ns: &str,
    name: &'a str,
    items: Option<&'a [KeyToPath]>,
    optional: Option<bool>,
) -> Source<'a> {
    Source {
        kind: "configmap",
        name,
        data: objects.config_map(ns, name).map(config_map_bytes),
        items,
        optional: optional == Some(true),
    }
}

fn secret_source<'a>(
    objects: &Objects<'_>,
    ns: &str,
    name: &'a str,
    items: Option<&'a [KeyToPath]>,
    optional: Option<bool>,
) -> Source<'a> {
    Source {
        kind: "secret",
        name,
        data: objects.secret(ns, name).map(crate::spec::secret_data),
        items,
        optional: optional == Some(true),
    }
}

/// Go's %q for FormatMap values.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Labels or annotations as the kubelet writes them: sorted `key="value"`
/// lines, no final newline.
pub fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the pod's downward API files read from.
pub struct Facts<'a> {
    pub facts: &'a PodFacts,
    pub node: &'a NodeFacts,
}

fn downward_items(
    out: &mut Payload,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    f: &Facts<'_>,
) -> Result<(), String> {
    for it in items {
        let text = if let Some(fr) = &it.field_ref {
            match fr.field_path.as_str() {
                "metadata.labels" => format_map(pod.metadata.labels.as_ref()),
                "metadata.annotations" => format_map(pod.metadata.annotations.as_ref()),
                p => {
                    crate::spec::field_value(pod, p, f.facts, f.node).map_err(|e| e.to_string())?
                }
            }
        } else if let Some(rr) = &it.resource_field_ref {
            let spec = pod.spec.as_ref().ok_or("pod has no spec")?;
            let first = spec.containers.first().ok_or("pod has no containers")?;
            crate::spec::resource_value(pod, first, rr, f.node).map_err(|e| e.to_string())?
        } else {
            continue;
        };
        out.insert(
            it.path.clone(),
            FileProjection {
                data: text.into_bytes(),
                mode: mode(it.mode, default_mode),
            },
        );
    }
    Ok(())
}

fn projected(
    out: &mut Payload,
    pod: &Pod,
    p: &ProjectedVolumeSource,
    objects: &Objects<'_>,
    f: &Facts<'_>,
) -> Result<(), String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    for s in p.sources.iter().flatten() {
        if let Some(c) = &s.config_map {
            let src = config_map_source(objects, ns, &c.name, c.items.as_deref(), c.optional);
            object_files(out, src, p.default_mode)?;
        }
        if let Some(sec) = &s.secret {
            let src = secret_source(objects, ns, &sec.name, sec.items.as_deref(), sec.optional);
            object_files(out, src, p.default_mode)?;
        }
        if let Some(d) = &s.downward_api {
            downward_items(
                out,
                pod,
                d.items.as_deref().unwrap_or_default(),
                p.default_mode,
                f,
            )?;
        }
    }
    Ok(())
}

/// The payload of a configMap, secret, downwardAPI or projected volume;
/// None for other volume types.
pub fn payload(
    pod: &Pod,
    v: &Volume,
    objects: &Objects<'_>,
    f: &Facts<'_>,
) -> Option<Result<Payload, String>> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = Payload::new();
    let r = if let Some(c) = &v.config_map {
        let src = config_map_source(objects, ns, &c.name, c.items.as_deref(), c.optional);
        object_files(&mut out, src, c.default_mode)
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.as_deref().unwrap_or_default();
        let src = secret_source(objects, ns, name, s.items.as_deref(), s.optional);
        object_files(&mut out, src, s.default_mode)
    } else if let Some(d) = &v.downward_api {
        downward_items(
            &mut out,
            pod,
            d.items.as_deref().unwrap_or_default(),
            d.default_mode,
            f,
        )
    } else if let Some(p) = &v.projected {
        projected(&mut out, pod, p, objects, f)
    } else {
        return None;
    };
    Some(r.map(|()| out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_formatted_as_the_kubelet_does() {
        let mut m = BTreeMap::new();
        m.insert("tier".to_string(), "front end".to_string());
        m.insert("app".to_string(), "web \"x\"\n".to_string());
        assert_eq!(
            format_map(Some(&m)),
            "app=\"web \\\"x\\\"\\n\"\ntier=\"front end\""
        );
        assert_eq!(format_map(None), "");
    }
}
