//! Pod volumes end to end, as a user sees them inside the containers:
//! configMap, secret and downwardAPI files (content, mode, the atomic
//! writer's `..data` layout) from a directory of manifests; emptyDir on
//! disk shared by two containers and in memory with its size limit;
//! hostPath type checks and their FailedMount; subPath, subPathExpr and
//! the symlink attack; readOnly mounts; fsGroup ownership; and nothing
//! left once the pods are deleted (hostPath contents excepted).
mod common;
mod kubelet_util;
mod netplug_util;

use kubelet_util::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const OBJECTS: &str = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data:
  app.conf: |
    mode=fast
  motd: hello from a configmap
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
data:
  password: czNjcjN0          # s3cr3t
stringData:
  user: admin
";

#[test]
fn config_map_secret_and_downward_api_files() {
    if !common::require_root("config_map_secret_and_downward_api_files") {
        return;
    }
    let node = TestNode::new("kv-files");
    let dir = node.base.join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("10-objects.yaml"), OBJECTS).unwrap();
    std::fs::write(dir.join("README.md"), "not a manifest").unwrap();
    std::fs::write(
        dir.join("20-pod.yml"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: files\n  labels: {{app: web, tier: front}}\n  \
             annotations: {{note: 'say \"hi\"'}}\nspec:\n  terminationGracePeriodSeconds: 1\n  volumes:\n  \
             - name: cfg\n    configMap:\n      name: app-config\n      defaultMode: 0440\n      \
             items: [{{key: app.conf, path: conf/app.conf, mode: 0400}}, {{key: motd, path: motd}}]\n  \
             - {{name: sec, secret: {{secretName: creds}}}}\n  \
             - name: info\n    downwardAPI:\n      items:\n      \
             - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}\n      \
             - {{path: annotations, fieldRef: {{fieldPath: metadata.annotations}}}}\n      \
             - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}\n      \
             - {{path: mem, resourceFieldRef: {{containerName: app, resource: limits.memory, divisor: 1Mi}}}}\n  \
             - {{name: scratch, emptyDir: {{}}}}\n  \
             - name: all-in-one\n    projected:\n      defaultMode: 0444\n      sources:\n      \
             - {{configMap: {{name: app-config, items: [{{key: motd, path: cfg/motd}}]}}}}\n      \
             - {{secret: {{name: creds, items: [{{key: user, path: user, mode: 0400}}]}}}}\n      \
             - {{downwardAPI: {{items: [{{path: pod/ns, fieldRef: {{fieldPath: metadata.namespace}}}}]}}}}\n  \
             containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
             resources: {{limits: {{memory: 48Mi}}}}\n    volumeMounts:\n    \
             - {{name: cfg, mountPath: /etc/app}}\n    - {{name: sec, mountPath: /etc/creds}}\n    \
             - {{name: info, mountPath: /etc/podinfo}}\n    - {{name: scratch, mountPath: /ro, readOnly: true}}\n    \
             - {{name: all-in-one, mountPath: /projected}}\n"
        ),
    )
    .unwrap();
    let o = node.apply(&dir);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "pod/files created (Running)"
    );

    // configMap: content, modes (item mode over defaultMode), the layout
    assert_eq!(
        node.sh("files", "app", "cat /etc/app/conf/app.conf"),
        "mode=fast\n"
    );
    assert_eq!(
        node.sh(
            "files",
            "app",
            "stat -L -c %a /etc/app/conf/app.conf /etc/app/motd"
        ),
        "400\n440\n"
    );
    assert_eq!(
        node.sh(
            "files",
            "app",
            "readlink /etc/app/conf; readlink /etc/app/motd"
        ),
        "..data/conf\n..data/motd\n"
    );
    let data = node.sh("files", "app", "readlink /etc/app/..data");
    assert!(data.starts_with("..20") && data.trim().len() > 22, "{data}");
    assert_eq!(
        node.sh("files", "app", "ls -A /etc/app | grep -v '^\\.\\.20'"),
        "..data\nconf\nmotd\n"
    );
    // secret: decoded data and stringData, on a tmpfs, mode 0644
    assert_eq!(node.sh("files", "app", "cat /etc/creds/password"), "s3cr3t");
    assert_eq!(node.sh("files", "app", "cat /etc/creds/user"), "admin");
    assert_eq!(
        node.sh("files", "app", "stat -L -c %a /etc/creds/user"),
        "644\n"
    );
    let mounts = node.sh("files", "app", "cat /proc/mounts");
    let line = |dest: &str| {
        mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(dest))
            .unwrap_or_else(|| panic!("no mount on {dest}:\n{mounts}"))
            .to_string()
    };
    assert!(
        line("/etc/creds").starts_with("tmpfs "),
        "{}",
        line("/etc/creds")
    );
    assert!(
        line("/etc/creds").contains(" ro,"),
        "{}",
        line("/etc/creds")
    );
    assert!(
        line("/etc/app").contains(" ro,"),
        "configMaps are read-only"
    );
    // downward API files as the kubelet writes them
    assert_eq!(
        node.sh("files", "app", "cat /etc/podinfo/labels"),
        "app=\"web\"\ntier=\"front\""
    );
    assert_eq!(
        node.sh("files", "app", "cat /etc/podinfo/annotations"),
        "note=\"say \\\"hi\\\"\""
    );
    assert_eq!(node.sh("files", "app", "cat /etc/podinfo/name"), "files");
    assert_eq!(node.sh("files", "app", "cat /etc/podinfo/mem"), "48");
    // projected: the three sources in one volume, modes from defaultMode or the item
    assert_eq!(
        node.sh(
            "files",
            "app",
            "cat /projected/cfg/motd; echo; cat /projected/user; echo; cat /projected/pod/ns"
        ),
        "hello from a configmap\nadmin\ndefault"
    );
    assert_eq!(
        node.sh(
            "files",
            "app",
            "stat -L -c %a /projected/cfg/motd /projected/user"
        ),
        "444\n400\n"
    );
    // read-only mounts refuse writes
    for path in [
        "/etc/app/new",
        "/etc/creds/new",
        "/ro/new",
        "/projected/new",
    ] {
        let o = node.out(&["exec", "files", "--", "touch", path]);
        assert!(!o.status.success(), "{path} was writable");
        assert!(
            stderr(&o).contains("Read-only file system"),
            "{}",
            stderr(&o)
        );
    }
    // on the node, where the kubelet keeps them
    let uid = node.uid("files");
    let vols = node.root().join("pods").join(&uid).join("volumes");
    assert!(vols.join("kubernetes.io~configmap/cfg/..data").exists());
    assert!(vols.join("kubernetes.io~secret/sec/password").exists());
    let describe = node.ok(&["describe", "pod", "files"]);
    assert!(
        describe.contains("ConfigMap (a volume populated by a ConfigMap)"),
        "{describe}"
    );
    node.delete_and_scan("files");
    assert!(!node.root().join("pods").join(&uid).exists());
}

