use super::*;
use crate::test_support::{load, Loaded};
use std::os::unix::fs::MetadataExt;

fn node() -> NodeFacts {
    NodeFacts {
        name: "n".into(),
        cpus: 2,
        memory_bytes: 8 << 30,
    }
}

fn setup_in(l: &Loaded, state: &Path) -> Result<PodVolumes, SetupError> {
    setup(&SetupInput {
        pod: &l.pod,
        objects: Objects {
            config_maps: &l.config_maps,
            secrets: &l.secrets,
        },
        facts: &PodFacts::default(),
        node: &node(),
        state,
    })
}

const CM_POD: &str = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {app.conf: 'x=1', other: two}
binaryData: {blob: AAEC}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  volumes:
  - {name: scratch, emptyDir: {}}
  - name: conf
    configMap: {name: cfg, defaultMode: 0600, items: [{key: app.conf, path: etc/app.conf, mode: 0444}, {key: blob, path: blob}]}
  - {name: all, configMap: {name: cfg}}
  - {name: gone, configMap: {name: nope, optional: true}}
  containers:
  - name: app
    image: busybox
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
    - {name: conf, mountPath: /etc/conf, readOnly: false}
    - {name: all, mountPath: /all, readOnly: true}
";

#[test]
fn disk_volumes_laid_out_as_the_kubelet_does() {
    let d = tempfile::tempdir().unwrap();
    let l = load(CM_POD);
    let v = setup_in(&l, d.path()).unwrap();
    let scratch = d.path().join("volumes/kubernetes.io~empty-dir/scratch");
    assert_eq!(v.volumes[0].host_path, scratch);
    assert_eq!(fs::metadata(&scratch).unwrap().mode() & 0o7777, 0o777);
    let conf = d.path().join("volumes/kubernetes.io~configmap/conf");
    assert_eq!(
        fs::read_link(conf.join("etc")).unwrap(),
        PathBuf::from("..data/etc")
    );
    assert_eq!(
        fs::read_to_string(conf.join("etc/app.conf")).unwrap(),
        "x=1"
    );
    assert_eq!(
        fs::metadata(conf.join("etc/app.conf")).unwrap().mode() & 0o777,
        0o444,
        "the item's mode"
    );
    assert_eq!(fs::read(conf.join("blob")).unwrap(), [0, 1, 2]);
    assert_eq!(
        fs::metadata(conf.join("blob")).unwrap().mode() & 0o777,
        0o600,
        "defaultMode"
    );
    assert!(!conf.join("other").exists(), "only the items");
    let all = d.path().join("volumes/kubernetes.io~configmap/all");
    let mut names: Vec<String> = fs::read_dir(&all)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("..2"))
        .collect();
    names.sort();
    assert_eq!(names, ["..data", "app.conf", "blob", "other"]);
    assert_eq!(
        fs::metadata(all.join("app.conf")).unwrap().mode() & 0o777,
        0o644
    );
    let gone = d.path().join("volumes/kubernetes.io~configmap/gone");
    assert!(
        fs::read_link(gone.join("..data")).is_ok(),
        "an empty payload"
    );

    let c = &l.pod.spec.as_ref().unwrap().containers[0];
    let m = v.container_mounts(c, &[]).unwrap();
    let opts: Vec<Vec<String>> = m
        .mounts
        .iter()
        .map(|m| m.options().clone().unwrap())
        .collect();
    assert_eq!(opts[0], ["rbind", "rprivate", "rw"]);
    assert_eq!(
        opts[1],
        ["rbind", "rprivate", "ro"],
        "configMaps are read-only"
    );
    assert_eq!(opts[2], ["rbind", "rprivate", "ro"]);
    assert_eq!(m.mounts[1].source().as_deref(), Some(conf.as_path()));
    assert!(m.rootfs_propagation.is_none());

    assert!(teardown(d.path()).is_empty());
    assert!(!d.path().join("volumes").exists());
}

