//! exec probes and hooks: the command runs in the container through the
//! OCI runtime's `exec` (with the container's process settings, as CRI
//! ExecSync runs it), stdout and stderr into one pipe. Past the timeout
//! the command is killed (SIGKILL to the process the runtime started, as
//! containerd does) and the run is a timeout.
//!
//! [`spawn`] runs on the supervisor's own thread (so its reaper knows the
//! child before it can exit); [`wait`] on a worker thread.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::timed::Limits;
use super::{Outcome, MAX_OUTPUT};
use crate::oci_runtime::{self, OciRuntime};

/// A started `runtime exec`.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    pidfd: OwnedFd,
    output: File,
    pid_file: PathBuf,
    log: PathBuf,
    pub command: Vec<String>,
}

impl Spawned {
    /// The runtime process (the supervisor's child).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Exited(i32, Vec<u8>),
    TimedOut,
    Canceled,
    /// The runtime could not run the command (container gone, no such
    /// binary…).
    Failed(String),
}

/// Starts `command` in container `id`; the pid file and the runtime's
/// log go to `scratch` under `tag`.
pub fn spawn(
    rt: &OciRuntime,
    id: &str,
    command: &[String],
    scratch: &Path,
    tag: &str,
) -> io::Result<Spawned> {
    if command.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no command given",
        ));
    }
    crate::node::private_dir(scratch)?;
    let pid_file = scratch.join(format!("{tag}.pid"));
    let log = scratch.join(format!("{tag}.log"));
    for f in [&pid_file, &log] {
        let _ = std::fs::remove_file(f);
    }
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let write2 = write.try_clone()?;
    let child = rt
        .command(Some(&log))
        .args(["exec", "--pid-file"])
        .arg(&pid_file)
        .arg(id)
        .arg("--")
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write2))
        .spawn()?;
    let pid = child.id() as i32;
    let pidfd = match oci_runtime::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(e.to_string()));
        }
    };
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(read.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(read.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    Ok(Spawned {
        child,
        pidfd,
        output: File::from(read),
        pid_file,
        log,
        command: command.to_vec(),
    })
}

/// Reads what the pipe holds now, keeping at most [`MAX_OUTPUT`] bytes.
fn drain(f: &mut File, out: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

fn poll_in(fds: &[i32], timeout: Duration) -> Vec<bool> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: p is a valid array of pollfd for its length.
    let n = unsafe {
        libc::poll(
            p.as_mut_ptr(),
            p.len() as libc::nfds_t,
            timeout.as_millis() as i32,
        )
    };
    if n <= 0 {
        return vec![false; fds.len()];
    }
    p.iter().map(|x| x.revents != 0).collect()
}

/// SIGKILL to the process the runtime started in the container: its pid
/// from the pid file, taken only while it is still the runtime's child
/// (so a reused pid is never hit).
fn kill_command(s: &Spawned) {
    let Ok(text) = std::fs::read_to_string(&s.pid_file) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let Ok(fd) = oci_runtime::pidfd_open(pid) else {
        return;
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let ppid = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse::<i32>().ok());
    if ppid != Some(s.pid()) {
        return;
    }
    // SAFETY: pidfd_send_signal on a pidfd we hold.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
}

/// Waits for the run within `limits`, then reaps the runtime process.
pub fn wait(mut s: Spawned, limits: Limits<'_>) -> Ended {
    let mut out = Vec::new();
    let mut open = true;
    let mut stopped: Option<Ended> = None;
    let mut gave_up_at: Option<Instant> = None;
    loop {
        let fds = if open {
            vec![s.pidfd.as_raw_fd(), s.output.as_raw_fd()]
        } else {
            vec![s.pidfd.as_raw_fd()]
        };
        let slice = match limits.slice() {
            Ok(d) => d,
            Err(e) => {
                if stopped.is_none() {
                    stopped = Some(if e.kind() == io::ErrorKind::TimedOut {
                        Ended::TimedOut
                    } else {
                        Ended::Canceled
                    });
                    kill_command(&s);
                    gave_up_at = Some(Instant::now());
                }
                Duration::from_millis(100)
            }
        };
        let ready = poll_in(&fds, slice);
        if open && ready.get(1) == Some(&true) && drain(&mut s.output, &mut out) {
            open = false;
        }
        if ready[0] {
            break;
        }
        // the runtime did not go with its command: end it too
        if gave_up_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            let _ = s.child.kill();
            break;
        }
    }
    let status = s.child.wait();
    if open {
        // what is in the pipe now; a process the command left behind
        // may hold it open, so never wait for its end
        drain(&mut s.output, &mut out);
    }
    let runtime_error = runtime_error(&s.log);
    let _ = std::fs::remove_file(&s.pid_file);
    let _ = std::fs::remove_file(&s.log);
    if let Some(e) = stopped {
        return e;
    }
    if let Some(msg) = runtime_error {
        return Ended::Failed(msg);
    }
    match status {
        Ok(st) => {
            use std::os::unix::process::ExitStatusExt;
            let code = st
                .code()
                .unwrap_or_else(|| 128 + st.signal().unwrap_or(libc::SIGKILL));
            Ended::Exited(code, out)
        }
        Err(e) => Ended::Failed(format!("waiting for the OCI runtime: {e}")),
    }
}

