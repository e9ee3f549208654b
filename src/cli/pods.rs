//! Pod verbs: `krun FILE`, apply, get, describe, logs, exec, delete, and
//! the hidden `supervise`. Parsing and printing only; the work is in
//! krun_kubelet::pods.
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use jiff::Timestamp;
use krun_kubelet::logs::ReadOptions;
use krun_kubelet::node::{Node, NodePaths};
use krun_kubelet::pods::{self, Applied, Manifests};
use krun_kubelet::podstate::{self, KnownPod};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Args)]
pub struct ApplyArgs {
    /// Manifest files (YAML or JSON, several documents each)
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Return once the pods are Running (or print why they cannot start)
    #[arg(short = 'd', long)]
    pub detach: bool,
}

#[derive(Args)]
pub struct GetArgs {
    /// What to list: pods (pod, po)
    pub resource: String,
    /// Only these pods
    pub names: Vec<String>,
    /// Output format: wide, yaml or json
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Pods of every namespace
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

#[derive(Args)]
pub struct DescribeArgs {
    /// pod (pods, po)
    pub resource: String,
    pub name: String,
}

#[derive(Args)]
pub struct LogsArgs {
    pub pod: String,
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep printing new lines until the container exits
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The previous run of the container
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only the last N lines
    #[arg(long)]
    pub tail: Option<i64>,
    /// Prefix each line with its RFC3339 timestamp
    #[arg(long)]
    pub timestamps: bool,
}

#[derive(Args)]
pub struct ExecArgs {
    /// Pass stdin to the process
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Allocate a terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    pub pod: String,
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// The command (after --)
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct DeleteArgs {
    /// Delete the pods of these manifest files
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// `pod NAME…`
    pub what: Vec<String>,
    /// Seconds to wait between the stop signal and SIGKILL (default: the
    /// pod's terminationGracePeriodSeconds)
    #[arg(long)]
    pub grace_period: Option<i64>,
}

#[derive(Subcommand)]
pub enum Hidden {
    /// The supervisor of one pod (started by krun itself).
    #[command(hide = true)]
    Supervise { uid: String },
    /// PID 1 of a pod's shared PID namespace (started by the supervisor).
    #[command(hide = true)]
    Pause,
}

/// How long `-d` waits for a pod at most (pulls included).
const READY_TIMEOUT: Duration = Duration::from_secs(600);

fn node(root: Option<PathBuf>) -> Node {
    Node::new(NodePaths::from_env(root))
}

fn require_root() -> Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("pods need root (namespaces, mounts, cgroups and the pod network)");
    }
    Ok(())
}

/// `krun supervise UID`.
pub fn supervise(root: Option<PathBuf>, uid: &str) -> Result<()> {
    krun_kubelet::supervisor::run(NodePaths::from_env(root), uid)
        .with_context(|| format!("supervisor of pod {uid}"))
}

