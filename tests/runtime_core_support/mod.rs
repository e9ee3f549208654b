//! A busybox bundle with a private state root for krun-runtime's own
//! end-to-end tests (runtime_core_*.rs include it with `mod runtime_core_support;`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::common;

/// A busybox bundle plus a private state root, removed on drop.
pub struct Bundle {
    pub dir: PathBuf,
}

impl Bundle {
    pub fn new(name: &str, args: &[&str]) -> Bundle {
        let dir = std::env::temp_dir().join(common::unique(name));
        let rootfs = dir.join("rootfs");
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .expect("busybox-static is installed");
        for a in [
            "sh", "echo", "cat", "sleep", "id", "ls", "true", "hostname", "grep", "test", "stat",
            "readlink",
        ] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        let out = Command::new(common::bin("krun-runtime"))
            .arg("spec")
            .arg("--bundle")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let b = Bundle { dir };
        b.edit(|c| {
            c["process"]["terminal"] = json!(false);
            c["process"]["args"] = json!(args);
        });
        b
    }

    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        let p = self.dir.join("config.json");
        let mut c: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        f(&mut c);
        std::fs::write(&p, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    }

    pub fn root(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn rt(&self) -> Command {
        let mut c = Command::new(common::bin("krun-runtime"));
        c.arg("--root").arg(self.root()).current_dir(&self.dir);
        c
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.root()) {
            for e in rd.flatten() {
                let _ = self
                    .rt()
                    .args(["delete", "--force"])
                    .arg(e.file_name())
                    .output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The rootfs directory of a bundle.
pub fn rootfs(b: &Bundle) -> PathBuf {
    b.dir.join("rootfs")
}

/// `state` of a container as JSON.
pub fn state(b: &Bundle, id: &str) -> Value {
    let out = common::run_ok(b.rt().args(["state", id]));
    serde_json::from_str(&out).unwrap()
}

/// True when a cgroup named `id` exists in a v1 hierarchy or at the v2 root.
pub fn cgroup_exists(id: &str) -> bool {
    ["memory", "pids", "cpu", "unified"]
        .iter()
        .any(|c| Path::new("/sys/fs/cgroup").join(c).join(id).exists())
        || Path::new("/sys/fs/cgroup")
            .join(id)
            .join("cgroup.procs")
            .exists()
}
