//! `krun network …`: the node's pod network (krun-netplug).
use anyhow::Context;
use clap::{Args, Subcommand};
use krun_netplug::Paths;
use std::path::PathBuf;

#[derive(Args)]
pub struct NetworkArgs {
    /// Network configuration directory (netplug.json, subnet.env).
    #[arg(long, global = true, default_value = "/etc/krun")]
    config_dir: PathBuf,
    /// Network state directory (address leases, attachments).
    #[arg(long, global = true, default_value = "/var/lib/krun/netplug")]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: NetworkCommand,
}

#[derive(Subcommand)]
enum NetworkCommand {
    /// Bring the node network up (or back in shape): config and subnet.env,
    /// the bridge, forwarding, the nftables table and, where an iptables
    /// filter table exists (dockerd's FORWARD policy DROP), krun's forward
    /// accepts. Idempotent.
    Setup,
    /// Remove everything netplug created on this node: pod veths, the
    /// bridge, the nftables table, krun's iptables forward chains, address
    /// leases, config and subnet.env.
    Reset,
}

pub fn run(args: NetworkArgs) -> anyhow::Result<()> {
    let paths = Paths {
        config_dir: args.config_dir,
        state_dir: args.state_dir,
    };
    match args.command {
        NetworkCommand::Setup => {
            let net = krun_netplug::Network::load(paths).context("network setup")?;
            net.setup().context("network setup")?;
            println!(
                "network up: bridge {}, subnet {}, nft table ip {}",
                net.cfg.bridge, net.cfg.subnet, net.cfg.nft_table
            );
            Ok(())
        }
        NetworkCommand::Reset => {
            let removed = krun_netplug::reset_node(&paths).context("network reset")?;
            if removed.is_empty() {
                println!("network reset: nothing to remove");
            }
            for r in removed {
                println!("removed {r}");
            }
            Ok(())
        }
    }
}
