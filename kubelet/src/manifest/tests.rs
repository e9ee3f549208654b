use super::*;
use std::path::PathBuf;

fn err(text: &str) -> String {
    parse_str("pod.yaml", text).unwrap_err().to_string()
}

fn pod_of(doc: &Document) -> &Pod {
    match &doc.object {
        Object::Pod(p) => p,
        other => panic!("expected a Pod, got {}", other.kind()),
    }
}

const GOOD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: busybox:1.36\n";

/// `GOOD` with `extra` appended under the container (indented 4).
fn with_container(extra: &str) -> String {
    format!("{GOOD}{extra}")
}

#[test]
fn flask_example_parses_with_api_server_defaults() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/flask-pod.yaml");
    let docs = load_file(&path).unwrap();
    assert_eq!(docs.len(), 1);
    let pod = pod_of(&docs[0]);
    assert_eq!(pod.metadata.name.as_deref(), Some("flask-app"));
    assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
    assert_eq!(spec.enable_service_links, Some(true));
    let c = &spec.containers[0];
    assert_eq!(c.image.as_deref(), Some("127.0.0.1:5000/flask-app:latest"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
    assert_eq!(
        c.termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );
    assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
    let port = &c.ports.as_ref().unwrap()[0];
    assert_eq!((port.container_port, port.host_port), (5000, Some(8080)));
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
}

#[test]
fn several_documents_json_and_kinds() {
    let text = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: team-a}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  restartPolicy: OnFailure
  initContainers:
  - {name: setup, image: 'busybox@sha256:0123'}
  containers:
  - name: app
    image: busybox:1.36
    resources:
      limits: {cpu: 500m, memory: 64Mi}
    livenessProbe:
      httpGet: {port: 8080}
    env:
    - name: POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
---
";
    let docs = parse_str("app.yaml", text).unwrap();
    let kinds: Vec<_> = docs
        .iter()
        .map(|d| (d.index, d.object.kind(), d.object.name()))
        .collect();
    assert_eq!(
        kinds,
        [
            (1, "ConfigMap", "settings"),
            (2, "Secret", "creds"),
            (3, "Pod", "web")
        ]
    );
    match &docs[1].object {
        Object::Secret(s) => {
            assert_eq!(s.type_.as_deref(), Some("Opaque"));
            assert_eq!(s.metadata.namespace.as_deref(), Some("team-a"));
        }
        other => panic!("{}", other.kind()),
    }
    let spec = pod_of(&docs[2]).spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("OnFailure"));
    let init = &spec.init_containers.as_ref().unwrap()[0];
    assert_eq!(init.image_pull_policy.as_deref(), Some("IfNotPresent"));
    let c = &spec.containers[0];
    let requests = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert_eq!(requests["cpu"].0, "500m", "requests default to limits");
    assert_eq!(requests["memory"].0, "64Mi");
    let probe = c.liveness_probe.as_ref().unwrap();
    assert_eq!(
        (
            probe.period_seconds,
            probe.timeout_seconds,
            probe.failure_threshold,
            probe.success_threshold
        ),
        (Some(10), Some(1), Some(3), Some(1))
    );
    let http = probe.http_get.as_ref().unwrap();
    assert_eq!(
        (http.path.as_deref(), http.scheme.as_deref()),
        (Some("/"), Some("HTTP"))
    );
    let field = c.env.as_ref().unwrap()[0]
        .value_from
        .as_ref()
        .unwrap()
        .field_ref
        .as_ref()
        .unwrap();
    assert_eq!(field.api_version.as_deref(), Some("v1"));

    let json = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j"},
        "spec": {"hostNetwork": true, "containers": [{"name": "a", "image": "busybox",
        "ports": [{"containerPort": 80}]}], "volumes": [{"name": "scratch"}]}}"#;
    let docs = parse_str("pod.json", json).unwrap();
    let spec = pod_of(&docs[0]).spec.as_ref().unwrap();
    assert_eq!(
        spec.containers[0].ports.as_ref().unwrap()[0].host_port,
        Some(80)
    );
    assert!(
        spec.volumes.as_ref().unwrap()[0].empty_dir.is_some(),
        "no source means emptyDir"
    );
}

// The bad-input cases of issue 6, each with its exact one-line message.

#[test]
fn malformed_yaml_names_line_and_column() {
    let e = err("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: [app\n");
    assert_eq!(
        e,
        "pod.yaml: line 5, column 11: malformed YAML: unclosed bracket '['"
    );
    let e = err("apiVersion: v1\nkind: Pod\nmetadata:\n name: a\n  x: b\n");
    assert_eq!(e, "pod.yaml: line 5, column 4: malformed YAML: mapping values are not allowed in this context");
    let e = err("apiVersion: v1\napiVersion: v2\n");
    assert_eq!(
        e,
        "pod.yaml: line 2, column 1: malformed YAML: duplicate mapping key: apiVersion"
    );
}

