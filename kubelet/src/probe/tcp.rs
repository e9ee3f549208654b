//! tcpSocket probes: a connection from the node that opens is a success
//! (closed again at once), as the kubelet's TCP prober does.

use super::timed::{self, Limits};
use super::Outcome;

pub fn probe(host: &str, port: u16, limits: Limits<'_>) -> Outcome {
    match timed::connect(host, port, limits) {
        Ok(conn) => {
            drop(conn);
            Outcome::Success(String::new())
        }
        Err(e) => Outcome::Failure(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    #[test]
    fn open_port_succeeds_closed_port_fails() {
        let cancel = AtomicBool::new(false);
        let limits = Limits {
            deadline: Some(Instant::now() + Duration::from_secs(1)),
            cancel: &cancel,
        };
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(
            probe("127.0.0.1", port, limits),
            Outcome::Success(String::new())
        );
        drop(l);
        assert!(
            matches!(probe("127.0.0.1", port, limits), Outcome::Failure(m) if m.contains("connection refused"))
        );
    }
}
