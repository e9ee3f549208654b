//! The node network: cluster CIDR, this node's subnet, bridge, MTU, NAT
//! table, and where its files live. Stored as JSON under the config dir and
//! published as a flannel-style subnet.env.
use crate::cidr::Ipv4Net;
use crate::error::{Error, Result};
use crate::fsutil::{write_atomic, Durability};
use crate::lease::{LocalFileLease, SubnetLease};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub const DEFAULT_BRIDGE: &str = "krun0";
pub const DEFAULT_NFT_TABLE: &str = "krun";
pub const DEFAULT_MTU: u32 = 1500;
pub const CONFIG_FILE: &str = "netplug.json";
pub const SUBNET_ENV_FILE: &str = "subnet.env";

/// Where netplug keeps its files. Every root is configurable so tests run
/// isolated from the host's real network and from each other.
#[derive(Clone, Debug)]
pub struct Paths {
    /// Configuration: netplug.json, subnet.env, node subnet leases (/etc/krun).
    pub config_dir: PathBuf,
    /// State: address leases, attachments, CNI result cache (/var/lib/krun/netplug).
    pub state_dir: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            config_dir: PathBuf::from("/etc/krun"),
            state_dir: PathBuf::from("/var/lib/krun/netplug"),
        }
    }
}

impl Paths {
    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join(CONFIG_FILE)
    }
    pub fn subnet_env(&self) -> PathBuf {
        self.config_dir.join(SUBNET_ENV_FILE)
    }
    pub fn subnet_leases(&self) -> PathBuf {
        self.config_dir.join("subnets")
    }
    pub fn ipam_dir(&self) -> PathBuf {
        self.state_dir.join("ipam")
    }
    pub fn attachments_dir(&self) -> PathBuf {
        self.state_dir.join("attachments")
    }
    pub fn node_lock(&self) -> PathBuf {
        self.state_dir.join("node.lock")
    }
}

/// The node network's settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkConfig {
    pub cluster_cidr: Ipv4Net,
    pub subnet: Ipv4Net,
    pub bridge: String,
    pub mtu: u32,
    /// Masquerade pod traffic leaving the cluster CIDR.
    pub ip_masq: bool,
    /// nftables table (family ip) holding all of netplug's rules.
    pub nft_table: String,
}

impl NetworkConfig {
    /// The defaults with this node's subnet taken from `lease`.
    pub fn with_lease(node: &str, lease: &dyn SubnetLease) -> Result<NetworkConfig> {
        let mut cfg = NetworkConfig::defaults();
        cfg.subnet = lease.acquire(node, cfg.cluster_cidr, 24)?;
        Ok(cfg)
    }

    /// The defaults: cluster 10.244.0.0/16, its first /24, bridge krun0.
    pub fn defaults() -> NetworkConfig {
        let cluster = Ipv4Net {
            addr: std::net::Ipv4Addr::new(10, 244, 0, 0),
            prefix: 16,
        };
        NetworkConfig {
            cluster_cidr: cluster,
            subnet: Ipv4Net {
                addr: cluster.addr,
                prefix: 24,
            },
            bridge: DEFAULT_BRIDGE.into(),
            mtu: DEFAULT_MTU,
            ip_masq: true,
            nft_table: DEFAULT_NFT_TABLE.into(),
        }
    }

