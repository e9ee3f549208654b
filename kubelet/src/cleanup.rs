//! Removing everything of a pod from the node, whatever state it was left
//! in: container instances (runtime state, rootfs mounts, writable
//! layers, bundles), the sandbox (network attachment, namespace mounts,
//! shm), the pod's cgroups, its volumes (never a hostPath's contents),
//! its logs and its state directories.
//! Idempotent; what could not be removed is returned, each naming what.

use std::fs;
use std::io;
use std::path::Path;

use krun_images::Store;
use krun_netplug::Network;

use crate::node::Node;
use crate::podstate::PodDirs;
use crate::supervisor::container::{self, pod_cgroup};

fn names_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes every container instance of the pod that still has a bundle,
/// a writable layer or runtime state.
pub fn remove_containers(node: &Node, store: &Store, dirs: &PodDirs) -> Vec<String> {
    let mut ids = names_in(&dirs.run.join("bundles"));
    ids.extend(names_in(&dirs.state.join("containers")));
    ids.sort();
    ids.dedup();
    ids.iter()
        .flat_map(|id| {
            container::remove(
                &node.runtime,
                store,
                id,
                &dirs.container_dir(id),
                &dirs.bundle(id),
            )
        })
        .collect()
}

/// Removes the pod's cgroup directories (their containers' are gone
/// with the containers) from every hierarchy, v1 and v2.
pub fn remove_cgroups(uid: &str) -> Vec<String> {
    let rel = pod_cgroup(uid);
    let rel = rel.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    let mut places = vec![root.join(rel)];
    places.extend(names_in(root).into_iter().map(|h| root.join(h).join(rel)));
    let mut left = Vec::new();
    for p in places {
        // Leaf cgroups (a container the runtime could not delete) first.
        for child in names_in(&p) {
            let c = p.join(&child);
            if c.is_dir() {
                let _ = fs::remove_dir(&c);
            }
        }
        match fs::remove_dir(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // not a directory: a hierarchy without this pod (or a file)
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {}
            Err(e) => left.push(format!("cgroup {}: {e}", p.display())),
        }
    }
    left
}

fn remove_tree(p: &Path, left: &mut Vec<String>) {
    match fs::remove_dir_all(p) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => left.push(format!("{}: {e}", p.display())),
    }
}

/// Removes everything of the pod. `network` is None when the node's
/// network could not be opened (then a leftover says so if the pod had
/// an attachment).
pub fn remove_pod(
    node: &Node,
    store: &Store,
    network: Option<&Network>,
    dirs: &PodDirs,
) -> Vec<String> {
    crate::pause::stop_orphan(&dirs.pause_pid_file());
    let mut left = remove_containers(node, store, dirs);
    match network {
        Some(net) => {
            if let Err(e) = crate::sandbox::teardown(&node.paths.sandbox_root(), net, &dirs.uid) {
                left.push(e.to_string());
            }
        }
        None => {
            let sb = node.paths.sandbox_root().join(&dirs.uid);
            if sb.exists() {
                left.push(format!(
                    "sandbox {}: the node network could not be opened",
                    sb.display()
                ));
            }
        }
    }
    left.extend(remove_cgroups(&dirs.uid));
    // volumes (tmpfs, subPath pins) are unmounted before their directory
    // goes; one still mounted keeps the state directory (below)
    left.extend(crate::volumes::teardown(&dirs.state));
    remove_tree(&dirs.logs, &mut left);
    // With anything left the pod keeps its records (it stays listed, and
    // whoever retries knows it); a rootfs that would not unmount keeps
    // its directory: removing files through a live overlay is not
    // removing them.
    if left.is_empty() {
        remove_tree(&dirs.run, &mut left);
        remove_tree(&dirs.state, &mut left);
    }
    left
}
