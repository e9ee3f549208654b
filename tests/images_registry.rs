//! Issue 4's registry scope beyond the done-when tests: mirrors from
//! registries.toml (tried in order, then the upstream), transient failures
//! retried with backoff, a persistent failure as one clear line, an
//! interrupted blob resumed with a Range request, foreign layers refused,
//! and `krun pull`'s progress (a bar per layer on a terminal, one plain line
//! per layer otherwise, only the digest with -q). A fault-injecting proxy on
//! loopback (images_util::proxy) stands in front of the fixture registry and
//! logs what krun asked for.
mod common;
mod images_util;

use images_util::proxy::{dead_addr, Fault, Proxy, Rule};
use images_util::{stderr, stdout, Root};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

fn rule(method: &'static str, path: &str, times: usize, fault: Fault) -> Rule {
    Rule {
        method,
        path: path.to_string(),
        times,
        fault,
    }
}

/// GET from the fixture registry directly: (status, body).
fn get(path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(common::REGISTRY).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: {ACCEPT}\r\nConnection: close\r\n\r\n",
        common::REGISTRY
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let i = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..i]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, all[i + 4..].to_vec())
}

fn manifest(repo: &str) -> serde_json::Value {
    let (st, body) = get(&format!("/v2/{repo}/manifests/latest"));
    assert_eq!(st, 200, "fixture manifest of {repo}");
    serde_json::from_slice(&body).unwrap()
}

/// Layer digests of a fixture image, largest first.
fn layers_by_size(repo: &str) -> Vec<String> {
    let m = manifest(repo);
    let mut l: Vec<(u64, String)> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["size"].as_u64().unwrap(),
                l["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    l.sort_by(|a, b| b.cmp(a));
    l.into_iter().map(|(_, d)| d).collect()
}

fn assert_listed(root: &Root, repository: &str) {
    let out = common::run(root.krun().arg("images"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.split_whitespace().next() == Some(repository)),
        "{repository} not in krun images:\n{}",
        stdout(&out)
    );
}

fn one_line(err: &str) {
    assert_eq!(
        err.trim().lines().count(),
        1,
        "want one error line: {err:?}"
    );
}

#[test]
fn transient_failures_are_retried_then_succeed() {
    if !common::require_root("transient_failures_are_retried_then_succeed") {
        return;
    }
    let retry_after = vec![("Retry-After".to_string(), "1".to_string())];
    let proxy = Proxy::start(
        common::REGISTRY,
        vec![
            rule(
                "GET",
                "/manifests/latest",
                1,
                Fault::Status {
                    code: 429,
                    headers: retry_after,
                    body: String::new(),
                },
            ),
            rule("GET", "/blobs/", 1, Fault::status(503)),
            rule("GET", "/blobs/", 1, Fault::status(500)),
            rule("GET", "/blobs/", 1, Fault::status(502)),
        ],
    );
    let root = Root::new("krun-img-retry");
    let image = format!("{}/library/busybox:latest", proxy.addr);
    let out = root.pull(&image);
    assert!(
        out.status.success(),
        "pull through faults: {}",
        stderr(&out)
    );
    assert_listed(&root, &format!("{}/library/busybox", proxy.addr));

    let m = proxy.requests("/manifests/latest");
    let statuses: Vec<u16> = m.iter().map(|s| s.status).collect();
    assert_eq!(statuses.first(), Some(&429), "{m:?}");
    assert_eq!(statuses.last(), Some(&200), "{m:?}");
    // Every injected blob failure was answered by a retry that succeeded.
    let blobs = proxy.requests("/blobs/");
    for code in [503, 500, 502] {
        assert!(blobs.iter().any(|s| s.status == code), "{blobs:?}");
    }
    let mut paths: Vec<&str> = blobs.iter().map(|s| s.path.as_str()).collect();
    paths.sort();
    paths.dedup();
    for p in paths {
        let last = blobs.iter().rfind(|s| s.path == p).unwrap();
        assert!(
            last.status == 200 || last.status == 206,
            "{p} never succeeded: {blobs:?}"
        );
    }
}

#[test]
fn persistent_failures_are_one_clear_line() {
    if !common::require_root("persistent_failures_are_one_clear_line") {
        return;
    }
    let layer = layers_by_size("library/busybox").remove(0);
    let cases: [(&str, Fault, &str); 3] = [
        ("/manifests/", Fault::status(503), "503 server error"),
        ("/manifests/", Fault::status(429), "429 too many requests"),
        (layer.as_str(), Fault::status(500), "500 server error"),
    ];
    for (path, fault, want) in cases {
        let proxy = Proxy::start(common::REGISTRY, vec![rule("GET", path, 1000, fault)]);
        let root = Root::new("krun-img-fail");
        let image = format!("{}/library/busybox:latest", proxy.addr);
        let t0 = Instant::now();
        let out = root.pull(&image);
        let took = t0.elapsed();
        let err = stderr(&out);
        assert!(!out.status.success(), "{path}: pull succeeded");
        one_line(&err);
        assert!(err.contains(&format!("registry {}", proxy.addr)), "{err}");
        assert!(err.contains(&image), "{err}");
        assert!(err.contains(want), "{path}: want {want:?} in {err}");
        if path == layer {
            assert!(err.contains(&format!("blob {layer}")), "{err}");
        }
        // Retried with backoff, a bounded number of times.
        let n = proxy.requests(path).len();
        assert!((3..=6).contains(&n), "{path}: {n} attempts");
        assert!(
            took < Duration::from_secs(30),
            "{path}: gave up after {took:?}"
        );
        let recs = krun_images::Store::under(&root.dir)
            .unwrap()
            .list()
            .unwrap();
        assert!(recs.is_empty(), "a failed pull recorded {recs:?}");
    }
}

#[test]
fn interrupted_blob_resumes_with_a_range_request() {
    if !common::require_root("interrupted_blob_resumes_with_a_range_request") {
        return;
    }
    let layer = layers_by_size("flask-app").remove(0);
    let cut = 3 << 20;
    let proxy = Proxy::start(
        common::REGISTRY,
        vec![rule("GET", &layer, 1, Fault::Cut(cut))],
    );
    let root = Root::new("krun-img-range");
    let image = format!("{}/flask-app:latest", proxy.addr);
    let out = root.pull(&image);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_listed(&root, &format!("{}/flask-app", proxy.addr));
    let got = proxy.requests(&layer);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[1].range.as_deref(),
        Some(&*format!("bytes={cut}-")),
        "{got:?}"
    );
    assert_eq!(got[1].status, 206, "the registry served the rest: {got:?}");
}

