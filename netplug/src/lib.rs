//! krun-netplug: a flannel-like bridge network for pods (bridge, veth,
//! host-local IPAM, masquerade, hostPorts), also usable as a CNI plugin.
//!
//! Links, addresses and routes go through rtnetlink; NAT and hostPorts
//! through `nft -j` in a table of netplug's own. The API is synchronous:
//! async callers run it on a blocking thread.
pub mod cidr;
pub mod cni;
pub mod config;
pub mod error;
mod firewall;
mod fsutil;
pub mod ipam;
pub mod lease;
pub mod network;
mod nfnl;
mod nft;
mod nl;

pub use cidr::Ipv4Net;
pub use config::{NetworkConfig, Paths};
pub use error::{Error, Result};
pub use lease::{LocalFileLease, SubnetLease};
pub use network::{reset_node, AttachRequest, Attachment, Network, Reserved, RouteSpec};
pub use nft::{PortMapping, Protocol};
