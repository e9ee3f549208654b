use super::*;
use std::io::BufRead;
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// A loopback server answering each connection with the next of
/// `answers`; the request heads it saw come back on the channel.
fn serve(answers: Vec<String>) -> (u16, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for a in answers {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut head = String::new();
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let _ = tx.send(head);
            let _ = s.write_all(a.as_bytes());
        }
    });
    (port, rx)
}

fn get_action(port: u16, path: &str) -> HttpGet {
    HttpGet {
        https: false,
        host: "127.0.0.1".into(),
        port,
        target: path.into(),
        headers: vec![("X-Probe".into(), "yes".into())],
    }
}

fn limits(cancel: &AtomicBool) -> Limits<'_> {
    Limits {
        deadline: Some(Instant::now() + Duration::from_secs(2)),
        cancel,
    }
}

#[test]
fn status_codes_decide_and_the_request_has_the_kubelet_headers() {
    let cancel = AtomicBool::new(false);
    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string();
    let bad = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown".to_string();
    let (port, seen) = serve(vec![ok, bad]);
    let a = get_action(port, "/healthz");
    assert_eq!(probe(&a, limits(&cancel)), Outcome::Success("ok".into()));
    let head = seen.recv().unwrap();
    assert!(head.starts_with("GET /healthz HTTP/1.1\r\n"), "{head}");
    for h in [
        format!("Host: 127.0.0.1:{port}\r\n"),
        format!("User-Agent: kube-probe/{}\r\n", crate::probe::KUBE_VERSION),
        "Accept: */*\r\n".into(),
        "X-Probe: yes\r\n".into(),
        "Connection: close\r\n".into(),
    ] {
        assert!(head.contains(&h), "no {h:?} in {head}");
    }
    assert_eq!(
        probe(&a, limits(&cancel)),
        Outcome::Failure("HTTP probe failed with statuscode: 503".into())
    );
}

#[test]
fn a_host_header_is_the_request_host_and_user_agent_can_be_replaced() {
    let cancel = AtomicBool::new(false);
    let (port, seen) = serve(vec!["HTTP/1.1 204 No Content\r\n\r\n".into()]);
    let mut a = get_action(port, "/");
    a.headers = vec![
        ("Host".into(), "example.test".into()),
        ("User-Agent".into(), "mine".into()),
    ];
    assert_eq!(probe(&a, limits(&cancel)), Outcome::Success(String::new()));
    let head = seen.recv().unwrap();
    assert!(head.contains("Host: example.test\r\n"), "{head}");
    assert!(
        head.contains("User-Agent: mine\r\n") && !head.contains("kube-probe"),
        "{head}"
    );
}

#[test]
fn redirects_to_the_same_host_are_followed_others_are_a_warning() {
    let cancel = AtomicBool::new(false);
    let (port, seen) = serve(vec![
        "HTTP/1.1 302 Found\r\nLocation: /ready\r\nContent-Length: 0\r\n\r\n".into(),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nyes\r\n0\r\n\r\n".into(),
        "HTTP/1.1 301 Moved\r\nLocation: http://192.0.2.1/x\r\nContent-Length: 4\r\n\r\nmove"
            .into(),
    ]);
    let a = get_action(port, "/");
    assert_eq!(probe(&a, limits(&cancel)), Outcome::Success("yes".into()));
    assert!(seen.recv().unwrap().starts_with("GET / "));
    assert!(seen.recv().unwrap().starts_with("GET /ready "));
    assert_eq!(
        probe(&a, limits(&cancel)),
        Outcome::Warning("Probe terminated redirects, Response body: move".into())
    );
}

#[test]
fn ten_redirects_at_most() {
    let cancel = AtomicBool::new(false);
    let loop_ = "HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n".to_string();
    let (port, _seen) = serve(vec![loop_; 11]);
    let a = get_action(port, "/");
    assert_eq!(
        probe(&a, limits(&cancel)),
        Outcome::Failure(format!(
            "Get \"http://127.0.0.1:{port}/again\": stopped after 10 redirects"
        ))
    );
}

#[test]
fn a_silent_server_times_out_as_the_kubelet_says_and_a_big_body_is_cut() {
    let cancel = AtomicBool::new(false);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let a = get_action(port, "/");
    let t0 = Instant::now();
    let short = Limits {
        deadline: Some(Instant::now() + Duration::from_millis(300)),
        cancel: &cancel,
    };
    assert_eq!(
        probe(&a, short),
        Outcome::Failure(format!(
            "Get \"http://127.0.0.1:{port}/\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        ))
    );
    assert!(t0.elapsed() < Duration::from_secs(1));
    drop(l);
    let big = format!("HTTP/1.1 200 OK\r\n\r\n{}", "x".repeat(50_000));
    let (port, _seen) = serve(vec![big]);
    let Outcome::Success(body) = probe(&get_action(port, "/"), limits(&cancel)) else {
        panic!()
    };
    assert_eq!(body.len(), MAX_OUTPUT);
}

#[test]
fn hooks_take_any_answer_but_not_a_refused_connection() {
    let cancel = AtomicBool::new(false);
    let (port, _seen) = serve(vec!["HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n".into()]);
    assert_eq!(hook(&get_action(port, "/"), limits(&cancel)), Ok(()));
    let e = hook(&get_action(port, "/"), limits(&cancel)).unwrap_err();
    assert!(e.ends_with("connect: connection refused"), "{e}");
}

#[test]
fn https_without_verifying_the_certificate() {
    let cancel = AtomicBool::new(false);
    let cert =
        rustls::pki_types::CertificateDer::from(include_bytes!("../testdata/cert.der").to_vec());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
        include_bytes!("../testdata/key.der").to_vec().into(),
    );
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let cfg = Arc::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut conn = rustls::ServerConnection::new(cfg).unwrap();
        let mut tls = rustls::Stream::new(&mut conn, &mut s);
        let mut buf = [0u8; 4096];
        let n = tls.read(&mut buf).unwrap();
        tx.send(String::from_utf8_lossy(&buf[..n]).into_owned())
            .unwrap();
        tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure")
            .unwrap();
        tls.flush().unwrap();
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    let mut a = get_action(port, "/tls");
    a.https = true;
    assert_eq!(
        probe(&a, limits(&cancel)),
        Outcome::Success("secure".into())
    );
    assert!(rx.recv().unwrap().starts_with("GET /tls HTTP/1.1"));
}
