use super::*;
use crate::test_support::{load, Loaded};
use std::fs;

struct Fixture {
    _dir: tempfile::TempDir,
    rootfs: PathBuf,
    files: PodFiles,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nweb:x:33:33::/var/www:/bin/false\n",
    )
    .unwrap();
    fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\nwheel:x:10:root,app\napp:x:1000:\nstaff:x:50:\n",
    )
    .unwrap();
    let files = PodFiles {
        hosts: dir.path().join("hosts"),
        resolv_conf: dir.path().join("resolv.conf"),
        hostname: dir.path().join("hostname"),
        termination_log: dir.path().join("termination-log"),
    };
    Fixture {
        _dir: dir,
        rootfs,
        files,
    }
}

fn image(json: serde_json::Value) -> ImageConfiguration {
    serde_json::from_value(serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": json,
    }))
    .unwrap()
}

fn sandbox() -> Sandbox {
    Sandbox {
        net: Ns::Join("/run/krun/netns/p1".into()),
        ipc: Ns::Join("/run/krun/ipcns/p1".into()),
        uts: Ns::Join("/run/krun/utsns/p1".into()),
        pid: Ns::New,
        shm: Some("/run/krun/pods/p1/shm".into()),
    }
}

fn node() -> NodeFacts {
    NodeFacts {
        name: "node-1".into(),
        cpus: 2,
        memory_bytes: 24 << 30,
    }
}

fn build_with(
    l: &Loaded,
    img: &ImageConfiguration,
    fx: &Fixture,
    sb: &Sandbox,
    security: Security,
    container: usize,
) -> Result<BuiltSpec, SpecError> {
    let facts = PodFacts {
        pod_ip: Some("10.88.0.7".into()),
        host_ip: Some("127.0.0.1".into()),
    };
    let input = ContainerInput {
        pod: &l.pod,
        container: &l.pod.spec.as_ref().unwrap().containers[container],
        image: img,
        rootfs: &fx.rootfs,
        sandbox: sb,
        files: &fx.files,
        facts: &facts,
        node: &node(),
        objects: Objects {
            config_maps: &l.config_maps,
            secrets: &l.secrets,
        },
        cgroups_path: "/krun/pod9f0c-uid/app".into(),
        limit_swap: true,
        security,
    };
    build(&input)
}

fn env_of(b: &BuiltSpec) -> Vec<String> {
    b.spec.process().as_ref().unwrap().env().clone().unwrap()
}

fn args_of(b: &BuiltSpec) -> Vec<String> {
    b.spec.process().as_ref().unwrap().args().clone().unwrap()
}

#[test]
fn flask_pod_config() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/flask-pod.yaml");
    let l = load(&fs::read_to_string(path).unwrap());
    let fx = fixture();
    let img = image(serde_json::json!({
        "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
        "Cmd": ["python3", "app.py"],
        "WorkingDir": "/app",
        "ExposedPorts": {"5000/tcp": {}},
    }));
    let b = build_with(&l, &img, &fx, &sandbox(), Security::default(), 0).unwrap();
    let p = b.spec.process().as_ref().unwrap();
    assert_eq!(args_of(&b), ["python3", "app.py"]);
    assert_eq!(p.cwd(), Path::new("/app"));
    assert_eq!(
        env_of(&b),
        [
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "HOSTNAME=flask-app",
            "LANG=C.UTF-8"
        ]
    );
    assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
    assert_eq!(p.user().additional_gids().clone().unwrap(), [0, 10]);
    assert_eq!(b.spec.hostname().as_deref(), Some("flask-app"));
    assert_eq!(b.stop_signal, libc::SIGTERM);
    assert_eq!(
        p.capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .as_ref()
            .unwrap()
            .len(),
        14
    );
    assert_eq!(p.no_new_privileges(), Some(false));

    // As the runtime reads it: config.json.
    let json = serde_json::to_value(&b.spec).unwrap();
    let ns: Vec<(String, Option<String>)> = json["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["type"].as_str().unwrap().to_string(),
                n["path"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        ns,
        [
            ("pid".to_string(), None),
            (
                "network".to_string(),
                Some("/run/krun/netns/p1".to_string())
            ),
            ("ipc".to_string(), Some("/run/krun/ipcns/p1".to_string())),
            ("uts".to_string(), Some("/run/krun/utsns/p1".to_string())),
            ("mount".to_string(), None),
            ("cgroup".to_string(), None),
        ]
    );
    assert_eq!(json["linux"]["cgroupsPath"], "/krun/pod9f0c-uid/app");
    assert_eq!(
        json["linux"]["maskedPaths"].as_array().unwrap().len(),
        MASKED_PATHS.len()
    );
    assert_eq!(json["linux"]["readonlyPaths"][3], "/proc/sys");
    assert_eq!(
        json["linux"]["resources"]["cpu"]["shares"], 2,
        "BestEffort gets the minimum shares"
    );
    assert!(json["linux"]["resources"].get("memory").is_none());
    assert_eq!(
        json["linux"]["resources"]["devices"][0],
        serde_json::json!({"allow": false, "access": "rwm"})
    );
    assert_eq!(json["root"]["path"], fx.rootfs.to_str().unwrap());
    assert_eq!(json["annotations"]["io.kubernetes.pod.uid"], "9f0c-uid");
    let mounts: Vec<&str> = json["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        mounts,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
            "/dev/shm",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/hostname",
            "/dev/termination-log",
        ]
    );
    let hosts = &json["mounts"].as_array().unwrap()[7];
    assert_eq!(hosts["source"], fx.files.hosts.to_str().unwrap());
    assert_eq!(
        hosts["options"],
        serde_json::json!(["rbind", "rprivate", "rw"])
    );
}