#[test]
fn empty_dirs_shared_and_in_memory() {
    if !common::require_root("empty_dirs_shared_and_in_memory") {
        return;
    }
    let node = TestNode::new("kv-empty");
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: scratch}}\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         volumes:\n  - {{name: shared, emptyDir: {{}}}}\n  - {{name: mem, emptyDir: {{medium: Memory, sizeLimit: 16Mi}}}}\n  \
         containers:\n  - name: writer\n    image: {BUSYBOX}\n    \
         command: [sh, -c, 'echo from-writer > /out/msg; sleep 3600']\n    \
         volumeMounts: [{{name: shared, mountPath: /out}}, {{name: mem, mountPath: /mem}}]\n  \
         - name: reader\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         volumeMounts: [{{name: shared, mountPath: /in}}]\n"
    );
    let f = node.manifest("scratch.yaml", &yaml);
    let o = node.apply(&f);
    assert!(o.status.success(), "{}", stderr(&o));
    node.wait(10, "the writer's file", || {
        node.out(&["exec", "scratch", "-c", "reader", "--", "cat", "/in/msg"])
            .stdout
            == b"from-writer\n"
    });
    assert_eq!(node.sh("scratch", "reader", "stat -c %a /in"), "777\n");
    // the memory volume is a tmpfs of its size limit
    let df = node.sh("scratch", "writer", "df -k /mem | tail -1");
    let cols: Vec<&str> = df.split_whitespace().collect();
    assert_eq!((cols[0], cols[1]), ("tmpfs", "16384"), "{df}");
    let o = node.out(&[
        "exec",
        "scratch",
        "-c",
        "writer",
        "--",
        "dd",
        "if=/dev/zero",
        "of=/mem/big",
        "bs=1M",
        "count=20",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("No space left on device"),
        "{}",
        stderr(&o)
    );
    let uid = node.uid("scratch");
    let host = node
        .root()
        .join("pods")
        .join(&uid)
        .join("volumes/kubernetes.io~empty-dir/shared/msg");
    assert_eq!(std::fs::read_to_string(&host).unwrap(), "from-writer\n");
    node.delete_and_scan("scratch");
    assert!(!host.exists(), "emptyDir data goes with the pod");
}