#[test]
fn killed_pull_resumes_the_blob_with_a_range_request() {
    if !common::require_root("killed_pull_resumes_the_blob_with_a_range_request") {
        return;
    }
    let layer = layers_by_size("flask-app").remove(0);
    let slow = Fault::Slow {
        chunk: 256 << 10,
        every: Duration::from_millis(50),
    };
    let proxy = Proxy::start(common::REGISTRY, vec![rule("GET", &layer, 1, slow)]);
    let root = Root::new("krun-img-resume");
    let image = format!("{}/flask-app:latest", proxy.addr);
    let mut child = root.krun().args(["pull", "-q", &image]).spawn().unwrap();
    // Until a few MB of the layer are in.
    let t0 = Instant::now();
    while proxy.requests(&layer).is_empty() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();

    let out = root.pull(&image);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = proxy.requests(&layer);
    assert_eq!(got.len(), 2, "{got:?}");
    let from: u64 = got[1]
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("second request without an open Range: {got:?}"));
    assert!(from >= 1 << 20, "resumed from byte {from}: {got:?}");
    assert_eq!(got[1].status, 206, "{got:?}");
    assert_listed(&root, &format!("{}/flask-app", proxy.addr));
}

fn write_mirrors(root: &Root, upstream: &str, mirrors: &[&str]) {
    let list: Vec<String> = mirrors.iter().map(|m| format!("\"{m}\"")).collect();
    std::fs::write(
        root.dir.join("registries.toml"),
        format!(
            "[[registry]]\nlocation = \"{upstream}\"\nmirrors = [{}]\n",
            list.join(", ")
        ),
    )
    .unwrap();
}

