//! Pod sandboxes (kubelet::sandbox) on a test network of their own: the
//! namespaces seen from inside, the pod reached from the node and through
//! its hostPort, and a teardown that leaves nothing behind.
mod common;
mod netplug_util;

use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use krun_kubelet::sandbox::{self, SandboxError};
use krun_kubelet::spec::Ns;
use krun_netplug::Network;
use netplug_util::*;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A run root of the test's own; sandboxes left in it are torn down and
/// the directory removed on drop.
struct RunRoot<'a> {
    dir: PathBuf,
    net: &'a Network,
    uids: Vec<String>,
}

impl Drop for RunRoot<'_> {
    fn drop(&mut self) {
        for uid in &self.uids {
            let _ = sandbox::teardown(&self.dir, self.net, uid);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn test_pod(name: &str, uid: &str, host_port: u16) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(uid.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: Some("busybox".into()),
                ports: Some(vec![ContainerPort {
                    container_port: 8080,
                    host_port: Some(host_port.into()),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn nsenter(ns: &str, path: &Path, cmd: &[&str]) -> String {
    common::run_ok(
        Command::new("nsenter")
            .arg(format!("--{ns}={}", path.display()))
            .args(cmd),
    )
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.to_string_lossy().into_owned();
    info.lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&d)))
        .map(String::from)
        .collect()
}

#[test]
fn kubelet_sandbox_namespaces_network_and_clean_teardown() {
    if !common::require_root("kubelet_sandbox_namespaces_network_and_clean_teardown") {
        return;
    }
    let t = TestNet::new("kl-sbx");
    let mut root = RunRoot {
        dir: std::env::temp_dir().join(common::unique("krun-sbx-root")),
        net: &t.net,
        uids: Vec::new(),
    };
    let name = common::unique("web");
    let uid = common::unique("uid");
    root.uids.push(uid.clone());
    let hp = t.port(1);
    let sb = sandbox::create(&root.dir, &t.net, &test_pod(&name, &uid, hp)).expect("create");
    let att = sb
        .attachment()
        .expect("pod network wired")
        .cloned()
        .expect("pod network attached");
    let ip = att.address.addr;
    assert!(t.net.cfg.subnet.contains(ip));
    assert_eq!(sb.pod_ip(), Some(ip));
    let (net, ipc, uts) = match (&sb.net, &sb.ipc, &sb.uts) {
        (Ns::Join(n), Ns::Join(i), Ns::Join(u)) => (n.clone(), i.clone(), u.clone()),
        other => panic!("expected joined namespaces, got {other:?}"),
    };
    assert_eq!(net, root.dir.join(&uid).join("ns/net"));
    assert_eq!(sb.pid, Ns::New);
    let spec_sb = sb.spec_sandbox();
    assert_eq!(spec_sb.shm, Some(root.dir.join(&uid).join("shm")));

    // inside: eth0 with the address, lo up, a default route via the bridge
    let addrs: serde_json::Value =
        serde_json::from_str(&nsenter("net", &net, &["ip", "-j", "addr"])).unwrap();
    let links = addrs.as_array().unwrap();
    let eth0 = links.iter().find(|l| l["ifname"] == "eth0").expect("eth0");
    let local = eth0["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["family"] == "inet")
        .expect("eth0 has an IPv4 address");
    assert_eq!(local["local"], ip.to_string());
    assert_eq!(local["prefixlen"], t.net.cfg.subnet.prefix);
    let lo = links.iter().find(|l| l["ifname"] == "lo").expect("lo");
    assert!(
        lo["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "lo is not up: {lo}"
    );
    assert_eq!(links.len(), 2, "only lo and eth0 in the pod: {addrs}");
    let routes = nsenter("net", &net, &["ip", "route"]);
    assert!(
        routes.contains(&format!("default via {} dev eth0", t.gateway())),
        "{routes}"
    );

    // the hostname is the pod's in its UTS namespace, not on the host
    assert_eq!(nsenter("uts", &uts, &["hostname"]).trim(), name);
    assert_ne!(common::run_ok(&mut Command::new("hostname")).trim(), name);
    // a new IPC namespace
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let pod_ipc = nsenter("ipc", &ipc, &["readlink", "/proc/self/ns/ipc"]);
    assert_ne!(pod_ipc.trim(), host_ipc.to_string_lossy());

    // the node reaches the pod, and its hostPort reaches a server inside
    assert!(ping(None, ip), "node cannot ping the pod at {ip}");
    tcp_server(
        Some(&net),
        SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 8080),
        "pod",
    );
    let via_hp = tcp_get(None, SocketAddr::new(Ipv4Addr::LOCALHOST.into(), hp)).unwrap();
    assert!(via_hp.starts_with("pod "), "{via_hp}");
    assert!(nft_chain(t.table(), "hostports").contains(&uid));

    // a second sandbox for the same uid is refused and leaves the first intact
    let again = sandbox::create(&root.dir, &t.net, &test_pod(&name, &uid, hp)).unwrap_err();
    assert!(matches!(again, SandboxError::Exists(_)), "{again}");
    assert!(ping(None, ip));

    // teardown: nothing is left, and a second teardown succeeds
    sandbox::teardown(&root.dir, &t.net, &uid).expect("teardown");
    assert_eq!(mounts_under(&root.dir), Vec::<String>::new());
    assert!(!root.dir.join(&uid).exists());
    assert!(!Path::new("/sys/class/net").join(&att.host_veth).exists());
    assert!(bridge_ports(t.bridge()).is_empty());
    assert!(!t.net.paths.ipam_dir().join(ip.to_string()).exists());
    assert!(t.net.attachment(&uid, "eth0").unwrap().is_none());
    assert!(!nft_chain(t.table(), "hostports").contains(&uid));
    assert!(!ping(None, ip), "the pod address still answers");
    sandbox::teardown(&root.dir, &t.net, &uid).expect("second teardown");
}

#[test]
fn kubelet_sandbox_host_namespaces_and_reported_leftovers() {
    if !common::require_root("kubelet_sandbox_host_namespaces_and_reported_leftovers") {
        return;
    }
    let t = TestNet::new("kl-sbxh");
    let mut root = RunRoot {
        dir: std::env::temp_dir().join(common::unique("krun-sbxh-root")),
        net: &t.net,
        uids: Vec::new(),
    };
    let uid = common::unique("uid");
    root.uids.push(uid.clone());
    let mut pod = test_pod(&common::unique("hostnet"), &uid, t.port(2));
    let spec = pod.spec.as_mut().unwrap();
    spec.host_network = Some(true);
    spec.host_ipc = Some(true);
    spec.host_pid = Some(true);
    let sb = sandbox::create(&root.dir, &t.net, &pod).expect("create");
    assert_eq!(
        (&sb.net, &sb.ipc, &sb.uts, &sb.pid),
        (&Ns::Host, &Ns::Host, &Ns::Host, &Ns::Host)
    );
    assert!(sb.attachment().expect("no wiring to fail").is_none());
    assert_eq!(sb.spec_sandbox().shm, Some(PathBuf::from("/dev/shm")));
    assert!(!root.dir.join(&uid).join("ns").exists());
    assert!(t.net.attachments().unwrap().is_empty());
    assert!(mounts_under(&root.dir).is_empty());

    // something foreign in the sandbox directory is reported, not deleted
    let stray = root.dir.join(&uid).join("stray");
    std::fs::write(&stray, "x").unwrap();
    let err = sandbox::teardown(&root.dir, &t.net, &uid).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("sandbox teardown left: ") && msg.contains(&uid),
        "{msg}"
    );
    assert!(stray.exists());
    std::fs::remove_file(&stray).unwrap();
    sandbox::teardown(&root.dir, &t.net, &uid).expect("teardown after the stray file is gone");
    assert!(!root.dir.join(&uid).exists());
}
