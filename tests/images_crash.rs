//! Issue 4, done-when 3: a pull SIGKILLed at 10 points is followed by a
//! pull that succeeds and a consistent `krun images`; two concurrent pulls
//! of flask-app both succeed and fetch each blob once.
mod common;
mod images_util;

use images_util::{list_all, stderr, stdout, Root};
use krun_images::Store;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

fn flask() -> String {
    format!("{}/flask-app:latest", common::REGISTRY)
}

/// `krun images` works and every image it lists is complete in the store.
fn assert_consistent(root: &Root) -> usize {
    let out = common::run(root.krun().arg("images"));
    assert!(out.status.success(), "krun images failed: {}", stderr(&out));
    let store = Store::under(&root.dir).unwrap();
    let recs = store.list().unwrap();
    assert_eq!(
        stdout(&out).lines().count(),
        recs.len() + 1,
        "{}",
        stdout(&out)
    );
    for r in &recs {
        assert!(
            store.has_blob(&r.config_digest),
            "{}: config blob missing",
            r.reference
        );
        for l in &r.layers {
            assert!(
                store.has_layer(&l.chain_id),
                "{}: layer {} missing",
                r.reference,
                l.digest
            );
        }
    }
    recs.len()
}

#[test]
fn pull_killed_at_ten_points_then_completes() {
    if !common::require_root("pull_killed_at_ten_points_then_completes") {
        return;
    }
    // How long a whole pull takes here, to spread the kill points over it.
    let probe = Root::new("krun-img-kill");
    let t0 = Instant::now();
    let out = probe.pull(&flask());
    assert!(out.status.success(), "{}", stderr(&out));
    let full = t0.elapsed();
    drop(probe);

    for k in 1..=10u32 {
        let root = Root::new("krun-img-kill");
        let delay = full * k / 11;
        let mut child = root.krun().args(["pull", "-q", &flask()]).spawn().unwrap();
        std::thread::sleep(delay);
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        assert_consistent(&root);

        let out = root.pull(&flask());
        assert!(
            out.status.success(),
            "pull after kill at {delay:?}: {}",
            stderr(&out)
        );
        assert_eq!(assert_consistent(&root), 1, "after kill at {delay:?}");
        let tmp: Vec<_> = list_all(&root.store().join("tmp"))
            .into_iter()
            .filter(|p| p.components().count() == 1)
            .collect();
        assert!(
            tmp.iter()
                .all(|p| !p.to_string_lossy().starts_with("layer-")
                    && !p.to_string_lossy().ends_with(".partial")),
            "partial downloads or layers left after a successful pull: {tmp:?}"
        );
    }
}

#[test]
fn concurrent_pulls_fetch_each_blob_once() {
    if !common::require_root("concurrent_pulls_fetch_each_blob_once") {
        return;
    }
    let log = common::fixtures_dir().join("logs/registry-5000.log");
    let start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let root = Root::new("krun-img-conc");
    let a = root.krun().args(["pull", "-q", &flask()]).spawn().unwrap();
    let b = root.krun().args(["pull", "-q", &flask()]).spawn().unwrap();
    let pids = [a.id(), b.id()];
    let oa = a.wait_with_output().unwrap();
    let ob = b.wait_with_output().unwrap();
    assert!(
        oa.status.success() && ob.status.success(),
        "a: {} b: {}",
        stderr(&oa),
        stderr(&ob)
    );
    assert_eq!(assert_consistent(&root), 1);

    // The registry writes its access log asynchronously.
    std::thread::sleep(Duration::from_millis(500));
    let mut f = std::fs::File::open(&log).unwrap();
    f.seek(SeekFrom::Start(start)).unwrap();
    let mut text = String::new();
    f.read_to_string(&mut text).unwrap();
    let mut fetched: HashMap<String, usize> = HashMap::new();
    for line in text.lines() {
        let ours = pids.iter().any(|p| line.contains(&format!("(pid {p})")));
        if !ours || !line.contains("\"GET /v2/flask-app/blobs/") {
            continue;
        }
        let digest = line
            .split("/blobs/")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .to_string();
        *fetched.entry(digest).or_default() += 1;
    }
    let store = Store::under(&root.dir).unwrap();
    let rec = store.find(&flask()).unwrap().unwrap();
    let mut want: Vec<String> = rec.layers.iter().map(|l| l.digest.to_string()).collect();
    want.push(rec.config_digest.to_string());
    want.sort();
    let mut got: Vec<String> = fetched.keys().cloned().collect();
    got.sort();
    assert_eq!(got, want, "blobs fetched by the two pulls (registry log)");
    for (d, n) in &fetched {
        assert_eq!(*n, 1, "{d} fetched {n} times");
    }
}

fn busybox() -> String {
    format!("{}/library/busybox:latest", common::REGISTRY)
}

fn unsynced(root: &Root) -> Vec<std::path::PathBuf> {
    list_all(&root.store().join("unsynced"))
}

/// Waits (bounded) for the `krun image settle` a pull started.
fn wait_settled(root: &Root) {
    let t0 = Instant::now();
    while !unsynced(root).is_empty() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(unsynced(root), Vec::<std::path::PathBuf>::new());
}

/// `krun pull` returns before its layers are synced; the `krun image
/// settle` it starts syncs them and clears their markers soon after.
#[test]
fn pulled_layers_are_settled_soon_after() {
    if !common::require_root("pulled_layers_are_settled_soon_after") {
        return;
    }
    let root = Root::new("krun-img-settle");
    let out = root.pull(&busybox());
    assert!(out.status.success(), "{}", stderr(&out));
    wait_settled(&root);
    assert_eq!(assert_consistent(&root), 1);
}

/// The state a power loss leaves: a layer committed (renamed into place)
/// whose marker says it was never synced, from a boot that is over. The next
/// krun command removes the layer and the image using it, and a pull brings
/// both back; a marker of this boot is left alone (the kernel has the data).
#[test]
fn layers_unsynced_when_the_machine_went_down_are_pulled_again() {
    if !common::require_root("layers_unsynced_when_the_machine_went_down_are_pulled_again") {
        return;
    }
    let root = Root::new("krun-img-powerloss");
    let out = root.pull(&busybox());
    assert!(out.status.success(), "{}", stderr(&out));
    wait_settled(&root);
    let store = Store::under(&root.dir).unwrap();
    let rec = store.find(&busybox()).unwrap().unwrap();
    let chain = rec.layers[0].chain_id.clone();
    let marker = root.store().join("unsynced").join(chain.hex());
    let this_boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();

    std::fs::write(&marker, this_boot.trim()).unwrap();
    assert_eq!(
        assert_consistent(&root),
        1,
        "a marker of this boot is trusted"
    );

    std::fs::write(&marker, "00000000-0000-0000-0000-000000000000").unwrap();
    let out = common::run(root.krun().arg("images"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    assert!(!store.has_layer(&chain), "the torn layer is still there");
    assert!(!marker.exists());

    let out = root.pull(&busybox());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(assert_consistent(&root), 1);
    let sh = store.layer_path(&chain).join("bin/busybox");
    assert!(
        std::fs::metadata(&sh).unwrap().len() > 0,
        "{}",
        sh.display()
    );
}
