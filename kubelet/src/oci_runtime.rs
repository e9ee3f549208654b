//! A driver for an OCI runtime with runc's command line (krun-runtime,
//! runc): bundles, create/start/state/kill/delete, and a pidfd for the
//! container's init so its exit is seen without polling the runtime.
//!
//! The runtime runs as a child process (never a fork of the caller), with
//! the container's stdout and stderr passed as its own: runc's and
//! krun-runtime's non-terminal mode hands them to the container's init.
//! The runtime's own messages go to `--log` (JSON) in the bundle, where
//! [`RuntimeError::Command`] reads the failure from.
//!
//! The init is a child of the process that created it only while the
//! runtime runs; the caller must be a child subreaper
//! ([`become_subreaper`]), as the pod supervisor is, so that the init is
//! its child afterwards: `create` checks that (a cheap guard against a
//! reused pid) and [`wait_exit`] collects the exit status.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use oci_spec::runtime::Spec;
use serde::Deserialize;

/// The bundle's files.
pub const CONFIG_FILE: &str = "config.json";
pub const PID_FILE: &str = "init.pid";
pub const LOG_FILE: &str = "runtime.log";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{step}: {source}")]
    Sys {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    /// The runtime ran and failed; `message` is its own error text.
    #[error("{runtime} {action} {id}: {message}")]
    Command {
        runtime: String,
        action: &'static str,
        id: String,
        message: String,
    },
    #[error("{runtime} state {id}: unreadable output: {detail}")]
    State {
        runtime: String,
        id: String,
        detail: String,
    },
    #[error("writing {}: {source}", path.display())]
    Spec {
        path: PathBuf,
        #[source]
        source: oci_spec::OciSpecError,
    },
}

type Result<T> = std::result::Result<T, RuntimeError>;

fn io_err<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RuntimeError + 'a {
    move |source| RuntimeError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a bundle at `dir` (created, mode 0700): config.json from `spec`
/// with its root set to `rootfs` (absolute, so the bundle can live apart
/// from the rootfs).
pub fn write_bundle(dir: &Path, spec: &Spec, rootfs: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("create bundle", dir))?;
    let mut spec = spec.clone();
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(rootfs.to_path_buf());
    spec.set_root(Some(root));
    let path = dir.join(CONFIG_FILE);
    let data = serde_json::to_vec(&spec).map_err(|e| RuntimeError::Spec {
        path: path.clone(),
        source: oci_spec::OciSpecError::Other(e.to_string()),
    })?;
    let tmp = dir.join(".config.json.tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(io_err("write bundle config", &tmp))?;
    f.write_all(&data)
        .map_err(io_err("write bundle config", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("write bundle config", &path))
}

/// Where the container's standard streams go. Each is handed to the
/// runtime as its own, so the container's init inherits it.
#[derive(Debug, Default)]
pub struct ContainerStdio {
    /// None: /dev/null.
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    /// For a config with `process.terminal`: the socket the runtime sends
    /// the pty master to (`--console-socket`); the streams above are unused.
    pub console_socket: Option<PathBuf>,
}

fn stdio(f: Option<File>) -> Stdio {
    f.map(Stdio::from).unwrap_or_else(Stdio::null)
}

/// The runtime's `state` output (runtime-spec's state).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    /// creating, created, running, stopped (runc also reports paused).
    pub status: String,
    #[serde(default)]
    pub pid: i32,
    pub bundle: PathBuf,
    /// krun-runtime's report that the kernel OOM-killed a process of the
    /// container (runc does not say).
    #[serde(default, rename = "oomKilled")]
    pub oom_killed: bool,
}

/// A created container's init.
#[derive(Debug)]
pub struct Created {
    pub pid: i32,
    /// Refers to the init for as long as it is held, whatever the pid
    /// becomes later.
    pub pidfd: OwnedFd,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The exit code the kubelet reports (128 + signal for a signal).
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
}

/// An OCI runtime binary and its state root.
#[derive(Debug, Clone)]
pub struct OciRuntime {
    pub binary: PathBuf,
    /// `--root`: where the runtime keeps container state.
    pub root: PathBuf,
    /// The binary as a private read-only bind mount, made on first use.
    readonly: Arc<OnceLock<Option<OwnedFd>>>,
}

impl OciRuntime {
    pub fn new(binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> OciRuntime {
        OciRuntime {
            binary: binary.into(),
            root: root.into(),
            readonly: Arc::default(),
        }
    }

    /// What to execute: the binary through a detached read-only bind mount
    /// of it when the kernel makes one (CVE-2019-5736: a container process
    /// that reaches /proc/<pid>/exe of the runtime cannot write through
    /// it). A runtime that finds itself on a read-only mount, as
    /// krun-runtime and runc do, then need not re-execute itself from a
    /// sealed copy on every create and exec: one exec less per container.
    fn program(&self) -> PathBuf {
        let fd = self.readonly.get_or_init(|| {
            // a bare name is looked up in PATH by the exec, not here; a
            // script's interpreter could not open the (close-on-exec) fd
            if !self.binary.is_absolute() || !is_elf(&self.binary) {
                return None;
            }
            let path = std::ffi::CString::new(self.binary.as_os_str().as_bytes()).ok()?;
            krun_runtime::sealed::readonly_bind(&path).ok()
        });
        match fd {
            Some(fd) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            None => self.binary.clone(),
        }
    }

    fn name(&self) -> String {
        self.binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.binary.display().to_string())
    }

