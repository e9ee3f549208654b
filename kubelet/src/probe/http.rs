//! httpGet probes and hooks: one HTTP/1.1 GET from the node (HTTPS
//! without verifying the certificate), with the kubelet's headers
//! (`User-Agent: kube-probe/<version>`, `Accept: */*`, a `Host` header
//! from httpHeaders as the request's host), redirects followed only to
//! the same host and at most ten, and at most 10 KiB of body read.
//! Errors read as Go's HTTP client words them, since the kubelet's events
//! carry them.

use std::io::{Read, Write};

use super::action::HttpGet;
use super::timed::{self, Limits};
use super::{Outcome, MAX_OUTPUT};

/// A response as far as probes care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub location: Option<String>,
    /// At most [`MAX_OUTPUT`] bytes of it.
    pub body: Vec<u8>,
}

const MAX_HEAD: usize = 64 * 1024;
const MAX_REDIRECTS: usize = 10;
const DEADLINE: &str = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)";

/// An httpGet probe: 200–399 is a success (3xx: a redirect that was not
/// followed, with a warning), anything else a failure.
pub fn probe(h: &HttpGet, limits: Limits<'_>) -> Outcome {
    let resp = match get(h, &super::user_agent(), limits) {
        Ok(r) => r,
        Err(e) => return Outcome::Failure(e),
    };
    let body = String::from_utf8_lossy(&resp.body).into_owned();
    match resp.status {
        200..=299 => Outcome::Success(body),
        300..=399 => Outcome::Warning(format!("Probe terminated redirects, Response body: {body}")),
        s => Outcome::Failure(format!("HTTP probe failed with statuscode: {s}")),
    }
}

/// An httpGet lifecycle hook: any answer will do (the kubelet fails a
/// hook only when the request itself fails).
pub fn hook(h: &HttpGet, limits: Limits<'_>) -> Result<(), String> {
    let ua = format!("kube-lifecycle/{}", super::KUBE_VERSION);
    get(h, &ua, limits).map(drop)
}

/// GET, following redirects to the same host.
pub fn get(h: &HttpGet, user_agent: &str, limits: Limits<'_>) -> Result<Response, String> {
    let mut cur = h.clone();
    for _ in 0..=MAX_REDIRECTS {
        let resp =
            once(&cur, user_agent, limits).map_err(|e| format!("Get {:?}: {e}", cur.url()))?;
        let redirect = matches!(resp.status, 301 | 302 | 303 | 307 | 308);
        let Some(next) = resp
            .location
            .as_deref()
            .filter(|_| redirect)
            .and_then(|l| follow(&cur, l))
        else {
            return Ok(resp);
        };
        if !next.host.eq_ignore_ascii_case(&cur.host) {
            // the kubelet does not follow a redirect to another host
            return Ok(resp);
        }
        cur = next;
    }
    Err(format!(
        "Get {:?}: stopped after {MAX_REDIRECTS} redirects",
        cur.url()
    ))
}

/// Where a Location header leads from `cur` (absolute, or a path).
fn follow(cur: &HttpGet, location: &str) -> Option<HttpGet> {
    let mut next = cur.clone();
    let rest = if let Some(r) = location.strip_prefix("http://") {
        next.https = false;
        r
    } else if let Some(r) = location.strip_prefix("https://") {
        next.https = true;
        r
    } else if location.starts_with('/') {
        next.target = super::action::target(location);
        return Some(next);
    } else {
        // relative to the current path's directory
        let dir = cur.target.split('?').next().unwrap_or("/");
        let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
        next.target = super::action::target(&format!("{dir}{location}"));
        return Some(next);
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let default_port = if next.https { 443 } else { 80 };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse() {
            Ok(p) => (h, p),
            Err(_) => (authority, default_port),
        },
        _ => (authority, default_port),
    };
    next.host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    next.port = port;
    next.target = super::action::target(path);
    Some(next)
}

