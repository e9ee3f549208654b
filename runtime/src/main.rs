//! krun-runtime: the OCI runtime binary, with runc's command line.
#![no_main]
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::os::fd::AsFd;

use krun_runtime::{create, exec, features, log, ops, sealed, state::State, tty};
use oci_spec::runtime::{LinuxCapabilities, LinuxResources, Process};

/// An OCI container runtime with runc's command line.
#[derive(Parser)]
#[command(name = "krun-runtime", version, about)]
struct Cli {
    /// Directory holding container state.
    #[arg(long, global = true, default_value = "/run/krun-runtime")]
    root: PathBuf,
    /// Write log messages (and errors) to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log debug messages.
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd for cgroups (not available: fails clearly without systemd).
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility; checkpointing is not supported.
    #[arg(long, global = true, hide = true)]
    criu: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Format {
    Table,
    Json,
}

#[derive(clap::Args)]
struct CreateArgs {
    /// Bundle directory (holds config.json).
    #[arg(long, short, default_value = ".")]
    bundle: PathBuf,
    /// Write the init's pid here.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is set.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Use chroot instead of pivot_root.
    #[arg(long)]
    no_pivot: bool,
    /// Pass this many extra fds (from 3) to the container.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    /// Accepted for runc compatibility (no session keyring is created).
    #[arg(long)]
    no_new_keyring: bool,
    id: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a container (it waits for `start`).
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Create and start a container, and wait for it.
    Run {
        #[command(flatten)]
        c: CreateArgs,
        /// Do not wait: return once the container runs.
        #[arg(long, short)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
        /// Accepted for runc compatibility.
        #[arg(long)]
        no_subreaper: bool,
    },
    /// Print the container's state (runtime-spec JSON).
    State { id: String },
    /// Send a signal to the container.
    Kill {
        /// Signal every process of the container.
        #[arg(long, short)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container.
    Delete {
        /// Kill it first if it runs.
        #[arg(long, short)]
        force: bool,
        id: String,
    },
    /// List containers.
    List {
        #[arg(long, short, value_enum, default_value = "table")]
        format: Format,
        #[arg(long, short)]
        quiet: bool,
    },
    /// Show the container's processes.
    Ps {
        #[arg(long, short, value_enum, default_value = "table")]
        format: Format,
        id: String,
        /// Arguments for ps(1).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Run a process in a running container.
    Exec {
        /// process.json to run.
        #[arg(long, short)]
        process: Option<PathBuf>,
        #[arg(long, short)]
        detach: bool,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        #[arg(long)]
        console_socket: Option<PathBuf>,
        #[arg(long, short)]
        tty: bool,
        #[arg(long)]
        cwd: Option<PathBuf>,
        #[arg(long, short)]
        env: Vec<String>,
        /// uid[:gid]
        #[arg(long, short)]
        user: Option<String>,
        #[arg(long = "additional-gids", short = 'g')]
        additional_gids: Vec<u32>,
        #[arg(long, short)]
        cap: Vec<String>,
        #[arg(long)]
        no_new_privs: bool,
        #[arg(long, default_value_t = 0)]
        preserve_fds: u32,
        /// Accepted for runc compatibility (no SELinux here).
        #[arg(long)]
        process_label: Option<String>,
        /// Accepted for runc compatibility (no AppArmor here).
        #[arg(long)]
        apparmor: Option<String>,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Freeze the container.
    Pause { id: String },
    /// Thaw the container.
    Resume { id: String },
    /// Change a running container's resources.
    Update {
        /// LinuxResources JSON file ("-" for stdin).
        #[arg(long, short)]
        resources: Option<String>,
        #[arg(long)]
        blkio_weight: Option<u16>,
        #[arg(long)]
        cpu_period: Option<u64>,
        #[arg(long)]
        cpu_quota: Option<i64>,
        #[arg(long)]
        cpu_rt_period: Option<u64>,
        #[arg(long)]
        cpu_rt_runtime: Option<i64>,
        #[arg(long)]
        cpu_share: Option<u64>,
        #[arg(long)]
        cpuset_cpus: Option<String>,
        #[arg(long)]
        cpuset_mems: Option<String>,
        #[arg(long)]
        memory: Option<String>,
        #[arg(long)]
        memory_reservation: Option<String>,
        #[arg(long)]
        memory_swap: Option<String>,
        #[arg(long)]
        pids_limit: Option<i64>,
        id: String,
    },
    /// Write a default config.json.
    Spec {
        #[arg(long, short, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Print the runtime's features (JSON).
    Features,
}

/// The C entry point, without std's runtime setup: that setup finds the main
/// thread's stack guard by parsing /proc/self/maps through glibc's stdio,
/// which costs every short-lived invocation time and resident memory. What
/// of it matters here is redone: SIGPIPE ignored (writes to a closed pipe
/// fail with EPIPE; the container's process gets SIGPIPE back at exec).
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: setting a signal disposition before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // Started through /proc/self/fd/N of a read-only bind mount (as the pod
    // supervisor does), the kernel names the process "N": give ps the name.
    // SAFETY: PR_SET_NAME copies at most 16 bytes from a C string.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"krun-runtime".as_ptr()) };
    real_main()
}

fn real_main() -> ! {
    let cli = Cli::parse();
    log::init(
        cli.log.clone(),
        matches!(cli.log_format, LogFormat::Json),
        cli.debug,
    );
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            log::error(&msg);
            eprintln!("krun-runtime: {msg}");
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<i32> {
    if cli.systemd_cgroup {
        bail!("--systemd-cgroup: systemd is not running on this host; use the cgroupfs driver (omit --systemd-cgroup)");
    }
    let root = cli.root.as_path();
    match cli.cmd {
        Cmd::Create(c) => {
            sealed::ensure()?;
            create::create(&create_opts(root, &c))?;
            Ok(0)
        }
        Cmd::Start { id } => {
            ops::start(root, &id)?;
            Ok(0)
        }
        Cmd::Run {
            c, detach, keep, ..
        } => {
            sealed::ensure()?;
            // A terminal without --console-socket: relay the pty ourselves, as runc does.
            // (A socketpair is cheaper than reading config.json twice.)
            let relay = if c.console_socket.is_none() && !detach {
                Some(tty::console_pair()?)
            } else {
                None
            };
            let mut opts = create_opts(root, &c);
            opts.console_fd = relay.as_ref().map(|(_, theirs)| theirs.as_fd());
            let st = create::create(&opts)?;
            let terminal = st
                .config
                .process()
                .as_ref()
                .and_then(|p| p.terminal())
                .unwrap_or(false);
            let master = match &relay {
                Some((ours, _)) if terminal => match tty::recv_master(ours) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        let _ = ops::delete(root, &c.id, true);
                        return Err(e.into());
                    }
                },
                _ => None,
            };
            drop(relay);
            if let Err(e) = ops::start_loaded(root, &st) {
                let _ = ops::delete(root, &c.id, true);
                return Err(e.into());
            }
            if detach {
                return Ok(0);
            }
            let code = match master {
                Some(m) => tty::relay(m, st.pid)?,
                None => ops::wait_forwarding(st.pid)?,
            };
            if !keep {
                ops::delete(root, &c.id, true)?;
            }
            Ok(code)
        }
        Cmd::State { id } => {
            let st = State::load(root, &id)?;
            println!("{}", serde_json::to_string_pretty(&st.oci_json(root))?);
            Ok(0)
        }
        Cmd::Kill { all, id, signal } => {
            ops::kill_container(root, &id, ops::parse_signal(&signal)?, all)?;
            Ok(0)
        }
        Cmd::Delete { force, id } => {
            ops::delete(root, &id, force)?;
            Ok(0)
        }
        Cmd::List { format, quiet } => {
            print!("{}", ops::list(root, format == Format::Json, quiet)?);
            Ok(0)
        }
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => {
            let out = ops::ps(root, &id, format == Format::Json, &ps_args)?;
            print!("{out}");
            if format == Format::Json {
                println!();
            }
            Ok(0)
        }
        Cmd::Exec {
            process,
            detach,
            pid_file,
            console_socket,
            tty,
            cwd,
            env,
            user,
            additional_gids,
            cap,
            no_new_privs,
            preserve_fds,
            id,
            command,
            ..
        } => {
            sealed::ensure()?;
            let st = State::load(root, &id)?;
            if process.is_some() && !command.is_empty() {
                bail!("exec: give either a command or --process, not both");
            }
            let mut p: Process = match &process {
                Some(path) => {
                    let data = read_arg_file(path)?;
                    serde_json::from_slice(&data)
                        .with_context(|| format!("parse process {}", path.display()))?
                }
                None => {
                    if command.is_empty() {
                        bail!("exec: give a command or --process");
                    }
                    let mut p = st
                        .config
                        .process()
                        .clone()
                        .ok_or_else(|| anyhow!("container has no process"))?;
                    p.set_args(Some(command));
                    p.set_terminal(Some(tty));
                    p
                }
            };
            if tty {
                p.set_terminal(Some(true));
            }
            if let Some(c) = cwd {
                p.set_cwd(c);
            }
            if !env.is_empty() {
                let mut e = p.env().clone().unwrap_or_default();
                for kv in env {
                    let key = kv.split('=').next().unwrap_or("").to_string();
                    e.retain(|x| x.split('=').next() != Some(key.as_str()));
                    e.push(kv);
                }
                p.set_env(Some(e));
            }
            if let Some(u) = user {
                let (uid, gid) = match u.split_once(':') {
                    Some((a, b)) => (a.parse::<u32>()?, Some(b.parse::<u32>()?)),
                    None => (
                        u.parse::<u32>()
                            .with_context(|| format!("--user {u}: want uid[:gid]"))?,
                        None,
                    ),
                };
                p.user_mut().set_uid(uid);
                if let Some(g) = gid {
                    p.user_mut().set_gid(g);
                }
            }
            if !additional_gids.is_empty() {
                p.user_mut().set_additional_gids(Some(additional_gids));
            }
            if !cap.is_empty() {
                add_caps(&mut p, &cap)?;
            }
            if no_new_privs {
                p.set_no_new_privileges(Some(true));
            }
            let code = exec::exec(exec::ExecOpts {
                root,
                id: &id,
                process: p,
                detach,
                pid_file: pid_file.as_deref(),
                console_socket: console_socket.as_deref(),
                preserve_fds,
            })?;
            Ok(code)
        }
        Cmd::Pause { id } => {
            ops::pause(root, &id, true)?;
            Ok(0)
        }
        Cmd::Resume { id } => {
            ops::pause(root, &id, false)?;
            Ok(0)
        }
        Cmd::Update {
            resources,
            blkio_weight,
            cpu_period,
            cpu_quota,
            cpu_rt_period,
            cpu_rt_runtime,
            cpu_share,
            cpuset_cpus,
            cpuset_mems,
            memory,
            memory_reservation,
            memory_swap,
            pids_limit,
            id,
        } => {
            let mut res: LinuxResources = match resources {
                Some(r) => {
                    let data = read_arg_file(Path::new(&r))?;
                    serde_json::from_slice(&data).with_context(|| format!("parse resources {r}"))?
                }
                None => LinuxResources::default(),
            };
            let mut cpu = res.cpu().clone().unwrap_or_default();
            let mut cpu_set = false;
            macro_rules! setc {
                ($v:expr, $m:ident) => {
                    if let Some(v) = $v {
                        cpu.$m(Some(v));
                        cpu_set = true;
                    }
                };
            }
            setc!(cpu_period, set_period);
            setc!(cpu_quota, set_quota);
            setc!(cpu_rt_period, set_realtime_period);
            setc!(cpu_rt_runtime, set_realtime_runtime);
            setc!(cpu_share, set_shares);
            setc!(cpuset_cpus, set_cpus);
            setc!(cpuset_mems, set_mems);
            if cpu_set {
                res.set_cpu(Some(cpu));
            }
            let mut mem = res.memory().unwrap_or_default();
            let mut mem_set = false;
            if let Some(m) = memory {
                mem.set_limit(Some(parse_size(&m)?));
                mem_set = true;
            }
            if let Some(m) = memory_reservation {
                mem.set_reservation(Some(parse_size(&m)?));
                mem_set = true;
            }
            if let Some(m) = memory_swap {
                mem.set_swap(Some(parse_size(&m)?));
                mem_set = true;
            }
            if mem_set {
                res.set_memory(Some(mem));
            }
            if let Some(p) = pids_limit {
                let mut pids = oci_spec::runtime::LinuxPids::default();
                pids.set_limit(p);
                res.set_pids(Some(pids));
            }
            if let Some(w) = blkio_weight {
                let mut b = res.block_io().clone().unwrap_or_default();
                b.set_weight(Some(w));
                res.set_block_io(Some(b));
            }
            ops::update(root, &id, &res)?;
            Ok(0)
        }
        Cmd::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} already exists", path.display());
            }
            let v = features::default_spec(rootless);
            std::fs::write(&path, serde_json::to_string_pretty(&v)?)
                .with_context(|| format!("write {}", path.display()))?;
            Ok(0)
        }
        Cmd::Features => {
            println!("{}", serde_json::to_string_pretty(&features::features())?);
            Ok(0)
        }
    }
}