/// The runtime's own error, from its JSON log (runc and krun-runtime
/// write `{"level":"error","msg":…}`).
fn runtime_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        let level = v.get("level")?.as_str()?;
        (level == "error" || level == "fatal")
            .then(|| v.get("msg")?.as_str().map(str::to_string))
            .flatten()
    })
}

/// An exec probe's result, as the kubelet's exec prober reads it.
pub fn probe_outcome(command: &[String], ended: Ended) -> Outcome {
    match ended {
        Ended::Exited(0, out) => Outcome::Success(String::from_utf8_lossy(&out).into_owned()),
        Ended::Exited(_, out) => Outcome::Failure(String::from_utf8_lossy(&out).into_owned()),
        Ended::TimedOut => Outcome::Failure(format!("command {:?} timed out", command.join(" "))),
        Ended::Canceled => Outcome::Error("canceled".into()),
        Ended::Failed(e) => Outcome::Error(e),
    }
}

/// An exec hook's result: Err with the runtime's wording of the failure.
pub fn hook_result(command: &[String], ended: Ended) -> Result<(), String> {
    match ended {
        Ended::Exited(0, _) => Ok(()),
        Ended::Exited(n, out) => Err(format!(
            "command '{}' exited with {n}: {}",
            command.join(" "),
            String::from_utf8_lossy(&out)
        )),
        Ended::TimedOut => Err(format!("command {:?} timed out", command.join(" "))),
        Ended::Canceled => Err("container terminated before the hook finished".into()),
        Ended::Failed(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_read_as_the_kubelet_reads_them() {
        let cmd = vec!["cat".to_string(), "/tmp/healthy".to_string()];
        assert_eq!(
            probe_outcome(&cmd, Ended::Exited(0, b"ok".to_vec())),
            Outcome::Success("ok".into())
        );
        assert_eq!(
            probe_outcome(&cmd, Ended::Exited(1, b"cat: can't open".to_vec())),
            Outcome::Failure("cat: can't open".into())
        );
        assert_eq!(
            probe_outcome(&cmd, Ended::TimedOut),
            Outcome::Failure("command \"cat /tmp/healthy\" timed out".into())
        );
        assert!(matches!(
            probe_outcome(&cmd, Ended::Failed("x".into())),
            Outcome::Error(_)
        ));
        assert_eq!(
            hook_result(&cmd, Ended::Exited(2, b"no".to_vec())),
            Err("command 'cat /tmp/healthy' exited with 2: no".into())
        );
    }

    /// A stand-in runtime: a shell script that takes runc's exec
    /// arguments, runs the command itself and writes its pid.
    fn fake_runtime(dir: &Path) -> OciRuntime {
        let bin = dir.join("fake-runtime");
        std::fs::write(
            &bin,
            "#!/bin/sh\n# --root R --log L --log-format json exec --pid-file P ID -- CMD...\n\
             pidfile=$9; shift 11\n\"$@\" &\nchild=$!\necho $child > \"$pidfile\"\nwait $child\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        OciRuntime::new(bin, dir.join("root"))
    }

    #[test]
    fn output_exit_code_and_timeout_kill() {
        let dir = tempfile::tempdir().unwrap();
        let rt = fake_runtime(dir.path());
        let cancel = std::sync::atomic::AtomicBool::new(false);
        let limits = |ms| Limits {
            deadline: Some(Instant::now() + Duration::from_millis(ms)),
            cancel: &cancel,
        };
        let cmd = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
        let s = spawn(
            &rt,
            "c1",
            &cmd("echo out; echo err >&2; exit 3"),
            dir.path(),
            "a",
        )
        .unwrap();
        assert_eq!(
            wait(s, limits(5000)),
            Ended::Exited(3, b"out\nerr\n".to_vec())
        );
        let t0 = Instant::now();
        let s = spawn(&rt, "c1", &cmd("sleep 30"), dir.path(), "b").unwrap();
        assert_eq!(wait(s, limits(300)), Ended::TimedOut);
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        // nothing left in the scratch directory
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != "fake-runtime")
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
