//! The loopback registry fixtures (tests/fixtures/registry.sh) hold what they
//! promise, proven with skopeo and umoci before krun's own puller reads them.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixtures_dir, run, run_ok, PRIVATE_PASS, PRIVATE_REGISTRY, PRIVATE_USER, REGISTRY};
use serde_json::Value;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

const EVIL: &[&str] = &[
    "dotdot", "absolute", "symlink", "hardlink", "whiteout", "gzipbomb", "tampered",
];

fn image(repo: &str) -> String {
    format!("docker://{REGISTRY}/{repo}:latest")
}

fn inspect_raw(repo: &str) -> Value {
    let out = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &image(repo),
    ]));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{repo}: manifest is not JSON: {e}"))
}

fn inspect_config(repo: &str, arch: Option<&str>) -> Value {
    let mut cmd = Command::new("skopeo");
    cmd.arg("inspect").arg("--config").arg("--tls-verify=false");
    if let Some(arch) = arch {
        cmd.args(["--override-arch", arch]);
    }
    let out = run_ok(cmd.arg(image(repo)));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{repo}: config is not JSON: {e}"))
}

/// umoci writes OCI manifests without the optional mediaType field; the
/// config descriptor's type is what marks them.
fn assert_oci_manifest(manifest: &Value) {
    assert_eq!(manifest["schemaVersion"], 2);
    assert!(
        manifest["mediaType"].is_null() || manifest["mediaType"] == OCI_MANIFEST,
        "{manifest}"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
}

fn layer_types(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .expect("manifest has layers")
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A temporary directory removed on drop, failure included.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(common::unique(&format!("krun-fixtures-{tag}")));
        fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// skopeo copy of a public fixture into an OCI layout; returns skopeo's result.
fn copy_to_layout(repo: &str, layout: &Path) -> std::process::Output {
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        &image(repo),
        &format!("oci:{}:x", layout.display()),
    ]))
}

/// The bytes of the single layer blob of the image copied into `layout`.
fn only_layer_blob(layout: &Path) -> PathBuf {
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("manifest digest");
    let manifest: Value =
        serde_json::from_slice(&fs::read(blob_path(layout, digest)).expect("manifest blob"))
            .expect("manifest is JSON");
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "expected a one-layer image");
    blob_path(layout, layers[0]["digest"].as_str().expect("layer digest"))
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    layout.join("blobs/sha256").join(hex)
}

/// (path, link target, header size) of every entry of a gzip tar blob.
fn tar_entries(blob: &Path) -> Vec<(String, String, u64)> {
    let gz = flate2::read::GzDecoder::new(fs::File::open(blob).expect("open blob"));
    let mut archive = tar::Archive::new(gz);
    archive
        .entries()
        .expect("tar entries")
        .map(|e| {
            let e = e.expect("tar entry");
            let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            (path, link, e.header().size().unwrap_or(0))
        })
        .collect()
}

#[test]
fn catalog_lists_every_fixture() {
    let out = run_ok(Command::new("curl").args([
        "-sf",
        "--noproxy",
        "*",
        &format!("http://{REGISTRY}/v2/_catalog?n=1000"),
    ]));
    let catalog: Value = serde_json::from_str(&out).expect("catalog is JSON");
    let repos: BTreeSet<&str> = catalog["repositories"]
        .as_array()
        .expect("repositories")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut want = vec![
        "library/busybox".to_string(),
        "test/layers".into(),
        "test/zstd".into(),
        "test/multiarch".into(),
        "flask-app".into(),
    ];
    want.extend(EVIL.iter().map(|e| format!("evil/{e}")));
    for repo in &want {
        assert!(
            repos.contains(repo.as_str()),
            "{repo} missing from the catalog {repos:?}"
        );
    }
}

#[test]
fn manifests_have_the_described_media_types_and_counts() {
    let busybox = inspect_raw("library/busybox");
    assert_oci_manifest(&busybox);
    assert_eq!(layer_types(&busybox), vec![GZIP_LAYER]);
    let config = inspect_config("library/busybox", None);
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/sh"]));

    let layers = layer_types(&inspect_raw("test/layers"));
    assert!(layers.len() >= 5, "test/layers has {} layers", layers.len());
    assert!(layers.iter().all(|t| t == GZIP_LAYER), "{layers:?}");

    let zstd = layer_types(&inspect_raw("test/zstd"));
    assert!(
        !zstd.is_empty() && zstd.iter().all(|t| t == ZSTD_LAYER),
        "{zstd:?}"
    );

    let multi = inspect_raw("test/multiarch");
    assert_eq!(multi["mediaType"], OCI_INDEX);
    let platforms: BTreeSet<String> = multi["manifests"]
        .as_array()
        .expect("index manifests")
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap_or_default(),
                m["platform"]["architecture"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        platforms,
        BTreeSet::from(["linux/amd64".to_string(), "linux/arm64".to_string()])
    );
    for arch in ["amd64", "arm64"] {
        let config = inspect_config("test/multiarch", Some(arch));
        assert_eq!(config["architecture"], arch);
    }

    let flask = inspect_raw("flask-app");
    assert_oci_manifest(&flask);
    assert_eq!(layer_types(&flask), vec![GZIP_LAYER]);
    let size = flask["layers"][0]["size"].as_u64().expect("layer size");
    assert!(
        (40_000_000..150_000_000).contains(&size),
        "flask-app layer is {size} bytes"
    );
    let config = inspect_config("flask-app", None);
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["python3", "/app/app.py"])
    );
    assert_eq!(config["config"]["WorkingDir"], "/app");
    assert!(config["config"]["ExposedPorts"]["5000/tcp"].is_object());

    for evil in EVIL {
        let manifest = inspect_raw(&format!("evil/{evil}"));
        assert_eq!(layer_types(&manifest), vec![GZIP_LAYER], "evil/{evil}");
    }
}

