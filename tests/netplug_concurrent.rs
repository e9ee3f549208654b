//! 50 krun-cni ADDs from 50 processes at once: 50 distinct reachable
//! addresses; then 50 concurrent DELs leave no veth, lease or nft rule.
mod common;
mod netplug_util;

use netplug_util::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};

const PODS: usize = 50;

fn spawn_cni(cmd: &str, conf: &Value, id: &str, netns: &std::path::Path) -> Child {
    let mut child = Command::new(common::bin("krun-cni"))
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn krun-cni");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    child
}

#[test]
fn netplug_fifty_concurrent_attaches_and_detaches() {
    if !common::require_root("netplug_fifty_concurrent_attaches_and_detaches") {
        return;
    }
    let t = TestNet::new("np-50");
    let namespaces: Vec<Netns> = (0..PODS).map(|_| Netns::new("np-c")).collect();
    let ids: Vec<String> = (0..PODS).map(|_| common::unique("c50")).collect();
    let confs: Vec<Value> = (0..PODS)
        .map(|i| {
            json!({
                "cniVersion": "1.1.0", "name": "np50", "type": "krun-cni",
                "bridge": t.bridge(), "isGateway": true, "isDefaultGateway": true, "ipMasq": true,
                "ipam": {"type": "host-local", "subnet": t.net.cfg.subnet.to_string()},
                "nftTable": t.table(), "stateDir": t.root.join("cni"),
                "runtimeConfig": {"portMappings": [
                    {"hostPort": t.port(10 + i as u16), "containerPort": 80, "protocol": "tcp"}]},
            })
        })
        .collect();

    let children: Vec<Child> = (0..PODS)
        .map(|i| spawn_cni("ADD", &confs[i], &ids[i], &namespaces[i].path()))
        .collect();
    let mut addrs = Vec::new();
    let mut host_veths = Vec::new();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ADD {i}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let res: Value = serde_json::from_slice(&out.stdout).unwrap();
        let cidr = res["ips"][0]["address"].as_str().unwrap().to_string();
        let ip: Ipv4Addr = cidr.split('/').next().unwrap().parse().unwrap();
        addrs.push(ip);
        host_veths.push(res["interfaces"][1]["name"].as_str().unwrap().to_string());
    }
    let distinct: HashSet<_> = addrs.iter().collect();
    assert_eq!(
        distinct.len(),
        PODS,
        "addresses handed out twice: {addrs:?}"
    );
    assert_eq!(bridge_ports(t.bridge()).len(), PODS);
    for (i, ip) in addrs.iter().enumerate() {
        assert!(t.net.cfg.subnet.contains(*ip));
        assert!(ping(None, *ip), "node cannot reach pod {i} at {ip}");
    }
    // pods reach each other too (first ↔ last)
    assert!(ping(Some(&namespaces[0]), addrs[PODS - 1]));
    let rules = nft_chain(t.table(), "hostports");
    assert_eq!(rules.matches("dnat to").count(), PODS, "{rules}");

    let children: Vec<Child> = (0..PODS)
        .map(|i| spawn_cni("DEL", &confs[i], &ids[i], &namespaces[i].path()))
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "DEL {i}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(
        bridge_ports(t.bridge()).is_empty(),
        "veths left: {:?}",
        bridge_ports(t.bridge())
    );
    let leases: Vec<_> = std::fs::read_dir(t.root.join("cni/np50/ipam"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<Ipv4Addr>().is_ok())
        .collect();
    assert!(leases.is_empty(), "leases left: {leases:?}");
    let rules = nft_chain(t.table(), "hostports");
    assert!(!rules.contains("dnat"), "nft rules left: {rules}");
    for v in &host_veths {
        assert!(
            !std::path::Path::new("/sys/class/net").join(v).exists(),
            "host veth {v} left"
        );
    }
    for ns in &namespaces {
        let eth0 = Command::new("ip")
            .args(["-n", &ns.name, "link", "show", "eth0"])
            .output()
            .unwrap();
        assert!(!eth0.status.success(), "eth0 left in {}", ns.name);
    }
    // the bridge, table and state of this test go with TestNet's drop
}