fn request_bytes(h: &HttpGet, user_agent: &str) -> Vec<u8> {
    let has = |name: &str| h.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let host = h
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Host"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| h.authority());
    let mut req = format!("GET {} HTTP/1.1\r\nHost: {host}\r\n", h.target);
    if !has("User-Agent") {
        req.push_str(&format!("User-Agent: {user_agent}\r\n"));
    }
    if !has("Accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (n, v) in h
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("Host"))
    {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    // no keep-alive, as the kubelet's probe transport
    req.push_str("Connection: close\r\n\r\n");
    req.into_bytes()
}

/// One request and response, the error without Go's `Get "url": ` prefix.
fn once(h: &HttpGet, user_agent: &str, limits: Limits<'_>) -> Result<Response, String> {
    let timed_out = |e: String| {
        if limits
            .deadline
            .is_some_and(|d| std::time::Instant::now() >= d)
        {
            DEADLINE.to_string()
        } else {
            e
        }
    };
    let mut conn = timed::connect(&h.host, h.port, limits).map_err(timed_out)?;
    let req = request_bytes(h, user_agent);
    if !h.https {
        return exchange(&mut conn, &req).map_err(timed_out);
    }
    let cfg = super::tls::config()?;
    let name = super::tls::server_name(&h.host)?;
    let mut tls = rustls::ClientConnection::new(cfg, name).map_err(|e| format!("tls: {e}"))?;
    let mut stream = rustls::Stream::new(&mut tls, &mut conn);
    exchange(&mut stream, &req).map_err(timed_out)
}

fn io_text(e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return "EOF".into();
    }
    timed::go_error(&e)
}

fn exchange(s: &mut impl ReadWrite, req: &[u8]) -> Result<Response, String> {
    s.write_all(req).map_err(io_text)?;
    s.flush().map_err(io_text)?;
    let mut buf = Vec::with_capacity(4096);
    loop {
        let (status, location, head_len, framing) = loop {
            if let Some(parsed) = parse_head(&buf)? {
                break parsed;
            }
            if buf.len() > MAX_HEAD {
                return Err("net/http: response headers too large".into());
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).map_err(io_text)?;
            if n == 0 {
                return Err("EOF".into());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        buf.drain(..head_len);
        // 1xx answers come before the real one
        if (100..200).contains(&status) {
            continue;
        }
        let body = read_body(s, buf, framing);
        return Ok(Response {
            status,
            location,
            body,
        });
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[derive(Debug, Clone, Copy)]
enum Framing {
    Length(usize),
    Chunked,
    Close,
}

type Head = (u16, Option<String>, usize, Framing);

fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut r = httparse::Response::new(&mut headers);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(format!(
                "net/http: HTTP/1.x transport connection broken: malformed HTTP response: {e}"
            ))
        }
    };
    let status = r.code.unwrap_or(0);
    let value = |name: &str| {
        r.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    let framing = if value("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        Framing::Chunked
    } else if let Some(n) = value("Content-Length").and_then(|v| v.parse().ok()) {
        Framing::Length(n)
    } else if status == 204 || status == 304 {
        Framing::Length(0)
    } else {
        Framing::Close
    };
    Ok(Some((status, value("Location"), len, framing)))
}

/// At most [`MAX_OUTPUT`] bytes of the body; a body cut short is kept as
/// far as it came (the status decides the probe).
fn read_body(s: &mut impl Read, mut have: Vec<u8>, framing: Framing) -> Vec<u8> {
    let mut fill = |have: &mut Vec<u8>, want: usize| -> bool {
        while have.len() < want {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(n) => have.extend_from_slice(&chunk[..n]),
            }
        }
        true
    };
    match framing {
        Framing::Length(n) => {
            let want = n.min(MAX_OUTPUT);
            fill(&mut have, want);
            have.truncate(want);
            have
        }
        Framing::Close => {
            fill(&mut have, MAX_OUTPUT);
            have.truncate(MAX_OUTPUT);
            have
        }
        Framing::Chunked => {
            let mut body = Vec::new();
            let mut pos = 0;
            loop {
                // the size line
                let line_end = loop {
                    if let Some(i) = have[pos..].windows(2).position(|w| w == b"\r\n") {
                        break Some(pos + i);
                    }
                    let more = have.len() + 1;
                    if have.len() - pos > 1024 || !fill(&mut have, more) {
                        break None;
                    }
                };
                let Some(end) = line_end else { break };
                let line = String::from_utf8_lossy(&have[pos..end]).into_owned();
                let size = line.split(';').next().unwrap_or("").trim();
                let Ok(size) = usize::from_str_radix(size, 16) else {
                    break;
                };
                pos = end + 2;
                if size == 0 || body.len() >= MAX_OUTPUT {
                    break;
                }
                let take = size.min(MAX_OUTPUT - body.len());
                fill(&mut have, pos + take);
                let got = take.min(have.len().saturating_sub(pos));
                body.extend_from_slice(&have[pos..pos + got]);
                if got < take || size > take {
                    break;
                }
                pos += size;
                if !fill(&mut have, pos + 2) {
                    break;
                }
                pos += 2;
            }
            body
        }
    }
}

#[cfg(test)]
mod tests;
