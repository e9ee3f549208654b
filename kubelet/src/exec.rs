//! `krun exec`: a process in a running container, through the OCI
//! runtime's `exec` (it joins the container's namespaces and cgroup).
//! With a terminal, the runtime hands the pty master over a console
//! socket and this side copies between it and the caller's terminal.

use std::fs::File;
use std::io::{self, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Stdio;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::oci_runtime::OciRuntime;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{step}: {source}")]
    Io {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the runtime sent no terminal on the console socket")]
    NoTerminal,
}

type Result<T> = std::result::Result<T, ExecError>;

fn io_err(step: &'static str) -> impl FnOnce(io::Error) -> ExecError {
    move |source| ExecError::Io { step, source }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ExecRequest<'a> {
    pub runtime: &'a OciRuntime,
    /// The runtime id of the container instance.
    pub id: &'a str,
    pub command: &'a [String],
    /// Pass the caller's stdin (-i).
    pub stdin: bool,
    /// A pty (-t).
    pub tty: bool,
    /// A private directory for the console socket.
    pub scratch: &'a Path,
}

/// Runs the command and returns its exit code (128 + signal when killed).
pub fn exec(req: &ExecRequest<'_>) -> Result<i32> {
    let mut cmd = req.runtime.command(None);
    cmd.arg("exec");
    if !req.tty {
        cmd.arg(req.id)
            .arg("--")
            .args(req.command)
            .stdin(if req.stdin {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        let st = cmd.status().map_err(io_err("running the OCI runtime"))?;
        return Ok(exit_code(st));
    }
    std::fs::create_dir_all(req.scratch)
        .map_err(io_err("creating the console socket directory"))?;
    let sock_path = req.scratch.join("console.sock");
    let _ = std::fs::remove_file(&sock_path);
    let listener = UnixListener::bind(&sock_path).map_err(io_err("binding the console socket"))?;
    cmd.arg("--tty")
        .arg("--console-socket")
        .arg(&sock_path)
        .arg(req.id)
        .arg("--")
        .args(req.command)
        .stdin(Stdio::null());
    let mut child = cmd.spawn().map_err(io_err("running the OCI runtime"))?;
    let master = match receive_master(&listener) {
        Ok(m) => m,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&sock_path);
            return Err(e);
        }
    };
    drop(listener);
    let _ = std::fs::remove_file(&sock_path);
    let raw = RawMode::enter(0);
    copy_winsize(0, master.as_raw_fd());
    proxy(master, req.stdin);
    drop(raw);
    let st = child
        .wait()
        .map_err(io_err("waiting for the OCI runtime"))?;
    Ok(exit_code(st))
}

fn exit_code(st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code()
        .unwrap_or_else(|| 128 + st.signal().unwrap_or(libc::SIGKILL))
}

/// Accepts the runtime's connection and takes the pty master it sends.
pub(crate) fn receive_master(listener: &UnixListener) -> Result<OwnedFd> {
    let (conn, _) = listener
        .accept()
        .map_err(io_err("accepting on the console socket"))?;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| ExecError::Io {
        step: "receiving the terminal",
        source: e.into(),
    })?;
    let cmsgs = msg.cmsgs().map_err(|e| ExecError::Io {
        step: "receiving the terminal",
        source: e.into(),
    })?;
    let mut got = None;
    for c in cmsgs {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed this fd for us.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if got.is_none() {
                    got = Some(owned);
                }
            }
        }
    }
    got.ok_or(ExecError::NoTerminal)
}

/// The caller's terminal in raw mode while the pty is proxied.
struct RawMode {
    fd: RawFd,
    saved: Option<libc::termios>,
}

impl RawMode {
    fn enter(fd: RawFd) -> RawMode {
        // SAFETY: termios is plain data; tcgetattr fills it or fails.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return RawMode { fd, saved: None };
        }
        let saved = t;
        // SAFETY: cfmakeraw and tcsetattr on a valid termios and a tty fd.
        unsafe {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
        RawMode {
            fd,
            saved: Some(saved),
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            // SAFETY: restores the settings read in enter.
            unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &t) };
        }
    }
}

fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: winsize is plain data; the ioctls read or write it.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) } == 0 {
        unsafe { libc::ioctl(to, libc::TIOCSWINSZ, &ws) };
    }
}

/// Copies stdin to the pty and the pty to stdout until the pty closes
/// (every process holding its slave has exited).
fn proxy(master: OwnedFd, with_stdin: bool) {
    let mut m = File::from(master);
    let mut out = io::stdout();
    let mut stdin_open = with_stdin;
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = [
            libc::pollfd {
                fd: m.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: a valid array of two pollfd; a negative fd is skipped.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[0].revents != 0 {
            match m.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(k) => {
                    let _ = out.write_all(&buf[..k]);
                    let _ = out.flush();
                }
            }
        }
        if fds[1].revents != 0 {
            // SAFETY: reads into our buffer from fd 0.
            let k = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if k <= 0 {
                stdin_open = false;
                // end of input: the terminal's EOF character, as a shell sees it
                let _ = m.write_all(&[4]);
            } else {
                let _ = m.write_all(&buf[..k as usize]);
            }
        }
    }
}
