//! rtnetlink driven synchronously: one current-thread runtime per handle,
//! optionally with its socket opened inside another network namespace.
use crate::error::{Error, Result};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkMessage,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

pub(crate) struct Netlink {
    rt: tokio::runtime::Runtime,
    h: rtnetlink::Handle,
}

/// What a link looks like, as far as netplug cares.
#[derive(Clone, Debug)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    pub up: bool,
    pub controller: Option<u32>,
    pub kind: Option<String>,
}

/// An IPv4 route: destination (None = default), gateway, output link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route4 {
    pub dst: Option<(Ipv4Addr, u8)>,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
}

fn errno(e: &rtnetlink::Error) -> i32 {
    match e {
        rtnetlink::Error::NetlinkError(m) => -m.raw_code(),
        _ => 0,
    }
}

pub(crate) fn open_netns(path: &Path) -> Result<File> {
    std::fs::File::open(path).map_err(Error::io("open network namespace", path))
}

impl Netlink {
    /// A handle in the caller's network namespace.
    pub(crate) fn current() -> Result<Netlink> {
        Self::open(None)
    }

    /// A handle whose socket lives in the namespace `ns` (the socket keeps
    /// its namespace; only a short-lived thread ever enters it).
    pub(crate) fn in_netns(ns: &File) -> Result<Netlink> {
        Self::open(Some(ns))
    }

