//! Image verbs: pull, images, image inspect/prune, rmi, login, logout.
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use krun_images::config::{self, Credentials, RegistriesConf};
use krun_images::{Digest, ImageRef, LayerState, Platform, Progress, PullOptions, Store};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Args)]
pub struct PullArgs {
    /// Image reference (busybox, 127.0.0.1:5000/x/y:tag, name@sha256:…)
    pub reference: String,
    /// Platform to pick from an image index: os/arch[/variant]
    #[arg(long)]
    pub platform: Option<String>,
    /// Print only the image digest
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct ImagesArgs {
    /// Print only image IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Subcommand)]
pub enum ImageCmd {
    /// Print an image's config as JSON
    Inspect { reference: String },
    /// Remove blobs and layers that no image or container uses
    Prune,
    /// Remove an image (same as `krun rmi`)
    Rm { reference: String },
    /// List images (same as `krun images`)
    Ls(ImagesArgs),
    /// Pull an image (same as `krun pull`)
    Pull(PullArgs),
    /// Sync the layers earlier pulls committed (run by `krun pull` itself)
    #[command(hide = true)]
    Settle,
}

#[derive(Args)]
pub struct RmiArgs {
    /// Image references or IDs
    #[arg(required = true)]
    pub references: Vec<String>,
}

#[derive(Args)]
pub struct LoginArgs {
    /// Registry host[:port] (default docker.io)
    pub registry: Option<String>,
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Args)]
pub struct LogoutArgs {
    /// Registry host[:port] (default docker.io)
    pub registry: Option<String>,
}

fn store(root: &Path) -> Result<Store> {
    Ok(Store::under(root)?)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn pull(root: &Path, a: &PullArgs) -> Result<()> {
    let store = store(root)?;
    let mut opts = PullOptions::new(RegistriesConf::load_default()?);
    if let Some(p) = &a.platform {
        opts.platform = Some(Platform::parse(p)?);
    }
    let progress: Arc<dyn Progress> = if a.quiet {
        Arc::new(krun_images::NoProgress)
    } else if std::io::stderr().is_terminal() {
        Arc::new(Bars::default())
    } else {
        Arc::new(Lines::default())
    };
    let rec = runtime()?.block_on(krun_images::pull(&store, &a.reference, &opts, progress))?;
    settle_later(root, &store);
    if a.quiet {
        println!("{}", rec.manifest_digest);
    } else {
        println!("Digest: {}", rec.manifest_digest);
        println!("Pulled: {}", rec.reference);
    }
    Ok(())
}

pub fn images(root: &Path, a: &ImagesArgs) -> Result<()> {
    let store = store(root)?;
    let recs = store.list()?;
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for r in recs {
            writeln!(out, "{}", r.config_digest.short())?;
        }
        return Ok(());
    }
    let now = now_secs();
    let rows: Vec<[String; 6]> = recs
        .iter()
        .map(|r| {
            [
                r.familiar_repository(),
                r.tag.clone().unwrap_or_else(|| "<none>".into()),
                r.config_digest.short().to_string(),
                r.manifest_digest.to_string(),
                human_size(r.size),
                r.created
                    .as_deref()
                    .and_then(parse_rfc3339)
                    .map(|t| ago(now.saturating_sub(t)))
                    .unwrap_or_else(|| "N/A".into()),
            ]
        })
        .collect();
    let head = ["REPOSITORY", "TAG", "IMAGE ID", "DIGEST", "SIZE", "CREATED"];
    let mut w = head.map(|h| h.len());
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 5 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}   ", width = w[i]));
            }
        }
        s
    };
    writeln!(out, "{}", line(head))?;
    for r in &rows {
        writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]))?;
    }
    Ok(())
}

