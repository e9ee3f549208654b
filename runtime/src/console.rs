//! Terminals: a pty is opened inside the container and its master is sent
//! to --console-socket over SCM_RIGHTS; the slave becomes the process's
//! stdio, controlling terminal and /dev/console.
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::error::{Context, Result};
use crate::sys::{self, Leaf};

/// Connects to the console socket (done before pivot_root: the path is a host path).
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = UnixStream::connect(path)
        .ctx(|| format!("connect to console socket {}", path.display()))?;
    Ok(OwnedFd::from(s))
}

/// Sends one fd with `payload` over a unix socket.
pub fn send_fd(sock: RawFd, fd: RawFd, payload: &[u8]) -> Result<()> {
    let fds = [fd];
    let iov = [IoSlice::new(if payload.is_empty() {
        b"\0"
    } else {
        payload
    })];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None).ctx(|| "send fd over unix socket")?;
    Ok(())
}

/// Opens a pty in the container's devpts (after pivot_root), binds the slave
/// over /dev/console, sends the master to the socket and makes the slave
/// this process's controlling terminal and stdio.
pub fn setup(sock: &OwnedFd, size: Option<(u64, u64)>, bind_console: bool) -> Result<()> {
    let master = nix::pty::posix_openpt(
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC,
    )
    .ctx(|| "open /dev/ptmx in the container")?;
    nix::pty::grantpt(&master).ctx(|| "grantpt")?;
    nix::pty::unlockpt(&master).ctx(|| "unlockpt")?;
    let name = nix::pty::ptsname_r(&master).ctx(|| "ptsname")?;
    let slave_fd = nix::fcntl::open(
        Path::new(&name),
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("open {name}"))?;
    if let Some((h, w)) = size {
        let ws = libc::winsize {
            ws_row: h as u16,
            ws_col: w as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the struct.
        unsafe { libc::ioctl(slave_fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    // /dev/console: bind the slave, never following a symlink in the image.
    let root = sys::open_dir(Path::new("/"))?;
    if !bind_console {
    } else if let Ok(console) =
        sys::mkdir_all_in_root(root.as_raw_fd(), Path::new("dev/console"), Leaf::File)
    {
        mount(
            Some(name.as_str()),
            sys::fd_path(&console).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| "bind mount pty on /dev/console")?;
    }
    send_fd(sock.as_raw_fd(), master.as_raw_fd(), name.as_bytes())?;
    drop(master);
    // SAFETY: TIOCSCTTY on our own new session's terminal.
    if unsafe { libc::ioctl(slave_fd.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(nix::errno::Errno::last()).ctx(|| "make the pty the controlling terminal");
    }
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors.
        if unsafe { libc::dup2(slave_fd.as_raw_fd(), target) } < 0 {
            return Err(nix::errno::Errno::last()).ctx(|| "dup pty to stdio");
        }
    }
    Ok(())
}