#[test]
fn layers_fixture_unpacks_with_umoci_into_every_kind_of_entry() {
    if !common::require_root("layers_fixture_unpacks_with_umoci_into_every_kind_of_entry") {
        return;
    }
    let tmp = TempDir::new("layers");
    let layout = tmp.0.join("layout");
    let out = copy_to_layout("test/layers", &layout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = tmp.0.join("bundle");
    run_ok(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:x", layout.display()),
        bundle.to_str().expect("utf-8 path"),
    ]));
    let r = bundle.join("rootfs/data");
    let meta = |p: &str| fs::symlink_metadata(r.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));

    // whiteouts of a file and a directory of a lower layer
    assert!(
        !r.join("del-file").exists(),
        "del-file survived its whiteout"
    );
    assert!(!r.join("del-dir").exists(), "del-dir survived its whiteout");
    assert_eq!(
        fs::read_to_string(r.join("changed")).expect("changed"),
        "changed in layer 3\n"
    );
    // the opaque directory hides everything below it
    let opaque: BTreeSet<String> = fs::read_dir(r.join("opaque"))
        .expect("opaque dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(opaque, BTreeSet::from(["new1".to_string()]));
    // hardlinks, across a repack and inside one raw layer
    assert_eq!(meta("hard/orig").ino(), meta("hard/link").ino());
    assert_eq!(meta("hard/orig").nlink(), 2);
    assert_eq!(meta("l4/a").ino(), meta("l4/b").ino());
    // symlinks are kept verbatim
    assert_eq!(
        fs::read_link(r.join("links/abs")).expect("abs"),
        Path::new("/data/hard/orig")
    );
    assert_eq!(
        fs::read_link(r.join("links/rel")).expect("rel"),
        Path::new("../hard/orig")
    );
    assert_eq!(
        fs::read_link(r.join("links/dangling")).expect("dangling"),
        Path::new("does-not-exist")
    );
    // special modes
    assert_eq!(meta("modes/setuid").permissions().mode() & 0o7777, 0o4755);
    assert_eq!(meta("modes/setgid").permissions().mode() & 0o7777, 0o2755);
    assert_eq!(meta("modes/sgid-dir").permissions().mode() & 0o7777, 0o2775);
    assert_eq!(meta("modes/sticky").permissions().mode() & 0o7777, 0o1777);
    // a fifo and a character device
    assert!(meta("special/fifo").file_type().is_fifo());
    let null = meta("special/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    // owners other than root
    assert_eq!(
        (meta("owned/user").uid(), meta("owned/user").gid()),
        (1000, 1000)
    );
    assert_eq!(
        (meta("owned/other").uid(), meta("owned/other").gid()),
        (1234, 5678)
    );
    assert_eq!(meta("owned/other").permissions().mode() & 0o777, 0o640);
    assert_eq!(
        (meta("owned/dir").uid(), meta("owned/dir").gid()),
        (4321, 4321)
    );
    // xattrs, from a repacked file and from PAX headers
    assert_eq!(getxattr(&r.join("xattr/file"), "user.krun.test"), b"hello");
    assert_eq!(getxattr(&r.join("xattr/file"), "user.krun.other"), b"world");
    assert_eq!(
        getxattr(&r.join("xattr/pax-file"), "user.krun.pax"),
        b"from-pax"
    );
    // an empty file and a 50 MB file
    assert_eq!(meta("empty").len(), 0);
    assert_eq!(meta("big/file50m").len(), 50_000_000);
}

fn getxattr(path: &Path, name: &str) -> Vec<u8> {
    let out = run_ok(Command::new("python3").args([
        "-c",
        "import os,sys; sys.stdout.buffer.write(os.getxattr(sys.argv[1], sys.argv[2]))",
        path.to_str().expect("utf-8 path"),
        name,
    ]));
    out.into_bytes()
}

#[test]
fn zstd_and_multiarch_and_flask_copy_with_skopeo() {
    let tmp = TempDir::new("copy");
    for repo in [
        "library/busybox",
        "test/zstd",
        "test/multiarch",
        "flask-app",
    ] {
        let layout = tmp.0.join(repo.replace('/', "-"));
        let out = copy_to_layout(repo, &layout);
        assert!(
            out.status.success(),
            "skopeo copy {repo}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // the zstd layer really is zstd, and holds busybox
    let layer = only_layer_blob(&tmp.0.join("test-zstd"));
    let listing =
        run_ok(Command::new("sh").args(["-c", &format!("zstd -dc {} | tar -t", layer.display())]));
    assert!(listing.lines().any(|l| l == "bin/busybox"), "{listing}");
}

#[test]
fn evil_fixtures_carry_their_attack() {
    let tmp = TempDir::new("evil");
    let want: &[(&str, &str, &str)] = &[
        ("dotdot", "../../../../../../tmp/krun-evil-dotdot", ""),
        ("absolute", "/tmp/krun-evil-absolute", ""),
        ("symlink", "escape", "/"),
        ("hardlink", "shadow", "/etc/shadow"),
        ("whiteout", "../.wh.x", ""),
    ];
    for (name, path, link) in want {
        let layout = tmp.0.join(name);
        let out = copy_to_layout(&format!("evil/{name}"), &layout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let entries = tar_entries(&only_layer_blob(&layout));
        assert!(
            entries.iter().any(|(p, l, _)| p == path && l == link),
            "evil/{name}: no entry {path} -> {link:?} in {entries:?}"
        );
    }

    // the bomb: small compressed, one entry of 20 GiB
    let layout = tmp.0.join("gzipbomb");
    let out = copy_to_layout("evil/gzipbomb", &layout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let blob = only_layer_blob(&layout);
    let compressed = fs::metadata(&blob).expect("bomb blob").len();
    assert!(compressed < 32 << 20, "bomb blob is {compressed} bytes");
    let gz = flate2::read::GzDecoder::new(fs::File::open(&blob).expect("open bomb"));
    let mut archive = tar::Archive::new(gz);
    let first = archive
        .entries()
        .expect("entries")
        .next()
        .expect("one entry")
        .expect("entry");
    assert!(
        first.size() >= 16 << 30,
        "bomb entry is only {} bytes",
        first.size()
    );
    let mut head = vec![0u8; 1 << 20];
    first
        .take(1 << 20)
        .read_exact(&mut head)
        .expect("inflate the start");
    assert!(head.iter().all(|b| *b == 0));

    // the tampered blob no longer matches its digest: skopeo refuses it
    let out = copy_to_layout("evil/tampered", &tmp.0.join("tampered"));
    assert!(!out.status.success(), "tampered blob copied without error");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("digest"), "unexpected error: {err}");
}

#[test]
fn private_registry_wants_tls_and_credentials() {
    let certs = fixtures_dir().join("certs");
    let base = |creds: Option<String>| {
        let mut cmd = Command::new("skopeo");
        cmd.args(["inspect", "--raw", "--cert-dir"]).arg(&certs);
        if let Some(c) = creds {
            cmd.args(["--creds", &c]);
        }
        cmd.arg(format!(
            "docker://{PRIVATE_REGISTRY}/private/busybox:latest"
        ));
        cmd
    };
    let anonymous = run(&mut base(None));
    assert!(!anonymous.status.success(), "anonymous pull was allowed");
    let err = String::from_utf8_lossy(&anonymous.stderr).to_lowercase();
    assert!(
        err.contains("unauthorized") || err.contains("authentication required"),
        "{err}"
    );
    let wrong = run(&mut base(Some(format!("{PRIVATE_USER}:wrong"))));
    assert!(!wrong.status.success(), "a wrong password was accepted");

    let manifest = run_ok(&mut base(Some(format!("{PRIVATE_USER}:{PRIVATE_PASS}"))));
    let manifest: Value = serde_json::from_str(&manifest).expect("json");
    assert_eq!(layer_types(&manifest), vec![GZIP_LAYER]);

    // and the image copies with the credentials, verified against the CA
    let tmp = TempDir::new("private");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--src-cert-dir"])
            .arg(&certs)
            .args([
                "--src-creds",
                &format!("{PRIVATE_USER}:{PRIVATE_PASS}"),
                &format!("docker://{PRIVATE_REGISTRY}/private/busybox:latest"),
                &format!("oci:{}:x", tmp.0.join("layout").display()),
            ]),
    );
    let entries = tar_entries(&only_layer_blob(&tmp.0.join("layout")));
    assert!(
        entries.iter().any(|(p, _, _)| p == "bin/busybox"),
        "{entries:?}"
    );

    // without the fixture CA the certificate is not trusted
    let untrusted = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--creds",
        &format!("{PRIVATE_USER}:{PRIVATE_PASS}"),
        &format!("docker://{PRIVATE_REGISTRY}/private/busybox:latest"),
    ]));
    assert!(
        !untrusted.status.success(),
        "self-signed certificate trusted"
    );
}
