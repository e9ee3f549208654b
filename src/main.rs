use clap::Parser;

/// Run Kubernetes pods on this node: `krun pod.yaml`.
#[derive(Parser)]
#[command(name = "krun", version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