#[test]
fn command_and_args_over_entrypoint_and_cmd() {
    let fx = fixture();
    let img = image(serde_json::json!({"Entrypoint": ["/entry"], "Cmd": ["--default"]}));
    let cases = [
        ("", vec!["/entry", "--default"]),
        ("command: [/bin/sh]", vec!["/bin/sh"]),
        ("args: [--flag]", vec!["/entry", "--flag"]),
        (
            "{command: [/bin/echo], args: [hi]}",
            vec!["/bin/echo", "hi"],
        ),
    ];
    for (extra, want) in cases {
        let c = if extra.is_empty() {
            "{name: app, image: busybox}".to_string()
        } else if extra.starts_with('{') {
            format!(
                "{{name: app, image: busybox, {}}}",
                &extra[1..extra.len() - 1]
            )
        } else {
            format!("{{name: app, image: busybox, {extra}}}")
        };
        let l = load(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: [{c}]\n"
        ));
        let b = build_with(&l, &img, &fx, &sandbox(), Security::default(), 0).unwrap();
        assert_eq!(args_of(&b), want, "{extra}");
    }
    let l = load("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app, image: busybox}]\n");
    let err = build_with(
        &l,
        &image(serde_json::json!({})),
        &fx,
        &sandbox(),
        Security::default(),
        0,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "no command specified");
}

const ENV_POD: &str = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello, mode: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: team-a, labels: {app: web}}
spec:
  containers:
  - name: app
    image: busybox
    command: [/bin/echo, '$(GREETING) $(POD_NAME)', '$$(POD_NAME)', '$(IMAGE_ONLY)']
    resources:
      limits: {memory: 64Mi}
    envFrom:
    - configMapRef: {name: settings}
      prefix: CFG_
    env:
    - {name: LANG, value: en_US}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: settings, key: greeting}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: CPUS, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}
    - {name: MSG, value: '$(GREETING) from $(POD_NAME) at $(POD_IP); $(LATER) $(IMAGE_ONLY)'}
    - {name: LATER, value: late}
";

#[test]
fn environment_as_kubernetes_builds_it() {
    let fx = fixture();
    // Namespaced objects: the ConfigMap and Secret must be in the pod's namespace.
    let yaml = ENV_POD
        .replace(
            "metadata: {name: settings}",
            "metadata: {name: settings, namespace: team-a}",
        )
        .replace(
            "metadata: {name: creds}",
            "metadata: {name: creds, namespace: team-a}",
        );
    let l = load(&yaml);
    let img = image(serde_json::json!({"Env": ["PATH=/bin", "LANG=C", "IMAGE_ONLY=img"]}));
    let b = build_with(&l, &img, &fx, &sandbox(), Security::default(), 0).unwrap();
    assert_eq!(
        env_of(&b),
        [
            "PATH=/bin",
            "HOSTNAME=web",
            "LANG=en_US",
            "IMAGE_ONLY=img",
            "CFG_greeting=hello",
            "CFG_mode=fast",
            "POD_NAME=web",
            "POD_NS=team-a",
            "POD_IP=10.88.0.7",
            "APP=web",
            "GREETING=hello",
            "PASSWORD=s3cret",
            "MEM_MI=64",
            "CPUS=2",
            "MSG=hello from web at 10.88.0.7; $(LATER) $(IMAGE_ONLY)",
            "LATER=late",
        ]
    );
    // Image variables are not expanded, escapes are kept, as in Kubernetes.
    assert_eq!(
        args_of(&b),
        ["/bin/echo", "hello web", "$(POD_NAME)", "$(IMAGE_ONLY)"]
    );

    // In another namespace the references do not resolve.
    let l = load(ENV_POD);
    let err = build_with(&l, &img, &fx, &sandbox(), Security::default(), 0).unwrap_err();
    assert!(matches!(err, SpecError::Config(_)));
    assert_eq!(err.to_string(), "configmap \"settings\" not found");
}

