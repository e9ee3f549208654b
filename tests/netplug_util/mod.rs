//! Test fixtures for the netplug tests: uniquely named namespaces, test
//! networks on their own bridge/subnet/nft table/state dir, an "outside"
//! host routed through the node, and TCP/UDP probes run inside namespaces.
//! Everything is removed on drop, so a failing test leaves nothing behind.
#![allow(dead_code)]

use krun_netplug::{Ipv4Net, Network, NetworkConfig, Paths};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Runs `ip …` (tests may; the library never does) and panics on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace under /run/netns, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = super::common::unique(prefix);
        ip(&["netns", "add", &name]);
        Netns { name }
    }
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `f` on a thread inside the namespace at `ns`; sockets it creates
/// stay in that namespace.
pub fn in_ns<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(ns).expect("open netns");
    std::thread::scope(|s| {
        s.spawn(|| {
            use std::os::fd::AsRawFd;
            // SAFETY: setns on this thread only, with an fd we own.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("netns thread")
    })
}

/// A /24 index in 10.252.0.0/16 (pods) and 10.253.0.0/16 (outside links)
/// claimed with an O_EXCL file, so parallel test processes never share one.
pub struct SubnetClaim {
    pub n: u8,
    file: PathBuf,
}

impl SubnetClaim {
    pub fn new() -> SubnetClaim {
        let dir = Path::new("/run/krun-netplug-tests");
        std::fs::create_dir_all(dir).unwrap();
        let start = std::process::id() as usize;
        for i in 0..250 {
            let n = ((start + i * 7) % 250) as u8 + 1;
            let file = dir.join(n.to_string());
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&file)
            {
                Ok(mut f) => {
                    write!(f, "{}", std::process::id()).unwrap();
                    return SubnetClaim { n, file };
                }
                Err(_) => {
                    // reclaim claims of dead test processes
                    let pid = std::fs::read_to_string(&file).unwrap_or_default();
                    if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = std::fs::remove_file(&file);
                    }
                }
            }
        }
        panic!("no free test subnet under {}", dir.display());
    }
}

impl Drop for SubnetClaim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// A node network of the test's own: bridge, subnet 10.252.N.0/24, nft
/// table and state root, reset and removed on drop.
pub struct TestNet {
    pub net: Network,
    pub root: PathBuf,
    pub claim: SubnetClaim,
}

impl TestNet {
    pub fn new(tag: &str) -> TestNet {
        let claim = SubnetClaim::new();
        let id = super::common::unique(tag);
        let root = std::env::temp_dir().join(format!("krun-netplug-{id}"));
        let subnet: Ipv4Net = format!("10.252.{}.0/24", claim.n).parse().unwrap();
        let cfg = NetworkConfig {
            cluster_cidr: subnet,
            subnet,
            bridge: format!("kt{}", claim.n),
            mtu: 1500,
            ip_masq: true,
            nft_table: format!("krun_test_{}", id.replace('-', "_")),
        };
        let paths = Paths {
            config_dir: root.join("etc"),
            state_dir: root.join("state"),
        };
        let net = Network::new(cfg, paths).unwrap();
        TestNet { net, root, claim }
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.net.cfg.gateway()
    }

    pub fn bridge(&self) -> &str {
        &self.net.cfg.bridge
    }

    pub fn table(&self) -> &str {
        &self.net.cfg.nft_table
    }

