//! The socketpair between the runtime and the container init during create.
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};

use crate::error::{Context, Error, Result};

/// Runtime → init: mappings written and cgroup joined; go on.
pub const GO: u8 = 1;
/// Init → runtime: namespaces and mounts are ready, run prestart/createRuntime hooks.
pub const HOOKS: u8 = 2;
/// Runtime → init: those hooks are done.
pub const HOOKS_DONE: u8 = 3;
/// Init → runtime: set up, waiting on the exec fifo.
pub const READY: u8 = 4;
/// Init → runtime: setup failed; the payload is the error line.
pub const ERROR: u8 = 5;

/// One end of the channel.
pub struct Chan(pub OwnedFd);

/// A connected pair (SOCK_SEQPACKET keeps message boundaries).
pub fn pair() -> Result<(Chan, Chan)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "create sync socketpair")?;
    Ok((Chan(a), Chan(b)))
}

impl Chan {
    /// Sends a tag and payload.
    pub fn send(&self, tag: u8, payload: &[u8]) -> Result<()> {
        let mut buf = Vec::with_capacity(1 + payload.len());
        buf.push(tag);
        buf.extend_from_slice(payload);
        send(self.0.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL).ctx(|| "send on sync socket")?;
        Ok(())
    }

    /// Receives one message; `None` when the other end is gone.
    pub fn recv(&self) -> Result<Option<(u8, Vec<u8>)>> {
        let mut buf = vec![0u8; 4096];
        loop {
            match recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    buf.truncate(n);
                    let tag = buf[0];
                    return Ok(Some((tag, buf.split_off(1))));
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).ctx(|| "receive on sync socket"),
            }
        }
    }

    /// Waits for a specific tag; anything else (or EOF) is an error.
    pub fn expect(&self, tag: u8) -> Result<()> {
        match self.recv()? {
            Some((t, _)) if t == tag => Ok(()),
            Some((ERROR, msg)) => Err(Error::invalid(String::from_utf8_lossy(&msg))),
            Some((t, _)) => Err(Error::invalid(format!("sync: unexpected message {t}"))),
            None => Err(Error::invalid("sync: the other side exited")),
        }
    }
}