#[test]
fn missing_key_is_a_config_error_unless_optional() {
    let fx = fixture();
    let base = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: app, image: busybox, command: [sh], env: [{name: X, valueFrom: {configMapKeyRef: {name: c, key: nope OPT}}}]}\n";
    let img = image(serde_json::json!({}));
    let l = load(&base.replace(" OPT", ""));
    let err = build_with(&l, &img, &fx, &sandbox(), Security::default(), 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "couldn't find key nope in ConfigMap default/c"
    );
    let l = load(&base.replace(" OPT", ", optional: true"));
    let b = build_with(&l, &img, &fx, &sandbox(), Security::default(), 0).unwrap();
    assert!(!env_of(&b).iter().any(|e| e.starts_with("X=")));
}

#[test]
fn users_from_the_image_and_security_context() {
    let fx = fixture();
    let l = load("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app, image: busybox, command: [sh]}]\n");
    let ident = |user: &str, o: IdentityOverrides| {
        let img = image(serde_json::json!({"User": user}));
        let b = build_with(
            &l,
            &img,
            &fx,
            &sandbox(),
            Security {
                identity: o,
                ..Default::default()
            },
            0,
        )?;
        let u = b.spec.process().as_ref().unwrap().user().clone();
        Ok::<_, SpecError>((
            u.uid(),
            u.gid(),
            u.additional_gids().clone().unwrap_or_default(),
        ))
    };
    let none = IdentityOverrides::default;
    assert_eq!(ident("app", none()).unwrap(), (1000, 1000, vec![1000, 10]));
    assert_eq!(ident("1000", none()).unwrap(), (1000, 1000, vec![1000, 10]));
    assert_eq!(ident("33:staff", none()).unwrap(), (33, 50, vec![50]));
    assert_eq!(
        ident("4242", none()).unwrap(),
        (4242, 0, vec![0]),
        "unknown uids run with gid 0"
    );
    assert_eq!(ident("4242:7", none()).unwrap(), (4242, 7, vec![7]));
    assert_eq!(
        ident("nobody", none()).unwrap_err().to_string(),
        "unable to find user nobody: no matching entries in passwd file"
    );
    assert_eq!(
        ident("app:nogroup", none()).unwrap_err().to_string(),
        "unable to find group nogroup: no matching entries in group file"
    );
    let o = IdentityOverrides {
        run_as_user: Some(1000),
        run_as_group: Some(3000),
        supplemental_groups: vec![4000],
        fs_group: Some(2000),
    };
    assert_eq!(
        ident("33", o).unwrap(),
        (1000, 3000, vec![3000, 10, 2000, 4000])
    );
}

/// A hostile image whose /etc/passwd is a symlink out of its rootfs must
/// not make krun read the host's file.
#[test]
fn passwd_symlink_stays_inside_the_rootfs() {
    let fx = fixture();
    let outside = fx.rootfs.parent().unwrap().join("host-passwd");
    fs::write(&outside, "intruder:x:0:0::/:/bin/sh\n").unwrap();
    fs::remove_file(fx.rootfs.join("etc/passwd")).unwrap();
    // Both an absolute link and a climbing relative one.
    for target in [
        outside.to_str().unwrap().to_string(),
        "../../host-passwd".to_string(),
    ] {
        let _ = fs::remove_file(fx.rootfs.join("etc/passwd"));
        std::os::unix::fs::symlink(&target, fx.rootfs.join("etc/passwd")).unwrap();
        let l = load("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app, image: busybox, command: [sh]}]\n");
        let img = image(serde_json::json!({"User": "intruder"}));
        let err = build_with(&l, &img, &fx, &sandbox(), Security::default(), 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find user intruder: no matching entries in passwd file",
            "{target}"
        );
    }
}

