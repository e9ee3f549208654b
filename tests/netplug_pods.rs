//! Pods on a netplug bridge, in real network namespaces: pod↔pod, node↔pod,
//! pod→outside with masquerade, hostPorts from outside, node and pods.
mod common;
mod netplug_util;

use krun_netplug::{AttachRequest, PortMapping, Protocol};
use netplug_util::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

#[test]
fn netplug_pods_reach_each_other_node_outside_and_hostports() {
    if !common::require_root("netplug_pods_reach_each_other_node_outside_and_hostports") {
        return;
    }
    let t = TestNet::new("np-pods");
    let out = Outside::new(t.claim.n);
    let a_ns = Netns::new("np-a");
    let b_ns = Netns::new("np-b");
    let hp_tcp = t.port(1);
    let hp_udp = t.port(2);

    let mut ra = AttachRequest::pod(&common::unique("pod-a"), &a_ns.path());
    ra.port_mappings = vec![
        PortMapping {
            host_port: hp_tcp,
            container_port: 8080,
            protocol: Protocol::Tcp,
            host_ip: None,
        },
        PortMapping {
            host_port: hp_udp,
            container_port: 5353,
            protocol: Protocol::Udp,
            host_ip: Some(out.node_ip),
        },
    ];
    let a = t.net.attach(&ra).expect("attach pod a");
    let b = t
        .net
        .attach(&AttachRequest::pod(&common::unique("pod-b"), &b_ns.path()))
        .expect("attach pod b");
    let (aip, bip, gw) = (a.address.addr, b.address.addr, t.gateway());
    assert_ne!(aip, bip);
    assert!(t.net.cfg.subnet.contains(aip) && t.net.cfg.subnet.contains(bip));
    assert_eq!(bridge_ports(t.bridge()).len(), 2);

    // pod ↔ pod, ICMP and TCP
    assert!(ping(Some(&a_ns), bip), "pod a cannot ping pod b");
    assert!(ping(Some(&b_ns), aip), "pod b cannot ping pod a");
    tcp_server(Some(&a_ns.path()), sa(Ipv4Addr::UNSPECIFIED, 8080), "pod-a");
    tcp_server(Some(&b_ns.path()), sa(Ipv4Addr::UNSPECIFIED, 8080), "pod-b");
    assert_eq!(
        tcp_get(Some(&a_ns.path()), sa(bip, 8080)).unwrap(),
        format!("pod-b {aip}")
    );
    assert_eq!(
        tcp_get(Some(&b_ns.path()), sa(aip, 8080)).unwrap(),
        format!("pod-a {bip}")
    );

    // node ↔ pod
    assert!(ping(None, aip), "node cannot ping pod a");
    assert!(ping(Some(&a_ns), gw), "pod a cannot ping the node");
    assert_eq!(tcp_get(None, sa(aip, 8080)).unwrap(), format!("pod-a {gw}"));
    let node_port = t.port(3);
    tcp_server(None, sa(gw, node_port), "node");
    assert_eq!(
        tcp_get(Some(&a_ns.path()), sa(gw, node_port)).unwrap(),
        format!("node {aip}")
    );

    // pod → outside: the outside host sees the node's address (masquerade)
    tcp_server(
        Some(&out.ns.path()),
        sa(Ipv4Addr::UNSPECIFIED, 9000),
        "outside",
    );
    assert_eq!(
        tcp_get(Some(&a_ns.path()), sa(out.ip, 9000)).unwrap(),
        format!("outside {}", out.node_ip)
    );
    assert!(
        ping(Some(&b_ns), out.ip),
        "pod b cannot ping the outside host"
    );

    // hostPort TCP: from the outside host (it is seen as itself), …
    assert_eq!(
        tcp_get(Some(&out.ns.path()), sa(out.node_ip, hp_tcp)).unwrap(),
        format!("pod-a {}", out.ip)
    );
    // … from the node, on its own address and on loopback, …
    assert!(tcp_get(None, sa(out.node_ip, hp_tcp))
        .unwrap()
        .starts_with("pod-a "));
    assert!(tcp_get(None, sa(Ipv4Addr::LOCALHOST, hp_tcp))
        .unwrap()
        .starts_with("pod-a "));
    // … from another pod on the bridge (via the gateway and the node's outer address), …
    assert_eq!(
        tcp_get(Some(&b_ns.path()), sa(gw, hp_tcp)).unwrap(),
        format!("pod-a {gw}")
    );
    assert_eq!(
        tcp_get(Some(&b_ns.path()), sa(out.node_ip, hp_tcp)).unwrap(),
        format!("pod-a {gw}")
    );
    // … and from the pod itself (hairpin).
    assert_eq!(
        tcp_get(Some(&a_ns.path()), sa(gw, hp_tcp)).unwrap(),
        format!("pod-a {gw}")
    );

    // hostPort UDP bound to one host IP
    udp_server(&a_ns.path(), sa(Ipv4Addr::UNSPECIFIED, 5353), "pod-a-udp");
    assert_eq!(
        udp_get(Some(&out.ns.path()), sa(out.node_ip, hp_udp)).unwrap(),
        format!("pod-a-udp {}", out.ip)
    );
    assert!(
        udp_get(Some(&out.ns.path()), sa(out.node_ip, hp_tcp)).is_err(),
        "a TCP hostPort answered UDP"
    );
    assert!(
        udp_get(Some(&b_ns.path()), sa(gw, hp_udp)).is_err(),
        "hostIP-bound UDP port answered on another address"
    );

    // CVE-2020-8558: route_localnet on the bridge must not let a pod reach
    // services the node binds to 127.0.0.1 (pod b routes 127/8 to the node)
    let secret_port = t.port(4);
    tcp_server(
        None,
        sa(Ipv4Addr::LOCALHOST, secret_port),
        "node-loopback-only",
    );
    assert!(tcp_get(None, sa(Ipv4Addr::LOCALHOST, secret_port)).is_ok());
    ip(&["-n", &b_ns.name, "addr", "flush", "dev", "lo"]);
    ip(&[
        "-n",
        &b_ns.name,
        "route",
        "add",
        "127.0.0.0/8",
        "via",
        &gw.to_string(),
        "dev",
        "eth0",
    ]);
    let sysctl = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &b_ns.name,
            "sysctl",
            "-qw",
            "net.ipv4.conf.eth0.route_localnet=1",
        ])
        .status()
        .unwrap();
    assert!(sysctl.success());
    let leak = tcp_get(Some(&b_ns.path()), sa(Ipv4Addr::LOCALHOST, secret_port));
    assert!(leak.is_err(), "a pod reached the node's loopback: {leak:?}");
    // the node's own 127.0.0.1 → hostPort path still works
    assert!(tcp_get(None, sa(Ipv4Addr::LOCALHOST, hp_tcp))
        .unwrap()
        .starts_with("pod-a "));

    // the check passes, and detach undoes it all
    t.net.check(&a.id, "eth0").expect("check pod a");
    assert!(nft_chain(t.table(), "hostports").contains(&format!("dport {hp_tcp}")));
    t.net.detach(&a.id, "eth0", None).unwrap();
    t.net.detach(&b.id, "eth0", None).unwrap();
    t.net
        .detach(&b.id, "eth0", None)
        .expect("detach is idempotent");
    assert!(
        bridge_ports(t.bridge()).is_empty(),
        "veths left: {:?}",
        bridge_ports(t.bridge())
    );
    assert!(t.net.ipam().leases().unwrap().is_empty());
    assert!(
        !nft_chain(t.table(), "hostports").contains("dnat"),
        "{}",
        nft_chain(t.table(), "hostports")
    );
    assert!(tcp_get(Some(&out.ns.path()), sa(out.node_ip, hp_tcp)).is_err());
}

