//! NAT and hostPorts in an nftables table of netplug's own (family ip),
//! driven through `nft -j`. Other tables (docker, podman, netavark) are
//! never touched.
//!
//! Layout of table T:
//!   chain raw         (filter, raw): pod → pod on the bridge: notrack
//!   chain input       (filter):      new connections from the bridge to 127/8: drop
//!   chain prerouting  (nat, dstnat): fib daddr type local → jump hostports
//!   chain output      (nat, -100):   fib daddr type local → jump hostports
//!   chain hostports:                 one dnat rule per mapping, commented with its owner
//!   chain postrouting (nat, srcnat): pod → outside cluster: masquerade;
//!                                    DNATed traffic from a pod or from 127/8: masquerade
use crate::cidr::Ipv4Net;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// A hostPort: traffic to `host_ip` (any local address when None) on
/// `host_port` goes to the pod's `container_port`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    #[serde(
        rename = "hostIP",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_host_ip"
    )]
    pub host_ip: Option<Ipv4Addr>,
}

fn default_protocol() -> Protocol {
    Protocol::Tcp
}

// CNI runtimes send "hostIP": "" for "any".
fn de_host_ip<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Ipv4Addr>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s.as_deref() {
        None | Some("") | Some("0.0.0.0") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[serde(alias = "TCP")]
    Tcp,
    #[serde(alias = "UDP")]
    Udp,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

pub(crate) struct Nft<'a> {
    pub table: &'a str,
}