#[test]
fn resources_map_to_cgroup_values() {
    let fx = fixture();
    let l = load("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    command: [sh]\n    resources: {requests: {cpu: 250m}, limits: {cpu: 500m, memory: 64Mi}}\n");
    let b = build_with(
        &l,
        &image(serde_json::json!({})),
        &fx,
        &sandbox(),
        Security::default(),
        0,
    )
    .unwrap();
    let json = serde_json::to_value(&b.spec).unwrap();
    let r = &json["linux"]["resources"];
    assert_eq!(r["cpu"]["shares"], 256);
    assert_eq!(r["cpu"]["quota"], 50_000);
    assert_eq!(r["cpu"]["period"], 100_000);
    assert_eq!(r["memory"]["limit"], 64 << 20);
    assert_eq!(r["memory"]["swap"], 64 << 20, "no swapping past the limit");
}

#[test]
fn host_namespaces_and_stop_signal() {
    let fx = fixture();
    let l = load("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostNetwork: true\n  containers: [{name: app, image: busybox, command: [sh], tty: true, workingDir: /srv}]\n");
    let sb = Sandbox {
        net: Ns::Host,
        ipc: Ns::Host,
        uts: Ns::Host,
        pid: Ns::Host,
        shm: None,
    };
    let img = image(serde_json::json!({"StopSignal": "SIGQUIT", "WorkingDir": "/ignored"}));
    let b = build_with(
        &l,
        &img,
        &fx,
        &sb,
        Security {
            read_only_root: true,
            no_new_privileges: true,
            ..Default::default()
        },
        0,
    )
    .unwrap();
    let json = serde_json::to_value(&b.spec).unwrap();
    let ns: Vec<&str> = json["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(ns, ["mount", "cgroup"]);
    assert!(
        b.spec.hostname().is_none(),
        "the host's UTS namespace keeps the host's name"
    );
    assert!(env_of(&b).contains(&"HOSTNAME=node-1".to_string()));
    assert_eq!(b.stop_signal, libc::SIGQUIT);
    assert_eq!(json["process"]["terminal"], true);
    assert_eq!(json["process"]["cwd"], "/srv");
    assert_eq!(json["process"]["noNewPrivileges"], true);
    assert_eq!(json["root"]["readonly"], true);
    let shm = json["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/dev/shm")
        .unwrap();
    assert_eq!(shm["type"], "tmpfs");
}

#[test]
fn nothing_from_the_library_defaults_leaks_in() {
    let fx = fixture();
    let l = load("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app, image: busybox, command: [sh]}]\n");
    let b = build_with(
        &l,
        &image(serde_json::json!({})),
        &fx,
        &sandbox(),
        Security::default(),
        0,
    )
    .unwrap();
    let json = serde_json::to_value(&b.spec).unwrap();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "annotations",
            "hostname",
            "linux",
            "mounts",
            "ociVersion",
            "process",
            "root"
        ]
    );
    let p = &json["process"];
    assert!(p.get("rlimits").is_none(), "{p}");
    assert_eq!(p["capabilities"]["ambient"], serde_json::json!([]));
    assert_eq!(p["capabilities"]["inheritable"], serde_json::json!([]));
    let linux: Vec<&String> = json["linux"].as_object().unwrap().keys().collect();
    assert_eq!(
        linux,
        [
            "cgroupsPath",
            "maskedPaths",
            "namespaces",
            "readonlyPaths",
            "resources"
        ]
    );
}

const SECURE: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: '0'}]}\n  containers:\n  - name: app\n    image: busybox\n    command: [sh]\n    securityContext: {runAsUser: 33, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {add: [NET_ADMIN], drop: [ALL]}}\n";

