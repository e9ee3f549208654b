//! The node network and pod attachments: bridge, veth pairs, addresses,
//! routes, NAT and hostPorts, and the records that let detach, check and gc
//! undo exactly what attach did.
use crate::cidr::Ipv4Net;
use crate::config::{validate_ifname, NetworkConfig, Paths};
use crate::error::{Error, Result};
use crate::firewall::Forward;
use crate::fsutil::{remove_if_exists, write_atomic, Durability, FileLock};
use crate::ipam::{Ipam, Owner};
use crate::nft::{Nft, PortMapping};
use crate::nl::{format_mac, open_netns, Netlink};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// A route to install in the pod: `dst` via `gw` (the bridge gateway when None).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    pub dst: Ipv4Net,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<Ipv4Addr>,
}

impl RouteSpec {
    pub fn default_route() -> RouteSpec {
        RouteSpec {
            dst: Ipv4Net {
                addr: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
            },
            gw: None,
        }
    }
}

/// What to attach: a sandbox (its id and network namespace path).
#[derive(Clone, Debug)]
pub struct AttachRequest {
    pub id: String,
    pub netns: PathBuf,
    pub ifname: String,
    pub port_mappings: Vec<PortMapping>,
    pub routes: Vec<RouteSpec>,
}

impl AttachRequest {
    /// A pod interface `eth0` with a default route via the bridge.
    pub fn pod(id: &str, netns: &Path) -> AttachRequest {
        AttachRequest {
            id: id.into(),
            netns: netns.into(),
            ifname: "eth0".into(),
            port_mappings: Vec::new(),
            routes: vec![RouteSpec::default_route()],
        }
    }
}

/// An address held for a sandbox, not yet wired ([`Network::reserve`]).
#[derive(Debug)]
pub struct Reserved {
    req: AttachRequest,
    ns: std::fs::File,
    ip: Ipv4Addr,
}

impl Reserved {
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }
}

/// What attach made, recorded so detach/check/gc can find it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub id: String,
    pub ifname: String,
    pub netns: PathBuf,
    pub bridge: String,
    pub bridge_mac: String,
    pub host_veth: String,
    pub host_mac: String,
    pub pod_mac: String,
    pub address: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
    pub routes: Vec<RouteSpec>,
    pub port_mappings: Vec<PortMapping>,
}

fn owner_tag(id: &str, ifname: &str) -> String {
    format!("{id}/{ifname}")
}

/// Container ids as CNI defines them: letters, digits, `_ . -`.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 253
        || id.starts_with('.')
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(Error::invalid(
            "container id",
            format!("{id:?}: use 1-253 of [A-Za-z0-9_.-], not starting with '.'"),
        ));
    }
    Ok(())
}

/// Stable host-side veth name for an attachment (FNV-1a of id/ifname).
fn host_veth_name(id: &str, ifname: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in owner_tag(id, ifname).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("kv{:012x}", h & 0xffff_ffff_ffff)
}

fn write_sysctl(path: &str, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(Error::io("write sysctl", path))
}

#[derive(Clone, Debug)]
pub struct Network {
    pub cfg: NetworkConfig,
    pub paths: Paths,
}

impl Network {
    pub fn new(cfg: NetworkConfig, paths: Paths) -> Result<Network> {
        cfg.validate()?;
        Ok(Network { cfg, paths })
    }

    /// The node network from the config file under `paths` (created with
    /// defaults when missing).
    pub fn load(paths: Paths) -> Result<Network> {
        let cfg = NetworkConfig::load_or_init(&paths)?;
        Ok(Network { cfg, paths })
    }

