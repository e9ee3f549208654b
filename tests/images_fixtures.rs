//! Issue 4, done-when 1: every fixture image pulls, and its mounted overlay
//! view equals `umoci unpack` of the same image, file by file.
mod common;
mod images_util;

use images_util::{diff_trees, umoci_rootfs, Root};
use krun_images::Store;

/// Pulls `image`, mounts its overlay root, unpacks it with umoci, compares.
fn pull_and_compare(image: &str, platform: Option<(&str, &str)>) {
    let root = Root::new("krun-img-fx");
    let mut cmd = root.krun();
    cmd.arg("pull").arg(image);
    if let Some((os, arch)) = platform {
        cmd.arg("--platform").arg(format!("{os}/{arch}"));
    }
    let out = common::run(&mut cmd);
    assert!(
        out.status.success(),
        "pull {image}: {}",
        images_util::stderr(&out)
    );

    let store = Store::under(&root.dir).unwrap();
    let rec = store
        .find(image)
        .unwrap()
        .expect("image recorded after pull");
    if let Some((_, arch)) = platform {
        assert_eq!(rec.architecture, arch);
    }
    let target = root.dir.join("mnt");
    std::fs::create_dir(&target).unwrap();
    let id = common::unique("fx");
    krun_images::rootfs::mount(&store, &rec, &id, &root.dir.join("ctr"), &target).unwrap();

    let reference = umoci_rootfs(&root.dir.join("umoci"), image, platform);
    let diffs = diff_trees(&target, &reference);
    krun_images::rootfs::unmount(&store, &id, &root.dir.join("ctr"), &target).unwrap();
    assert!(
        diffs.is_empty(),
        "{image}: {} differences from umoci, first ones:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn busybox_matches_umoci() {
    if !common::require_root("busybox_matches_umoci") {
        return;
    }
    pull_and_compare(
        &format!("{}/library/busybox:latest", common::REGISTRY),
        None,
    );
}

#[test]
fn layers_with_every_kind_of_entry_match_umoci() {
    if !common::require_root("layers_with_every_kind_of_entry_match_umoci") {
        return;
    }
    pull_and_compare(&format!("{}/test/layers:latest", common::REGISTRY), None);
}

#[test]
fn zstd_layers_match_umoci() {
    if !common::require_root("zstd_layers_match_umoci") {
        return;
    }
    pull_and_compare(&format!("{}/test/zstd:latest", common::REGISTRY), None);
}

#[test]
fn multiarch_index_resolves_each_platform() {
    if !common::require_root("multiarch_index_resolves_each_platform") {
        return;
    }
    let image = format!("{}/test/multiarch:latest", common::REGISTRY);
    pull_and_compare(&image, None);
    pull_and_compare(&image, Some(("linux", "arm64")));
}

#[test]
fn flask_app_matches_umoci() {
    if !common::require_root("flask_app_matches_umoci") {
        return;
    }
    pull_and_compare(&format!("{}/flask-app:latest", common::REGISTRY), None);
}
