//! A minimal inotify(7) reader: one watch on the manifest directory,
//! events read non-blocking when its fd polls readable.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What the agent watches for on the directory: files made, written,
/// renamed in or out, removed; the directory itself going.
pub const DIR_EVENTS: u32 = libc::IN_CREATE
    | libc::IN_CLOSE_WRITE
    | libc::IN_MODIFY
    | libc::IN_ATTRIB
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_DELETE
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;

pub struct Inotify {
    fd: OwnedFd,
}

/// One event: the name is None for events about the directory itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub mask: u32,
    pub name: Option<String>,
}

impl Event {
    /// The watch is gone (directory removed or moved away).
    pub fn lost_watch(&self) -> bool {
        self.mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0
    }
}

impl Inotify {
    pub fn new() -> io::Result<Inotify> {
        // SAFETY: inotify_init1 takes flags and returns a new fd or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new fd nothing else owns.
        Ok(Inotify {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watches `dir` for [`DIR_EVENTS`].
    pub fn watch(&self, dir: &Path) -> io::Result<()> {
        let c = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL"))?;
        // SAFETY: a valid fd and NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), DIR_EVENTS) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Every event queued now (none when nothing is).
    pub fn read(&self) -> Vec<Event> {
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            // SAFETY: reads into a buffer of its length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return out;
            }
            let n = n as usize;
            let head = std::mem::size_of::<libc::inotify_event>();
            let mut off = 0;
            while off + head <= n {
                // SAFETY: the kernel wrote a whole inotify_event at `off`;
                // read_unaligned copes with the byte buffer's alignment.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
                let len = ev.len as usize;
                let name_bytes = buf.get(off + head..off + head + len).unwrap_or_default();
                let name = name_bytes
                    .split(|b| *b == 0)
                    .next()
                    .filter(|b| !b.is_empty())
                    .map(|b| String::from_utf8_lossy(b).into_owned());
                out.push(Event {
                    mask: ev.mask,
                    name,
                });
                off += head + len;
            }
        }
    }
}

impl AsFd for Inotify {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
