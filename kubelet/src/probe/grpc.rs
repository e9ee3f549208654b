//! gRPC probes: `grpc.health.v1.Health/Check` over plaintext HTTP/2 from
//! the node, as the kubelet's gRPC prober calls it; SERVING is a success.
//! As the kubelet's blocking dial, a refused connection is tried again
//! until the timeout, and the texts of its failures are the kubelet's.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::action::join_host_port;
use super::Outcome;

/// The health service's statuses (grpc.health.v1.HealthCheckResponse).
fn status_name(n: u64) -> String {
    match n {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        n => n.to_string(),
    }
}

/// gRPC status codes by number, as grpc-go prints them.
fn code_name(n: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES
        .get(n as usize)
        .map_or_else(|| format!("Code({n})"), |s| s.to_string())
}

const UNIMPLEMENTED: u32 = 12;
const DEADLINE_EXCEEDED: u32 = 4;

/// The HealthCheckRequest message, framed: `service` is field 1.
pub fn request_message(service: &str) -> Vec<u8> {
    let mut pb = Vec::new();
    if !service.is_empty() {
        pb.push(0x0a);
        put_varint(&mut pb, service.len() as u64);
        pb.extend_from_slice(service.as_bytes());
    }
    let mut msg = vec![0u8];
    msg.extend_from_slice(&(pb.len() as u32).to_be_bytes());
    msg.extend_from_slice(&pb);
    msg
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The status of a framed HealthCheckResponse (field 1; absent is 0).
pub fn response_status(framed: &[u8]) -> Result<u64, String> {
    if framed.len() < 5 {
        return Err("grpc: the response has no message".into());
    }
    if framed[0] != 0 {
        return Err("grpc: compressed responses are not supported".into());
    }
    let len = u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as usize;
    let pb = framed
        .get(5..5 + len)
        .ok_or("grpc: the response message is cut short")?;
    let mut pos = 0;
    let mut status = 0;
    let bad = || "grpc: failed to unmarshal the response".to_string();
    while pos < pb.len() {
        let key = varint(pb, &mut pos).ok_or_else(bad)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = varint(pb, &mut pos).ok_or_else(bad)?,
            (_, 0) => {
                varint(pb, &mut pos).ok_or_else(bad)?;
            }
            (_, 1) => pos += 8,
            (_, 5) => pos += 4,
            (_, 2) => {
                let n = varint(pb, &mut pos).ok_or_else(bad)? as usize;
                pos += n;
            }
            _ => return Err(bad()),
        }
    }
    if pos > pb.len() {
        return Err(bad());
    }
    Ok(status)
}

/// grpc-message is percent-encoded.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

enum Rpc {
    Status(u64),
    /// A non-OK gRPC status: code and message.
    Code(u32, String),
    /// The call broke (connection, protocol).
    Broken(String),
}

/// One health check within `timeout`.
pub fn probe(host: &str, port: u16, service: &str, timeout: Duration) -> Outcome {
    let addr = join_host_port(host, port);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Outcome::Error(format!("starting the gRPC client: {e}")),
    };
    let deadline = Instant::now() + timeout;
    let within = crate::backoff::go_duration(timeout);
    rt.block_on(async {
        let Some(client) = connect(host, port, deadline).await else {
            return Outcome::Failure(format!(
                "timeout: failed to connect service {addr:?} within {within}: context deadline exceeded"
            ));
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let rpc = match tokio::time::timeout(left, check(client, &addr, service, timeout)).await {
            Ok(r) => r,
            Err(_) => Rpc::Code(DEADLINE_EXCEEDED, "context deadline exceeded".into()),
        };
        match rpc {
            Rpc::Status(1) => Outcome::Success("service healthy".into()),
            Rpc::Status(s) => Outcome::Failure(format!(
                "service unhealthy (responded with {:?})",
                status_name(s)
            )),
            Rpc::Code(UNIMPLEMENTED, msg) => Outcome::Failure(format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {msg}"
            )),
            Rpc::Code(DEADLINE_EXCEEDED, _) => Outcome::Failure(format!(
                "timeout: health rpc did not complete within {within}"
            )),
            Rpc::Code(code, msg) => Outcome::Failure(format!(
                "error: health rpc probe failed: rpc error: code = {} desc = {msg}",
                code_name(code)
            )),
            Rpc::Broken(e) => Outcome::Failure(format!(
                "error: health rpc probe failed: rpc error: code = Unavailable desc = {e}"
            )),
        }
    })
}

type Client = h2::client::SendRequest<Bytes>;

/// A ready HTTP/2 connection, tried again until the deadline.
async fn connect(host: &str, port: u16, deadline: Instant) -> Option<Client> {
    let addrs = super::timed::resolve(host, port).ok()?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        for addr in &addrs {
            let attempt = async {
                let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
                let _ = tcp.set_nodelay(true);
                let (client, conn) = h2::client::handshake(tcp).await.ok()?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                client.ready().await.ok()
            };
            if let Ok(Some(c)) = tokio::time::timeout(left, attempt).await {
                return Some(c);
            }
        }
        let pause = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        tokio::time::sleep(pause).await;
    }
}

