//! A fault-injecting HTTP proxy in front of the loopback registry, for the
//! registry-failure tests: it listens on 127.0.0.1 (an ephemeral port),
//! forwards each request to an upstream registry unless a rule says to answer
//! with an error, a canned response, a cut-off body or a slow body, and logs
//! every request line with its Range header and the status it answered.
//! One request per connection (it answers `Connection: close`), so every
//! request of the client is seen on its own.
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do with a request a rule matches.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status, extra headers and body; nothing is forwarded.
    Status {
        code: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Forward, but close the connection after this many body bytes.
    Cut(usize),
    /// Forward, sending the body in pieces of `chunk` bytes `every` apart.
    Slow { chunk: usize, every: Duration },
}

impl Fault {
    pub fn status(code: u16) -> Fault {
        Fault::Status {
            code,
            headers: Vec::new(),
            body: String::new(),
        }
    }
}

/// Applies `fault` to the next `times` requests whose method and path
/// (query string included) contain `method` and `path`.
#[derive(Clone, Debug)]
pub struct Rule {
    pub method: &'static str,
    pub path: String,
    pub times: usize,
    pub fault: Fault,
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub status: u16,
}

pub struct Proxy {
    pub addr: String,
    log: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy forwarding to `upstream` (host:port on loopback).
    pub fn start(upstream: &str, rules: Vec<Rule>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let rules = Arc::new(Mutex::new(rules));
        let upstream = upstream.to_string();
        let (l, s) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: the test drops the proxy, which stops this loop.
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (rules, log, up) = (rules.clone(), l.clone(), upstream.clone());
                        std::thread::spawn(move || {
                            let _ = serve(conn, &up, &rules, &log);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// The requests whose path contains `part`.
    pub fn requests(&self, part: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.contains(part))
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A free loopback port with nothing listening on it (a registry that is down).
pub fn dead_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap().to_string();
    drop(l);
    a
}

fn read_head(conn: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok((buf, rest));
        }
        let n = conn.read(&mut tmp)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn serve(
    mut conn: TcpStream,
    upstream: &str,
    rules: &Mutex<Vec<Rule>>,
    log: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (head, _) = read_head(&mut conn)?;
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("").to_string();
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut range = None;
    let mut fwd = format!("{first}\r\n");
    for l in lines.filter(|l| !l.is_empty()) {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("range:") {
            range = Some(l[6..].trim().to_string());
        }
        if lower.starts_with("connection:") || lower.starts_with("keep-alive:") {
            continue;
        }
        fwd.push_str(l);
        fwd.push_str("\r\n");
    }
    fwd.push_str("Connection: close\r\n\r\n");

    let fault = {
        let mut rs = rules.lock().unwrap();
        rs.iter_mut()
            .find(|r| r.times > 0 && method.contains(r.method) && path.contains(&r.path))
            .map(|r| {
                r.times -= 1;
                r.fault.clone()
            })
    };
    let record = |status: u16| {
        log.lock().unwrap().push(Seen {
            method: method.clone(),
            path: path.clone(),
            range: range.clone(),
            status,
        })
    };
    if let Some(Fault::Status {
        code,
        headers,
        body,
    }) = &fault
    {
        record(*code);
        let mut resp = format!(
            "HTTP/1.1 {code} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            reason(*code),
            body.len()
        );
        for (k, v) in headers {
            resp.push_str(&format!("{k}: {v}\r\n"));
        }
        resp.push_str("\r\n");
        conn.write_all(resp.as_bytes())?;
        if method != "HEAD" {
            conn.write_all(body.as_bytes())?;
        }
        return conn.shutdown(Shutdown::Both);
    }

    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(30)))?;
    up.write_all(fwd.as_bytes())?;
    let (rhead, mut body) = read_head(&mut up)?;
    let status = String::from_utf8_lossy(&rhead)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    record(status);
    conn.write_all(&rhead)?;
    let mut tmp = vec![0u8; 64 << 10];
    let mut sent = 0usize;
    let mut since_pause = 0usize;
    loop {
        if body.is_empty() {
            let n = up.read(&mut tmp)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&tmp[..n]);
        }
        let mut take = body.len();
        match &fault {
            Some(Fault::Cut(limit)) => take = take.min(limit.saturating_sub(sent)),
            Some(Fault::Slow { chunk, .. }) => take = take.min(chunk - since_pause),
            _ => {}
        }
        if take == 0 {
            // Cut here: the client sees the connection close mid-body.
            break;
        }
        conn.write_all(&body[..take])?;
        body.drain(..take);
        sent += take;
        since_pause += take;
        if let Some(Fault::Slow { chunk, every }) = &fault {
            if since_pause >= *chunk {
                std::thread::sleep(*every);
                since_pause = 0;
            }
        }
    }
    conn.shutdown(Shutdown::Both)
}