#[test]
fn security_context_slots_in() {
    let fx = fixture();
    let l = load(SECURE);
    let c = &l.pod.spec.as_ref().unwrap().containers[0];
    let sec = effective_security(&l.pod, c).unwrap();
    let b = build_with(&l, &image(serde_json::json!({})), &fx, &sandbox(), sec, 0).unwrap();
    let json = serde_json::to_value(&b.spec).unwrap();
    let p = &json["process"];
    assert_eq!(
        (p["user"]["uid"].as_u64(), p["user"]["gid"].as_u64()),
        (Some(33), Some(3000)),
        "container fields win"
    );
    assert_eq!(p["user"]["additionalGids"], serde_json::json!([3000, 2000]));
    assert_eq!(p["noNewPrivileges"], true);
    assert_eq!(json["root"]["readonly"], true);
    assert_eq!(
        p["capabilities"]["bounding"],
        serde_json::json!(["CAP_NET_ADMIN"]),
        "drop ALL, then add"
    );
    assert_eq!(
        json["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"],
        "0"
    );

    // Privileged: every capability, /proc and /sys unmasked and writable.
    let l = load(
        &SECURE
            .replace("allowPrivilegeEscalation: false, ", "privileged: true, ")
            .replace(", capabilities: {add: [NET_ADMIN], drop: [ALL]}", ""),
    );
    let c = &l.pod.spec.as_ref().unwrap().containers[0];
    let sec = effective_security(&l.pod, c).unwrap();
    let b = build_with(&l, &image(serde_json::json!({})), &fx, &sandbox(), sec, 0).unwrap();
    let json = serde_json::to_value(&b.spec).unwrap();
    assert_eq!(
        json["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .len(),
        all_capabilities().len()
    );
    assert!(
        json["linux"].get("maskedPaths").is_none() && json["linux"].get("readonlyPaths").is_none()
    );
    let sys = json["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/sys")
        .unwrap();
    assert!(sys["options"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("rw")));
}

#[test]
fn run_as_non_root_is_enforced_like_the_kubelet() {
    let fx = fixture();
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {runAsNonRoot: true}\n  containers: [{name: app, image: busybox, command: [sh]}]\n";
    let l = load(yaml);
    let c = &l.pod.spec.as_ref().unwrap().containers[0];
    let run = |user: &str, l: &Loaded| {
        let c = &l.pod.spec.as_ref().unwrap().containers[0];
        let sec = effective_security(&l.pod, c).unwrap();
        build_with(
            l,
            &image(serde_json::json!({"User": user})),
            &fx,
            &sandbox(),
            sec,
            0,
        )
        .map(|b| b.identity.uid)
    };
    let _ = c;
    assert_eq!(
        run("", &l).unwrap_err().to_string(),
        "container has runAsNonRoot and image will run as root (pod: \"p_default(9f0c-uid)\", container: app)"
    );
    assert_eq!(
        run("app", &l).unwrap_err().to_string(),
        "container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root (pod: \"p_default(9f0c-uid)\", container: app)"
    );
    assert_eq!(run("1000", &l).unwrap(), 1000);
    let l = load(&yaml.replace("{runAsNonRoot: true}", "{runAsNonRoot: true, runAsUser: 0}"));
    assert_eq!(
        run("1000", &l).unwrap_err().to_string(),
        "container's runAsUser breaks non-root policy (pod: \"p_default(9f0c-uid)\", container: app)"
    );
    let bad = load(&yaml.replace(
        "command: [sh]",
        "command: [sh], securityContext: {capabilities: {add: [FLY]}}",
    ));
    let c = &bad.pod.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        effective_security(&bad.pod, c).unwrap_err().to_string(),
        "container app: unknown capability \"FLY\""
    );
}

#[test]
fn seccomp_oom_score_and_propagation_land_in_the_config() {
    let fx = fixture();
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {seccompProfile: {type: RuntimeDefault}}\n  containers:\n  - {name: app, image: busybox, command: [sh]}\n  - {name: open, image: busybox, command: [sh], securityContext: {seccompProfile: {type: Unconfined}}}\n  - {name: priv, image: busybox, command: [sh], securityContext: {privileged: true}}\n";
    let l = load(yaml);
    let json_of = |i: usize, f: &dyn Fn(&mut Security)| {
        let c = &l.pod.spec.as_ref().unwrap().containers[i];
        let mut sec = effective_security(&l.pod, c).unwrap();
        f(&mut sec);
        let b = build_with(&l, &image(serde_json::json!({})), &fx, &sandbox(), sec, i).unwrap();
        serde_json::to_value(&b.spec).unwrap()
    };
    let j = json_of(0, &|s| {
        s.oom_score_adj = Some(-997);
        s.rootfs_propagation = Some("rslave".into());
    });
    assert_eq!(j["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(j["process"]["oomScoreAdj"], -997);
    assert_eq!(j["linux"]["rootfsPropagation"], "rslave");
    assert!(
        json_of(1, &|_| {})["linux"].get("seccomp").is_none(),
        "container's Unconfined wins"
    );
    assert!(
        json_of(2, &|_| {})["linux"].get("seccomp").is_none(),
        "privileged is never confined"
    );
    // a Localhost profile must be read first
    let mut sec = effective_security(&l.pod, &l.pod.spec.as_ref().unwrap().containers[0]).unwrap();
    sec.seccomp = Seccomp::Localhost("p.json".into());
    assert!(resolve_seccomp(&mut sec, fx.rootfs.as_path())
        .unwrap_err()
        .contains("cannot load seccomp profile"));
}
