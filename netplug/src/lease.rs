//! Node subnet leases: which slice of the cluster CIDR this node owns.
//! Behind a trait so a shared store (etcd, as flannel uses) can replace the
//! local files when there are several nodes.
use crate::cidr::Ipv4Net;
use crate::error::{Error, Result};
use crate::fsutil::FileLock;
use std::io::Write;
use std::path::PathBuf;

pub trait SubnetLease {
    /// This node's subnet of length `prefix` inside `cluster`; leases one
    /// when the node has none.
    fn acquire(&self, node: &str, cluster: Ipv4Net, prefix: u8) -> Result<Ipv4Net>;
    /// Gives the node's subnet back.
    fn release(&self, node: &str) -> Result<()>;
}

/// One file per leased subnet (named `a.b.c.d-len`, holding the node name)
/// in a directory, guarded by a lock file.
pub struct LocalFileLease {
    dir: PathBuf,
}

impl LocalFileLease {
    pub fn new(dir: PathBuf) -> Self {
        LocalFileLease { dir }
    }

    fn entries(&self) -> Result<Vec<(PathBuf, String)>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("list subnet leases", &self.dir)(e)),
        };
        for ent in rd {
            let ent = ent.map_err(Error::io("list subnet leases", &self.dir))?;
            let path = ent.path();
            if ent.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let owner =
                std::fs::read_to_string(&path).map_err(Error::io("read subnet lease", &path))?;
            out.push((path, owner.trim().to_string()));
        }
        Ok(out)
    }
}

impl SubnetLease for LocalFileLease {
    fn acquire(&self, node: &str, cluster: Ipv4Net, prefix: u8) -> Result<Ipv4Net> {
        let _lock = FileLock::acquire(&self.dir.join(".lock"))?;
        for (path, owner) in self.entries()? {
            if owner == node {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().replace('-', "/"))
                    .unwrap_or_default();
                let net: Ipv4Net = name.parse()?;
                if cluster.covers(&net) && net.prefix == prefix {
                    return Ok(net);
                }
            }
        }
        let mut i = 0;
        while let Some(net) = cluster.subnet(prefix, i) {
            let path = self.dir.join(format!("{}-{}", net.network(), net.prefix));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(format!("{node}\n").as_bytes())
                        .map_err(Error::io("write subnet lease", &path))?;
                    return Ok(net);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => i += 1,
                Err(e) => return Err(Error::io("create subnet lease", &path)(e)),
            }
        }
        Err(Error::Exhausted {
            subnet: cluster.to_string(),
            dir: self.dir.clone(),
        })
    }

    fn release(&self, node: &str) -> Result<()> {
        let _lock = FileLock::acquire(&self.dir.join(".lock"))?;
        for (path, owner) in self.entries()? {
            if owner == node {
                crate::fsutil::remove_if_exists(&path)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_distinct_subnets_and_keep_them() {
        let dir = std::env::temp_dir().join(format!("netplug-lease-{}", std::process::id()));
        let lease = LocalFileLease::new(dir.clone());
        let cluster: Ipv4Net = "10.244.0.0/16".parse().unwrap();
        let a = lease.acquire("a", cluster, 24).unwrap();
        let b = lease.acquire("b", cluster, 24).unwrap();
        assert_eq!(a.to_string(), "10.244.0.0/24");
        assert_eq!(b.to_string(), "10.244.1.0/24");
        assert_eq!(lease.acquire("a", cluster, 24).unwrap(), a);
        lease.release("a").unwrap();
        assert_eq!(lease.acquire("c", cluster, 24).unwrap(), a);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
