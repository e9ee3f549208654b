//! `run` with process.terminal and no --console-socket, as runc does it: the
//! runtime receives the pty master itself and relays it to its own stdio
//! (raw mode while it runs, window size changes passed on) until the
//! container's process exits.
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use nix::sys::termios;

use crate::error::{Context, Error, Result};

/// A socketpair standing in for --console-socket: (our end, the init's end).
pub fn console_pair() -> Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "create console socketpair")
}

/// Receives the pty master the init sent over `sock`.
pub fn recv_master(sock: &OwnedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ctx(|| "receive the pty master")?;
    for c in msg.cmsgs().ctx(|| "read the pty master message")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(Error::invalid("the container init sent no pty master"))
}

/// Restores the terminal settings of stdin when dropped.
struct RawMode(Option<termios::Termios>);

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = termios::tcsetattr(stdin(), termios::SetArg::TCSANOW, t);
        }
    }
}

fn stdin() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

fn copy_winsize(master: &OwnedFd) {
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read and write a winsize struct.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Relays between our stdio and the pty `master` until `pid` exits;
/// forwards other signals to it. Returns the shell-style exit code.
pub fn relay(master: OwnedFd, pid: i32) -> Result<i32> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let raw = match termios::tcgetattr(stdin()) {
        Ok(orig) => {
            let mut r = orig.clone();
            termios::cfmakeraw(&mut r);
            termios::tcsetattr(stdin(), termios::SetArg::TCSANOW, &r)
                .ctx(|| "put the terminal in raw mode")?;
            copy_winsize(&master);
            RawMode(Some(orig))
        }
        Err(_) => RawMode(None),
    };
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGWINCH,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .ctx(|| "block signals")?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .ctx(|| "signalfd")?;
    let target = nix::unistd::Pid::from_raw(pid);
    // SAFETY: fd 1 stays open for the life of the process.
    let stdout = unsafe { BorrowedFd::borrow_raw(1) };
    let mut stdin_open = true;
    let mut master_open = true;
    let mut buf = [0u8; 8192];
    let reaped = || match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, c)) => Some(c),
        Ok(WaitStatus::Signaled(_, s, _)) => Some(128 + s as i32),
        Err(nix::errno::Errno::ECHILD) => Some(0),
        _ => None,
    };
    let code = 'outer: loop {
        // An exit before SIGCHLD was blocked left no signal to wait for.
        if let Some(c) = reaped() {
            break 'outer c;
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if master_open {
            fds.push(PollFd::new(master.as_fd(), PollFlags::POLLIN));
        }
        if stdin_open {
            fds.push(PollFd::new(stdin(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).ctx(|| "wait for terminal input"),
            Ok(_) => {}
        }
        let mut ev: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        if !master_open {
            ev.insert(1, PollFlags::empty());
        }
        if master_open && !ev[1].is_empty() {
            match nix::unistd::read(&master, &mut buf) {
                Ok(n) if n > 0 => {
                    write_all(stdout, &buf[..n]);
                }
                Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
                // EIO: the last slave closed; the exit follows.
                _ => master_open = false,
            }
        }
        if stdin_open && ev.get(2).is_some_and(|e| !e.is_empty()) {
            match nix::unistd::read(stdin(), &mut buf) {
                Ok(n) if n > 0 => {
                    write_all(master.as_fd(), &buf[..n]);
                }
                _ => stdin_open = false,
            }
        }
        if !ev[0].is_empty() {
            while let Ok(Some(si)) = sfd.read_signal() {
                let sig = Signal::try_from(si.ssi_signo as i32).ok();
                match sig {
                    Some(Signal::SIGWINCH) => copy_winsize(&master),
                    Some(Signal::SIGCHLD) => {}
                    Some(s) => {
                        let _ = nix::sys::signal::kill(target, s);
                    }
                    None => {}
                }
            }
        }
    };
    // What the process wrote last may still be in the pty.
    let _ = nix::fcntl::fcntl(
        &master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    while let Ok(n) = nix::unistd::read(&master, &mut buf) {
        if n == 0 || !write_all(stdout, &buf[..n]) {
            break;
        }
    }
    drop(raw);
    Ok(code)
}
