//! IPv4 networks written as `a.b.c.d/len`.
use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 address with a prefix length; `addr` may be a host inside the net.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self> {
        if prefix > 32 {
            return Err(Error::invalid(
                "prefix length",
                format!("{addr}/{prefix}: above 32"),
            ));
        }
        Ok(Ipv4Net { addr, prefix })
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The same net with host bits cleared.
    pub fn trunc(&self) -> Ipv4Net {
        Ipv4Net {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// True when `other` lies entirely inside this net.
    pub fn covers(&self, other: &Ipv4Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.network())
    }

    /// The n-th address of the net (0 is the network address).
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.prefix));
        (u64::from(n) < size).then(|| Ipv4Addr::from(u32::from(self.network()) + n))
    }

    /// Number of addresses in the net.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The `index`-th subnet of length `prefix` inside this net.
    pub fn subnet(&self, prefix: u8, index: u32) -> Option<Ipv4Net> {
        if prefix < self.prefix || prefix > 32 {
            return None;
        }
        let count = 1u64 << (prefix - self.prefix);
        if u64::from(index) >= count {
            return None;
        }
        let step = 1u64 << (32 - u32::from(prefix));
        let base = u64::from(u32::from(self.network())) + u64::from(index) * step;
        Some(Ipv4Net {
            addr: Ipv4Addr::from(base as u32),
            prefix,
        })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| Error::invalid("CIDR", format!("{s:?}: expected a.b.c.d/len")))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| Error::invalid("CIDR", format!("{s:?}: {a:?} is not an IPv4 address")))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| Error::invalid("CIDR", format!("{s:?}: {p:?} is not a prefix length")))?;
        Ipv4Net::new(addr, prefix)
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_computes() {
        let n: Ipv4Net = "10.244.3.7/16".parse().unwrap();
        assert_eq!(n.network(), Ipv4Addr::new(10, 244, 0, 0));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 244, 255, 255));
        assert!(n.contains(Ipv4Addr::new(10, 244, 9, 1)));
        assert!(!n.contains(Ipv4Addr::new(10, 245, 0, 1)));
        assert_eq!(n.subnet(24, 1).unwrap().to_string(), "10.244.1.0/24");
        assert!(n.subnet(24, 256).is_none());
        assert!(n.covers(&"10.244.1.0/24".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.0.0/8".parse::<Ipv4Net>().is_err());
    }
}