async fn check(mut client: Client, addr: &str, service: &str, timeout: Duration) -> Rpc {
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", super::user_agent())
        .header("grpc-timeout", format!("{}m", timeout.as_millis().max(1)))
        .body(());
    let Ok(req) = req else {
        return Rpc::Broken("building the request".into());
    };
    let (resp, mut send) = match client.send_request(req, false) {
        Ok(r) => r,
        Err(e) => return Rpc::Broken(e.to_string()),
    };
    if let Err(e) = send.send_data(Bytes::from(request_message(service)), true) {
        return Rpc::Broken(e.to_string());
    }
    let resp = match resp.await {
        Ok(r) => r,
        Err(e) => return Rpc::Broken(e.to_string()),
    };
    let (parts, mut body) = resp.into_parts();
    if parts.status != http::StatusCode::OK {
        return Rpc::Code(
            2,
            format!(
                "unexpected HTTP status code received from server: {} ({})",
                parts.status.as_u16(),
                parts.status.canonical_reason().unwrap_or("")
            ),
        );
    }
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(c) => {
                let _ = body.flow_control().release_capacity(c.len());
                if data.len() < super::MAX_OUTPUT {
                    data.extend_from_slice(&c);
                }
            }
            Err(e) => return Rpc::Broken(e.to_string()),
        }
    }
    let trailers = match body.trailers().await {
        Ok(t) => t,
        Err(e) => return Rpc::Broken(e.to_string()),
    };
    // a trailers-only answer carries the status in the headers
    let meta = trailers.as_ref().unwrap_or(&parts.headers);
    let code = meta
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    let message = meta
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    match code {
        Some(0) => match response_status(&data) {
            Ok(s) => Rpc::Status(s),
            Err(e) => Rpc::Code(13, e),
        },
        Some(c) => Rpc::Code(c, message),
        None => Rpc::Code(
            13,
            "server closed the stream without sending trailers".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_encode_and_decode() {
        assert_eq!(request_message(""), [0, 0, 0, 0, 0]);
        assert_eq!(request_message("ab"), [0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']);
        assert_eq!(response_status(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(response_status(&[0, 0, 0, 0, 0]), Ok(0));
        // an unknown string field before the status
        assert_eq!(
            response_status(&[0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 2]),
            Ok(2)
        );
        assert!(response_status(&[1, 0, 0, 0, 0]).is_err());
        assert!(response_status(&[0, 0, 0, 0, 9, 0x08]).is_err());
        assert_eq!(percent_decode("unknown%20service"), "unknown service");
        assert_eq!(percent_decode("100%"), "100%");
    }

    /// A health server on h2's own HTTP/2 server: `answer(service)` gives
    /// the grpc-status and, for OK, the health status.
    fn serve(answer: fn(&str) -> (u32, u8)) -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(l).unwrap();
                loop {
                    let Ok((sock, _)) = l.accept().await else {
                        return;
                    };
                    tokio::spawn(async move {
                        let mut conn = h2::server::handshake(sock).await.unwrap();
                        while let Some(Ok((req, mut respond))) = conn.accept().await {
                            assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                            let ua = req.headers()["user-agent"].to_str().unwrap().to_string();
                            assert_eq!(ua, crate::probe::user_agent());
                            let mut body = req.into_body();
                            let mut msg = Vec::new();
                            while let Some(Ok(c)) = body.data().await {
                                msg.extend_from_slice(&c);
                            }
                            let service = String::from_utf8_lossy(msg.get(7..).unwrap_or_default())
                                .into_owned();
                            let (code, status) = answer(&service);
                            let head = http::Response::builder()
                                .header("content-type", "application/grpc");
                            if code != 0 {
                                let resp = head
                                    .header("grpc-status", code.to_string())
                                    .header("grpc-message", "unknown%20service")
                                    .body(())
                                    .unwrap();
                                respond.send_response(resp, true).unwrap();
                                continue;
                            }
                            let mut send = respond
                                .send_response(head.body(()).unwrap(), false)
                                .unwrap();
                            send.send_data(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]), false)
                                .unwrap();
                            let mut t = http::HeaderMap::new();
                            t.insert("grpc-status", "0".parse().unwrap());
                            send.send_trailers(t).unwrap();
                        }
                    });
                }
            });
        });
        port
    }

    #[test]
    fn serving_not_serving_and_unknown_services() {
        let port = serve(|service| match service {
            "" => (0, 1),
            "db" => (0, 2),
            _ => (5, 0),
        });
        let t = Duration::from_secs(2);
        assert_eq!(
            probe("127.0.0.1", port, "", t),
            Outcome::Success("service healthy".into())
        );
        assert_eq!(
            probe("127.0.0.1", port, "db", t),
            Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        assert_eq!(
            probe("127.0.0.1", port, "nope", t),
            Outcome::Failure(
                "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
                    .into()
            )
        );
    }

    #[test]
    fn nothing_listening_is_the_kubelets_connect_timeout() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t0 = Instant::now();
        let got = probe("127.0.0.1", port, "", Duration::from_secs(1));
        assert!(t0.elapsed() >= Duration::from_millis(900));
        assert_eq!(
            got,
            Outcome::Failure(format!(
                "timeout: failed to connect service \"127.0.0.1:{port}\" within 1s: context deadline exceeded"
            ))
        );
    }
}