    /// The runtime's command line up to the subcommand: `--root`, and
    /// `--log` in JSON when given.
    pub fn command(&self, log: Option<&Path>) -> Command {
        let mut cmd = Command::new(self.program());
        cmd.arg0(&self.binary);
        cmd.arg("--root").arg(&self.root);
        if let Some(log) = log {
            cmd.arg("--log").arg(log).args(["--log-format", "json"]);
        }
        cmd
    }

    fn failed(&self, action: &'static str, id: &str, message: String) -> RuntimeError {
        RuntimeError::Command {
            runtime: self.name(),
            action,
            id: id.into(),
            message,
        }
    }

    /// Runs a short subcommand and returns its stdout.
    fn run(&self, action: &'static str, id: &str, args: &[&str]) -> Result<Vec<u8>> {
        let out = self
            .command(None)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io_err("run the OCI runtime", &self.binary))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            let msg = msg.lines().rev().find(|l| !l.trim().is_empty());
            return Err(self.failed(
                action,
                id,
                msg.map(str::trim)
                    .map(String::from)
                    .unwrap_or_else(|| out.status.to_string()),
            ));
        }
        Ok(out.stdout)
    }

    /// `create`: the container is made and its init waits for `start`.
    /// The pid file and the runtime's log are kept in the bundle.
    pub fn create(&self, id: &str, bundle: &Path, io: ContainerStdio) -> Result<Created> {
        let pid_file = bundle.join(PID_FILE);
        let log = bundle.join(LOG_FILE);
        for f in [&pid_file, &log] {
            if let Err(e) = fs::remove_file(f) {
                if e.kind() != io::ErrorKind::NotFound {
                    return Err(io_err("clear", f)(e));
                }
            }
        }
        let status = self
            .command(Some(&log))
            .arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .args(
                io.console_socket
                    .iter()
                    .flat_map(|p| [std::ffi::OsStr::new("--console-socket"), p.as_os_str()]),
            )
            .arg(id)
            .stdin(stdio(io.stdin))
            .stdout(stdio(io.stdout))
            .stderr(stdio(io.stderr))
            .status()
            .map_err(io_err("run the OCI runtime", &self.binary))?;
        if !status.success() {
            let msg = log_error(&log).unwrap_or_else(|| status.to_string());
            return Err(self.failed("create", id, msg));
        }
        let text = fs::read_to_string(&pid_file).map_err(io_err("read pid file", &pid_file))?;
        let pid: i32 = text
            .trim()
            .parse()
            .map_err(|_| self.failed("create", id, format!("pid file holds {:?}", text.trim())))?;
        // The init blocks in `created` until start, so this pid is still it
        // unless it was killed and the number reused before the pidfd was
        // taken. The runtime has exited, so the init is now our child (we
        // are its subreaper); a reused pid would not be.
        let pidfd = pidfd_open(pid)?;
        match parent_of(pid) {
            Some(ppid) if ppid == std::process::id() as i32 => Ok(Created { pid, pidfd }),
            other => Err(self.failed(
                "create",
                id,
                format!(
                    "the init (pid {pid}) is not a child of this process (parent {}): is the \
                     caller a child subreaper?",
                    other.map_or("unknown".to_string(), |p| p.to_string())
                ),
            )),
        }
    }

    pub fn start(&self, id: &str) -> Result<()> {
        self.run("start", id, &["start", id]).map(drop)
    }

    pub fn state(&self, id: &str) -> Result<State> {
        let out = self.run("state", id, &["state", id])?;
        serde_json::from_slice(&out).map_err(|e| RuntimeError::State {
            runtime: self.name(),
            id: id.into(),
            detail: e.to_string(),
        })
    }

    /// Sends `signal` (a number) to the init, or with `all` to every
    /// process of the container.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, sig.as_str()]);
        self.run("kill", id, &args).map(drop)
    }

    /// Removes the container (`--force` kills it first when it runs).
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id);
        self.run("delete", id, &args).map(drop)
    }
}

