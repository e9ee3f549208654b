//! Issue 4, done-when 2: every evil/* fixture is refused with a clear
//! error and nothing is created outside the store; the tampered blob gives
//! a digest error and nothing of it is committed.
mod common;
mod images_util;

use images_util::{list_all, stderr, Root};
use std::path::Path;

/// Host paths the evil layers aim at.
const TARGETS: &[&str] = &[
    "/tmp/krun-evil-dotdot",
    "/tmp/krun-evil-absolute",
    "/tmp/krun-evil-symlink",
    "/x",
    "/tmp/x",
];

fn fingerprint(p: &str) -> Option<(u64, i64, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(p).ok()?;
    Some((md.ino(), md.mtime(), std::fs::read(p).unwrap_or_default()))
}

#[test]
fn evil_layers_are_refused_and_nothing_escapes() {
    if !common::require_root("evil_layers_are_refused_and_nothing_escapes") {
        return;
    }
    let cases = [
        ("dotdot", "path contains .. (refused)"),
        ("absolute", "absolute path (refused)"),
        ("symlink", "is not a directory (refused)"),
        ("hardlink", "absolute path (refused)"),
        ("whiteout", "path contains .. (refused)"),
        ("gzipbomb", "decompression bomb"),
    ];
    let shadow_before = fingerprint("/etc/shadow");
    let root = Root::new("krun-img-evil");
    for t in TARGETS {
        assert!(!Path::new(t).exists(), "{t} exists before the test");
    }
    for (name, want) in cases {
        let image = format!("{}/evil/{name}:latest", common::REGISTRY);
        let out = root.pull(&image);
        let err = stderr(&out);
        assert!(!out.status.success(), "evil/{name} was accepted");
        assert!(
            err.contains(want),
            "evil/{name}: error {err:?} lacks {want:?}"
        );
        assert_eq!(
            err.trim().lines().count(),
            1,
            "evil/{name}: not one line: {err:?}"
        );
        assert!(
            err.contains("layer sha256:"),
            "evil/{name}: error does not name the layer: {err}"
        );
    }
    // Nothing outside the store: not the attack targets, not /etc/shadow,
    // and under the krun root only the store itself (and our config paths).
    for t in TARGETS {
        assert!(!Path::new(t).exists(), "{t} was created");
    }
    assert_eq!(
        fingerprint("/etc/shadow"),
        shadow_before,
        "/etc/shadow changed"
    );
    for p in list_all(&root.dir) {
        assert!(
            p.starts_with("images"),
            "created outside the store: {}",
            p.display()
        );
    }
    // And nothing of them is committed: no image, no layer, no partial left.
    let store = root.store();
    assert_eq!(
        list_all(&store.join("refs")),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        list_all(&store.join("layers")),
        Vec::<std::path::PathBuf>::new()
    );
    let images = common::run_ok(root.krun().arg("images"));
    assert_eq!(
        images.lines().count(),
        1,
        "krun images lists evil images:\n{images}"
    );
}

#[test]
fn tampered_blob_is_a_digest_error_and_nothing_is_committed() {
    if !common::require_root("tampered_blob_is_a_digest_error_and_nothing_is_committed") {
        return;
    }
    let root = Root::new("krun-img-tamper");
    let image = format!("{}/evil/tampered:latest", common::REGISTRY);
    let out = root.pull(&image);
    let err = stderr(&out);
    assert!(!out.status.success(), "tampered image accepted");
    assert!(err.contains("does not match its digest"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err:?}");
    // The layer named in the error is neither a blob nor a layer in the store.
    let digest = err
        .split_whitespace()
        .find_map(|w| w.strip_prefix("sha256:"))
        .map(|h| h.trim_end_matches(':').to_string())
        .expect("error names the blob digest");
    let store = root.store();
    assert!(
        !store.join("blobs/sha256").join(&digest).exists(),
        "tampered blob committed"
    );
    assert_eq!(
        list_all(&store.join("layers")),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        list_all(&store.join("refs")),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        list_all(&store.join("tmp")),
        Vec::<std::path::PathBuf>::new(),
        "partial left behind"
    );
}