    fn open(ns: Option<&File>) -> Result<Netlink> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(Error::io("start netlink runtime", "/proc/self"))?;
        let handle = rt.handle().clone();
        let connect = move || {
            let _g = handle.enter();
            rtnetlink::new_connection()
        };
        let conn = match ns {
            None => connect(),
            Some(ns) => std::thread::scope(|s| {
                s.spawn(|| {
                    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(std::io::Error::from)?;
                    connect()
                })
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("netns thread panicked")))
            }),
        };
        let (conn, h, _) = conn.map_err(Error::io("open netlink socket", "netlink"))?;
        rt.spawn(conn);
        Ok(Netlink { rt, h })
    }

    pub(crate) fn link(&self, name: &str) -> Result<Option<LinkInfo>> {
        self.rt.block_on(async {
            let mut s = self.h.link().get().match_name(name.to_string()).execute();
            match s.try_next().await {
                Ok(m) => Ok(m.map(|m| link_info(&m))),
                Err(e) if errno(&e) == libc::ENODEV => Ok(None),
                Err(e) => Err(Error::netlink("get link", name)(e)),
            }
        })
    }

    pub(crate) fn links(&self) -> Result<Vec<LinkInfo>> {
        self.rt.block_on(async {
            let msgs: Vec<LinkMessage> = self
                .h
                .link()
                .get()
                .execute()
                .try_collect()
                .await
                .map_err(Error::netlink("list links", "all"))?;
            Ok(msgs.iter().map(link_info).collect())
        })
    }

    /// Creates the bridge when missing (a concurrent creator is fine) and
    /// brings it up; returns its index.
    /// The bridge gets a fixed MAC (0a:58 + gateway address) so it does not
    /// change as ports come and go.
    /// Returns the bridge's index and whether this call created it.
    pub(crate) fn ensure_bridge(
        &self,
        name: &str,
        mtu: u32,
        gateway: Ipv4Addr,
    ) -> Result<(u32, bool)> {
        if let Some(l) = self.link(name)? {
            if l.kind.as_deref() != Some("bridge") {
                return Err(Error::invalid(
                    "bridge",
                    format!("{name} exists and is not a bridge"),
                ));
            }
            if !l.up {
                self.set_up(l.index, name)?;
            }
            return Ok((l.index, false));
        }
        let o = gateway.octets();
        let mac = vec![0x0a, 0x58, o[0], o[1], o[2], o[3]];
        let msg = LinkBridge::new(name).mtu(mtu).address(mac).build();
        let res = self.rt.block_on(self.h.link().add(msg).execute());
        match res {
            Err(e) if errno(&e) != libc::EEXIST => {
                return Err(Error::netlink("create bridge", name)(e))
            }
            _ => {}
        }
        let l = self.link(name)?.ok_or_else(|| Error::NotFound {
            what: "bridge",
            name: name.into(),
        })?;
        self.set_up(l.index, name)?;
        Ok((l.index, true))
    }

    pub(crate) fn set_up(&self, index: u32, name: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.rt
            .block_on(self.h.link().set(msg).execute())
            .map_err(Error::netlink("set link up", name))
    }

    /// Adds an address; one already present is fine.
    pub(crate) fn add_address(
        &self,
        index: u32,
        ip: Ipv4Addr,
        prefix: u8,
        what: &str,
    ) -> Result<()> {
        match self.rt.block_on(
            self.h
                .address()
                .add(index, IpAddr::V4(ip), prefix)
                .execute(),
        ) {
            Err(e) if errno(&e) != libc::EEXIST => Err(Error::netlink(
                "add address",
                format!("{ip}/{prefix} on {what}"),
            )(e)),
            _ => Ok(()),
        }
    }

    pub(crate) fn addresses(&self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>> {
        self.rt.block_on(async {
            let msgs: Vec<_> = self
                .h
                .address()
                .get()
                .set_link_index_filter(index)
                .execute()
                .try_collect()
                .await
                .map_err(Error::netlink("list addresses", index))?;
            let mut out = Vec::new();
            for m in msgs {
                for a in &m.attributes {
                    if let AddressAttribute::Address(IpAddr::V4(ip)) = a {
                        out.push((*ip, m.header.prefix_len));
                    }
                }
            }
            Ok(out)
        })
    }

    /// Creates a veth pair whose peer is born inside `peer_ns` under
    /// `peer_name`, so no temporary name ever shows in the host namespace.
    pub(crate) fn create_veth(
        &self,
        host: &str,
        peer_name: &str,
        peer_ns: &File,
        mtu: u32,
    ) -> Result<()> {
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer_name.to_string())
            .mtu(mtu)
            .setns_by_fd(peer_ns.as_raw_fd())
            .build();
        let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(host.to_string())
            .mtu(mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.rt
            .block_on(self.h.link().add(msg).execute())
            .map_err(Error::netlink(
                "create veth pair",
                format!("{host} / {peer_name}"),
            ))
    }

    /// Enslaves a link to the bridge, turns hairpin on and brings it up.
    pub(crate) fn attach_to_bridge(&self, index: u32, bridge: u32, name: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).controller(bridge).build();
        self.rt
            .block_on(self.h.link().set(msg).execute())
            .map_err(Error::netlink("attach to bridge", name))?;
        let port = LinkBridgePort::new(index).hairpin(true).build();
        self.rt
            .block_on(self.h.link().set_port(port).execute())
            .map_err(Error::netlink("set hairpin", name))?;
        self.set_up(index, name)
    }

    pub(crate) fn delete_link(&self, index: u32, name: &str) -> Result<()> {
        match self.rt.block_on(self.h.link().del(index).execute()) {
            Err(e) if errno(&e) != libc::ENODEV => Err(Error::netlink("delete link", name)(e)),
            _ => Ok(()),
        }
    }

    pub(crate) fn add_route(
        &self,
        dst: Option<(Ipv4Addr, u8)>,
        gw: Option<Ipv4Addr>,
        oif: u32,
    ) -> Result<()> {
        // proto boot, as iproute2 and the reference CNI plugins install routes
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
            .output_interface(oif)
            .protocol(RouteProtocol::Boot);
        let (d, len) = dst.unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
        b = b.destination_prefix(d, len);
        if let Some(gw) = gw {
            b = b.gateway(gw);
        }
        match self.rt.block_on(self.h.route().add(b.build()).execute()) {
            Err(e) if errno(&e) != libc::EEXIST => {
                Err(Error::netlink("add route", format!("{d}/{len} via {gw:?}"))(e))
            }
            _ => Ok(()),
        }
    }

    /// IPv4 routes of the main table.
    pub(crate) fn routes(&self) -> Result<Vec<Route4>> {
        self.rt.block_on(async {
            let req = RouteMessageBuilder::<Ipv4Addr>::new().build();
            let msgs: Vec<RouteMessage> = self
                .h
                .route()
                .get(req)
                .execute()
                .try_collect()
                .await
                .map_err(Error::netlink("list routes", "ipv4"))?;
            Ok(msgs
                .iter()
                .filter(|m| m.header.table == 254)
                .map(|m| {
                    let mut r = Route4 {
                        dst: None,
                        gateway: None,
                        oif: None,
                    };
                    for a in &m.attributes {
                        match a {
                            RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                                r.dst = Some((*ip, m.header.destination_prefix_length))
                            }
                            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => {
                                r.gateway = Some(*ip)
                            }
                            RouteAttribute::Oif(i) => r.oif = Some(*i),
                            _ => {}
                        }
                    }
                    r
                })
                .collect())
        })
    }
}

fn link_info(m: &LinkMessage) -> LinkInfo {
    let mut l = LinkInfo {
        index: m.header.index,
        name: String::new(),
        mac: None,
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
        controller: None,
        kind: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Mtu(v) => l.mtu = *v,
            LinkAttribute::Controller(c) => l.controller = Some(*c),
            LinkAttribute::Address(a) if a.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(a);
                l.mac = Some(mac);
            }
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let rtnetlink::packet_route::link::LinkInfo::Kind(k) = i {
                        l.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    l
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
