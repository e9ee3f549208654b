//! The pause process of a pod whose containers share one PID namespace
//! (`shareProcessNamespace: true`): PID 1 of that namespace, as the
//! kubelet's pause container is. It reaps the orphans the containers
//! leave and holds the namespace while containers come and go.
//!
//! The supervisor starts `krun pause` with CLONE_NEWPID unshared before
//! the exec, so the process itself stays outside; it forks once (it is
//! single-threaded, fresh from exec) and its child is the namespace's
//! init. The parent prints the child's pid and waits for it.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The hidden subcommand: `krun pause`.
pub const SUBCOMMAND: &str = "pause";

/// Entry point of `krun pause`. Never returns.
pub fn main() -> ! {
    // SAFETY: this process is single-threaded (fresh from exec).
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!("krun pause: fork: {}", io::Error::last_os_error());
            std::process::exit(1)
        }
        0 => init(),
        child => {
            let mut out = io::stdout();
            let _ = writeln!(out, "{child}");
            let _ = out.flush();
            let mut status = 0;
            // SAFETY: waits for our only child.
            unsafe { libc::waitpid(child, &mut status, 0) };
            std::process::exit(0)
        }
    }
}

/// PID 1: wait for signals, reap every exited child, end on TERM/INT.
fn init() -> ! {
    // SAFETY: sigset operations on a local set; sigwait blocks this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        // the inherited stdout is the spawner's pipe: not ours to hold
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 1);
            libc::close(null);
        }
        loop {
            let mut sig = 0;
            libc::sigwait(&set, &mut sig);
            while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
            if sig != libc::SIGCHLD {
                libc::_exit(0);
            }
        }
    }
}

/// A running pause process.
#[derive(Debug)]
pub struct Pause {
    /// None when adopted from a supervisor that died: then `pidfd` tells
    /// its end (its new parent reaps it).
    child: Option<Child>,
    pid: i32,
    pidfd: Option<std::os::fd::OwnedFd>,
    /// The namespace's init, by its pid on the host.
    pub init_pid: i32,
}

impl Pause {
    /// Starts `exe pause` in a new PID namespace.
    pub fn spawn(exe: &Path) -> io::Result<Pause> {
        let mut cmd = Command::new(exe);
        cmd.arg(SUBCOMMAND)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SAFETY: unshare is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::unshare(libc::CLONE_NEWPID) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        match line.trim().parse::<i32>() {
            Ok(init_pid) if init_pid > 0 => Ok(Pause {
                pid: child.id() as i32,
                child: Some(child),
                pidfd: None,
                init_pid,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(io::Error::other(format!(
                    "{} pause did not report its init ({:?})",
                    exe.display(),
                    line.trim()
                )))
            }
        }
    }

    /// The PID namespace containers join.
    pub fn namespace(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/pid", self.init_pid))
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The pause process of a supervisor that died, found by its pid
    /// file: only if the pid still runs `krun pause` with its init.
    pub fn adopt(pid_file: &Path) -> Option<Pause> {
        let pid: i32 = std::fs::read_to_string(pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // the pidfd first: the checks below are then about this process
        let pidfd = crate::oci_runtime::pidfd_open(pid).ok()?;
        if !is_pause(pid) {
            return None;
        }
        let init_pid = children(pid).into_iter().next()?;
        Some(Pause {
            child: None,
            pid,
            pidfd: Some(pidfd),
            init_pid,
        })
    }

    /// Ends the namespace: its init gets SIGKILL, which kills every
    /// process left in it; the pause process then exits and is reaped.
    pub fn stop(mut self) {
        // SAFETY: kill of the init of a pause process we hold (child or pidfd).
        unsafe { libc::kill(self.init_pid, libc::SIGKILL) };
        if let Some(c) = self.child.as_mut() {
            let _ = c.wait();
        } else if let Some(fd) = &self.pidfd {
            let wait = Some(std::time::Duration::from_secs(5));
            let _ = crate::oci_runtime::wait_exited(fd, wait);
        }
    }
}

fn is_pause(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.get(1) == Some(&SUBCOMMAND.as_bytes())
}

fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// Stops a pause process found by its pid file when its supervisor is
/// gone: only if the pid still runs `krun pause`.
pub fn stop_orphan(pid_file: &Path) {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    if !is_pause(pid) {
        return;
    }
    // its child is the namespace's init: killing that ends the namespace
    for c in children(pid) {
        // SAFETY: plain kill of the pause process's child.
        unsafe { libc::kill(c, libc::SIGKILL) };
    }
    // SAFETY: plain kill of a process verified to be `krun pause`.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}
