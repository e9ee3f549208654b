//! The cgroup hierarchies mounted on this host, read from mountinfo once.
use std::path::{Path, PathBuf};

/// Where the runtime looks for cgroup hierarchies.
pub const ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone)]
pub struct Hier {
    pub mountpoint: PathBuf,
    /// A cgroup2 mount (the unified hierarchy).
    pub v2: bool,
    /// v1: the controllers, plus `name=…` for named hierarchies.
    pub subsys: Vec<String>,
    /// Root of the mount within the hierarchy (4th mountinfo field).
    pub mroot: String,
}

impl Hier {
    /// True when this v1 hierarchy carries `controller`.
    pub fn has(&self, controller: &str) -> bool {
        self.subsys.iter().any(|s| s == controller)
    }
}

/// True when `path` is a cgroup2 mount.
pub fn is_cgroup2(path: &str) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Every cgroup and cgroup2 mount in this mount namespace, in mount order.
/// Read once per process (and inherited by the forked init): mountinfo is
/// costly to generate on a host with many mounts, and the runtime is short-lived.
pub fn all() -> &'static [Hier] {
    static ALL: std::sync::OnceLock<Vec<Hier>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
    })
}

fn parse_mountinfo(data: &str) -> Vec<Hier> {
    let mut out = Vec::new();
    for line in data.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let v2 = post[0] == "cgroup2";
        if post[0] != "cgroup" && !v2 {
            continue;
        }
        let subsys = if v2 {
            Vec::new()
        } else {
            post[2]
                .split(',')
                .filter(|o| {
                    !matches!(
                        *o,
                        "rw" | "ro" | "xattr" | "noprefix" | "clone_children" | "cpuset_v2_mode"
                    ) && (!o.contains('=') || o.starts_with("name="))
                })
                .map(str::to_string)
                .collect()
        };
        out.push(Hier {
            mountpoint: PathBuf::from(pre[4]),
            v2,
            subsys,
            mroot: pre[3].to_string(),
        });
    }
    out
}

/// The hierarchies a container joins: every v1 hierarchy mounted under
/// /sys/fs/cgroup (once each), and the v2 one (/sys/fs/cgroup itself on a
/// pure v2 host, /sys/fs/cgroup/unified on a hybrid one).
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub v1: Vec<Hier>,
    pub v2: Option<PathBuf>,
    /// /sys/fs/cgroup is a cgroup2 mount.
    pub pure_v2: bool,
}

impl Layout {
    /// Reads the layout of this host (a statfs on pure v2, mountinfo otherwise).
    pub fn host() -> Layout {
        if is_cgroup2(ROOT) {
            return Layout {
                v1: Vec::new(),
                v2: Some(PathBuf::from(ROOT)),
                pure_v2: true,
            };
        }
        Self::from_hiers(all())
    }

    fn from_hiers(hs: &[Hier]) -> Layout {
        let mut l = Layout::default();
        for h in hs
            .iter()
            .filter(|h| h.mountpoint.starts_with(ROOT) && h.mountpoint != Path::new(ROOT))
        {
            if h.v2 {
                if l.v2.is_none() {
                    l.v2 = Some(h.mountpoint.clone());
                }
            } else if !h.subsys.is_empty() && !l.v1.iter().any(|o| o.subsys == h.subsys) {
                l.v1.push(h.clone());
            }
        }
        l
    }

    /// The v1 hierarchy carrying `controller`.
    pub fn v1_with(&self, controller: &str) -> Option<&Hier> {
        self.v1.iter().find(|h| h.has(controller))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
31 23 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:28 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 31 0:30 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
36 31 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
37 31 0:32 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
90 22 0:29 / /tmp/elsewhere rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn hybrid_layout() {
        let l = Layout::from_hiers(&parse_mountinfo(HYBRID));
        let names: Vec<String> = l.v1.iter().map(|h| h.subsys.join(",")).collect();
        assert_eq!(
            names,
            [
                "cpu",
                "cpuacct",
                "memory",
                "name=systemd",
                "net_cls,net_prio"
            ]
        );
        assert_eq!(l.v2.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        assert!(!l.pure_v2);
        assert!(l.v1_with("net_prio").is_some());
        assert!(l.v1_with("hugetlb").is_none());
    }
}