/// `proxy` served the manifest and the blobs of `repo`.
fn assert_served_image(proxy: &Proxy, repo: &str) {
    let served = proxy.requests(repo);
    for part in ["/manifests/latest", "/blobs/"] {
        assert!(
            served.iter().any(|s| s.path.contains(part)),
            "no {part} from {}: {served:?}",
            proxy.addr
        );
    }
}

#[test]
fn mirrors_are_tried_in_order_then_the_upstream() {
    if !common::require_root("mirrors_are_tried_in_order_then_the_upstream") {
        return;
    }
    let repo = "/v2/library/busybox/";
    let upstream = Proxy::start(common::REGISTRY, vec![]);
    let good = Proxy::start(common::REGISTRY, vec![]);
    let down = dead_addr();
    let image = format!("{}/library/busybox:latest", upstream.addr);

    // A mirror that is down, then one that has the image: the second serves
    // everything and the upstream is never asked.
    let root = Root::new("krun-img-mirror");
    write_mirrors(&root, &upstream.addr, &[&down, &good.addr]);
    let t0 = Instant::now();
    let out = root.pull(&image);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "a down mirror cost {:?}",
        t0.elapsed()
    );
    assert_listed(&root, &format!("{}/library/busybox", upstream.addr));
    assert_served_image(&good, repo);
    assert!(upstream.requests(repo).is_empty(), "{:?}", upstream.seen());

    // A mirror that is down, then one without the image: the upstream.
    let missing = Proxy::start(
        common::REGISTRY,
        vec![rule(
            "GET",
            repo,
            1000,
            Fault::Status {
                code: 404,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
                    .into(),
            },
        )],
    );
    let root = Root::new("krun-img-mirror");
    write_mirrors(&root, &upstream.addr, &[&down, &missing.addr]);
    let out = root.pull(&image);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!missing.requests("/manifests/latest").is_empty());
    assert_served_image(&upstream, repo);
}

