use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

use cli::{images, pods};

/// Run Kubernetes pods on this node: `krun pod.yaml`.
#[derive(Parser)]
// Not `args_conflicts_with_subcommands`: with it, a global flag before the
// verb (`krun --root R pull …`) made clap take the verb for a manifest file.
#[command(
    name = "krun",
    version,
    override_usage = "krun [OPTIONS] FILE…\n       krun [OPTIONS] <COMMAND>"
)]
struct Cli {
    /// State root (default: $KRUN_ROOT or /var/lib/krun)
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// The namespace of the pods named on the command line
    #[arg(short = 'n', long, global = true, default_value = "default")]
    namespace: String,
    /// With manifest files: return once the pods are Running
    #[arg(short = 'd', long)]
    detach: bool,
    /// Manifest files to run in the foreground (Ctrl-C deletes the pods)
    files: Vec<PathBuf>,
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
    /// Run the pods of manifest files (in the foreground unless -d)
    Apply(pods::ApplyArgs),
    /// List pods
    Get(pods::GetArgs),
    /// Show a pod in detail, with its events
    Describe(pods::DescribeArgs),
    /// Print a container's logs
    Logs(pods::LogsArgs),
    /// Run a command in a running container
    Exec(pods::ExecArgs),
    /// Delete pods: stop signal, grace period, then everything removed
    Delete(pods::DeleteArgs),
    /// The node agent: run the static pods of a manifest directory and
    /// keep every pod's supervisor alive (foreground; see contrib/)
    Kubelet(cli::kubelet::KubeletArgs),
    #[command(flatten)]
    Hidden(pods::Hidden),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.is_some() && (cli.detach || !cli.files.is_empty()) {
        use clap::CommandFactory;
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "manifest files and -d go with `krun FILE…` or `krun apply`, not with another verb",
            )
            .exit();
    }
    let ns = cli.namespace.as_str();
    let flag_root = cli.root.clone();
    let root = images::krun_root(cli.root);
    let r = match cli.command {
        Some(Command::Hidden(pods::Hidden::Supervise { uid })) => pods::supervise(flag_root, &uid),
        Some(Command::Hidden(pods::Hidden::Pause)) => krun_kubelet::pause::main(),
        Some(Command::Apply(a)) => pods::apply(flag_root, ns, &a),
        Some(Command::Get(a)) => pods::get(flag_root, ns, &a),
        Some(Command::Describe(a)) => pods::describe(flag_root, ns, &a),
        Some(Command::Logs(a)) => pods::logs(flag_root, ns, &a),
        Some(Command::Exec(a)) => pods::exec(flag_root, ns, &a),
        Some(Command::Delete(a)) => pods::delete(flag_root, ns, &a),
        Some(Command::Kubelet(a)) => cli::kubelet::run(flag_root, &a),
        Some(Command::Network(args)) => cli::network::run(args),
        Some(Command::Pull(a)) => images::pull(&root, &a),
        Some(Command::Images(a)) => images::images(&root, &a),
        Some(Command::Image { cmd }) => images::image(&root, &cmd),
        Some(Command::Rmi(a)) => images::rmi(&root, &a),
        Some(Command::Login(a)) => images::login(&a),
        Some(Command::Logout(a)) => images::logout(&a),
        None if !cli.files.is_empty() => pods::apply(
            flag_root,
            ns,
            &pods::ApplyArgs {
                files: cli.files,
                detach: cli.detach,
            },
        ),
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            Ok(())
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("krun: {}", images::one_line(&e));
            ExitCode::FAILURE
        }
    }
}