    /// Reads the config file; None when there is none.
    pub fn load(paths: &Paths) -> Result<Option<NetworkConfig>> {
        let path = paths.config_file();
        match std::fs::read(&path) {
            Ok(data) => {
                let cfg: NetworkConfig = serde_json::from_slice(&data).map_err(|e| {
                    Error::invalid("network config", format!("{}: {e}", path.display()))
                })?;
                cfg.validate()?;
                Ok(Some(cfg))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read network config", path)(e)),
        }
    }

    /// Reads the config file, or creates it from defaults (subnet leased
    /// from the local-file lease store) when there is none.
    pub fn load_or_init(paths: &Paths) -> Result<NetworkConfig> {
        if let Some(cfg) = NetworkConfig::load(paths)? {
            return Ok(cfg);
        }
        let lease = LocalFileLease::new(paths.subnet_leases());
        let cfg = NetworkConfig::with_lease(&node_name(), &lease)?;
        cfg.save(paths)?;
        Ok(cfg)
    }

    pub fn save(&self, paths: &Paths) -> Result<()> {
        self.validate()?;
        let mut data =
            serde_json::to_vec_pretty(self).map_err(|e| Error::invalid("network config", e))?;
        data.push(b'\n');
        write_atomic(&paths.config_file(), &data, Durability::Durable)?;
        self.publish_subnet_env(&paths.subnet_env())
    }

    /// Writes FLANNEL_NETWORK/SUBNET/MTU/IPMASQ as flanneld does, so other
    /// nodes and tools can read this node's lease.
    pub fn publish_subnet_env(&self, path: &Path) -> Result<()> {
        let text = format!(
            "FLANNEL_NETWORK={}\nFLANNEL_SUBNET={}/{}\nFLANNEL_MTU={}\nFLANNEL_IPMASQ={}\n",
            self.cluster_cidr.trunc(),
            self.gateway(),
            self.subnet.prefix,
            self.mtu,
            self.ip_masq
        );
        write_atomic(path, text.as_bytes(), Durability::Durable)
    }

    /// The bridge's address and every pod's default gateway: the subnet's .1.
    pub fn gateway(&self) -> Ipv4Addr {
        self.subnet.nth(1).unwrap_or(self.subnet.addr)
    }

    pub fn validate(&self) -> Result<()> {
        if !self.cluster_cidr.covers(&self.subnet) {
            return Err(Error::invalid(
                "network config",
                format!(
                    "subnet {} is not inside cluster CIDR {}",
                    self.subnet, self.cluster_cidr
                ),
            ));
        }
        if self.subnet.prefix > 30 {
            return Err(Error::invalid(
                "network config",
                format!("subnet {} is smaller than a /30", self.subnet),
            ));
        }
        validate_ifname("bridge", &self.bridge)?;
        if self.nft_table.is_empty()
            || self.nft_table.len() > 64
            || !self
                .nft_table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::invalid(
                "nft table name",
                format!("{:?}: use 1-64 of [A-Za-z0-9_-]", self.nft_table),
            ));
        }
        if !(576..=65535).contains(&self.mtu) {
            return Err(Error::invalid(
                "MTU",
                format!("{} is outside 576..65535", self.mtu),
            ));
        }
        Ok(())
    }
}

/// Interface names: 1-15 bytes, no '/', whitespace or ':'.
pub fn validate_ifname(what: &'static str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(Error::invalid(
            what,
            format!("{name:?}: an interface name is 1-15 of [A-Za-z0-9_.-]"),
        ));
    }
    Ok(())
}

pub(crate) fn node_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NetworkConfig {
        NetworkConfig {
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            subnet: "10.244.0.0/24".parse().unwrap(),
            bridge: "krun0".into(),
            mtu: 1500,
            ip_masq: true,
            nft_table: "krun".into(),
        }
    }

    #[test]
    fn validates() {
        assert!(cfg().validate().is_ok());
        let mut c = cfg();
        c.subnet = "10.245.0.0/24".parse().unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("not inside cluster CIDR"));
        let mut c = cfg();
        c.bridge = "a/b".into();
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.nft_table = "x;flush ruleset".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn publishes_subnet_env_and_round_trips() {
        let dir = std::env::temp_dir().join(format!("netplug-cfg-{}", std::process::id()));
        let paths = Paths {
            config_dir: dir.join("etc"),
            state_dir: dir.join("state"),
        };
        cfg().save(&paths).unwrap();
        let env = std::fs::read_to_string(paths.subnet_env()).unwrap();
        assert_eq!(
            env,
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.0.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n"
        );
        assert_eq!(NetworkConfig::load_or_init(&paths).unwrap(), cfg());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn init_takes_first_subnet_from_lease() {
        let dir = std::env::temp_dir().join(format!("netplug-init-{}", std::process::id()));
        let paths = Paths {
            config_dir: dir.join("etc"),
            state_dir: dir.join("state"),
        };
        let c = NetworkConfig::load_or_init(&paths).unwrap();
        assert_eq!(c.subnet.to_string(), "10.244.0.0/24");
        assert!(paths.config_file().exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
