//! `get pods -o json|yaml`, shaped as kubectl prints them: one object for
//! one named pod, a `List` otherwise; JSON indented by four spaces, YAML
//! with lists flush under their key and no folded strings.

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("encoding YAML: {0}")]
    Yaml(#[from] serde_saphyr::SerializeError),
}

/// The value kubectl prints: the pod itself, or a List of them.
pub fn value(pods: &[Pod], single: bool) -> Result<Value, OutputError> {
    if single && pods.len() == 1 {
        return Ok(serde_json::to_value(&pods[0])?);
    }
    let items: Vec<Value> = pods
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    Ok(json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }))
}

pub fn to_json(pods: &[Pod], single: bool) -> Result<String, OutputError> {
    let v = value(pods, single)?;
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser)?;
    out.push(b'\n');
    Ok(String::from_utf8_lossy(&out).into_owned())
}

pub fn to_yaml(pods: &[Pod], single: bool) -> Result<String, OutputError> {
    let v = value(pods, single)?;
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    Ok(serde_saphyr::to_string_with_options(&v, options)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{parse_str, Object};

    fn pod() -> Pod {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\nspec:\n  containers: [{name: app, image: busybox, command: [sh, -c, 'echo 1']}]\n";
        match parse_str("p.yaml", yaml).unwrap().remove(0).object {
            Object::Pod(p) => *p,
            other => panic!("{}", other.kind()),
        }
    }

    #[test]
    fn json_single_and_list() {
        let one = to_json(&[pod()], true).unwrap();
        assert!(
            one.starts_with("{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"Pod\",\n"),
            "{one}"
        );
        let list = to_json(&[pod(), pod()], false).unwrap();
        let v: Value = serde_json::from_str(&list).unwrap();
        assert_eq!(v["kind"], "List");
        assert_eq!(v["items"].as_array().unwrap().len(), 2);
        assert_eq!(
            v["items"][0]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
    }

    #[test]
    fn yaml_reads_back_to_the_same_pod() {
        let text = to_yaml(&[pod()], true).unwrap();
        assert!(
            text.starts_with("apiVersion: v1\nkind: Pod\nmetadata:\n"),
            "{text}"
        );
        assert!(
            text.contains("  containers:\n  - command:\n    - sh\n"),
            "{text}"
        );
        let back = parse_str("back.yaml", &text).unwrap().remove(0).object;
        assert_eq!(back, Object::Pod(Box::new(pod())));
        let list = to_yaml(&[pod()], false).unwrap();
        assert!(
            list.starts_with("apiVersion: v1\nitems:\n- apiVersion: v1\n"),
            "{list}"
        );
        assert!(
            list.ends_with("kind: List\nmetadata:\n  resourceVersion: ''\n")
                || list.ends_with("kind: List\nmetadata:\n  resourceVersion: \"\"\n"),
            "{list}"
        );
    }
}