#[test]
fn host_path_types_and_failed_mounts() {
    if !common::require_root("host_path_types_and_failed_mounts") {
        return;
    }
    let node = TestNode::new("kv-host");
    let host = node.base.join("host");
    std::fs::create_dir_all(host.join("dir")).unwrap();
    std::fs::write(host.join("file"), "host file\n").unwrap();
    let h = host.display();
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: hp}}\nspec:\n  terminationGracePeriodSeconds: 1\n  volumes:\n  \
         - {{name: dir, hostPath: {{path: {h}/dir, type: Directory}}}}\n  \
         - {{name: made, hostPath: {{path: {h}/made/here, type: DirectoryOrCreate}}}}\n  \
         - {{name: file, hostPath: {{path: {h}/file, type: File}}}}\n  \
         - {{name: newfile, hostPath: {{path: {h}/new-file, type: FileOrCreate}}}}\n  \
         - {{name: devnull, hostPath: {{path: /dev/null, type: CharDevice}}}}\n  \
         containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    volumeMounts:\n    \
         - {{name: dir, mountPath: /dir}}\n    - {{name: made, mountPath: /made}}\n    \
         - {{name: file, mountPath: /file, readOnly: true}}\n    - {{name: newfile, mountPath: /new-file}}\n    \
         - {{name: devnull, mountPath: /dev-null}}\n"
    );
    let f = node.manifest("hp.yaml", &yaml);
    let o = node.apply(&f);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(host.join("made/here").is_dir());
    assert!(host.join("new-file").is_file());
    node.sh(
        "hp",
        "app",
        "echo written > /dir/out; echo more > /new-file; echo > /dev-null",
    );
    assert_eq!(node.sh("hp", "app", "cat /file"), "host file\n");
    let o = node.out(&["exec", "hp", "--", "sh", "-c", "echo x > /file"]);
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );

    // a type check that fails: FailedMount, as the kubelet reports it
    let bad = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: bad}}\nspec:\n  volumes:\n  \
         - {{name: notfile, hostPath: {{path: {h}/dir, type: File}}}}\n  containers:\n  \
         - name: app\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         volumeMounts: [{{name: notfile, mountPath: /x}}]\n"
    );
    let f = node.manifest("bad.yaml", &bad);
    let o = node.apply(&f);
    assert!(!o.status.success());
    let want = format!(
        "MountVolume.SetUp failed for volume \"notfile\" : hostPath type check failed: {h}/dir is not a file"
    );
    assert_eq!(
        stderr(&o).trim(),
        format!("krun: pod/bad created but not running: FailedMount: {want}")
    );
    node.wait_status("bad", "ContainerCreating", 10);
    let describe = node.ok(&["describe", "pod", "bad"]);
    assert!(
        describe.contains("Warning")
            && describe.contains("FailedMount")
            && describe.contains(&want),
        "{describe}"
    );
    node.delete_and_scan("bad");
    node.delete_and_scan("hp");
    // hostPath contents are the host's: left as they are
    assert_eq!(
        std::fs::read_to_string(host.join("dir/out")).unwrap(),
        "written\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("new-file")).unwrap(),
        "more\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("file")).unwrap(),
        "host file\n"
    );
}