    /// A hostPort unique to this test's subnet claim.
    pub fn port(&self, k: u16) -> u16 {
        20000 + u16::from(self.claim.n) * 100 + k
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = self.net.reset();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// An "outside" host: a namespace linked to the node by a veth pair on
/// 10.253.N.0/24 (node .1, outside .2), default route via the node.
pub struct Outside {
    pub ns: Netns,
    pub link: String,
    pub node_ip: Ipv4Addr,
    pub ip: Ipv4Addr,
}

impl Outside {
    pub fn new(n: u8) -> Outside {
        let ns = Netns::new("np-out");
        let link = format!("ko{n}");
        let node_ip = Ipv4Addr::new(10, 253, n, 1);
        let ip_out = Ipv4Addr::new(10, 253, n, 2);
        let _ = Command::new("ip").args(["link", "del", &link]).output();
        ip(&[
            "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ]);
        let o = Outside {
            ns,
            link,
            node_ip,
            ip: ip_out,
        };
        ip(&["addr", "add", &format!("{node_ip}/24"), "dev", &o.link]);
        ip(&["link", "set", &o.link, "up"]);
        ip(&[
            "-n",
            &o.ns.name,
            "addr",
            "add",
            &format!("{ip_out}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &o.ns.name, "link", "set", "eth0", "up"]);
        ip(&["-n", &o.ns.name, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &o.ns.name,
            "route",
            "add",
            "default",
            "via",
            &node_ip.to_string(),
        ]);
        o
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
    }
}

/// ICMP echo from inside `ns` (None = the node) with busybox ping.
pub fn ping(ns: Option<&Netns>, to: Ipv4Addr) -> bool {
    let mut cmd = Command::new("ip");
    match ns {
        Some(ns) => cmd.args(["netns", "exec", &ns.name, "busybox"]),
        None => cmd.args(["-V"]).env_clear().env("PATH", "/usr/bin:/bin"),
    };
    if ns.is_none() {
        cmd = Command::new("busybox");
    }
    cmd.args(["ping", "-c", "1", "-W", "2", &to.to_string()])
        .output()
        .unwrap()
        .status
        .success()
}

/// A TCP server that answers each connection with "<tag> <peer address>".
pub fn tcp_server(ns: Option<&Path>, bind: SocketAddr, tag: &str) {
    let listener = match ns {
        Some(ns) => in_ns(ns, || TcpListener::bind(bind)),
        None => TcpListener::bind(bind),
    }
    .unwrap_or_else(|e| panic!("bind {bind}: {e}"));
    let tag = tag.to_string();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let peer = s
                .peer_addr()
                .map(|p| p.ip().to_string())
                .unwrap_or_default();
            let _ = s.write_all(format!("{tag} {peer}").as_bytes());
        }
    });
}

/// A UDP server answering each datagram with "<tag> <peer address>".
pub fn udp_server(ns: &Path, bind: SocketAddr, tag: &str) {
    let sock =
        in_ns(ns, || UdpSocket::bind(bind)).unwrap_or_else(|e| panic!("bind udp {bind}: {e}"));
    let tag = tag.to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, peer)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(format!("{tag} {}", peer.ip()).as_bytes(), peer);
        }
    });
}

/// Connects from `ns` (None = the node) and returns the server's answer.
pub fn tcp_get(ns: Option<&Path>, to: SocketAddr) -> Result<String, String> {
    let connect = || TcpStream::connect_timeout(&to, Duration::from_secs(3));
    let mut s = match ns {
        Some(ns) => in_ns(ns, connect),
        None => connect(),
    }
    .map_err(|e| format!("connect {to}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("read from {to}: {e}"))?;
    Ok(out)
}

/// Sends one datagram from `ns` and returns the answer.
pub fn udp_get(ns: Option<&Path>, to: SocketAddr) -> Result<String, String> {
    let bind = || UdpSocket::bind("0.0.0.0:0");
    let s = match ns {
        Some(ns) => in_ns(ns, bind),
        None => bind(),
    }
    .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.send_to(b"ping", to)
        .map_err(|e| format!("send to {to}: {e}"))?;
    let mut buf = [0u8; 128];
    let (n, _) = s
        .recv_from(&mut buf)
        .map_err(|e| format!("recv from {to}: {e}"))?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Names of the links enslaved to `bridge` (empty when it is gone).
pub fn bridge_ports(bridge: &str) -> Vec<String> {
    let dir = PathBuf::from(format!("/sys/class/net/{bridge}/brif"));
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The rules of one chain of an nft table, as `nft list` prints them.
pub fn nft_chain(table: &str, chain: &str) -> String {
    let out = Command::new("nft")
        .args(["list", "chain", "ip", table, chain])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn nft_table_exists(table: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", "ip", table])
        .output()
        .unwrap()
        .status
        .success()
}

/// The reference bridge plugin's ipMasq makes iptables-nft create `table ip
/// nat` and leaves it behind empty after DEL. Made before the plugin runs,
/// this removes that table on drop if it did not exist before and holds no
/// rule (so another engine's NAT is never touched).
pub struct IptablesNatGuard {
    existed: bool,
}

impl IptablesNatGuard {
    pub fn new() -> IptablesNatGuard {
        IptablesNatGuard {
            existed: nft_table_exists("nat"),
        }
    }
}

impl Drop for IptablesNatGuard {
    fn drop(&mut self) {
        if self.existed {
            return;
        }
        let Ok(out) = Command::new("nft")
            .args(["-j", "list", "table", "ip", "nat"])
            .output()
        else {
            return;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return;
        };
        let rules = v["nftables"]
            .as_array()
            .map(|a| a.iter().filter(|i| i.get("rule").is_some()).count())
            .unwrap_or(1);
        if rules == 0 {
            let _ = Command::new("nft")
                .args(["delete", "table", "ip", "nat"])
                .output();
        }
    }
}
