//! A read-only question to nf_tables over nfnetlink, without running a
//! process: cheap enough for every attach.

/// One NFT_MSG_GETCHAIN request over nfnetlink: does chain `chain` of the
/// ip-family table `table` exist? Any failure (no nf_tables, no such
/// table) counts as no.
pub(crate) fn chain_exists(table: &str, chain: &str) -> bool {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFT_MSG_GETCHAIN: u16 = 4;
    const NFT_MSG_NEWCHAIN: u16 = 3;
    const NFTA_CHAIN_TABLE: u16 = 1;
    const NFTA_CHAIN_NAME: u16 = 3;
    fn attr(buf: &mut Vec<u8>, kind: u16, s: &str) {
        let len = 4 + s.len() + 1;
        buf.extend_from_slice(&(len as u16).to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(s.as_bytes());
        buf.push(0);
        while buf.len() % 4 != 0 {
            buf.push(0);
        }
    }
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        return false;
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: setsockopt with a timeval of the right size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    let mut msg = vec![0u8; 16];
    // nfgenmsg: family ip, version 0, res_id 0
    msg.extend_from_slice(&[libc::NFPROTO_IPV4 as u8, 0, 0, 0]);
    attr(&mut msg, NFTA_CHAIN_TABLE, table);
    attr(&mut msg, NFTA_CHAIN_NAME, chain);
    let len = msg.len() as u32;
    msg[0..4].copy_from_slice(&len.to_ne_bytes());
    msg[4..6].copy_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETCHAIN).to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    msg[6..8].copy_from_slice(&flags.to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // SAFETY: sending our own buffer on our socket (the kernel is the peer).
    let sent = unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if sent != msg.len() as isize {
        return false;
    }
    let mut buf = vec![0u8; 16384];
    loop {
        // SAFETY: receiving into our own buffer of the given size.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return false;
        }
        let mut off = 0usize;
        let n = n as usize;
        while off + 16 <= n {
            let mlen =
                u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
            let mtype = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            if mlen < 16 || off + mlen > n {
                return false;
            }
            if mtype == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWCHAIN {
                return true;
            }
            if mtype == libc::NLMSG_ERROR as u16 {
                // an ack (0) after no chain, or an error such as ENOENT
                return false;
            }
            off += (mlen + 3) & !3;
        }
    }
}