#[test]
fn unknown_kind() {
    let e = err(&format!(
        "{GOOD}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\n"
    ));
    assert_eq!(
        e,
        "pod.yaml: document 2 (Deployment web): kind: unknown kind \"Deployment\" (krun accepts v1 Pod, v1 ConfigMap, v1 Secret)"
    );
    let e = err("apiVersion: v2\nkind: Pod\nmetadata: {name: web}\n");
    assert_eq!(e, "pod.yaml: document 1 (Pod web): apiVersion: kind Pod is served by apiVersion \"v1\", not \"v2\"");
    assert_eq!(
        err("metadata: {name: x}\n"),
        "pod.yaml: document 1: kind: required field is missing"
    );
    assert_eq!(
        err("- a\n- b\n"),
        "pod.yaml: document 1: a document must be a mapping with apiVersion and kind"
    );
}

#[test]
fn unknown_field() {
    let e = err(&with_container(
        "    ports:\n    - containerPort: 80\n      hostport: 8080\n",
    ));
    assert_eq!(e, "pod.yaml: document 1 (Pod web): spec.containers[0].ports[0].hostport: unknown field \"hostport\"");
    let e = err("apiVersion: v1\nkind: Pod\nmetadata: {name: web, labls: {a: b}}\nspec: {containers: [{name: a, image: b}]}\n");
    assert_eq!(
        e,
        "pod.yaml: document 1 (Pod web): metadata.labls: unknown field \"labls\""
    );
    let e = err("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: a, image: b}]}\nstatuss: {}\n");
    assert_eq!(
        e,
        "pod.yaml: document 1 (Pod web): statuss: unknown field \"statuss\""
    );
    // Nulls are not unknown: they mean "not set", as in `kubectl create --dry-run -o yaml` output.
    parse_str("p.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: web, creationTimestamp: null}\nspec: {containers: [{name: a, image: b, resources: {}}]}\nstatus: {}\n").unwrap();
}

#[test]
fn missing_image() {
    let e = err("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: a\n    image: busybox\n  - name: b\n");
    assert_eq!(
        e,
        "pod.yaml: document 1 (Pod web): spec.containers[1].image: required field is missing"
    );
}

#[test]
fn invalid_name() {
    let e = err("apiVersion: v1\nkind: Pod\nmetadata: {name: My_Pod}\nspec: {containers: [{name: a, image: b}]}\n");
    assert_eq!(
        e,
        "pod.yaml: document 1 (Pod My_Pod): metadata.name: invalid value \"My_Pod\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')"
    );
    let e = err("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: App, image: b}]}\n");
    assert!(e.starts_with("pod.yaml: document 1 (Pod web): spec.containers[0].name: invalid value \"App\": a lowercase RFC 1123 label"), "{e}");
    assert_eq!(
        err("apiVersion: v1\nkind: Pod\nmetadata: {labels: {a: b}}\nspec: {containers: [{name: a, image: b}]}\n"),
        "pod.yaml: document 1 (Pod): metadata.name: required field is missing"
    );
}

#[test]
fn duplicate_container_names_across_init_and_regular() {
    let e = err("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  initContainers: [{name: app, image: b}]\n  containers: [{name: app, image: b}]\n");
    assert_eq!(
        e,
        "pod.yaml: document 1 (Pod web): spec.containers[0].name: duplicate container name \"app\" (also spec.initContainers[0].name)"
    );
}

#[test]
fn bad_quantity() {
    let e = err(&with_container(
        "    resources:\n      limits: {memory: 64MB}\n",
    ));
    assert_eq!(
        e,
        "pod.yaml: document 1 (Pod web): spec.containers[0].resources.limits.memory: invalid quantity \"64MB\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    );
    let e = err(&with_container(
        "    resources:\n      limits: {cpu: 500m}\n      requests: {cpu: '1'}\n",
    ));
    assert_eq!(
        e,
        "pod.yaml: document 1 (Pod web): spec.containers[0].resources.requests.cpu: \"1\" must be less than or equal to cpu limit of 500m"
    );
}

#[test]
fn port_out_of_range() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: a, image: b}\n  - name: c\n    image: d\n    ports: [{containerPort: 80}, {containerPort: 70000}]\n";
    assert_eq!(
        err(text),
        "pod.yaml: document 2 (Pod web): spec.containers[1].ports[1].containerPort: 70000 is out of range 1-65535"
    );
    let e = err(&with_container(
        "    ports: [{containerPort: 80, hostPort: -1}]\n",
    ));
    assert_eq!(e, "pod.yaml: document 1 (Pod web): spec.containers[0].ports[0].hostPort: -1 is out of range 1-65535");
}

