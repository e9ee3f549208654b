//! kubelet::oci_runtime driving runc and krun-runtime: a busybox container
//! built by kubelet::spec joins a pod sandbox's network and UTS namespaces,
//! prints what it sees, is stopped with SIGTERM (its exit code read through
//! the init's pidfd) and deleted without a trace.
mod common;
mod netplug_util;

use krun_kubelet::log_pump::{self, Fifos};
use krun_kubelet::logs::{read_log, LogWriter, ReadOptions, Rotation, Stream};
use krun_kubelet::manifest::{parse_str, Object};
use krun_kubelet::oci_runtime::{self, ContainerStdio, Exit, OciRuntime};
use krun_kubelet::sandbox;
use krun_kubelet::spec::{self, ContainerInput, NodeFacts, Objects, PodFacts, PodFiles, Security};
use netplug_util::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A scratch directory removed on drop.
struct Scratch(PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deletes the container (forcibly) and tears the sandbox down on drop,
/// so a failing assertion leaves nothing running.
struct Cleanup<'a> {
    rt: &'a OciRuntime,
    id: String,
    run_root: PathBuf,
    net: &'a krun_netplug::Network,
    uid: String,
}
impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.rt.delete(&self.id, true);
        let _ = sandbox::teardown(&self.run_root, self.net, &self.uid);
    }
}

