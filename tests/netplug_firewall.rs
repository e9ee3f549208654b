//! Pods keep working next to a docker-style firewall: filter FORWARD policy
//! DROP with a DOCKER-USER chain, through iptables-nft and iptables-legacy.
//! The whole scenario runs inside a network namespace the test creates as
//! the "node", so the DROP policy never exists on the real host and
//! deleting that namespace removes every rule, link and table it held.
mod common;
mod netplug_util;

use krun_netplug::{AttachRequest, PortMapping, Protocol};
use netplug_util::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

/// Runs an iptables tool in the calling thread's namespace (the node).
fn ipt(bin: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin).args(args).output().expect("run iptables");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// What dockerd leaves in filter: FORWARD policy DROP, a jump to
/// DOCKER-USER first, and (standing in for a user's DOCKER-USER rule) a drop
/// of TCP port `blocked`, which must keep winning over krun's accepts.
fn docker_like_firewall(bin: &str, blocked: u16) {
    let rules = format!(
        "*filter\n:FORWARD DROP [0:0]\n:DOCKER-USER - [0:0]\n:DOCKER-FORWARD - [0:0]\n\
         -A FORWARD -j DOCKER-USER\n-A FORWARD -j DOCKER-FORWARD\n\
         -A DOCKER-USER -p tcp --dport {blocked} -j DROP\n-A DOCKER-USER -j RETURN\n\
         -A DOCKER-FORWARD -o docker0 -j DROP\nCOMMIT\n"
    );
    let mut child = Command::new(format!("{bin}-restore"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run iptables-restore");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "{bin}-restore failed");
}

fn krun_jumps(bin: &str) -> Vec<String> {
    let (ok, rules) = ipt(bin, &["-w", "-S", "FORWARD"]);
    assert!(ok, "{rules}");
    rules
        .lines()
        .filter(|l| l.contains("KRUN-FWD-"))
        .map(String::from)
        .collect()
}

/// `krun network <verb>` on the test network (run from the node thread, so
/// in the node namespace); returns stdout, panics on failure.
fn krun_network(t: &TestNet, verb: &str) -> String {
    let paths = &t.net.paths;
    let out = Command::new(common::bin("krun"))
        .args(["network", verb, "--config-dir"])
        .arg(&paths.config_dir)
        .arg("--state-dir")
        .arg(&paths.state_dir)
        .output()
        .expect("run krun");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "krun network {verb}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn scenario(bin: &'static str) {
    let node = Netns::new("np-node");
    ip(&["-n", &node.name, "link", "set", "lo", "up"]);
    in_ns(&node.path(), || on_node(bin));
}

/// Runs on a thread inside the node namespace: every link, table, rule and
/// socket it makes (and the probes marked "node") are in there.
fn on_node(bin: &'static str) {
    let t = TestNet::new("np-fw");
    let blocked = t.port(9);
    let out = Outside::new(t.claim.n);
    let a_ns = Netns::new("np-fa");
    let b_ns = Netns::new("np-fb");
    let hp = t.port(1);
    let mut ra = AttachRequest::pod(&common::unique("pod-fa"), &a_ns.path());
    ra.port_mappings = vec![PortMapping {
        host_port: hp,
        container_port: 8080,
        protocol: Protocol::Tcp,
        host_ip: None,
    }];
    let a = t.net.attach(&ra).expect("attach pod a");
    tcp_server(
        Some(&out.ns.path()),
        sa(Ipv4Addr::UNSPECIFIED, 9000),
        "outside",
    );
    assert_eq!(
        tcp_get(Some(&a_ns.path()), sa(out.ip, 9000)).unwrap(),
        format!("outside {}", out.node_ip)
    );
    // no filter table yet: none was created for krun
    let (_, none) = ipt(bin, &["-w", "-S"]);
    assert!(!none.contains("KRUN-FWD"), "{none}");
    // dockerd starts after krun: its DROP policy cuts pod a off …
    docker_like_firewall(bin, blocked);
    let cut = tcp_get(Some(&a_ns.path()), sa(out.ip, 9000));
    assert!(cut.is_err(), "DROP policy not in force: {cut:?}");
    // … until the next attach, which sees the new filter table
    let b = t
        .net
        .attach(&AttachRequest::pod(&common::unique("pod-fb"), &b_ns.path()))
        .expect("attach pod b");
    let (aip, bip) = (a.address.addr, b.address.addr);
    let jumps = krun_jumps(bin);
    assert_eq!(jumps.len(), 1, "{jumps:?}");
    let chain = format!("KRUN-FWD-{}", t.bridge());
    assert!(jumps[0].ends_with(&format!("-j {chain}")), "{jumps:?}");
    // appended: docker's jumps stay first
    let (_, forward) = ipt(bin, &["-w", "-S", "FORWARD"]);
    let order: Vec<&str> = forward.lines().filter(|l| l.starts_with("-A")).collect();
    assert!(order[0].ends_with("-j DOCKER-USER"), "{forward}");
    assert!(order.last().unwrap().ends_with(&chain), "{forward}");
    // the other backend was not in use and was left alone
    let other = if bin == "iptables-nft" {
        "iptables-legacy"
    } else {
        "iptables-nft"
    };
    let (_, other_rules) = ipt(other, &["-w", "-S"]);
    assert!(!other_rules.contains("KRUN-FWD"), "{other_rules}");

    tcp_server(Some(&a_ns.path()), sa(Ipv4Addr::UNSPECIFIED, 8080), "pod-a");
    tcp_server(
        Some(&out.ns.path()),
        sa(Ipv4Addr::UNSPECIFIED, blocked),
        "outside-blocked",
    );
    let works = || {
        // pod → outside, masqueraded
        assert_eq!(
            tcp_get(Some(&a_ns.path()), sa(out.ip, 9000)).unwrap(),
            format!("outside {}", out.node_ip)
        );
        assert!(ping(Some(&b_ns), out.ip), "pod b cannot ping outside");
        // outside → hostPort → pod
        assert_eq!(
            tcp_get(Some(&out.ns.path()), sa(out.node_ip, hp)).unwrap(),
            format!("pod-a {}", out.ip)
        );
        // pod ↔ pod across the bridge (bridged frames meet FORWARD when
        // bridge-nf-call-iptables is on, as it is in this namespace)
        assert_eq!(
            tcp_get(Some(&b_ns.path()), sa(aip, 8080)).unwrap(),
            format!("pod-a {bip}")
        );
        // another pod through the hostPort (hairpin via the node)
        assert_eq!(
            tcp_get(Some(&b_ns.path()), sa(out.node_ip, hp)).unwrap(),
            format!("pod-a {}", t.gateway())
        );
    };
    works();
    // docker's (and the admin's) earlier rules still decide first
    let err = tcp_get(Some(&a_ns.path()), sa(out.ip, blocked));
    assert!(err.is_err(), "DOCKER-USER drop was overridden: {err:?}");

    // only the pod subnet is let through: a pod forging another source
    // stays behind the DROP policy (the node routes replies back to the
    // forged address, so the same ping passes once the policy is ACCEPT)
    let forged = "10.254.77.5";
    ip(&[
        "-n",
        &b_ns.name,
        "addr",
        "add",
        &format!("{forged}/32"),
        "dev",
        "eth0",
    ]);
    ip(&["route", "add", &format!("{forged}/32"), "dev", t.bridge()]);
    let forged_ping = || {
        Command::new("ip")
            .args([
                "netns", "exec", &b_ns.name, "busybox", "ping", "-c", "1", "-W", "2",
            ])
            .args(["-I", forged, &out.ip.to_string()])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(ipt(bin, &["-w", "-P", "FORWARD", "ACCEPT"]).0);
    assert!(
        forged_ping(),
        "control: forged ping fails even without DROP"
    );
    assert!(ipt(bin, &["-w", "-P", "FORWARD", "DROP"]).0);
    assert!(!forged_ping(), "a forged pod source was forwarded");
    ip(&["route", "del", &format!("{forged}/32")]);

    // without krun's jump the DROP policy wins (the test can fail) …
    // (the comment "krun netplug <table>" has spaces: passed whole)
    let comment = format!("krun netplug {}", t.table());
    assert!(jumps[0].contains(&comment), "{jumps:?}");
    let del = [
        "-w",
        "-D",
        "FORWARD",
        "-m",
        "comment",
        "--comment",
        &comment,
        "-j",
        &chain,
    ];
    let (ok, msg) = ipt(bin, &del);
    assert!(ok, "{msg}");
    // CHECK (CNI) notices
    let err = t
        .net
        .check(&a.id, "eth0")
        .expect_err("check without the jump");
    assert!(
        err.to_string()
            .contains(&format!("{bin}: filter FORWARD has no jump to {chain}")),
        "{err}"
    );
    let blocked_out = tcp_get(Some(&a_ns.path()), sa(out.ip, 9000));
    assert!(
        blocked_out.is_err(),
        "pod reached outside through a DROP policy: {blocked_out:?}"
    );
    // … and `krun network setup` puts it back, once
    for _ in 0..2 {
        let out = krun_network(&t, "setup");
        assert!(out.contains(&format!("bridge {}", t.bridge())), "{out}");
    }
    assert_eq!(krun_jumps(bin).len(), 1, "{:?}", krun_jumps(bin));
    t.net.check(&a.id, "eth0").expect("check after setup");
    works();

    // reset removes krun's chain and jump and nothing of docker's
    t.net.detach(&a.id, "eth0", None).unwrap();
    t.net.detach(&b.id, "eth0", None).unwrap();
    let removed = krun_network(&t, "reset");
    assert!(
        removed.contains(&format!("removed {bin} chain filter {chain}")),
        "reset did not report the chain: {removed}"
    );
    assert!(krun_jumps(bin).is_empty(), "{:?}", krun_jumps(bin));
    let (_, all) = ipt(bin, &["-w", "-S"]);
    assert!(!all.contains("KRUN-FWD"), "{all}");
    assert!(all.contains("-P FORWARD DROP"), "{all}");
    assert!(all.contains("-A FORWARD -j DOCKER-USER"), "{all}");
    assert!(
        all.contains(&format!(
            "-A DOCKER-USER -p tcp -m tcp --dport {blocked} -j DROP"
        )),
        "{all}"
    );
}

#[test]
fn netplug_pods_work_behind_docker_forward_drop_iptables_nft() {
    if !common::require_root("netplug_pods_work_behind_docker_forward_drop_iptables_nft") {
        return;
    }
    scenario("iptables-nft");
}

#[test]
fn netplug_pods_work_behind_docker_forward_drop_iptables_legacy() {
    if !common::require_root("netplug_pods_work_behind_docker_forward_drop_iptables_legacy") {
        return;
    }
    scenario("iptables-legacy");
}