fn run_nft(args: &[&str], input: Option<&Value>, step: &'static str) -> Result<String> {
    let mut cmd = Command::new("nft");
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if input.is_some() {
        cmd.arg("-f").arg("-").stdin(Stdio::piped());
    } else {
        cmd.stdin(Stdio::null());
    }
    let mut child = cmd.spawn().map_err(|e| Error::Nft {
        step,
        detail: format!("cannot run nft: {e}"),
    })?;
    if let Some(v) = input {
        let data = v.to_string();
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(data.as_bytes()).map_err(|e| Error::Nft {
                step,
                detail: format!("writing to nft: {e}"),
            })?;
        }
    }
    let out = child.wait_with_output().map_err(|e| Error::Nft {
        step,
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(Error::Nft {
            step,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn prefix_match(field: &str, op: &str, net: Ipv4Net) -> Value {
    json!({"match": {"op": op, "left": {"payload": {"protocol": "ip", "field": field}},
        "right": {"prefix": {"addr": net.network().to_string(), "len": net.prefix}}}})
}

fn local_daddr() -> Value {
    json!({"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}})
}

fn dnatted() -> Value {
    json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}})
}

impl Nft<'_> {
    fn table(&self) -> Value {
        json!({"family": "ip", "name": self.table})
    }

    fn chain(&self, name: &str) -> Value {
        json!({"family": "ip", "table": self.table, "name": name})
    }

    fn rule(&self, chain: &str, expr: Vec<Value>, comment: Option<&str>) -> Value {
        let mut r = json!({"family": "ip", "table": self.table, "chain": chain, "expr": expr});
        if let Some(c) = comment {
            r["comment"] = json!(c);
        }
        json!({"add": {"rule": r}})
    }

    /// Creates the table and its base chains, replacing their static rules
    /// in one transaction (so concurrent callers converge, never duplicate).
    pub(crate) fn ensure(
        &self,
        bridge: &str,
        cluster: Ipv4Net,
        subnet: Ipv4Net,
        gateway: Ipv4Addr,
        ip_masq: bool,
    ) -> Result<()> {
        let base = |name: &str, kind: &str, hook: &str, prio: i32| {
            json!({"add": {"chain": {"family": "ip", "table": self.table, "name": name,
                "type": kind, "hook": hook, "prio": prio, "policy": "accept"}}})
        };
        let mut cmds = vec![
            json!({"add": {"table": self.table()}}),
            json!({"add": {"chain": self.chain("hostports")}}),
            base("prerouting", "nat", "prerouting", -100),
            base("output", "nat", "output", -100),
            base("postrouting", "nat", "postrouting", 100),
            base("raw", "filter", "prerouting", -300),
            base("input", "filter", "input", 0),
            json!({"flush": {"chain": self.chain("raw")}}),
            json!({"flush": {"chain": self.chain("input")}}),
            json!({"flush": {"chain": self.chain("prerouting")}}),
            json!({"flush": {"chain": self.chain("output")}}),
            json!({"flush": {"chain": self.chain("postrouting")}}),
        ];
        // Pod-to-pod traffic on the bridge needs no NAT: keep it out of
        // conntrack (it passes the ip hooks when br_netfilter is loaded).
        // Traffic to the gateway stays tracked: hairpin replies are un-NATed there.
        let gw = json!({"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": gateway.to_string()}});
        cmds.push(self.rule(
            "raw",
            vec![
                prefix_match("saddr", "==", subnet),
                prefix_match("daddr", "==", subnet),
                gw,
                json!({"notrack": null}),
            ],
            None,
        ));
        // route_localnet is on for the bridge (node → 127.0.0.1:hostPort):
        // never let a pod open connections to the node's loopback services
        // through it (CVE-2020-8558); only replies to the node's own get in.
        cmds.push(self.rule(
            "input",
            vec![
                json!({"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": bridge}}),
                prefix_match("daddr", "==", Ipv4Net { addr: Ipv4Addr::new(127, 0, 0, 0), prefix: 8 }),
                json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["new", "invalid", "untracked"]}}),
                json!({"drop": null}),
            ],
            None,
        ));
        let jump = json!({"jump": {"target": "hostports"}});
        cmds.push(self.rule("prerouting", vec![local_daddr(), jump.clone()], None));
        cmds.push(self.rule("output", vec![local_daddr(), jump], None));
        // hairpin: a pod reaching a hostPort that lands on the same bridge
        // must see replies come back through the node.
        cmds.push(self.rule(
            "postrouting",
            vec![
                prefix_match("saddr", "==", subnet),
                prefix_match("daddr", "==", subnet),
                dnatted(),
                json!({"masquerade": null}),
            ],
            None,
        ));
        // the node itself on 127.0.0.1:hostPort (route_localnet is on for the bridge)
        let lo: Ipv4Net = Ipv4Net {
            addr: Ipv4Addr::new(127, 0, 0, 0),
            prefix: 8,
        };
        cmds.push(self.rule(
            "postrouting",
            vec![
                prefix_match("saddr", "==", lo),
                dnatted(),
                json!({"masquerade": null}),
            ],
            None,
        ));
        if ip_masq {
            cmds.push(self.rule(
                "postrouting",
                vec![
                    prefix_match("saddr", "==", cluster),
                    prefix_match("daddr", "!=", cluster),
                    json!({"masquerade": null}),
                ],
                None,
            ));
        }
        run_nft(&["-j"], Some(&json!({"nftables": cmds})), "set up table")?;
        Ok(())
    }

    /// Adds the DNAT rules of one attachment, tagged with `owner`.
    pub(crate) fn add_ports(
        &self,
        owner: &str,
        pod_ip: Ipv4Addr,
        ports: &[PortMapping],
    ) -> Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        let mut cmds = Vec::new();
        for p in ports {
            let mut expr = Vec::new();
            if let Some(hip) = p.host_ip {
                expr.push(json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": hip.to_string()}}));
            }
            expr.push(json!({"match": {"op": "==", "left": {"payload": {"protocol": p.protocol.name(), "field": "dport"}}, "right": p.host_port}}));
            expr.push(json!({"dnat": {"addr": pod_ip.to_string(), "port": p.container_port}}));
            cmds.push(self.rule("hostports", expr, Some(owner)));
        }
        run_nft(&["-j"], Some(&json!({"nftables": cmds})), "add hostPorts")?;
        Ok(())
    }

    /// Handles and comments of the hostport rules; empty when the table is missing.
    pub(crate) fn port_rules(&self) -> Result<Vec<(u64, String)>> {
        if !self.exists()? {
            return Ok(Vec::new());
        }
        let out = run_nft(
            &["-j", "-a", "list", "chain", "ip", self.table, "hostports"],
            None,
            "list hostPorts",
        )?;
        let v: Value = serde_json::from_str(&out).map_err(|e| Error::Nft {
            step: "parse nft output",
            detail: e.to_string(),
        })?;
        let mut rules = Vec::new();
        for item in v["nftables"].as_array().into_iter().flatten() {
            if let Some(r) = item.get("rule") {
                if let (Some(h), Some(c)) = (r["handle"].as_u64(), r["comment"].as_str()) {
                    rules.push((h, c.to_string()));
                }
            }
        }
        Ok(rules)
    }

    /// Deletes the hostport rules whose comment satisfies `doomed`.
    pub(crate) fn remove_ports(&self, doomed: &dyn Fn(&str) -> bool) -> Result<usize> {
        let rules: Vec<_> = self
            .port_rules()?
            .into_iter()
            .filter(|(_, c)| doomed(c))
            .collect();
        if rules.is_empty() {
            return Ok(0);
        }
        let cmds: Vec<Value> = rules
            .iter()
            .map(|(h, _)| json!({"delete": {"rule": {"family": "ip", "table": self.table, "chain": "hostports", "handle": h}}}))
            .collect();
        run_nft(
            &["-j"],
            Some(&json!({"nftables": cmds})),
            "delete hostPorts",
        )?;
        Ok(rules.len())
    }

    pub(crate) fn exists(&self) -> Result<bool> {
        let out = run_nft(&["-j", "list", "tables", "ip"], None, "list tables")?;
        let v: Value = serde_json::from_str(&out).map_err(|e| Error::Nft {
            step: "parse nft output",
            detail: e.to_string(),
        })?;
        Ok(v["nftables"].as_array().into_iter().flatten().any(|i| {
            i["table"]["name"].as_str() == Some(self.table)
                && i["table"]["family"].as_str() == Some("ip")
        }))
    }

    /// Removes the whole table (every netplug rule); a missing table is fine.
    pub(crate) fn delete(&self) -> Result<()> {
        if self.exists()? {
            run_nft(
                &["-j"],
                Some(&json!({"nftables": [{"delete": {"table": self.table()}}]})),
                "delete table",
            )?;
        }
        Ok(())
    }
}
