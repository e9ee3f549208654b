//! `krun network reset` removes everything netplug made on the node.
mod common;
mod netplug_util;

use krun_netplug::{AttachRequest, PortMapping, Protocol};
use netplug_util::*;
use std::process::Command;

#[test]
fn netplug_network_reset_removes_everything() {
    if !common::require_root("netplug_network_reset_removes_everything") {
        return;
    }
    let t = TestNet::new("np-reset");
    // another engine's table (as docker, podman or netavark keep) must survive
    let foreign = common::unique("foreign").replace('-', "_");
    let nft = |args: &str| Command::new("nft").args(args.split(' ')).output().unwrap();
    assert!(nft(&format!("add table ip {foreign}")).status.success());
    struct DropTable(String);
    impl Drop for DropTable {
        fn drop(&mut self) {
            let _ = Command::new("nft")
                .args(["delete", "table", "ip", &self.0])
                .output();
        }
    }
    let _guard = DropTable(foreign.clone());
    assert!(nft(&format!(
        "add chain ip {foreign} post {{ type nat hook postrouting priority 100 ; }}"
    ))
    .status
    .success());
    assert!(nft(&format!(
        "add rule ip {foreign} post ip saddr 172.31.0.0/16 masquerade"
    ))
    .status
    .success());
    let ns = Netns::new("np-r");
    let mut req = AttachRequest::pod(&common::unique("pod-r"), &ns.path());
    req.port_mappings = vec![PortMapping {
        host_port: t.port(1),
        container_port: 80,
        protocol: Protocol::Tcp,
        host_ip: None,
    }];
    let att = t.net.attach(&req).unwrap();
    let paths = &t.net.paths;
    assert!(paths.config_file().exists() && paths.subnet_env().exists());
    assert!(nft_table_exists(t.table()));

    let out = Command::new(common::bin("krun"))
        .args(["network", "reset", "--config-dir"])
        .arg(&paths.config_dir)
        .arg("--state-dir")
        .arg(&paths.state_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "reset: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("removed bridge {}", t.bridge())),
        "{stdout}"
    );

    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(t.bridge())
            .exists(),
        "bridge left"
    );
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(&att.host_veth)
            .exists(),
        "veth left"
    );
    assert!(!nft_table_exists(t.table()), "nft table left");
    assert!(!paths.config_file().exists() && !paths.subnet_env().exists());
    assert!(!paths.ipam_dir().exists() && !paths.attachments_dir().exists());
    let eth0 = Command::new("ip")
        .args(["-n", &ns.name, "link", "show", "eth0"])
        .output()
        .unwrap();
    assert!(!eth0.status.success(), "pod end of the veth left");

    let kept =
        String::from_utf8_lossy(&nft(&format!("list table ip {foreign}")).stdout).into_owned();
    assert!(
        kept.contains("172.31.0.0/16"),
        "foreign table damaged: {kept}"
    );

    // a second reset has nothing left to do
    let out = Command::new(common::bin("krun"))
        .args(["network", "reset", "--config-dir"])
        .arg(&paths.config_dir)
        .arg("--state-dir")
        .arg(&paths.state_dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "network reset: nothing to remove"
    );
}