#[test]
fn other_api_server_rules() {
    let cases: &[(&str, &str)] = &[
        ("    ports: [{containerPort: 80, name: HTTP}]\n", "spec.containers[0].ports[0].name: invalid value \"HTTP\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"),
        ("    ports: [{containerPort: 80, protocol: tcp}]\n", "spec.containers[0].ports[0].protocol: unsupported value \"tcp\": supported values: \"TCP\", \"UDP\", \"SCTP\""),
        ("    env: [{name: 'A=B', value: x}]\n", "spec.containers[0].env[0].name: invalid value \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='"),
        ("    env: [{name: A, valueFrom: {fieldRef: {fieldPath: spec.hostname}}}]\n", "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: unsupported value \"spec.hostname\""),
        ("    volumeMounts: [{name: data, mountPath: /data}]\n", "spec.containers[0].volumeMounts[0].name: volume \"data\" not found in spec.volumes"),
        ("    imagePullPolicy: Sometimes\n", "spec.containers[0].imagePullPolicy: unsupported value \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""),
        ("    livenessProbe: {exec: {command: ['true']}, periodSeconds: 0}\n", "spec.containers[0].livenessProbe.periodSeconds: 0 must be greater than or equal to 1"),
        ("    livenessProbe: {periodSeconds: 5}\n", "spec.containers[0].livenessProbe: must specify exactly one handler type (exec, httpGet, tcpSocket, grpc)"),
        ("    readinessProbe: {httpGet: {port: web}}\n", "spec.containers[0].readinessProbe.httpGet.port: port name \"web\" is not one of the container's ports"),
        ("    resources: {limits: {gpu: 1}}\n", "spec.containers[0].resources.limits.gpu: unsupported resource name \"gpu\""),
        ("  restartPolicy: Sometimes\n", "spec.restartPolicy: unsupported value \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""),
        ("  volumes: [{name: d, nfs: {server: x, path: /}}]\n", "spec.volumes[0].nfs: volume type not supported by krun"),
        ("  volumes: [{name: d, emptyDir: {}, hostPath: {path: /tmp}}]\n", "spec.volumes[0].hostPath: may not specify more than 1 volume type"),
    ];
    for (extra, want) in cases {
        let e = err(&with_container(extra));
        let want = format!("pod.yaml: document 1 (Pod web): {want}");
        assert!(e.starts_with(&want), "\n got: {e}\nwant: {want}");
    }
}

#[test]
fn duplicate_objects_and_empty_files() {
    let e = err(&format!("{GOOD}---\n{GOOD}"));
    assert_eq!(e, "pod.yaml: document 2 (Pod web): metadata.name: Pod \"web\" is already defined by document 1");
    assert_eq!(err("# nothing\n---\n"), "pod.yaml: no documents");
    let e = load_file(Path::new("/nonexistent/pod.yaml"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "/nonexistent/pod.yaml: cannot read: No such file or directory (os error 2)"
    );
}

#[test]
fn type_errors_name_the_field() {
    let e = err(&with_container("    ports: [{containerPort: http}]\n"));
    assert_eq!(e, "pod.yaml: document 1 (Pod web): spec.containers[0].ports[0].containerPort: invalid type: string \"http\", expected i32");
}

#[test]
fn oversized_and_binary_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(MAX_FILE + 1).unwrap();
    let e = load_file(&big).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("{}: larger than {MAX_FILE} bytes", big.display())
    );
    let bin = dir.path().join("bin.yaml");
    std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
    let e = load_file(&bin).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}: malformed YAML: not UTF-8 text",
            bin.display()
        )),
        "{e}"
    );
}

