//! A TCP connection bounded by a deadline and a cancel flag, so a probe
//! or hook thread never outlives its run; and errors worded as Go's net
//! package words them (the kubelet's messages carry them).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long one blocking step may take before the flags are looked at again.
const SLICE: Duration = Duration::from_millis(200);

/// When a run must end, and whether it was called off.
#[derive(Clone, Copy)]
pub struct Limits<'a> {
    pub deadline: Option<Instant>,
    pub cancel: &'a AtomicBool,
}

impl Limits<'_> {
    /// Err(TimedOut) past the deadline, Err(Interrupted) once cancelled;
    /// else how long the next blocking step may take.
    pub fn slice(&self) -> io::Result<Duration> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "canceled"));
        }
        match self.deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "i/o timeout"));
                }
                Ok(left.min(SLICE))
            }
            None => Ok(SLICE),
        }
    }
}

pub struct Timed<'a> {
    pub stream: TcpStream,
    limits: Limits<'a>,
}

/// The addresses of `host:port` (an IP literal, or a name resolved by the
/// system resolver).
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    (host, port)
        .to_socket_addrs()
        .map(|a| a.collect())
        .map_err(|e| format!("lookup {host}: {}", go_error(&e)))
}

/// Connects within the limits; the error as Go's dialer words it
/// (`dial tcp 10.0.0.5:80: connect: connection refused`).
pub fn connect<'a>(host: &str, port: u16, limits: Limits<'a>) -> Result<Timed<'a>, String> {
    let authority = super::action::join_host_port(host, port);
    let dial = |e: String| format!("dial tcp {authority}: {e}");
    let addrs = resolve(host, port).map_err(dial)?;
    let mut last = String::from("no address");
    for addr in addrs {
        loop {
            let step = limits.slice().map_err(|e| dial(go_error(&e)))?;
            match TcpStream::connect_timeout(&addr, step) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(Timed { stream, limits });
                }
                // this slice ran out: try again until the deadline
                Err(e) if e.kind() == io::ErrorKind::TimedOut => continue,
                Err(e) => {
                    last = format!("connect: {}", go_error(&e));
                    break;
                }
            }
        }
    }
    Err(dial(last))
}

impl Timed<'_> {
    /// One blocking socket step, retried in slices until the deadline.
    fn step<T>(
        &mut self,
        mut op: impl FnMut(&mut TcpStream, Duration) -> io::Result<T>,
    ) -> io::Result<T> {
        loop {
            let slice = self.limits.slice()?;
            match op(&mut self.stream, slice) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                r => return r,
            }
        }
    }
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.step(|s, slice| {
            s.set_read_timeout(Some(slice))?;
            s.read(buf)
        })
    }
}

impl Write for Timed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.step(|s, slice| {
            s.set_write_timeout(Some(slice))?;
            s.write(buf)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// An io::Error as Go's syscall errors read: the C library's text with a
/// lower-case first letter ("connection refused"), without "(os error N)".
pub fn go_error(e: &io::Error) -> String {
    let text = match e.raw_os_error() {
        Some(n) => {
            // SAFETY: strerror returns a pointer to a static NUL-terminated string.
            let c = unsafe { std::ffi::CStr::from_ptr(libc::strerror(n)) };
            c.to_string_lossy().into_owned()
        }
        None => e.to_string(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(f) => f.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_and_timed_out_connects_read_as_go_errors() {
        let cancel = AtomicBool::new(false);
        // a port nothing listens on: bind one, then close it
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let limits = Limits {
            deadline: Some(Instant::now() + Duration::from_secs(1)),
            cancel: &cancel,
        };
        let e = connect("127.0.0.1", port, limits).err().unwrap();
        assert_eq!(
            e,
            format!("dial tcp 127.0.0.1:{port}: connect: connection refused")
        );
        let past = Limits {
            deadline: Some(Instant::now()),
            cancel: &cancel,
        };
        let e = connect("127.0.0.1", port, past).err().unwrap();
        assert_eq!(e, format!("dial tcp 127.0.0.1:{port}: i/o timeout"));
    }
}