    fn nft(&self) -> Nft<'_> {
        Nft {
            table: &self.cfg.nft_table,
        }
    }

    fn forward(&self) -> Forward<'_> {
        Forward {
            bridge: &self.cfg.bridge,
            subnet: self.cfg.subnet,
            cluster: self.cfg.cluster_cidr,
            table: &self.cfg.nft_table,
        }
    }

    pub fn ipam(&self) -> Ipam {
        Ipam::new(self.paths.ipam_dir(), self.cfg.subnet, self.cfg.gateway())
    }

    fn record_path(&self, id: &str, ifname: &str) -> PathBuf {
        self.paths
            .attachments_dir()
            .join(format!("{id}_{ifname}.json"))
    }

    /// Brings the node network up: config and subnet.env published, bridge
    /// with the gateway address, forwarding, the NAT table, and forward
    /// accepts in iptables filter tables that exist (dockerd's FORWARD
    /// policy DROP would drop pod traffic otherwise). Idempotent.
    pub fn setup(&self) -> Result<()> {
        self.ensure_node(true)
    }

    /// `force` rewrites the nft table even when the ready-marker says it is
    /// in place (attach skips that `nft` run unless the bridge was missing,
    /// as after a reboot, or the settings changed).
    fn ensure_node(&self, force: bool) -> Result<()> {
        let _lock = FileLock::acquire(&self.paths.node_lock())?;
        if !self.paths.config_file().exists() || !self.paths.subnet_env().exists() {
            self.cfg.save(&self.paths)?;
        }
        let nl = Netlink::current()?;
        let (br, created) = nl.ensure_bridge(&self.cfg.bridge, self.cfg.mtu, self.cfg.gateway())?;
        nl.add_address(
            br,
            self.cfg.gateway(),
            self.cfg.subnet.prefix,
            &self.cfg.bridge,
        )?;
        write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        write_sysctl(
            &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", self.cfg.bridge),
            "1",
        )?;
        let marker = self.paths.state_dir.join("nft-ready");
        let want = format!(
            // bump the leading version whenever ensure's rules change
            "v3 {} {} {} {} {} iptables: {}\n",
            self.cfg.nft_table,
            self.cfg.bridge,
            self.cfg.cluster_cidr,
            self.cfg.subnet,
            self.cfg.ip_masq,
            // a filter table appearing later (dockerd started after
            // krun) changes the marker: the next attach adds krun's chain
            crate::firewall::in_use_now()
        );
        if force || created || std::fs::read_to_string(&marker).ok().as_deref() != Some(&want) {
            self.nft().ensure(
                &self.cfg.bridge,
                self.cfg.cluster_cidr,
                self.cfg.subnet,
                self.cfg.gateway(),
                self.cfg.ip_masq,
            )?;
            self.forward().ensure()?;
            // a cache, not a record: losing it only costs one more nft run
            std::fs::write(&marker, &want).map_err(Error::io("write nft marker", &marker))?;
        }
        Ok(())
    }

    /// Attaches a sandbox; on failure everything made so far is undone.
    pub fn attach(&self, req: &AttachRequest) -> Result<Attachment> {
        let r = self.reserve(req)?;
        self.wire(r)
    }

    /// The first half of [`Network::attach`]: the checks, the node network
    /// and the sandbox's address. A caller that needs the address early
    /// (a pod's /etc/hosts and env) can do other work while [`Network::wire`]
    /// runs. A reservation dropped unwired keeps its lease until
    /// [`Network::detach`] releases it.
    pub fn reserve(&self, req: &AttachRequest) -> Result<Reserved> {
        validate_id(&req.id)?;
        validate_ifname("interface name", &req.ifname)?;
        let record = self.record_path(&req.id, &req.ifname);
        if record.exists() {
            return Err(Error::invalid(
                "attach",
                format!(
                    "{} / {} is already attached (record {})",
                    req.id,
                    req.ifname,
                    record.display()
                ),
            ));
        }
        self.ensure_node(false)?;
        let ns = open_netns(&req.netns)?;
        let owner = Owner {
            id: req.id.clone(),
            ifname: req.ifname.clone(),
            netns: req.netns.clone(),
        };
        let ip = self.ipam().allocate(&owner)?;
        Ok(Reserved {
            req: req.clone(),
            ns,
            ip,
        })
    }

    /// The second half of [`Network::attach`]: the veth pair, the address
    /// and routes in the sandbox, hostPorts and the record. On failure
    /// everything made so far, the lease included, is undone.
    pub fn wire(&self, r: Reserved) -> Result<Attachment> {
        let Reserved { req, ns, ip } = r;
        let host_veth = host_veth_name(&req.id, &req.ifname);
        let res = self.attach_links(&req, &ns, ip, &host_veth);
        if res.is_err() {
            let _ = self
                .nft()
                .remove_ports(&|c| c == owner_tag(&req.id, &req.ifname));
            if let Ok(nl) = Netlink::current() {
                if let Ok(Some(l)) = nl.link(&host_veth) {
                    let _ = nl.delete_link(l.index, &host_veth);
                }
            }
            let _ = self.ipam().release(&req.id, &req.ifname);
            let _ = remove_if_exists(&self.record_path(&req.id, &req.ifname));
        }
        res
    }

    fn attach_links(
        &self,
        req: &AttachRequest,
        ns: &std::fs::File,
        ip: Ipv4Addr,
        host_veth: &str,
    ) -> Result<Attachment> {
        let nl = Netlink::current()?;
        let bridge = nl.link(&self.cfg.bridge)?.ok_or_else(|| Error::NotFound {
            what: "bridge",
            name: self.cfg.bridge.clone(),
        })?;
        if let Some(stale) = nl.link(host_veth)? {
            // left by a crash between veth creation and the record
            nl.delete_link(stale.index, host_veth)?;
        }
        nl.create_veth(host_veth, &req.ifname, ns, self.cfg.mtu)?;
        let host = nl.link(host_veth)?.ok_or_else(|| Error::NotFound {
            what: "veth",
            name: host_veth.into(),
        })?;
        nl.attach_to_bridge(host.index, bridge.index, host_veth)?;

        let gw = self.cfg.gateway();
        let pod = Netlink::in_netns(ns)?;
        if let Some(lo) = pod.link("lo")? {
            pod.set_up(lo.index, "lo")?;
        }
        let eth = pod.link(&req.ifname)?.ok_or_else(|| Error::NotFound {
            what: "pod interface",
            name: req.ifname.clone(),
        })?;
        pod.add_address(eth.index, ip, self.cfg.subnet.prefix, &req.ifname)?;
        pod.set_up(eth.index, &req.ifname)?;
        for r in &req.routes {
            let dst = (r.dst.prefix > 0).then(|| (r.dst.network(), r.dst.prefix));
            pod.add_route(dst, Some(r.gw.unwrap_or(gw)), eth.index)?;
        }
        let tag = owner_tag(&req.id, &req.ifname);
        self.nft().add_ports(&tag, ip, &req.port_mappings)?;
        let att = Attachment {
            id: req.id.clone(),
            ifname: req.ifname.clone(),
            netns: req.netns.clone(),
            bridge: self.cfg.bridge.clone(),
            bridge_mac: bridge.mac.as_ref().map(format_mac).unwrap_or_default(),
            host_veth: host_veth.into(),
            host_mac: host.mac.as_ref().map(format_mac).unwrap_or_default(),
            pod_mac: eth.mac.as_ref().map(format_mac).unwrap_or_default(),
            address: Ipv4Net {
                addr: ip,
                prefix: self.cfg.subnet.prefix,
            },
            gateway: gw,
            mtu: self.cfg.mtu,
            routes: req.routes.clone(),
            port_mappings: req.port_mappings.clone(),
        };
        let data =
            serde_json::to_vec_pretty(&att).map_err(|e| Error::invalid("attachment record", e))?;
        write_atomic(
            &self.record_path(&req.id, &req.ifname),
            &data,
            Durability::Volatile,
        )?;
        Ok(att)
    }

    /// The record of an attachment, if there is one.
    pub fn attachment(&self, id: &str, ifname: &str) -> Result<Option<Attachment>> {
        validate_id(id)?;
        validate_ifname("interface name", ifname)?;
        let path = self.record_path(id, ifname);
        match std::fs::read(&path) {
            Ok(d) => serde_json::from_slice(&d).map(Some).map_err(|e| {
                Error::invalid("attachment record", format!("{}: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read attachment record", path)(e)),
        }
    }

    /// Every attachment record on the node.
    pub fn attachments(&self) -> Result<Vec<Attachment>> {
        let dir = self.paths.attachments_dir();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list attachments", dir)(e)),
        };
        let mut out = Vec::new();
        for ent in rd {
            let path = ent.map_err(Error::io("list attachments", &dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let data = std::fs::read(&path).map_err(Error::io("read attachment record", &path))?;
            let att = serde_json::from_slice(&data).map_err(|e| {
                Error::invalid("attachment record", format!("{}: {e}", path.display()))
            })?;
            out.push(att);
        }
        Ok(out)
    }

    /// Undoes an attachment. Idempotent: detaching what is not (or no
    /// longer fully) there succeeds. `netns` is used when no record exists.
    pub fn detach(&self, id: &str, ifname: &str, netns: Option<&Path>) -> Result<()> {
        let record = self.attachment(id, ifname)?;
        let tag = owner_tag(id, ifname);
        if record.as_ref().is_none_or(|a| !a.port_mappings.is_empty()) {
            self.nft().remove_ports(&|c| c == tag)?;
        }
        let nl = Netlink::current()?;
        let host_veth = record
            .as_ref()
            .map(|a| a.host_veth.clone())
            .unwrap_or_else(|| host_veth_name(id, ifname));
        if let Some(l) = nl.link(&host_veth)? {
            nl.delete_link(l.index, &host_veth)?;
        } else if let Some(ns_path) = record.as_ref().map(|a| a.netns.as_path()).or(netns) {
            // the pair may have been renamed or moved: remove it from inside
            if let Ok(ns) = open_netns(ns_path) {
                let pod = Netlink::in_netns(&ns)?;
                if let Some(l) = pod.link(ifname)? {
                    if l.kind.as_deref() == Some("veth") {
                        pod.delete_link(l.index, ifname)?;
                    }
                }
            }
        }
        self.ipam().release(id, ifname)?;
        remove_if_exists(&self.record_path(id, ifname))
    }

    /// Verifies an attachment is still as attach left it.
    pub fn check(&self, id: &str, ifname: &str) -> Result<Attachment> {
        let att = self
            .attachment(id, ifname)?
            .ok_or_else(|| Error::NotFound {
                what: "attachment",
                name: owner_tag(id, ifname),
            })?;
        let nl = Netlink::current()?;
        let bridge = nl.link(&att.bridge)?.ok_or_else(|| Error::NotFound {
            what: "bridge",
            name: att.bridge.clone(),
        })?;
        let host = nl.link(&att.host_veth)?.ok_or_else(|| Error::NotFound {
            what: "host veth",
            name: att.host_veth.clone(),
        })?;
        if host.controller != Some(bridge.index) {
            return Err(Error::invalid(
                "attachment",
                format!("{} is not a port of {}", att.host_veth, att.bridge),
            ));
        }
        let ns = open_netns(&att.netns)?;
        let pod = Netlink::in_netns(&ns)?;
        let eth = pod.link(ifname)?.ok_or_else(|| Error::NotFound {
            what: "pod interface",
            name: ifname.into(),
        })?;
        if !eth.up {
            return Err(Error::invalid(
                "attachment",
                format!("{ifname} in {} is down", att.netns.display()),
            ));
        }
        let addrs = pod.addresses(eth.index)?;
        if !addrs.contains(&(att.address.addr, att.address.prefix)) {
            return Err(Error::invalid(
                "attachment",
                format!("{ifname} lacks address {}", att.address),
            ));
        }
        if !att.port_mappings.is_empty() {
            let tag = owner_tag(id, ifname);
            let have = self
                .nft()
                .port_rules()?
                .iter()
                .filter(|(_, c)| *c == tag)
                .count();
            if have != att.port_mappings.len() {
                return Err(Error::invalid(
                    "attachment",
                    format!(
                        "{have} of {} hostPort rules in nft table {}",
                        att.port_mappings.len(),
                        self.cfg.nft_table
                    ),
                ));
            }
        }
        self.forward().verify()?;
        let routes = pod.routes()?;
        for r in &att.routes {
            let dst = (r.dst.prefix > 0).then(|| (r.dst.network(), r.dst.prefix));
            let gw = r.gw.unwrap_or(att.gateway);
            if !routes
                .iter()
                .any(|x| x.dst == dst && x.gateway == Some(gw) && x.oif == Some(eth.index))
            {
                return Err(Error::invalid(
                    "attachment",
                    format!("route {} via {gw} is missing in the pod", r.dst),
                ));
            }
        }
        Ok(att)
    }

    /// Removes every attachment, lease and hostPort not in `keep`
    /// (id, ifname), and leases whose namespace is gone.
    pub fn gc(&self, keep: &[(String, String)]) -> Result<usize> {
        let kept = |id: &str, ifname: &str| keep.iter().any(|(i, f)| i == id && f == ifname);
        let mut removed = 0;
        for att in self.attachments()? {
            if !kept(&att.id, &att.ifname) {
                self.detach(&att.id, &att.ifname, None)?;
                removed += 1;
            }
        }
        let ipam = self.ipam();
        for (_, o) in ipam.leases()? {
            if !kept(&o.id, &o.ifname) || !o.netns.exists() {
                ipam.release(&o.id, &o.ifname)?;
                removed += 1;
            }
        }
        removed += self.nft().remove_ports(&|c| {
            let (id, ifname) = c.rsplit_once('/').unwrap_or((c, ""));
            !kept(id, ifname)
        })?;
        Ok(removed)
    }

    /// Removes everything netplug made on this node: pod veths on the
    /// bridge, the bridge, the nft table, leases, records, config and
    /// subnet.env. Returns what was removed, one line each.
    pub fn reset(&self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let _lock = FileLock::acquire(&self.paths.node_lock())?;
        let nl = Netlink::current()?;
        for att in self.attachments()? {
            if let Some(l) = nl.link(&att.host_veth)? {
                nl.delete_link(l.index, &att.host_veth)?;
                removed.push(format!("veth {} ({})", att.host_veth, att.id));
            }
        }
        if let Some(br) = nl.link(&self.cfg.bridge)? {
            for l in nl.links()? {
                if l.controller == Some(br.index) && l.kind.as_deref() == Some("veth") {
                    nl.delete_link(l.index, &l.name)?;
                    removed.push(format!("veth {}", l.name));
                }
            }
            nl.delete_link(br.index, &self.cfg.bridge)?;
            removed.push(format!("bridge {}", self.cfg.bridge));
        }
        if self.nft().exists()? {
            self.nft().delete()?;
            removed.push(format!("nft table ip {}", self.cfg.nft_table));
        }
        removed.extend(self.forward().remove()?);
        for dir in [
            self.paths.ipam_dir(),
            self.paths.attachments_dir(),
            self.paths.state_dir.join("cni"),
        ] {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => removed.push(format!("state {}", dir.display())),
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io("remove state", dir)(e));
                }
                _ => {}
            }
        }
        let lease = crate::lease::LocalFileLease::new(self.paths.subnet_leases());
        crate::lease::SubnetLease::release(&lease, &crate::config::node_name())?;
        for f in [self.paths.subnet_env(), self.paths.config_file()] {
            if f.exists() {
                remove_if_exists(&f)?;
                removed.push(format!("file {}", f.display()));
            }
        }
        remove_if_exists(&self.paths.state_dir.join("nft-ready"))?;
        remove_if_exists(&self.paths.node_lock())?;
        Ok(removed)
    }
}

/// `krun network reset`: resets the network described by the config under
/// `paths`. Without a config file the default network (krun0, table krun)
/// is assumed only for the default config dir, so a reset pointed at some
/// other, empty directory never touches the node's real network.
pub fn reset_node(paths: &Paths) -> Result<Vec<String>> {
    let cfg = match NetworkConfig::load(paths)? {
        Some(cfg) => cfg,
        None if paths.config_dir == Paths::default().config_dir => NetworkConfig::defaults(),
        None => {
            let mut removed = Vec::new();
            for dir in [
                paths.ipam_dir(),
                paths.attachments_dir(),
                paths.state_dir.join("cni"),
            ] {
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(Error::io("remove state", &dir))?;
                    removed.push(format!("state {}", dir.display()));
                }
            }
            return Ok(removed);
        }
    };
    Network::new(cfg, paths.clone())?.reset()
}