/// `krun FILE…` and `krun apply -f FILE… [-d]`.
pub fn apply(root: Option<PathBuf>, namespace: &str, a: &ApplyArgs) -> Result<()> {
    let m = pods::load(&a.files)?;
    if m.pods.is_empty() {
        bail!("{}: no pods in the manifests", a.files[0].display());
    }
    require_root()?;
    let node = node(root);
    let _ = namespace; // pods carry their own (defaulted) namespace
    if !a.detach {
        pre_pull(&node, &m)?;
    }
    let applied = pods::apply(&node, &m)?;
    let mut failed = false;
    let mut launched = Vec::new();
    for ap in applied {
        match ap {
            Applied::Unchanged(k) => println!("pod/{} unchanged", k.name()),
            Applied::Created(mut l) => {
                if a.detach {
                    match l.wait_ready(READY_TIMEOUT) {
                        Ok(r) if r.ok => println!("pod/{} created ({})", l.name, r.message),
                        Ok(r) => {
                            failed = true;
                            eprintln!(
                                "krun: pod/{} created but not running: {}",
                                l.name, r.message
                            );
                        }
                        Err(e) => {
                            failed = true;
                            eprintln!("krun: pod/{}: {e}", l.name);
                        }
                    }
                } else {
                    println!("pod/{} created", l.name);
                    launched.push(l);
                }
            }
        }
    }
    if !a.detach {
        return foreground(&node, launched);
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// Pulls the manifests' images first, with progress, so a foreground run
/// shows it and a missing image is refused before anything starts.
fn pre_pull(node: &Node, m: &Manifests) -> Result<()> {
    let store = krun_images::Store::under(&node.paths.root)?;
    for u in pods::image_uses(m) {
        use krun_images::PullPolicy;
        let present = store.find(&u.image).ok().flatten().is_some();
        match u.policy {
            PullPolicy::Never if !present => {
                return Err(u
                    .error(format!(
                        "image \"{}\" is not present with pull policy of Never",
                        u.image
                    ))
                    .into())
            }
            PullPolicy::IfNotPresent | PullPolicy::Never if present => continue,
            _ => {}
        }
        if let Err(e) = super::images::pull_for_pod(&store, &u.image) {
            return Err(u.error(super::images::one_line(&e)).into());
        }
    }
    Ok(())
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Streams the pods' logs, each line prefixed with its container's name,
/// until the pods have completed or Ctrl-C, which deletes them.
fn foreground(node: &Node, launched: Vec<pods::Launched>) -> Result<()> {
    let handler = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    let many = launched.len() > 1;
    let mut followers: Vec<(String, pods::PodLogs)> = launched
        .iter()
        .filter_map(|l| {
            let k = podstate::find(&node.paths, &l.namespace, &l.name).ok()??;
            Some((
                l.name.clone(),
                pods::PodLogs::new(&k.desired.pod, l.dirs.clone()),
            ))
        })
        .collect();
    let mut out = std::io::stdout();
    loop {
        print_logs(&mut followers, many, &mut out);
        if INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        // None: the pod is gone (deleted elsewhere); Some(phase) else
        let states: Vec<Option<String>> = launched
            .iter()
            .map(|l| {
                podstate::find(&node.paths, &l.namespace, &l.name)
                    .ok()
                    .flatten()
                    .map(|k| {
                        k.current()
                            .status
                            .and_then(|s| s.phase)
                            .unwrap_or_else(|| "Pending".into())
                    })
            })
            .collect();
        if states
            .iter()
            .all(|p| matches!(p.as_deref(), Some("Succeeded" | "Failed") | None))
        {
            let code = i32::from(states.iter().any(|p| p.as_deref() != Some("Succeeded")));
            for (l, p) in launched.iter().zip(&states) {
                eprintln!("pod/{} {}", l.name, p.as_deref().unwrap_or("deleted"));
            }
            return exit_with(code);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!();
    // Delete on a thread while the logs go on: the last lines (a SIGTERM
    // trap's) come out as they are written.
    let done = AtomicBool::new(false);
    let deleted = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut reports = Vec::new();
            for l in &launched {
                eprintln!("deleting pod/{}", l.name);
                let r = podstate::find(&node.paths, &l.namespace, &l.name)
                    .map_err(anyhow::Error::from)
                    .and_then(|k| match k {
                        Some(k) => Ok(Some((pods::delete(node, &k, None)?, k))),
                        None => Ok(None),
                    });
                reports.push(r);
            }
            done.store(true, Ordering::SeqCst);
            reports
        });
        while !done.load(Ordering::SeqCst) {
            print_logs(&mut followers, many, &mut out);
            std::thread::sleep(Duration::from_millis(50));
        }
        h.join()
    });
    print_logs(&mut followers, many, &mut out);
    for r in deleted.map_err(|_| anyhow::anyhow!("the delete thread panicked"))? {
        if let Some((left, k)) = r? {
            report_delete(&k, left);
        }
    }
    // as a shell reports a command ended by Ctrl-C
    exit_with(130)
}

/// Prints new log lines as `[container] line` (`[pod/container]` when
/// several pods run).
fn print_logs(followers: &mut [(String, pods::PodLogs)], many: bool, out: &mut std::io::Stdout) {
    for (pod, f) in followers.iter_mut() {
        for (ctr, line) in f.poll() {
            let prefix = if many { format!("{pod}/{ctr}") } else { ctr };
            let _ = write!(out, "[{prefix}] ");
            let _ = out.write_all(&line.render(false));
        }
    }
    let _ = out.flush();
}

fn exit_with(code: i32) -> Result<()> {
    if code != 0 {
        let _ = std::io::stdout().flush();
        std::process::exit(code);
    }
    Ok(())
}

fn report_delete(k: &KnownPod, left: Vec<String>) {
    if left.is_empty() {
        println!("pod \"{}\" deleted", k.name());
    } else {
        eprintln!(
            "krun: pod \"{}\" deleted, but left behind: {}",
            k.name(),
            left.join("; ")
        );
    }
}

fn is_pods(resource: &str) -> Result<()> {
    match resource {
        "pods" | "pod" | "po" => Ok(()),
        other => bail!("the server doesn't have a resource type \"{other}\""),
    }
}

/// `krun get pods`.
pub fn get(root: Option<PathBuf>, namespace: &str, a: &GetArgs) -> Result<()> {
    is_pods(&a.resource)?;
    let node = node(root);
    let all = podstate::list(&node.paths)?;
    let mut shown: Vec<KnownPod> = all
        .into_iter()
        .filter(|p| a.all_namespaces || p.namespace() == namespace)
        .collect();
    if !a.names.is_empty() {
        for n in &a.names {
            if !shown.iter().any(|p| p.name() == n) {
                bail!("pods \"{n}\" not found");
            }
        }
        shown.retain(|p| a.names.iter().any(|n| n == p.name()));
    }
    let pods: Vec<_> = shown.iter().map(KnownPod::current).collect();
    let single = a.names.len() == 1;
    match a.output.as_deref() {
        None | Some("wide") => {
            if pods.is_empty() {
                if a.all_namespaces {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {namespace} namespace.");
                }
                return Ok(());
            }
            let wide = a.output.is_some();
            print!(
                "{}",
                krun_kubelet::status::pods_table(&pods, Timestamp::now(), wide, a.all_namespaces)
            );
        }
        Some("json") => println!("{}", krun_kubelet::output::to_json(&pods, single)?),
        Some("yaml") => print!("{}", krun_kubelet::output::to_yaml(&pods, single)?),
        Some(o) => bail!("unable to match a printer suitable for the output format \"{o}\", allowed formats are: json,wide,yaml"),
    }
    Ok(())
}

fn find(node: &Node, namespace: &str, name: &str) -> Result<KnownPod> {
    podstate::find(&node.paths, namespace, name)?
        .with_context(|| format!("pods \"{name}\" not found"))
}

/// `krun describe pod NAME`.
pub fn describe(root: Option<PathBuf>, namespace: &str, a: &DescribeArgs) -> Result<()> {
    is_pods(&a.resource)?;
    let node = node(root);
    let k = find(&node, namespace, &a.name)?;
    print!(
        "{}",
        krun_kubelet::describe::describe_pod(&k.current(), &k.events(), Timestamp::now())
    );
    Ok(())
}

/// `krun logs POD`.
pub fn logs(root: Option<PathBuf>, namespace: &str, a: &LogsArgs) -> Result<()> {
    let node = node(root);
    let k = find(&node, namespace, &a.pod)?;
    let (ctr, defaulted) = pods::pick_container(&k.desired.pod, a.container.as_deref())?;
    if defaulted {
        let names: Vec<String> = k
            .desired
            .pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
            .collect();
        eprintln!("Defaulted container \"{ctr}\" out of: {}", names.join(", "));
    }
    let path = pods::log_file(&k, &ctr, a.previous)?;
    let tail = a.tail.filter(|t| *t >= 0).map(|t| t as usize);
    let (lines, follower) = pods::read_log(&path, ReadOptions { tail })?;
    let mut out = std::io::stdout();
    for l in &lines {
        out.write_all(&l.render(a.timestamps))?;
    }
    out.flush()?;
    if !a.follow || a.previous {
        return Ok(());
    }
    follow(&node, &k, &ctr, &path, follower, a.timestamps)
}

/// Prints new lines until the container's run ends.
fn follow(
    node: &Node,
    k: &KnownPod,
    ctr: &str,
    path: &Path,
    mut follower: Option<krun_kubelet::logs::Follower>,
    timestamps: bool,
) -> Result<()> {
    let mut out = std::io::stdout();
    loop {
        if follower.is_none() && path.exists() {
            follower = pods::read_log(path, ReadOptions::default())?.1;
        }
        if let Some(f) = follower.as_mut() {
            for l in f.poll()? {
                out.write_all(&l.render(timestamps))?;
            }
            out.flush()?;
        }
        let now = podstate::find(&node.paths, k.namespace(), k.name())?;
        let still = now.as_ref().is_some_and(|p| {
            pods::is_running(p, ctr) && pods::log_file(p, ctr, false).ok().as_deref() == Some(path)
        });
        if !still {
            if let Some(f) = follower.as_mut() {
                for l in f.poll()? {
                    out.write_all(&l.render(timestamps))?;
                }
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `krun exec POD -- CMD…`.
pub fn exec(root: Option<PathBuf>, namespace: &str, a: &ExecArgs) -> Result<()> {
    require_root()?;
    let node = node(root);
    let k = find(&node, namespace, &a.pod)?;
    let (ctr, _) = pods::pick_container(&k.desired.pod, a.container.as_deref())?;
    let id = pods::runtime_id(&k, &ctr)
        .filter(|_| pods::is_running(&k, &ctr))
        .with_context(|| {
            format!(
                "unable to upgrade connection: container not found (\"{ctr}\" in pod \"{}\" is not running)",
                a.pod
            )
        })?;
    let scratch = k.dirs.run.join(format!("exec-{}", std::process::id()));
    let code = krun_kubelet::exec::exec(&krun_kubelet::exec::ExecRequest {
        runtime: &node.runtime,
        id: &id,
        command: &a.command,
        stdin: a.stdin,
        tty: a.tty,
        scratch: &scratch,
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let code = code?;
    exit_with(code)
}

/// `krun delete pod NAME… | -f FILE…`.
pub fn delete(root: Option<PathBuf>, namespace: &str, a: &DeleteArgs) -> Result<()> {
    let node = node(root);
    let mut targets: Vec<(String, String)> = Vec::new();
    if !a.files.is_empty() {
        let m = pods::load(&a.files)?;
        for (p, _) in &m.pods {
            targets.push((
                p.metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                p.metadata.name.clone().unwrap_or_default(),
            ));
        }
    } else {
        let Some((res, names)) = a.what.split_first() else {
            bail!("you must provide one or more resources by argument or filename (delete pod NAME or delete -f FILE)");
        };
        is_pods(res)?;
        if names.is_empty() {
            bail!("resource(s) were provided, but no name was specified");
        }
        targets.extend(names.iter().map(|n| (namespace.to_string(), n.clone())));
    }
    require_root()?;
    let mut missing = false;
    for (ns, name) in targets {
        match podstate::find(&node.paths, &ns, &name)? {
            Some(k) => {
                let left = pods::delete(&node, &k, a.grace_period)?;
                report_delete(&k, left);
            }
            None => {
                missing = true;
                eprintln!("krun: pods \"{name}\" not found");
            }
        }
    }
    if missing {
        std::process::exit(1);
    }
    Ok(())
}
