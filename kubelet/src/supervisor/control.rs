//! The supervisor's inputs besides container exits: its control socket
//! (requests from `krun delete`), termination signals through a signalfd,
//! and the readiness report `krun apply -d` waits for on a pipe.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use serde::{Deserialize, Serialize};

/// The environment variable naming the fd of the readiness pipe.
pub const READY_FD_ENV: &str = "KRUN_READY_FD";

/// A request on the control socket (one JSON line).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", tag = "op")]
pub enum Request {
    /// Stop every container (stop signal, grace period, SIGKILL), remove
    /// everything of the pod, answer, exit.
    Delete { grace_period_seconds: Option<i64> },
}

/// The answer to a delete, sent once the pod is gone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeleteReply {
    /// What could not be removed, each naming the thing.
    pub leftovers: Vec<String>,
}

/// Blocks the signals the supervisor takes through its signalfd. Called
/// before any thread exists, so every thread inherits the mask.
pub fn signals() -> nix::Result<SignalFd> {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    set.thread_block()?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
}

/// What arrived on the signalfd.
#[derive(Debug, Default, Clone, Copy)]
pub struct Signals {
    pub terminate: bool,
    pub child: bool,
}

pub fn drain_signals(fd: &mut SignalFd) -> Signals {
    let mut got = Signals::default();
    while let Ok(Some(info)) = fd.read_signal() {
        match info.ssi_signo as i32 {
            libc::SIGCHLD => got.child = true,
            _ => got.terminate = true,
        }
    }
    got
}

/// Binds the control socket at `path` (a stale one from a dead
/// supervisor is replaced), non-blocking, mode 0600.
pub fn listen(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let l = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Accepts pending connections and reads each one's request; a client
/// that sends nothing sensible within a second is dropped.
pub fn accept(listener: &UnixListener) -> Vec<(UnixStream, Request)> {
    let mut out = Vec::new();
    while let Ok((stream, _)) = listener.accept() {
        if stream.set_nonblocking(false).is_err()
            || stream
                .set_read_timeout(Some(Duration::from_secs(1)))
                .is_err()
        {
            continue;
        }
        let mut line = String::new();
        let Ok(reader) = stream.try_clone() else {
            continue;
        };
        if BufReader::new(reader).read_line(&mut line).is_err() {
            continue;
        }
        if let Ok(req) = serde_json::from_str::<Request>(line.trim()) {
            out.push((stream, req));
        }
    }
    out
}

/// Answers a delete request.
pub fn reply(mut stream: UnixStream, reply: &DeleteReply) {
    if let Ok(mut data) = serde_json::to_vec(reply) {
        data.push(b'\n');
        let _ = stream.write_all(&data);
    }
}

/// Sends `req` to the supervisor at `socket` and waits for its answer (a
/// delete is answered once the pod is gone). Err(NotFound or
/// ConnectionRefused) means no supervisor listens there.
pub fn request(socket: &Path, req: &Request) -> io::Result<DeleteReply> {
    let mut s = UnixStream::connect(socket)?;
    let mut data = serde_json::to_vec(req).map_err(io::Error::other)?;
    data.push(b'\n');
    s.write_all(&data)?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    if line.trim().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the supervisor closed the connection without an answer",
        ));
    }
    serde_json::from_str(line.trim()).map_err(io::Error::other)
}

/// The write end of the readiness pipe, taken from [`READY_FD_ENV`].
pub fn ready_pipe_from_env() -> Option<std::fs::File> {
    let fd: RawFd = std::env::var(READY_FD_ENV).ok()?.parse().ok()?;
    std::env::remove_var(READY_FD_ENV);
    if fd < 3 {
        return None;
    }
    // The fd must be open and a pipe; anything else is not ours.
    // SAFETY: fstat on a plain integer fd; a closed fd gives EBADF.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return None;
    }
    // SAFETY: the fd is open, a FIFO, and handed to this process alone.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    Some(std::fs::File::from(owned))
}

/// The fds the main loop waits on.
pub struct Wait<'a> {
    pub fds: Vec<BorrowedFd<'a>>,
}

impl<'a> Wait<'a> {
    pub fn new() -> Self {
        Wait { fds: Vec::new() }
    }
    pub fn add(&mut self, fd: &'a impl AsFd) -> usize {
        self.fds.push(fd.as_fd());
        self.fds.len() - 1
    }
    /// Polls every fd for input for at most `timeout`; returns which are
    /// ready.
    pub fn poll(&self, timeout: Duration) -> io::Result<Vec<bool>> {
        let mut p: Vec<libc::pollfd> = self
            .fds
            .iter()
            .map(|f| libc::pollfd {
                fd: f.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: p is a valid array of pollfd for its length.
        let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(vec![false; p.len()]);
            }
            return Err(e);
        }
        Ok(p.iter().map(|x| x.revents != 0).collect())
    }
}

impl Default for Wait<'_> {
    fn default() -> Self {
        Self::new()
    }
}
