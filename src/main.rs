use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

use cli::images;

/// Run Kubernetes pods on this node: `krun pod.yaml`.
#[derive(Parser)]
#[command(name = "krun", version)]
struct Cli {
    /// State root (default: $KRUN_ROOT or /var/lib/krun)
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The node's pod network.
    Network(cli::network::NetworkArgs),
    /// Pull an image from a registry
    Pull(images::PullArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Manage images
    Image {
        #[command(subcommand)]
        cmd: images::ImageCmd,
    },
    /// Remove images
    Rmi(images::RmiArgs),
    /// Log in to a registry (saved in docker's config.json)
    Login(images::LoginArgs),
    /// Log out from a registry
    Logout(images::LogoutArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = images::krun_root(cli.root);
    let r = match cli.command {
        Some(Command::Network(args)) => cli::network::run(args),
        Some(Command::Pull(a)) => images::pull(&root, &a),
        Some(Command::Images(a)) => images::images(&root, &a),
        Some(Command::Image { cmd }) => images::image(&root, &cmd),
        Some(Command::Rmi(a)) => images::rmi(&root, &a),
        Some(Command::Login(a)) => images::login(&a),
        Some(Command::Logout(a)) => images::logout(&a),
        None => Ok(()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("krun: {}", images::one_line(&e));
            ExitCode::FAILURE
        }
    }
}
