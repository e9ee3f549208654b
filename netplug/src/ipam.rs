//! host-local style address management: one lease file per address (named
//! after it, holding its owner) and a lock file, so allocations from
//! separate processes never hand out one address twice.
use crate::cidr::Ipv4Net;
use crate::error::{Error, Result};
use crate::fsutil::{remove_if_exists, write_atomic, Durability, FileLock};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Who holds an address: the container (sandbox) id, its interface, and the
/// network namespace it lives in (a lease whose netns is gone is stale).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub id: String,
    pub ifname: String,
    pub netns: PathBuf,
}

pub struct Ipam {
    dir: PathBuf,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
}

const LOCK: &str = "lock";
const LAST: &str = "last_reserved_ip";

impl Ipam {
    pub fn new(dir: PathBuf, subnet: Ipv4Net, gateway: Ipv4Addr) -> Ipam {
        Ipam {
            dir,
            subnet: subnet.trunc(),
            gateway,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> Result<FileLock> {
        FileLock::acquire(&self.dir.join(LOCK))
    }

    /// Hands out an address to `owner`: the one it already holds, else the
    /// next free one after the last handed out (round robin, as host-local),
    /// reclaiming leases whose namespace no longer exists on the way.
    pub fn allocate(&self, owner: &Owner) -> Result<Ipv4Addr> {
        let _lock = self.lock()?;
        let leases = self.read_leases()?;
        if let Some((ip, _)) = leases
            .iter()
            .find(|(_, o)| o.id == owner.id && o.ifname == owner.ifname)
        {
            return Ok(*ip);
        }
        let first = 1u32;
        let last = (self.subnet.size() - 2) as u32;
        let count = last - first + 1;
        let start = std::fs::read_to_string(self.dir.join(LAST))
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .filter(|ip| self.subnet.contains(*ip))
            .map(|ip| u32::from(ip) - u32::from(self.subnet.network()))
            .filter(|n| (first..=last).contains(n))
            .unwrap_or(last);
        for step in 1..=count {
            let n = first + (start - first + step) % count;
            let Some(ip) = self.subnet.nth(n) else {
                continue;
            };
            if ip == self.gateway {
                continue;
            }
            let path = self.dir.join(ip.to_string());
            if path.exists() {
                match leases.iter().find(|(l, _)| *l == ip) {
                    Some((_, o)) if !o.netns.exists() => remove_if_exists(&path)?,
                    _ => continue,
                }
            }
            let mut f = match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create address lease", &path)(e)),
            };
            let data = serde_json::to_vec(owner).map_err(|e| Error::invalid("lease owner", e))?;
            // Not synced: a lease outlives its process under the lock, and
            // after a reboot every pod's netns is gone, so its leases are
            // reclaimed anyway (as host-local's files are not synced either).
            if let Err(e) = f.write_all(&data) {
                let _ = std::fs::remove_file(&path);
                return Err(Error::io("write address lease", &path)(e));
            }
            write_atomic(
                &self.dir.join(LAST),
                ip.to_string().as_bytes(),
                Durability::Volatile,
            )?;
            return Ok(ip);
        }
        Err(Error::Exhausted {
            subnet: self.subnet.to_string(),
            dir: self.dir.clone(),
        })
    }

    /// Releases what `id`/`ifname` holds; returns the freed addresses.
    pub fn release(&self, id: &str, ifname: &str) -> Result<Vec<Ipv4Addr>> {
        let _lock = self.lock()?;
        let mut freed = Vec::new();
        for (ip, o) in self.read_leases()? {
            if o.id == id && o.ifname == ifname {
                remove_if_exists(&self.dir.join(ip.to_string()))?;
                freed.push(ip);
            }
        }
        Ok(freed)
    }

    /// Every lease held, by address.
    pub fn leases(&self) -> Result<Vec<(Ipv4Addr, Owner)>> {
        let _lock = self.lock()?;
        self.read_leases()
    }

    /// True while at least one address is free (or reclaimable).
    pub fn has_free(&self) -> Result<bool> {
        let leases = self.leases()?;
        let live = leases.iter().filter(|(_, o)| o.netns.exists()).count() as u64;
        // network, broadcast and gateway are never handed out
        Ok(live + 3 < self.subnet.size())
    }

    fn read_leases(&self) -> Result<Vec<(Ipv4Addr, Owner)>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("list address leases", &self.dir)(e)),
        };
        for ent in rd {
            let ent = ent.map_err(Error::io("list address leases", &self.dir))?;
            let Some(ip) = ent
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let path = ent.path();
            let data = match std::fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("read address lease", &path)(e)),
            };
            // A lease we cannot parse still holds its address: never reuse it blindly.
            let owner = serde_json::from_slice(&data).unwrap_or(Owner {
                id: String::new(),
                ifname: String::new(),
                netns: PathBuf::from("/"),
            });
            out.push((ip, owner));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(tag: &str, subnet: &str) -> Ipam {
        let dir = std::env::temp_dir().join(format!("netplug-ipam-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let net: Ipv4Net = subnet.parse().unwrap();
        Ipam::new(dir, net, net.nth(1).unwrap())
    }

    fn owner(id: &str, ns: &str) -> Owner {
        Owner {
            id: id.into(),
            ifname: "eth0".into(),
            netns: ns.into(),
        }
    }

    #[test]
    fn allocates_round_robin_skips_gateway_and_is_idempotent() {
        let ipam = ipam("rr", "10.9.0.0/29");
        let a = ipam.allocate(&owner("a", "/")).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 9, 0, 2));
        assert_eq!(ipam.allocate(&owner("a", "/")).unwrap(), a);
        let b = ipam.allocate(&owner("b", "/")).unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 9, 0, 3));
        assert_eq!(ipam.release("a", "eth0").unwrap(), vec![a]);
        // round robin: the freed .2 is not reused before the range wraps
        assert_eq!(
            ipam.allocate(&owner("c", "/")).unwrap(),
            Ipv4Addr::new(10, 9, 0, 4)
        );
        std::fs::remove_dir_all(ipam.dir()).unwrap();
    }

    #[test]
    fn exhausts_then_reclaims_stale_leases() {
        let ipam = ipam("full", "10.9.0.0/30");
        // a /30 has one usable host besides the gateway
        ipam.allocate(&owner("a", "/nonexistent/netns/a")).unwrap();
        let live = ipam.allocate(&owner("b", "/"));
        assert_eq!(
            live.unwrap(),
            Ipv4Addr::new(10, 9, 0, 2),
            "stale lease of a reclaimed"
        );
        let err = ipam.allocate(&owner("c", "/")).unwrap_err();
        assert!(err.to_string().contains("no free address"), "{err}");
        std::fs::remove_dir_all(ipam.dir()).unwrap();
    }
}
