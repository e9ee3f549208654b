use clap::Parser;

/// An OCI container runtime with runc's command line.
#[derive(Parser)]
#[command(name = "krun-runtime", version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
