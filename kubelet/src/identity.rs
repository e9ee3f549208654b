//! Where a pod comes from and what it is called: random UIDs for pods
//! given on the command line; for static pods (the node agent's manifest
//! directory) the kubelet's naming `<name>-<node>`, a UID that is a hash of
//! the manifest, node and file (so an edited file is a new pod), and the
//! kubelet's config annotations.

use std::io::Read;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use sha2::{Digest, Sha256};

use crate::logs::rfc3339_nano;

pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
pub const CONFIG_SEEN: &str = "kubernetes.io/config.seen";

/// A random version-4 UUID, as the API server gives new pods.
pub fn random_uid() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// Give a pod from the command line its UID and creation time.
pub fn admit(pod: &mut Pod, node: &str, now: Timestamp) -> std::io::Result<()> {
    if pod.metadata.uid.as_deref().is_none_or(str::is_empty) {
        pod.metadata.uid = Some(random_uid()?);
    }
    pod.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name.get_or_insert_with(|| node.to_string());
    }
    Ok(())
}

/// Turn a pod read from `source` (a file of the manifest directory) into
/// the static pod the kubelet would run on `node`.
pub fn admit_static(
    pod: &mut Pod,
    node: &str,
    source: &str,
    now: Timestamp,
) -> Result<(), serde_json::Error> {
    admit_static_with(pod, node, source, &[], now)
}

/// [`admit_static`] for a pod whose file also holds objects it may use
/// (ConfigMaps, Secrets, serialised in `objects`): they are part of the
/// hash, so editing one recreates the pod.
pub fn admit_static_with(
    pod: &mut Pod,
    node: &str,
    source: &str,
    objects: &[u8],
    now: Timestamp,
) -> Result<(), serde_json::Error> {
    // The hash covers the pod as written (after defaulting), the node and the file.
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&*pod)?);
    h.update(format!("host:{node}").as_bytes());
    h.update(format!("file:{source}").as_bytes());
    if !objects.is_empty() {
        h.update(b"objects:");
        h.update(objects);
    }
    let digest = h.finalize();
    let uid: String = digest[..16].iter().map(|x| format!("{x:02x}")).collect();
    let name = pod.metadata.name.clone().unwrap_or_default();
    pod.metadata.name = Some(format!("{name}-{}", node.to_ascii_lowercase()));
    pod.metadata.uid = Some(uid.clone());
    pod.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
    let annotations = pod
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    annotations.insert(CONFIG_SOURCE.into(), "file".into());
    annotations.insert(CONFIG_HASH.into(), uid);
    annotations.insert(CONFIG_SEEN.into(), rfc3339_nano(now));
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node.to_string());
    }
    Ok(())
}

/// Whether a file of the manifest directory is read, as the kubelet
/// decides (its glob `[^.]*`): every name but dotfiles (editors' swap
/// and temp files, `.git`). Directories are not recursed into.
pub fn is_manifest_file(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{parse_str, Object};

    fn pod(yaml: &str) -> Pod {
        match parse_str("p.yaml", yaml).unwrap().remove(0).object {
            Object::Pod(p) => *p,
            other => panic!("{}", other.kind()),
        }
    }

    const P: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app, image: busybox}]\n";

    #[test]
    fn random_uids_are_v4_and_differ() {
        let a = random_uid().unwrap();
        let b = random_uid().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!("89ab".contains(&a[19..20]), "{a}");
        let mut p = pod(P);
        let now = "2026-01-01T00:00:00Z".parse().unwrap();
        admit(&mut p, "node-1", now).unwrap();
        assert_eq!(
            p.spec.as_ref().unwrap().node_name.as_deref(),
            Some("node-1")
        );
        assert!(p.metadata.uid.is_some());
    }

    #[test]
    fn static_pods_as_the_kubelet_names_them() {
        let now = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut a = pod(P);
        admit_static(&mut a, "Node-1", "/etc/krun/manifests/web.yaml", now).unwrap();
        assert_eq!(a.metadata.name.as_deref(), Some("web-node-1"));
        let uid = a.metadata.uid.clone().unwrap();
        assert_eq!(uid.len(), 32);
        let ann = a.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann[CONFIG_SOURCE], "file");
        assert_eq!(ann[CONFIG_HASH], uid);
        assert_eq!(ann[CONFIG_SEEN], "2026-01-01T00:00:00Z");
        // Same file, same content: same UID, so a restarted agent adopts it.
        let mut again = pod(P);
        admit_static(&mut again, "Node-1", "/etc/krun/manifests/web.yaml", now).unwrap();
        assert_eq!(again.metadata.uid.as_deref(), Some(uid.as_str()));
        // An edited manifest is a new pod.
        let mut edited = pod(&P.replace("busybox", "busybox:1.36"));
        admit_static(&mut edited, "Node-1", "/etc/krun/manifests/web.yaml", now).unwrap();
        assert_ne!(edited.metadata.uid.as_deref(), Some(uid.as_str()));
        assert!(is_manifest_file("web.yaml") && !is_manifest_file(".web.yaml.swp"));
    }
}