/// busybox's manifest with its layer's media type replaced, served by the
/// proxy under the tag `foreign` (the config and blobs stay the fixture's).
fn foreign_manifest(docker: bool) -> (String, String) {
    let mut m = manifest("library/busybox");
    let ct = if docker {
        m["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json".into();
        m["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json".into();
        m["layers"][0]["mediaType"] =
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip".into();
        m["layers"][0]["urls"] = serde_json::json!(["https://example.invalid/layer.tar.gz"]);
        "application/vnd.docker.distribution.manifest.v2+json"
    } else {
        m["layers"][0]["mediaType"] =
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip".into();
        "application/vnd.oci.image.manifest.v1+json"
    };
    (serde_json::to_string(&m).unwrap(), ct.to_string())
}

#[test]
fn foreign_layers_are_refused() {
    if !common::require_root("foreign_layers_are_refused") {
        return;
    }
    let layer = layers_by_size("library/busybox").remove(0);
    for docker in [true, false] {
        let (body, ct) = foreign_manifest(docker);
        let digest = krun_images::Digest::of(body.as_bytes()).to_string();
        let proxy = Proxy::start(
            common::REGISTRY,
            vec![rule(
                "GET",
                "/manifests/foreign",
                1000,
                Fault::Status {
                    code: 200,
                    headers: vec![
                        ("Content-Type".into(), ct),
                        ("Docker-Content-Digest".into(), digest),
                    ],
                    body,
                },
            )],
        );
        let root = Root::new("krun-img-foreign");
        let out = root.pull(&format!("{}/library/busybox:foreign", proxy.addr));
        let err = stderr(&out);
        assert!(!out.status.success(), "a foreign layer was pulled");
        one_line(&err);
        assert!(
            err.contains("foreign (non-distributable) layers are refused"),
            "{err}"
        );
        assert!(err.contains(&layer), "{err}");
        assert!(proxy.requests(&layer).is_empty(), "the layer was fetched");
        let out = common::run(root.krun().arg("images"));
        assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    }
}

#[test]
fn progress_plain_lines_and_quiet() {
    if !common::require_root("progress_plain_lines_and_quiet") {
        return;
    }
    let image = format!("{}/test/layers:latest", common::REGISTRY);
    let layers = layers_by_size("test/layers");
    let root = Root::new("krun-img-progress");

    let out = root.pull(&image);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // One plain line per layer, naming it, with its size and rate.
    for l in &layers {
        let short = &l[7..19];
        let lines: Vec<&str> = text.lines().filter(|x| x.starts_with(short)).collect();
        assert_eq!(lines.len(), 1, "{short}: {text}");
        assert!(
            lines[0].contains(": done, ") && lines[0].ends_with("/s)"),
            "{text}"
        );
    }
    assert!(text.contains(&format!("Pulled: {image}")), "{text}");
    assert!(
        !text.contains('\x1b'),
        "escape codes without a terminal: {text:?}"
    );

    // Again: every layer is already there.
    let out = root.pull(&image);
    let text = stdout(&out);
    assert_eq!(
        text.lines()
            .filter(|l| l.ends_with(": already exists"))
            .count(),
        layers.len(),
        "{text}"
    );

    // -q: the digest alone.
    let out = common::run(root.krun().args(["pull", "-q", &image]));
    assert!(out.status.success());
    let text = stdout(&out);
    let line = text.strip_suffix('\n').unwrap_or(&text);
    assert!(
        line.len() == 71
            && line.starts_with("sha256:")
            && line[7..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{text:?}"
    );
    assert_eq!(stderr(&out), "", "-q printed to stderr");
}

/// Runs `cmd` on a new pseudo-terminal and returns what it drew.
fn on_pty(cmd: &mut std::process::Command) -> (std::process::ExitStatus, String) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    let ws = libc::winsize {
        ws_row: 40,
        ws_col: 160,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: out-pointers to ints; a valid winsize.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    assert_eq!(r, 0, "openpty");
    // SAFETY: openpty returned these fds and nothing else owns them.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let io = |fd: &OwnedFd| std::process::Stdio::from(fd.try_clone().unwrap());
    cmd.stdin(io(&slave)).stdout(io(&slave)).stderr(io(&slave));
    cmd.env("TERM", "xterm-256color");
    let mut child = cmd.spawn().unwrap();
    // The command keeps its copies of the slave until told otherwise; the
    // master reads EOF only once every copy is closed.
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    drop(slave);
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        // EIO once the child and every copy of the slave are gone.
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    let st = child.wait().unwrap();
    let out = reader.join().unwrap();
    (st, String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn progress_bars_on_a_terminal() {
    if !common::require_root("progress_bars_on_a_terminal") {
        return;
    }
    // The big layer comes slowly, so its bar is drawn while downloading; five
    // layers with four downloads at once leave one waiting.
    let layers = layers_by_size("test/layers");
    let slow = Fault::Slow {
        chunk: 1 << 20,
        every: Duration::from_millis(100),
    };
    let proxy = Proxy::start(common::REGISTRY, vec![rule("GET", &layers[0], 1, slow)]);
    let root = Root::new("krun-img-bars");
    let image = format!("{}/test/layers:latest", proxy.addr);
    let (st, screen) = on_pty(root.krun().args(["pull", &image]));
    assert!(st.success(), "{screen}");
    for l in &layers {
        let short = &l[7..19];
        assert!(screen.contains(short), "no bar for {short}: {screen}");
    }
    for state in ["waiting", "downloading", "unpacking", "done"] {
        assert!(
            screen.contains(state),
            "state {state} never drawn: {screen}"
        );
    }
    // Bytes so far / total, and a rate, on the downloading bar.
    let dl: Vec<&str> = screen
        .split(['\r', '\n'])
        .filter(|l| l.contains(&layers[0][7..19]) && l.contains("downloading"))
        .collect();
    assert!(
        dl.iter()
            .any(|l| l.contains("MiB/") && l.contains("/s") && l.contains('[')),
        "downloading bar without bytes and rate: {dl:?}"
    );
    assert!(screen.contains(&format!("Pulled: {image}")), "{screen}");
}