/// The parent pid of `pid` (`PPid:` of /proc/PID/status).
fn parent_of(pid: i32) -> Option<i32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The last error message of a JSON runtime log (runc and krun-runtime
/// write `{"level":"error","msg":…}` lines).
fn log_error(log: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct Line {
        level: String,
        msg: String,
    }
    let text = fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .find(|l| l.level == "error" || l.level == "fatal")
        .map(|l| l.msg)
}

/// A pidfd for `pid` (close-on-exec).
pub fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(RuntimeError::Sys {
            step: "pidfd_open of the container init",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Makes the calling process the reaper of its orphaned descendants, so
/// container inits (whose runtime exited) become its children.
pub fn become_subreaper() -> Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(RuntimeError::Sys {
            step: "become child subreaper",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Waits until the process behind `pidfd` has exited, for at most
/// `timeout` (None: forever). True once it has exited.
pub fn wait_exited(pidfd: &OwnedFd, timeout: Option<Duration>) -> Result<bool> {
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(RuntimeError::Sys {
                step: "poll the container's pidfd",
                source: e,
            });
        }
    }
}

/// Reaps the exited process behind `pidfd` and returns how it ended, or
/// None while it still runs. The process must be the caller's child
/// (see [`become_subreaper`]).
pub fn try_reap(pidfd: &OwnedFd) -> Result<Option<Exit>> {
    // SAFETY: siginfo_t is plain data; zeroed is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid with P_PIDFD on a pidfd we hold and a valid siginfo_t.
    let rc = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG,
        )
    };
    if rc != 0 {
        return Err(RuntimeError::Sys {
            step: "waitid on the container's pidfd",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: after a successful waitid the pid and status fields are set.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(if info.si_code == libc::CLD_EXITED {
        Exit::Code(status)
    } else {
        Exit::Signal(status)
    }))
}

/// Waits for the process behind `pidfd` to exit (at most `timeout`) and
/// reaps it; None when it still runs at the deadline.
pub fn wait_exit(pidfd: &OwnedFd, timeout: Option<Duration>) -> Result<Option<Exit>> {
    if !wait_exited(pidfd, timeout)? {
        return Ok(None);
    }
    try_reap(pidfd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_error_of_a_json_log_is_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.json");
        fs::write(
            &log,
            "{\"level\":\"error\",\"msg\":\"first\",\"time\":\"t\"}\n\
             {\"level\":\"warning\",\"msg\":\"w\",\"time\":\"t\"}\n\
             {\"level\":\"error\",\"msg\":\"exec: \\\"nope\\\": not found\",\"time\":\"t\"}\n\
             {\"level\":\"debug\",\"msg\":\"d\",\"time\":\"t\"}\n",
        )
        .unwrap();
        assert_eq!(
            log_error(&log).as_deref(),
            Some("exec: \"nope\": not found")
        );
        assert_eq!(log_error(&dir.path().join("missing")), None);
    }

    #[test]
    fn state_parses_runc_output() {
        let s: State = serde_json::from_str(
            r#"{"ociVersion":"1.0.2-dev","id":"c1","pid":42,"status":"created",
                "bundle":"/b","rootfs":"/b/rootfs","created":"2026-01-01T00:00:00Z","owner":""}"#,
        )
        .unwrap();
        assert_eq!(
            (s.id.as_str(), s.pid, s.status.as_str()),
            ("c1", 42, "created")
        );
        let stopped: State = serde_json::from_str(
            r#"{"ociVersion":"1.2.0","id":"c1","status":"stopped","bundle":"/b"}"#,
        )
        .unwrap();
        assert_eq!(stopped.pid, 0);
    }

    #[test]
    // the children are reaped through their pidfds, not Child::wait
    #[allow(clippy::zombie_processes)]
    fn a_child_exit_is_read_through_its_pidfd() {
        let child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
        let fd = pidfd_open(child.id() as i32).unwrap();
        assert_eq!(
            wait_exit(&fd, Some(Duration::from_secs(10))).unwrap(),
            Some(Exit::Code(7))
        );
        let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        let fd = pidfd_open(sleeper.id() as i32).unwrap();
        assert_eq!(
            wait_exit(&fd, Some(Duration::from_millis(50))).unwrap(),
            None
        );
        sleeper.kill().unwrap();
        let exit = wait_exit(&fd, Some(Duration::from_secs(10))).unwrap();
        assert_eq!(exit, Some(Exit::Signal(libc::SIGKILL)));
        assert_eq!(exit.unwrap().code(), 137);
    }

    /// The runtime runs from a read-only bind mount nothing can write
    /// through; a script runtime (its interpreter must open the file) runs
    /// from its path.
    #[test]
    fn an_elf_runtime_runs_from_a_read_only_mount() {
        if !nix::unistd::geteuid().is_root() {
            // open_tree needs CAP_SYS_ADMIN; CI runs as root
            assert!(std::env::var_os("CI").is_none(), "needs root under CI");
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("rt");
        fs::copy("/bin/true", &bin).unwrap();
        let rt = OciRuntime::new(&bin, dir.path().join("root"));
        let prog = rt.program();
        assert!(prog.starts_with("/proc/self/fd/"), "{}", prog.display());
        let err = OpenOptions::new().write(true).open(&prog).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        assert!(rt.command(None).status().unwrap().success());

        let script = dir.path().join("rt.sh");
        fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let rt = OciRuntime::new(&script, dir.path().join("root"));
        assert_eq!(rt.program(), script);
        assert!(rt.command(None).status().unwrap().success());
    }
}