/// A rootfs of busybox-static and its applet links.
fn busybox_rootfs(dir: &Path) {
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for applet in ["sh", "hostname", "ip", "sleep", "cat"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
}

/// One stream's lines of a CRI log file, each ended by a newline.
fn stream_text(log: &Path, stream: Stream) -> String {
    let Ok((lines, _)) = read_log(log, ReadOptions::default()) else {
        return String::new();
    };
    lines
        .iter()
        .filter(|l| l.stream == stream)
        .map(|l| format!("{}\n", String::from_utf8_lossy(&l.content)))
        .collect()
}

fn wait_for(log: &Path, stream: Stream, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = stream_text(log, stream);
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_in_sandbox(runtime: PathBuf, tag: &str) {
    oci_runtime::become_subreaper().unwrap();
    let t = TestNet::new(tag);
    let scratch = Scratch(std::env::temp_dir().join(common::unique(tag)));
    let base = scratch.0.clone();
    let rt = OciRuntime::new(runtime, base.join("runtime-root"));
    let name = common::unique("web");
    let uid = common::unique("uid");
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  \
         - name: c\n    image: busybox\n    command: [/bin/sh, -c]\n    args:\n    - \
         \"trap 'echo got-term; exit 7' TERM; hostname; ip addr show eth0; echo err-line >&2; \
         echo ready; while true; do sleep 1 & wait $!; done\"\n"
    );
    let Object::Pod(pod) = parse_str("t.yaml", &yaml).unwrap().remove(0).object else {
        panic!("not a pod");
    };
    let mut pod = *pod;
    pod.metadata.uid = Some(uid.clone());
    let id = common::unique("ctr");
    let run_root = base.join("pods");
    let guard = Cleanup {
        rt: &rt,
        id: id.clone(),
        run_root: run_root.clone(),
        net: &t.net,
        uid: uid.clone(),
    };
    let sb = sandbox::create(&run_root, &t.net, &pod).expect("sandbox");
    // as the supervisor does before a start: the links are up
    sb.network_ready().expect("pod network");
    let ip = sb.pod_ip().expect("pod ip");

    let rootfs = base.join("rootfs");
    busybox_rootfs(&rootfs);
    let files_dir = base.join("files");
    std::fs::create_dir_all(&files_dir).unwrap();
    let files = PodFiles {
        hosts: files_dir.join("hosts"),
        resolv_conf: files_dir.join("resolv.conf"),
        hostname: files_dir.join("hostname"),
        termination_log: files_dir.join("termination-log"),
    };
    std::fs::write(
        &files.hosts,
        krun_kubelet::podfiles::hosts_file(&pod, &[ip.to_string()]),
    )
    .unwrap();
    std::fs::write(&files.resolv_conf, "nameserver 127.0.0.1\n").unwrap();
    std::fs::write(&files.hostname, format!("{name}\n")).unwrap();
    std::fs::write(&files.termination_log, "").unwrap();
    let image: krun_kubelet::oci_spec::image::ImageConfiguration =
        serde_json::from_value(serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}, "config": {}
        }))
        .unwrap();
    let sandbox = sb.spec_sandbox();
    let facts = PodFacts {
        pod_ip: Some(ip.to_string()),
        host_ip: None,
    };
    let node = NodeFacts {
        name: "node".into(),
        cpus: 2,
        memory_bytes: 1 << 30,
    };
    let container = &pod.spec.as_ref().unwrap().containers[0];
    let built = spec::build(&ContainerInput {
        pod: &pod,
        container,
        image: &image,
        rootfs: &rootfs,
        sandbox: &sandbox,
        files: &files,
        facts: &facts,
        node: &node,
        objects: Objects::default(),
        cgroups_path: format!("/{id}"),
        limit_swap: false,
        security: Security::default(),
    })
    .expect("spec");

    let bundle = base.join("bundle");
    oci_runtime::write_bundle(&bundle, &built.spec, &rootfs).unwrap();
    // stdout and stderr through FIFOs and the pump into the CRI log
    let fifos = Fifos::new(&base, "c");
    fifos.create().unwrap();
    let (readers, writers) = fifos.open().unwrap();
    let log = base.join("logs/c/0.log");
    let pump = log_pump::spawn(readers, LogWriter::open(&log, Rotation::default()).unwrap());
    let created = rt
        .create(
            &id,
            &bundle,
            ContainerStdio {
                stdin: None,
                stdout: Some(writers.stdout),
                stderr: Some(writers.stderr),
                console_socket: None,
            },
        )
        .expect("create");
    let st = rt.state(&id).unwrap();
    assert_eq!((st.status.as_str(), st.pid), ("created", created.pid));
    assert_eq!(st.bundle, bundle);
    rt.start(&id).expect("start");

    let out = wait_for(&log, Stream::Stdout, "ready");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(name.as_str()), "hostname: {out}");
    let cidr = format!("inet {ip}/{}", t.net.cfg.subnet.prefix);
    assert!(
        out.contains(&cidr),
        "no {cidr} in the container's ip addr: {out}"
    );
    let mac = &sb.attachment().unwrap().unwrap().pod_mac;
    assert!(
        out.contains(mac.as_str()),
        "not the sandbox's eth0 ({mac}): {out}"
    );
    assert_eq!(wait_for(&log, Stream::Stderr, "err-line"), "err-line\n");
    assert_eq!(rt.state(&id).unwrap().status, "running");

    // SIGTERM: the trap runs and its exit code comes back through the pidfd
    assert_eq!(
        oci_runtime::wait_exit(&created.pidfd, Some(Duration::from_millis(100))).unwrap(),
        None
    );
    rt.kill(&id, libc::SIGTERM, false).expect("kill");
    let exit = oci_runtime::wait_exit(&created.pidfd, Some(Duration::from_secs(20))).unwrap();
    assert_eq!(exit, Some(Exit::Code(7)));
    // the pump ends once the container's streams close, all lines logged
    pump.join().unwrap().expect("log pump");
    assert!(stream_text(&log, Stream::Stdout).ends_with("ready\ngot-term\n"));
    let raw = std::fs::read_to_string(&log).unwrap();
    assert!(
        raw.lines().any(|l| l.ends_with(" stderr F err-line")),
        "{raw}"
    );
    assert_eq!(rt.state(&id).unwrap().status, "stopped");

    // delete: no state, no cgroup, no process
    rt.delete(&id, false).expect("delete");
    let gone = rt.state(&id).unwrap_err().to_string();
    assert!(gone.contains(&id), "{gone}");
    assert!(!rt.root.join(&id).exists());
    for ctrl in ["memory", "pids", "cpu"] {
        let cg = Path::new("/sys/fs/cgroup").join(ctrl).join(&id);
        assert!(!cg.exists(), "{} left", cg.display());
    }
    assert!(!Path::new(&format!("/proc/{}", created.pid)).exists());

    drop(guard);
    assert!(!run_root.join(&uid).exists());
    assert!(t.net.attachments().unwrap().is_empty());
}

#[test]
fn kubelet_oci_runtime_runc_in_a_pod_sandbox() {
    if !common::require_root("kubelet_oci_runtime_runc_in_a_pod_sandbox") {
        return;
    }
    run_in_sandbox(PathBuf::from("/usr/sbin/runc"), "kl-runc");
}

#[test]
fn kubelet_oci_runtime_krun_runtime_in_a_pod_sandbox() {
    if !common::require_root("kubelet_oci_runtime_krun_runtime_in_a_pod_sandbox") {
        return;
    }
    run_in_sandbox(common::bin("krun-runtime"), "kl-krt");
}