#[test]
fn sub_paths_and_the_symlink_attack() {
    if !common::require_root("sub_paths_and_the_symlink_attack") {
        return;
    }
    let node = TestNode::new("kv-sub");
    // a file on the host the attack would reach
    let target = node.base.join("host-secret");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("key"), "host only\n").unwrap();
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{app.conf: one-file}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: sub}}\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         volumes:\n  - {{name: data, emptyDir: {{}}}}\n  - {{name: cfg, configMap: {{name: c}}}}\n  \
         initContainers:\n  - name: prepare\n    image: {BUSYBOX}\n    \
         command: [sh, -c, 'mkdir -p /data/real && echo inside > /data/real/f && ln -s real /data/inside']\n    \
         volumeMounts: [{{name: data, mountPath: /data}}]\n  \
         containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         env: [{{name: POD, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]\n    volumeMounts:\n    \
         - {{name: data, mountPath: /real, subPath: real}}\n    \
         - {{name: data, mountPath: /link, subPath: inside}}\n    \
         - {{name: data, mountPath: /per-pod, subPathExpr: 'logs/$(POD)'}}\n    \
         - {{name: cfg, mountPath: /etc/app.conf, subPath: app.conf}}\n"
    );
    let f = node.manifest("sub.yaml", &yaml);
    let o = node.apply(&f);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        node.sh("sub", "app", "cat /real/f /link/f"),
        "inside\ninside\n"
    );
    node.sh("sub", "app", "echo log > /per-pod/out");
    let uid = node.uid("sub");
    let vol = node
        .root()
        .join("pods")
        .join(&uid)
        .join("volumes/kubernetes.io~empty-dir/data");
    assert_eq!(
        std::fs::read_to_string(vol.join("logs/sub/out")).unwrap(),
        "log\n"
    );
    assert_eq!(node.sh("sub", "app", "cat /etc/app.conf"), "one-file");
    // the attack: a container leaves links to the host in the volume, a
    // later container mounts them by subPath
    let t = target.display();
    let attack = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: attack}}\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         volumes:\n  - {{name: data, emptyDir: {{}}}}\n  initContainers:\n  - name: plant\n    image: {BUSYBOX}\n    \
         command: [sh, -c, 'ln -s {t} /data/abs; ln -s ../../../../../../../../../../../ /data/up']\n    \
         volumeMounts: [{{name: data, mountPath: /data}}]\n  \
         containers:\n  - name: victim\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         volumeMounts: [{{name: data, mountPath: /stolen, subPath: SUB}}]\n"
    );
    for (i, sub) in ["abs", "up", "up/etc"].into_iter().enumerate() {
        let name = format!("attack{i}");
        let yaml = attack
            .replace("name: attack}", &format!("name: {name}}}"))
            .replace("SUB", sub);
        let f = node.manifest(&format!("{name}.yaml"), &yaml);
        let o = node.apply(&f);
        assert!(!o.status.success(), "subPath {sub} was mounted");
        let want = "failed to prepare subPath for volumeMount \"data\" of container \"victim\"";
        assert_eq!(
            stderr(&o).trim(),
            format!("krun: pod/{name} created but not running: container victim: CreateContainerConfigError: {want}")
        );
        assert_eq!(
            node.waiting(&name, "victim"),
            Some(("CreateContainerConfigError".into(), want.into()))
        );
        node.delete_and_scan(&name);
    }
    assert_eq!(
        std::fs::read_to_string(target.join("key")).unwrap(),
        "host only\n"
    );
    node.delete_and_scan("sub");
}

