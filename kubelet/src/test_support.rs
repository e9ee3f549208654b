//! What the crate's unit tests share: manifests loaded into a pod and
//! the ConfigMaps and Secrets beside it.

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};

use crate::manifest::{parse_str, Object};

pub struct Loaded {
    pub pod: Pod,
    pub config_maps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
}

/// The documents of `yaml` (which must be valid), the pod given a uid.
pub fn load(yaml: &str) -> Loaded {
    let mut out = Loaded {
        pod: Pod::default(),
        config_maps: vec![],
        secrets: vec![],
    };
    for d in parse_str("t.yaml", yaml).unwrap() {
        match d.object {
            Object::Pod(p) => out.pod = *p,
            Object::ConfigMap(c) => out.config_maps.push(*c),
            Object::Secret(s) => out.secrets.push(*s),
        }
    }
    out.pod.metadata.uid = Some("9f0c-uid".into());
    out
}
