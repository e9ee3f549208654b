//! Where a node keeps its pods, and what every part of the kubelet needs
//! to reach them: the state roots, the OCI runtime, the pod network.
//!
//! Every root is configurable (flags, then `KRUN_*` variables) so tests
//! run isolated from the node's real pods and from each other.

use std::path::{Path, PathBuf};

use krun_netplug::{Network, NetworkConfig};

use crate::oci_runtime::OciRuntime;

/// The state roots of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePaths {
    /// Durable state: images, pods' desired specs and writable layers
    /// (`/var/lib/krun`, `KRUN_ROOT`).
    pub root: PathBuf,
    /// Volatile state: sandboxes, supervisors, runtime state
    /// (`/run/krun`, `KRUN_RUN_ROOT`).
    pub run_root: PathBuf,
    /// Container logs (`/var/log/pods`, `KRUN_LOG_ROOT`).
    pub log_root: PathBuf,
    /// Configuration: netplug.json, registries.toml (`/etc/krun`,
    /// `KRUN_CONFIG_DIR`).
    pub config_dir: PathBuf,
}

impl NodePaths {
    /// The flag's root, else `KRUN_ROOT`; the others from their variables
    /// or the node defaults.
    pub fn from_env(root: Option<PathBuf>) -> NodePaths {
        let var = |name: &str, default: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        NodePaths {
            root: root.unwrap_or_else(|| var("KRUN_ROOT", "/var/lib/krun")),
            run_root: var("KRUN_RUN_ROOT", "/run/krun"),
            log_root: var("KRUN_LOG_ROOT", crate::logs::DEFAULT_ROOT),
            config_dir: var("KRUN_CONFIG_DIR", "/etc/krun"),
        }
    }

    /// `<root>/pods`: one directory per pod UID.
    pub fn pods_dir(&self) -> PathBuf {
        self.root.join("pods")
    }

    /// `<run root>/pods`: the sandboxes (see [`crate::sandbox`]).
    /// Localhost seccomp profiles (the kubelet's `<root-dir>/seccomp`).
    pub fn seccomp_dir(&self) -> PathBuf {
        self.root.join("seccomp")
    }
    pub fn sandbox_root(&self) -> PathBuf {
        self.run_root.join("pods")
    }

    /// `<run root>/supervisors`: one directory per running supervisor.
    pub fn supervisors_dir(&self) -> PathBuf {
        self.run_root.join("supervisors")
    }

    /// krun-runtime's `--root`.
    pub fn runtime_root(&self) -> PathBuf {
        self.run_root.join("runtime")
    }

    pub fn netplug(&self) -> krun_netplug::Paths {
        krun_netplug::Paths {
            config_dir: self.config_dir.clone(),
            state_dir: self.root.join("netplug"),
        }
    }
}

/// The OCI runtime binary: `KRUN_RUNTIME`, else `krun-runtime` beside the
/// running executable, else from PATH.
pub fn runtime_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("KRUN_RUNTIME").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("krun-runtime")));
    match beside {
        Some(p) if p.is_file() => p,
        _ => PathBuf::from("krun-runtime"),
    }
}

/// The node's name: `KRUN_NODE_NAME`, else the host name.
pub fn node_name() -> String {
    if let Some(n) = std::env::var("KRUN_NODE_NAME")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return n;
    }
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.to_lowercase())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The node as the supervisor and the pod verbs see it.
#[derive(Debug, Clone)]
pub struct Node {
    pub paths: NodePaths,
    pub name: String,
    pub runtime: OciRuntime,
}

impl Node {
    pub fn new(paths: NodePaths) -> Node {
        let runtime = OciRuntime::new(runtime_binary(), paths.runtime_root());
        Node {
            name: node_name(),
            runtime,
            paths,
        }
    }

    /// The pod network, its config created from defaults on first use.
    pub fn network(&self) -> krun_netplug::Result<Network> {
        let paths = self.paths.netplug();
        let cfg = NetworkConfig::load_or_init(&paths)?;
        Network::new(cfg, paths)
    }

    /// The node's address as pods see it (status.hostIP): the bridge gateway.
    pub fn host_ip(network: &Network) -> String {
        network.cfg.gateway().to_string()
    }
}

/// Creates `dir` and its parents with mode 0700 for the last component.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
