use clap::{Parser, Subcommand};

mod cli;

/// Run Kubernetes pods on this node: `krun pod.yaml`.
#[derive(Parser)]
#[command(name = "krun", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The node's pod network.
    Network(cli::network::NetworkArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Some(Command::Network(args)) => cli::network::run(args),
        None => Ok(()),
    }
}
