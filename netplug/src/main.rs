use clap::Parser;

/// krun's bridge network as a CNI plugin (driven through CNI_* variables).
#[derive(Parser)]
#[command(name = "krun-cni", version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