fn create_opts<'a>(root: &'a Path, c: &'a CreateArgs) -> create::CreateOpts<'a> {
    create::CreateOpts {
        root,
        id: &c.id,
        bundle: &c.bundle,
        pid_file: c.pid_file.as_deref(),
        console_socket: c.console_socket.as_deref(),
        no_pivot: c.no_pivot,
        preserve_fds: c.preserve_fds,
        console_fd: None,
    }
}

fn read_arg_file(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v).context("read stdin")?;
        return Ok(v);
    }
    std::fs::read(path).with_context(|| format!("read {}", path.display()))
}

/// Adds capabilities (exec --cap) to every set but ambient.
fn add_caps(p: &mut Process, caps: &[String]) -> Result<()> {
    let mut c: LinuxCapabilities = p.capabilities().clone().unwrap_or_default();
    for name in caps {
        let cap: oci_spec::runtime::Capability =
            serde_json::from_value(serde_json::Value::String(name.clone()))
                .map_err(|_| anyhow!("--cap {name}: unknown capability"))?;
        for set in [
            c.bounding().clone(),
            c.effective().clone(),
            c.permitted().clone(),
            c.inheritable().clone(),
        ]
        .iter()
        .enumerate()
        {
            let mut s = set.1.clone().unwrap_or_default();
            s.insert(cap);
            match set.0 {
                0 => c.set_bounding(Some(s)),
                1 => c.set_effective(Some(s)),
                2 => c.set_permitted(Some(s)),
                _ => c.set_inheritable(Some(s)),
            };
        }
    }
    p.set_capabilities(Some(c));
    Ok(())
}

/// "512m", "1G", "1048576" → bytes; "-1" → unlimited.
fn parse_size(s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| anyhow!("invalid size {s:?}"))?;
    Ok((n * mult as f64) as i64)
}