#[test]
fn missing_objects_and_keys_are_mount_failures() {
    let d = tempfile::tempdir().unwrap();
    let l = load(&CM_POD.replace("{name: nope, optional: true}", "{name: nope}"));
    let e = setup_in(&l, d.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "MountVolume.SetUp failed for volume \"gone\" : configmap \"nope\" not found"
    );
    let l = load(&CM_POD.replace("{key: blob, path: blob}", "{key: absent, path: x}"));
    let e = setup_in(&l, d.path()).unwrap_err();
    assert_eq!(
        e.message,
        "configmap references non-existent config key: absent"
    );
    let l = load(&CM_POD.replace(
        "emptyDir: {}",
        "hostPath: {path: /nonexistent-krun, type: Directory}",
    ));
    let e = setup_in(&l, d.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "MountVolume.SetUp failed for volume \"scratch\" : hostPath type check failed: /nonexistent-krun is not a directory"
    );
}

#[test]
fn sub_path_expr_and_memory_sizes() {
    let env = vec![
        ("POD".to_string(), "web-1".to_string()),
        ("EMPTY".to_string(), String::new()),
    ];
    assert_eq!(expand_sub_path("logs/$(POD)", &env).unwrap(), "logs/web-1");
    assert_eq!(
        expand_sub_path("$(NOPE)/$(EMPTY)", &env).unwrap_err(),
        "missing value for EMPTY, NOPE"
    );
    let l = load("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: b, resources: {limits: {memory: 64Mi}}}\n  - {name: c, image: b, resources: {limits: {memory: 32Mi}}}\n");
    assert_eq!(
        memory_volume_size(&l.pod, None, 8 << 30),
        96 << 20,
        "the pod's limit"
    );
    assert_eq!(memory_volume_size(&l.pod, Some("16Mi"), 8 << 30), 16 << 20);
    assert_eq!(memory_volume_size(&l.pod, Some("1Gi"), 8 << 30), 96 << 20);
    let l = load("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: b}\n");
    assert_eq!(
        memory_volume_size(&l.pod, None, 8 << 30),
        8 << 30,
        "the node's memory"
    );
}

#[test]
fn sub_paths_are_pinned_and_escapes_refused() {
    let d = tempfile::tempdir().unwrap();
    if !nix::unistd::Uid::effective().is_root() {
        assert!(std::env::var_os("CI").is_none(), "this test needs root");
        return;
    }
    let l = load("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes: [{name: data, emptyDir: {}}]\n  containers:\n  - name: app\n    image: b\n    volumeMounts:\n    - {name: data, mountPath: /in, subPath: sub/dir}\n    - {name: data, mountPath: /esc, subPath: escape}\n");
    let v = setup_in(&l, d.path()).unwrap();
    let c = l.pod.spec.as_ref().unwrap().containers[0].clone();
    let mut only_first = c.clone();
    only_first.volume_mounts.as_mut().unwrap().truncate(1);
    let m = v.container_mounts(&only_first, &[]).unwrap();
    let pin = d.path().join("volume-subpaths/data/app/0");
    assert_eq!(m.mounts[0].source().as_deref(), Some(pin.as_path()));
    assert!(host_mounts::mount_points_under(d.path()).contains(&pin));
    fs::write(pin.join("f"), "through the pin").unwrap();
    let vol = d.path().join("volumes/kubernetes.io~empty-dir/data");
    assert_eq!(
        fs::read_to_string(vol.join("sub/dir/f")).unwrap(),
        "through the pin"
    );

    std::os::unix::fs::symlink("/etc", vol.join("escape")).unwrap();
    assert_eq!(
        v.container_mounts(&c, &[]).unwrap_err(),
        MountError::Config(
            "failed to prepare subPath for volumeMount \"data\" of container \"app\"".into()
        )
    );
    assert!(teardown(d.path()).is_empty());
    assert!(host_mounts::mount_points_under(d.path()).is_empty());
    assert!(!d.path().join("volume-subpaths").exists());
}