#[test]
fn fs_group_owns_the_volumes() {
    if !common::require_root("fs_group_owns_the_volumes") {
        return;
    }
    let node = TestNode::new("kv-fsgroup");
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{k: v}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: owned}}\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         securityContext: {{runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000]}}\n  \
         volumes:\n  - {{name: data, emptyDir: {{}}}}\n  - {{name: cfg, configMap: {{name: c, defaultMode: 0400}}}}\n  \
         containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         volumeMounts: [{{name: data, mountPath: /data}}, {{name: cfg, mountPath: /cfg}}]\n"
    );
    let f = node.manifest("owned.yaml", &yaml);
    let o = node.apply(&f);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(node.sh("owned", "app", "id -u; id -g"), "1000\n3000\n");
    let groups = node.sh("owned", "app", "id -G");
    for g in ["3000", "2000", "4000"] {
        assert!(groups.split_whitespace().any(|x| x == g), "{groups}");
    }
    assert_eq!(
        node.sh("owned", "app", "stat -c '%g %a' /data"),
        "2000 2777\n"
    );
    // a non-root user writes to the volume, and the group is inherited
    assert_eq!(
        node.sh("owned", "app", "touch /data/f && stat -c '%u %g' /data/f"),
        "1000 2000\n"
    );
    // the configMap's 0400 file is readable by the group
    assert_eq!(
        node.sh("owned", "app", "stat -L -c '%g %a' /cfg/k"),
        "2000 440\n"
    );
    assert_eq!(node.sh("owned", "app", "cat /cfg/k"), "v");
    node.delete_and_scan("owned");
}

/// A shared bind mount of a directory of the test's own (the host's / is
/// private here), unmounted on drop, whatever is mounted below it.
struct SharedMount(std::path::PathBuf);

impl SharedMount {
    fn new(dir: &std::path::Path) -> SharedMount {
        std::fs::create_dir_all(dir).unwrap();
        let m = SharedMount(dir.to_path_buf());
        let d = dir.to_str().unwrap();
        common::run_ok(std::process::Command::new("mount").args(["--bind", d, d]));
        common::run_ok(std::process::Command::new("mount").args(["--make-shared", d]));
        m
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-R", "-l"])
            .arg(&self.0)
            .status();
    }
}

#[test]
fn mount_propagation_host_to_container_and_bidirectional() {
    if !common::require_root("mount_propagation_host_to_container_and_bidirectional") {
        return;
    }
    let node = TestNode::new("kv-prop");
    let shared = SharedMount::new(&node.base.join("shared"));
    let s = shared.0.display();
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: prop}}\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         volumes:\n  - {{name: host, hostPath: {{path: {s}, type: Directory}}}}\n  containers:\n  \
         - name: watcher\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         volumeMounts: [{{name: host, mountPath: /host, mountPropagation: HostToContainer}}]\n  \
         - name: mounter\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         securityContext: {{privileged: true}}\n    \
         volumeMounts: [{{name: host, mountPath: /host, mountPropagation: Bidirectional}}]\n"
    );
    let f = node.manifest("prop.yaml", &yaml);
    let o = node.apply(&f);
    assert!(o.status.success(), "{}", stderr(&o));
    // a mount made on the host after the start reaches the container
    std::fs::create_dir_all(shared.0.join("from-host")).unwrap();
    let from_host = shared.0.join("from-host");
    common::run_ok(
        std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "hosttmp"])
            .arg(&from_host),
    );
    std::fs::write(from_host.join("hello"), "from the host\n").unwrap();
    assert_eq!(
        node.sh("prop", "watcher", "cat /host/from-host/hello"),
        "from the host\n"
    );
    // a mount made in the privileged container reaches the host
    node.sh(
        "prop",
        "mounter",
        "mkdir -p /host/from-pod && mount -t tmpfs -o size=1m podtmp /host/from-pod && echo from the pod > /host/from-pod/hello",
    );
    assert_eq!(
        std::fs::read_to_string(shared.0.join("from-pod/hello")).unwrap(),
        "from the pod\n"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mounts.contains(&format!("{s}/from-pod ")),
        "not on the host"
    );
    // what was mounted there is the host's now (as on a node): the test's
    // own mounts go before the scan for what krun left
    let dir = shared.0.clone();
    drop(shared);
    node.delete_and_scan("prop");
    assert!(dir.exists());

    // propagation from a private mount is refused, as containerd refuses it
    let private = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: private}}\nspec:\n  volumes: [{{name: d, emptyDir: {{}}}}]\n  \
         containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    \
         volumeMounts: [{{name: d, mountPath: /d, mountPropagation: HostToContainer}}]\n"
    );
    let f = node.manifest("private.yaml", &private);
    let o = node.apply(&f);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("CreateContainerError: path \"")
            && stderr(&o).contains("but it is not a shared or slave mount"),
        "{}",
        stderr(&o)
    );
    node.delete_and_scan("private");
}