pub fn image(root: &Path, cmd: &ImageCmd) -> Result<()> {
    match cmd {
        ImageCmd::Inspect { reference } => {
            let store = store(root)?;
            let rec = store
                .find(reference)?
                .ok_or_else(|| krun_images::Error::NotFound(reference.clone()))?;
            let data = store.read_blob(&rec.config_digest)?;
            let v: serde_json::Value = serde_json::from_slice(&data)
                .with_context(|| format!("image config of {reference}"))?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        ImageCmd::Prune => {
            let s = store(root)?.prune()?;
            println!(
                "Deleted {} blobs and {} layers, reclaimed {}",
                s.blobs,
                s.layers,
                human_size(s.bytes)
            );
            Ok(())
        }
        ImageCmd::Rm { reference } => rmi(
            root,
            &RmiArgs {
                references: vec![reference.clone()],
            },
        ),
        ImageCmd::Ls(a) => images(root, a),
        ImageCmd::Pull(a) => pull(root, a),
        ImageCmd::Settle => Ok(store(root)?.settle()?),
    }
}

/// The layers a pull committed are made durable by a process of its own
/// (`krun image settle`: one syncfs), so the pull returns without waiting
/// for the disk; see krun_images::store.
fn settle_later(root: &Path, store: &Store) {
    if !store.unsettled().unwrap_or(false) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let spawned = std::process::Command::new(exe)
        .arg("--root")
        .arg(root)
        .args(["image", "settle"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("krun: warning: cannot start `krun image settle` ({e}); the next one syncs these layers");
    }
}

pub fn rmi(root: &Path, a: &RmiArgs) -> Result<()> {
    let store = store(root)?;
    for r in &a.references {
        let rec = store
            .find(r)?
            .ok_or_else(|| krun_images::Error::NotFound(r.clone()))?;
        store.remove_record(&rec)?;
        println!("Untagged: {}", rec.reference);
    }
    let s = store.prune()?;
    if s.blobs + s.layers > 0 {
        println!(
            "Deleted: {} blobs, {} layers ({})",
            s.blobs,
            s.layers,
            human_size(s.bytes)
        );
    }
    Ok(())
}

fn registry_arg(r: &Option<String>) -> Result<String> {
    let r = r
        .clone()
        .unwrap_or_else(|| krun_images::reference::DOCKER_HUB.to_string());
    let r = r
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    if r.is_empty() || r.contains('/') {
        bail!("registry must be host[:port], got {r:?}");
    }
    Ok(if r == "index.docker.io" {
        "docker.io".into()
    } else {
        r
    })
}

pub fn login(a: &LoginArgs) -> Result<()> {
    let registry = registry_arg(&a.registry)?;
    let stdin = std::io::stdin();
    let username = match &a.username {
        Some(u) => u.clone(),
        None => {
            if a.password_stdin {
                bail!("--password-stdin needs --username");
            }
            eprint!("Username: ");
            let mut s = String::new();
            stdin.lock().read_line(&mut s).context("reading username")?;
            s.trim().to_string()
        }
    };
    let password = match (&a.password, a.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are exclusive"),
        (Some(p), false) => p.clone(),
        (None, _) => {
            if !a.password_stdin {
                eprint!("Password: ");
            }
            let mut s = String::new();
            stdin.lock().read_line(&mut s).context("reading password")?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
    };
    if username.is_empty() || password.is_empty() {
        bail!("login to {registry}: username and password must not be empty");
    }
    let creds = Credentials { username, password };
    let conf = RegistriesConf::load_default()?;
    runtime()?.block_on(krun_images::registry::check_login(&registry, &creds, &conf))?;
    let path = config::store_credentials(&registry, Some(&creds))?;
    println!("Login Succeeded (credentials saved in {})", path.display());
    Ok(())
}

pub fn logout(a: &LogoutArgs) -> Result<()> {
    let registry = registry_arg(&a.registry)?;
    let path = config::store_credentials(&registry, None)?;
    println!(
        "Removed login credentials for {registry} from {}",
        path.display()
    );
    Ok(())
}

/// The krun state root: --root, else KRUN_ROOT, else /var/lib/krun.
/// Pulls an image for a pod started in the foreground, with the same
/// progress display as `krun pull`.
pub fn pull_for_pod(store: &Store, reference: &str) -> Result<()> {
    let opts = PullOptions::new(RegistriesConf::load_default()?);
    let progress: Arc<dyn Progress> = if std::io::stderr().is_terminal() {
        Arc::new(Bars::default())
    } else {
        Arc::new(Lines::default())
    };
    runtime()?.block_on(krun_images::pull(store, reference, &opts, progress))?;
    if let Some(krun_root) = store.root().parent() {
        settle_later(krun_root, store);
    }
    Ok(())
}

pub fn krun_root(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("KRUN_ROOT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/lib/krun"))
}

/// A bar per layer on a terminal.
#[derive(Default)]
struct Bars {
    mp: MultiProgress,
    bars: Mutex<Vec<ProgressBar>>,
}

impl Progress for Bars {
    fn resolved(&self, image: &ImageRef, _m: &Digest, layers: &[(Digest, u64)]) {
        let _ = self.mp.println(format!("Pulling {image}"));
        let style = ProgressStyle::with_template(
            "{prefix} {msg:11} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        for (d, size) in layers {
            let b = self.mp.add(ProgressBar::new(*size));
            b.set_style(style.clone());
            b.set_prefix(d.short().to_string());
            b.set_message("waiting");
            bars.push(b);
        }
    }
    fn state(&self, layer: usize, state: LayerState) {
        let bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = bars.get(layer) {
            // Each state is drawn at least once, however short it is (bars
            // are otherwise redrawn at most 20 times a second).
            match state {
                LayerState::Waiting => {
                    b.set_message("waiting");
                    b.force_draw();
                }
                LayerState::Downloading => {
                    b.set_message("downloading");
                    b.force_draw();
                }
                LayerState::Unpacking => {
                    b.set_message("unpacking");
                    b.force_draw();
                }
                LayerState::Done => {
                    b.set_position(b.length().unwrap_or(0));
                    b.finish_with_message("done");
                }
                LayerState::Exists => {
                    b.set_position(b.length().unwrap_or(0));
                    b.finish_with_message("exists");
                }
            }
        }
    }
    fn bytes(&self, layer: usize, n: u64) {
        let bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = bars.get(layer) {
            b.inc(n);
        }
    }
}

/// One plain line per layer when not on a terminal.
#[derive(Default)]
struct Lines {
    layers: Mutex<Vec<(Digest, u64, std::time::Instant)>>,
}

impl Progress for Lines {
    fn resolved(&self, image: &ImageRef, _m: &Digest, layers: &[(Digest, u64)]) {
        println!("Pulling {image} ({} layers)", layers.len());
        let now = std::time::Instant::now();
        *self.layers.lock().unwrap_or_else(|e| e.into_inner()) =
            layers.iter().map(|(d, s)| (d.clone(), *s, now)).collect();
    }
    fn state(&self, layer: usize, state: LayerState) {
        let mut l = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        let Some((d, size, start)) = l.get_mut(layer) else {
            return;
        };
        match state {
            LayerState::Downloading => *start = std::time::Instant::now(),
            LayerState::Done => {
                let secs = start.elapsed().as_secs_f64().max(0.001);
                println!(
                    "{}: done, {} in {secs:.1}s ({}/s)",
                    d.short(),
                    human_size(*size),
                    human_size((*size as f64 / secs) as u64)
                );
            }
            LayerState::Exists => println!("{}: already exists", d.short()),
            _ => {}
        }
        let _ = std::io::stdout().flush();
    }
}

fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[i]
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Seconds since the epoch of an RFC 3339 UTC-or-offset timestamp.
fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from civil date (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let mut t = days * 86400 + h * 3600 + mi * 60 + se;
    let rest = &s[19..];
    let tz = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    if let Some(off) = tz.strip_prefix('+').or_else(|| tz.strip_prefix('-')) {
        let oh: i64 = off.get(0..2)?.parse().ok()?;
        let om: i64 = off.get(3..5)?.parse().ok()?;
        let sign = if tz.starts_with('+') { 1 } else { -1 };
        t -= sign * (oh * 3600 + om * 60);
    }
    u64::try_from(t).ok()
}

fn ago(secs: u64) -> String {
    let (n, unit) = match secs {
        0..=59 => return "Less than a minute ago".into(),
        60..=3599 => (secs / 60, "minute"),
        3600..=86399 => (secs / 3600, "hour"),
        86400..=2_591_999 => (secs / 86400, "day"),
        2_592_000..=31_535_999 => (secs / 2_592_000, "month"),
        _ => (secs / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// Errors become one line: `krun: <what went wrong>`.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for c in e.chain().skip(1) {
        let c = c.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sizes_and_times() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(parse_rfc3339("1970-01-02T00:00:00Z"), Some(86400));
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123456789Z"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20+02:00"),
            Some(1_700_000_000)
        );
        assert_eq!(ago(7200), "2 hours ago");
    }
}