#[test]
fn netplug_attach_failure_leaves_nothing() {
    if !common::require_root("netplug_attach_failure_leaves_nothing") {
        return;
    }
    let t = TestNet::new("np-fail");
    let ns = Netns::new("np-f");
    let mut req = AttachRequest::pod(&common::unique("pod-f"), &ns.path());
    // a route through a gateway outside every connected subnet cannot be added
    req.routes.push(krun_netplug::RouteSpec {
        dst: "10.254.0.0/24".parse().unwrap(),
        gw: Some(Ipv4Addr::new(10, 254, 1, 1)),
    });
    let err = t
        .net
        .attach(&req)
        .expect_err("attach with an unreachable gateway");
    assert!(err.to_string().contains("add route"), "{err}");
    assert!(bridge_ports(t.bridge()).is_empty());
    assert!(t.net.ipam().leases().unwrap().is_empty());
    assert!(t.net.attachment(&req.id, "eth0").unwrap().is_none());
    // a missing namespace is one clear error naming the path
    let err = t
        .net
        .attach(&AttachRequest::pod(
            "x",
            std::path::Path::new("/run/netns/np-missing"),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("/run/netns/np-missing"), "{err}");
    assert!(t.net.ipam().leases().unwrap().is_empty());
    // hostile ids are refused before anything is made
    assert!(t
        .net
        .attach(&AttachRequest::pod("../../etc", &ns.path()))
        .is_err());
}