#[test]
fn alias_bombs_are_refused() {
    let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = if i == 1 {
            "a".to_string()
        } else {
            format!("a{}", i - 1)
        };
        text.push_str(&format!("a{i}: &a{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    let e = err(&text);
    assert_eq!(e, "pod.yaml: line 5, column 45: malformed YAML: more than 100000 nodes once aliases are expanded");
}

#[test]
fn zero_prefixed_modes_are_octal_as_kubectl_reads_them() {
    let docs = parse_str(
        "pod.yaml",
        &format!("{GOOD}  volumes: [{{name: c, configMap: {{name: x, defaultMode: 0400, items: [{{key: k, path: p, mode: 0755}}]}}}}]\n"),
    )
    .unwrap();
    let v = &pod_of(&docs[0])
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .as_ref()
        .unwrap()[0];
    let cm = v.config_map.as_ref().unwrap();
    assert_eq!(cm.default_mode, Some(0o400));
    assert_eq!(cm.items.as_ref().unwrap()[0].mode, Some(0o755));
}

#[test]
fn security_context_and_volume_rules() {
    let vol = |v: &str| format!("{GOOD}  volumes: [{v}]\n");
    let cases: Vec<(String, &str)> = vec![
        (vol("{name: t, projected: {sources: [{serviceAccountToken: {path: token}}]}}"), "spec.volumes[0].projected.sources[0].serviceAccountToken: not supported: krun has no API server to issue service account tokens"),
        (vol("{name: t, persistentVolumeClaim: {claimName: data}}"), "spec.volumes[0].persistentVolumeClaim: volume type not supported by krun"),
        (vol("{name: t, csi: {driver: x}}"), "spec.volumes[0].csi: volume type not supported by krun"),
        (vol("{name: t, emptyDir: {medium: HugePages}}"), "spec.volumes[0].emptyDir.medium: unsupported value \"HugePages\""),
        (vol("{name: t, configMap: {name: c, items: [{key: k, path: ../up}]}}"), "spec.volumes[0].configMap.items[0].path: invalid path \"../up\": must not contain '..'"),
        (vol("{name: t, secret: {secretName: s, items: [{key: k, path: p, mode: 01000}]}}"), "spec.volumes[0].secret.items[0].mode: 512 must be a number between 0 and 0777 (octal), both inclusive"),
        (vol("{name: t, downwardAPI: {items: [{path: ip, fieldRef: {fieldPath: status.podIP}}]}}"), "spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath: unsupported value \"status.podIP\""),
        (vol("{name: t, downwardAPI: {items: [{path: m, resourceFieldRef: {resource: limits.memory}}]}}"), "spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName: required field is missing"),
        (with_container("    volumeMounts: [{name: d, mountPath: /d, subPath: a, subPathExpr: b}]\n  volumes: [{name: d, emptyDir: {}}]\n"), "spec.containers[0].volumeMounts[0].subPathExpr: subPathExpr and subPath are mutually exclusive"),
        (with_container("    volumeMounts: [{name: d, mountPath: /d, mountPropagation: Bidirectional}]\n  volumes: [{name: d, emptyDir: {}}]\n"), "spec.containers[0].volumeMounts[0].mountPropagation: Bidirectional mount propagation is available only to privileged containers"),
        (with_container("    securityContext: {seccompProfile: {type: Localhost}}\n"), "spec.containers[0].securityContext.seccompProfile.localhostProfile: must be set when seccomp type is Localhost"),
        (with_container("    securityContext: {seccompProfile: {type: Localhost, localhostProfile: ../x.json}}\n"), "spec.containers[0].securityContext.seccompProfile.localhostProfile: invalid value \"../x.json\""),
        (with_container("    securityContext: {seccompProfile: {type: Strict}}\n"), "spec.containers[0].securityContext.seccompProfile.type: unsupported value \"Strict\""),
        (with_container("    securityContext: {privileged: true, allowPrivilegeEscalation: false}\n"), "spec.containers[0].securityContext.allowPrivilegeEscalation: cannot set `allowPrivilegeEscalation` to false and `privileged` to true"),
        (with_container("    securityContext: {procMount: Masked}\n"), "spec.containers[0].securityContext.procMount: unsupported value \"Masked\""),
        (with_container("  securityContext: {sysctls: [{name: kernel.msgmax, value: '1'}]}\n"), "spec.securityContext.sysctls[0].name: forbidden sysctl: \"kernel.msgmax\" not allowlisted"),
        (with_container("  hostNetwork: true\n  securityContext: {sysctls: [{name: net.ipv4.tcp_syncookies, value: '1'}]}\n"), "spec.securityContext.sysctls[0].name: forbidden sysctl: \"net.ipv4.tcp_syncookies\" not allowed with host net enabled"),
    ];
    for (text, want) in cases {
        let e = err(&text);
        let want = format!("pod.yaml: document 1 (Pod web): {want}");
        assert!(e.starts_with(&want), "\n got: {e}\nwant: {want}");
    }
    // the safe set passes, '/' separators included
    let ok = with_container("  securityContext: {sysctls: [{name: net/ipv4/ip_local_port_range, value: '1024 65000'}, {name: kernel.shm_rmid_forced, value: '1'}]}\n");
    assert!(parse_str("pod.yaml", &ok).is_ok());
}
