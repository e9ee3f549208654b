//! `krun kubelet`: the node agent. Parsing only; the work is in
//! krun_kubelet::agent.
use anyhow::{bail, Context, Result};
use clap::Args;
use krun_kubelet::node::NodePaths;
use std::path::PathBuf;

#[derive(Args)]
pub struct KubeletArgs {
    /// The static-pod directory: each manifest in it runs as pods named
    /// <name>-<node> (like the kubelet's --pod-manifest-path)
    #[arg(long, value_name = "DIR")]
    pub manifests: PathBuf,
    /// The node's name (default: $KRUN_NODE_NAME, else the host name)
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
}

/// `krun kubelet --manifests DIR [--node-name NAME]`.
pub fn run(root: Option<PathBuf>, a: &KubeletArgs) -> Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("the node agent needs root (namespaces, mounts, cgroups and the pod network)");
    }
    krun_kubelet::agent::run(krun_kubelet::agent::Config {
        manifests: a.manifests.clone(),
        node_name: a.node_name.clone(),
        paths: NodePaths::from_env(root),
    })
    .context("krun kubelet")
}
