//! krun-cni driven as a CNI runtime drives a plugin (ADD, CHECK, DEL,
//! VERSION, STATUS, GC), compared with the reference bridge + host-local
//! plugins (Debian's containernetworking-plugins, /usr/lib/cni) given the
//! same network config.
mod common;
mod netplug_util;

use krun_netplug::{Network, NetworkConfig};
use netplug_util::*;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const REFERENCE_BRIDGE: &str = "/usr/lib/cni/bridge";

struct Cni<'a> {
    plugin: &'a Path,
}

impl Cni<'_> {
    /// Runs one command; returns (success, parsed stdout or Null).
    fn run(&self, cmd: &str, conf: &Value, id: &str, netns: Option<&Path>) -> (bool, Value) {
        let mut c = Command::new(self.plugin);
        c.env_clear()
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", id)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/usr/lib/cni")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        if let Some(ns) = netns {
            c.env("CNI_NETNS", ns);
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn plugin");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.success(), v)
    }

    fn ok(&self, cmd: &str, conf: &Value, id: &str, netns: Option<&Path>) -> Value {
        let (ok, v) = self.run(cmd, conf, id, netns);
        assert!(ok, "{} {cmd} failed: {v}", self.plugin.display());
        v
    }
}

fn ip_json(args: &[&str]) -> Value {
    let out = Command::new("ip").arg("-j").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What a pod and the node look like after ADD, with names and MACs that
/// are random by design left out.
fn snapshot(ns: &Netns, bridge: &str, result: &Value) -> Value {
    let link = &ip_json(&["-n", &ns.name, "addr", "show", "eth0"])[0];
    let inet: Vec<Value> = link["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| json!({"local": a["local"], "prefixlen": a["prefixlen"], "scope": a["scope"]}))
        .collect();
    let routes = ip_json(&["-n", &ns.name, "route", "show"]);
    let host_veth = result["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let host = &ip_json(&["link", "show", &host_veth])[0];
    let br = &ip_json(&["addr", "show", bridge])[0];
    let br_inet: Vec<Value> = br["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| json!({"local": a["local"], "prefixlen": a["prefixlen"]}))
        .collect();
    let hairpin =
        std::fs::read_to_string(format!("/sys/class/net/{host_veth}/brport/hairpin_mode")).unwrap();
    let mut res = result.clone();
    for i in res["interfaces"].as_array_mut().unwrap() {
        i.as_object_mut().unwrap().remove("mac");
    }
    res["interfaces"][1]["name"] = json!("<host veth>");
    assert_eq!(
        res["interfaces"][2]["sandbox"],
        json!(ns.path()),
        "sandbox names the pod netns"
    );
    res["interfaces"][2]["sandbox"] = json!("<netns>");
    json!({
        "eth0": {"mtu": link["mtu"], "operstate": link["operstate"], "flags": link["flags"], "inet": inet},
        "pod_routes": routes,
        "host_veth": {"mtu": host["mtu"], "master": host["master"], "operstate": host["operstate"], "hairpin": hairpin.trim()},
        "bridge": {"mtu": br["mtu"], "inet": br_inet, "operstate": br["operstate"]},
        "result": res,
    })
}

fn remove_bridge(name: &str) {
    let _ = Command::new("ip").args(["link", "del", name]).output();
}

#[test]
fn netplug_cni_matches_reference_bridge_plugin() {
    if !common::require_root("netplug_cni_matches_reference_bridge_plugin") {
        return;
    }
    if !Path::new(REFERENCE_BRIDGE).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "containernetworking-plugins missing under CI"
        );
        eprintln!(
            "SKIPPED: {REFERENCE_BRIDGE} missing (apt-get install containernetworking-plugins)"
        );
        return;
    }
    let t = TestNet::new("np-cni");
    let subnet = t.net.cfg.subnet.to_string();
    let config = |kind: &str, data: &str| {
        json!({
            "cniVersion": "1.0.0", "name": "npcni", "type": kind,
            "bridge": t.bridge(), "isGateway": true, "isDefaultGateway": true,
            "ipMasq": true, "hairpinMode": true, "mtu": 1400,
            "ipam": {"type": "host-local", "subnet": subnet, "dataDir": t.root.join(data)},
            "nftTable": t.table(),
        })
    };
    let reference = Cni {
        plugin: Path::new(REFERENCE_BRIDGE),
    };
    let krun_bin = common::bin("krun-cni");
    let krun = Cni { plugin: &krun_bin };

    // the reference plugins first, then krun-cni, with the same config and names
    let _nat = IptablesNatGuard::new();
    let mut snaps = Vec::new();
    for (cni, kind, data) in [(&reference, "bridge", "ref"), (&krun, "krun-cni", "krun")] {
        let conf = config(kind, data);
        let ns = Netns::new("np-cni");
        let id = common::unique("cni");
        let result = cni.ok("ADD", &conf, &id, Some(&ns.path()));
        snaps.push(snapshot(&ns, t.bridge(), &result));
        let mut check = conf.clone();
        check["prevResult"] = result.clone();
        cni.ok("CHECK", &check, &id, Some(&ns.path()));
        cni.ok("DEL", &conf, &id, Some(&ns.path()));
        cni.ok("DEL", &conf, &id, Some(&ns.path()));
        let eth0 = Command::new("ip")
            .args(["-n", &ns.name, "link", "show", "eth0"])
            .output()
            .unwrap();
        assert!(!eth0.status.success(), "{kind}: eth0 left after DEL");
        assert!(
            bridge_ports(t.bridge()).is_empty(),
            "{kind}: veth left after DEL"
        );
        remove_bridge(t.bridge());
    }
    assert_eq!(
        snaps[1], snaps[0],
        "krun-cni (left) differs from reference bridge (right)"
    );
    let eth0_addr = snaps[1]["eth0"]["inet"][0]["local"].as_str().unwrap();
    assert_eq!(eth0_addr, t.net.cfg.subnet.nth(2).unwrap().to_string());
}

#[test]
fn netplug_cni_version_status_gc_and_errors() {
    if !common::require_root("netplug_cni_version_status_gc_and_errors") {
        return;
    }
    let t = TestNet::new("np-cni2");
    let krun_bin = common::bin("krun-cni");
    let krun = Cni { plugin: &krun_bin };
    let conf = json!({
        "cniVersion": "1.1.0", "name": "npgc", "type": "krun-cni", "bridge": t.bridge(),
        "isDefaultGateway": true, "ipam": {"type": "host-local", "subnet": t.net.cfg.subnet.to_string()},
        "nftTable": t.table(), "stateDir": t.root.join("cni"),
    });
    let state = t.root.join("cni/npgc");

    let v = krun.ok("VERSION", &json!({"cniVersion": "1.1.0"}), "", None);
    let versions: Vec<&str> = v["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        versions.contains(&"1.1.0") && versions.contains(&"1.0.0"),
        "{v}"
    );
    krun.ok("STATUS", &conf, "", None);

    let keep_ns = Netns::new("np-keep");
    let drop_ns = Netns::new("np-drop");
    let (keep, gone) = (common::unique("keep"), common::unique("gone"));
    let r_keep = krun.ok("ADD", &conf, &keep, Some(&keep_ns.path()));
    let r_gone = krun.ok("ADD", &conf, &gone, Some(&drop_ns.path()));
    assert_eq!(r_keep["cniVersion"], "1.1.0");
    let gone_veth = r_gone["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let gone_ip = r_gone["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(state.join("ipam").join(&gone_ip).exists());

    // GC keeps what the runtime lists and removes the rest
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": keep, "ifname": "eth0"}]);
    krun.ok("GC", &gc, "", None);
    assert!(
        !Path::new("/sys/class/net").join(&gone_veth).exists(),
        "GC left {gone_veth}"
    );
    assert!(
        !state.join("ipam").join(&gone_ip).exists(),
        "GC left the lease of {gone_ip}"
    );
    assert!(
        !state.join("cni").join(format!("{gone}_eth0.json")).exists(),
        "GC left the cached result"
    );
    let mut check = conf.clone();
    check["prevResult"] = r_keep.clone();
    krun.ok("CHECK", &check, &keep, Some(&keep_ns.path()));

    // CHECK notices a pod whose address was removed behind its back
    ip(&["-n", &keep_ns.name, "addr", "flush", "dev", "eth0"]);
    let (ok, err) = krun.run("CHECK", &check, &keep, Some(&keep_ns.path()));
    assert!(!ok && err["msg"] == "check failed", "{err}");

    // errors: CNI codes and one line naming what was wrong
    let (ok, err) = krun.run(
        "ADD",
        &json!({"cniVersion": "9.9.9", "name": "x"}),
        "a",
        Some(&keep_ns.path()),
    );
    assert!(!ok && err["code"] == 1, "{err}");
    let mut c = Command::new(&krun_bin);
    let out = c
        .env("CNI_COMMAND", "ADD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = out;
    out.stdin.take().unwrap().write_all(b"{not json").unwrap();
    let out = out.wait_with_output().unwrap();
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!out.status.success() && err["code"] == 6, "{err}");
    let (ok, err) = krun.run("ADD", &conf, "", Some(&keep_ns.path()));
    assert!(
        !ok && err["code"] == 4 && err["msg"].as_str().unwrap().contains("CNI_CONTAINERID"),
        "{err}"
    );
    let (ok, err) = krun.run("CHECK", &conf, "never-added", Some(&keep_ns.path()));
    assert!(!ok && err["code"] == 3, "{err}");
    for cmd in ["ADD", "CHECK", "DEL"] {
        let (ok, err) = krun.run(cmd, &conf, "../../x", Some(&keep_ns.path()));
        assert!(
            !ok && err["msg"] == "invalid CNI_CONTAINERID" && err["code"] == 4,
            "{cmd}: {err}"
        );
    }
    let mut bad = conf.clone();
    bad["ipam"]["type"] = json!("dhcp");
    let (ok, err) = krun.run("ADD", &bad, "a", Some(&keep_ns.path()));
    assert!(!ok && err["code"] == 2, "{err}");

    // STATUS reports "not available" (50) once the subnet has no address left
    let small_bridge = format!("{}s", t.bridge());
    let small_table = format!("{}_s", t.table());
    let small_net = format!("10.252.{}.252/30", t.claim.n);
    // the small network's node state (bridge, nft table, FORWARD chain)
    // goes with it, on failure too
    struct Undo(Network);
    impl Drop for Undo {
        fn drop(&mut self) {
            let _ = self.0.reset();
        }
    }
    let subnet: krun_netplug::Ipv4Net = small_net.parse().unwrap();
    let _undo = Undo(
        Network::new(
            NetworkConfig {
                cluster_cidr: subnet,
                subnet,
                bridge: small_bridge.clone(),
                mtu: 1500,
                ip_masq: true,
                nft_table: small_table.clone(),
            },
            krun_netplug::Paths {
                config_dir: t.root.join("small/etc"),
                state_dir: t.root.join("small/state"),
            },
        )
        .unwrap(),
    );
    let mut small = conf.clone();
    small["name"] = json!("npsmall");
    small["bridge"] = json!(small_bridge);
    small["nftTable"] = json!(small_table);
    small["ipam"]["subnet"] = json!(small_net);
    krun.ok("STATUS", &small, "", None);
    let small_ns = Netns::new("np-small");
    krun.ok("ADD", &small, "only", Some(&small_ns.path()));
    let (ok, err) = krun.run("STATUS", &small, "", None);
    assert!(!ok && err["code"] == 50, "{err}");
    let (ok, err) = krun.run("ADD", &small, "second", Some(&keep_ns.path()));
    assert!(
        !ok && err["code"] == 11 && err["details"].as_str().unwrap().contains("no free address"),
        "{err}"
    );
    krun.ok("DEL", &small, "only", Some(&small_ns.path()));
    krun.ok("STATUS", &small, "", None);

    // DEL is idempotent, also for a container never added and a netns gone
    krun.ok("DEL", &conf, "never-added", None);
    drop(keep_ns);
    krun.ok(
        "DEL",
        &conf,
        &keep,
        Some(Path::new("/run/netns/np-gone-already")),
    );
    krun.ok("DEL", &conf, &keep, None);
    assert!(bridge_ports(t.bridge()).is_empty());
    let leases = std::fs::read_dir(state.join("ipam"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("10."))
        .count();
    assert_eq!(leases, 0);
}
