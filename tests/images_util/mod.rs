//! Helpers for the image end-to-end tests (tests/images_*.rs).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod proxy;

/// An isolated krun root, removed (after unmounting anything left in it)
/// when dropped.
pub struct Root {
    pub dir: PathBuf,
}

impl Root {
    pub fn new(name: &str) -> Root {
        let dir = std::env::temp_dir().join(crate::common::unique(name));
        std::fs::create_dir_all(&dir).unwrap();
        Root { dir }
    }

    pub fn store(&self) -> PathBuf {
        self.dir.join("images")
    }

    /// `krun --root <root> ARGS` with a clean registry/credential environment.
    pub fn krun(&self) -> Command {
        let mut c = Command::new(crate::common::bin("krun"));
        c.arg("--root").arg(&self.dir);
        c.env_remove("KRUN_ROOT")
            .env("KRUN_REGISTRIES_CONF", self.dir.join("registries.toml"))
            .env("REGISTRY_AUTH_FILE", self.dir.join("auth.json"))
            .env_remove("DOCKER_CONFIG")
            .env("HOME", &self.dir);
        c
    }

    pub fn pull(&self, image: &str) -> Output {
        crate::common::run(self.krun().args(["pull", image]))
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // Unmount anything a failed test left under the root, deepest first.
        if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
            let mut points: Vec<&str> = m
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|p| Path::new(p).starts_with(&self.dir))
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                if let Ok(c) = CString::new(p) {
                    // SAFETY: NUL-terminated path.
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the comparison looks at for one path.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub rdev: u64,
    pub link: Option<PathBuf>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Regular files only (directory mtimes differ legitimately in a merged view).
    pub mtime: Option<i64>,
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 65536];
    // SAFETY: buffer and length match.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return out;
    }
    for name in names[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let s = String::from_utf8_lossy(name).into_owned();
        // overlay's own bookkeeping never shows through a merged view anyway.
        if s.starts_with("trusted.overlay.") || s == "security.selinux" {
            continue;
        }
        let cn = CString::new(name).unwrap();
        let mut v = vec![0u8; 65536];
        // SAFETY: buffer and length match.
        let m = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        if m >= 0 {
            v.truncate(m as usize);
            out.insert(s, v);
        }
    }
    out
}

/// Every path under `root` (relative), with what the comparison checks.
pub fn tree(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let md = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        if ft.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        }
        out.insert(
            rel,
            Entry {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                size: if ft.is_file() { md.len() } else { 0 },
                rdev: if ft.is_char_device() || ft.is_block_device() {
                    md.rdev()
                } else {
                    0
                },
                link: if ft.is_symlink() {
                    std::fs::read_link(&p).ok()
                } else {
                    None
                },
                xattrs: xattrs(&p),
                mtime: if ft.is_file() { Some(md.mtime()) } else { None },
            },
        );
    }
    out
}

/// Compares two trees file by file; returns a list of differences (empty
/// when equal), with file contents compared byte for byte.
pub fn diff_trees(ours: &Path, reference: &Path) -> Vec<String> {
    let a = tree(ours);
    let b = tree(reference);
    let mut diffs = Vec::new();
    for (p, eb) in &b {
        match a.get(p) {
            None => diffs.push(format!("missing in krun: /{}", p.display())),
            Some(ea) => {
                if ea != eb {
                    diffs.push(format!(
                        "differs: /{}: krun {ea:?} vs umoci {eb:?}",
                        p.display()
                    ));
                } else if ea.kind == "file" {
                    let x = std::fs::read(ours.join(p)).unwrap();
                    let y = std::fs::read(reference.join(p)).unwrap();
                    if x != y {
                        diffs.push(format!("content differs: /{}", p.display()));
                    }
                }
            }
        }
    }
    for p in a.keys() {
        if !b.contains_key(p) {
            diffs.push(format!(
                "extra in krun (should be removed or absent): /{}",
                p.display()
            ));
        }
    }
    diffs
}

/// The reference unpack: skopeo copies the image to an OCI layout and
/// `umoci unpack` builds its rootfs. Returns the rootfs path.
pub fn umoci_rootfs(work: &Path, image: &str, platform: Option<(&str, &str)>) -> PathBuf {
    let layout = work.join("oci");
    let bundle = work.join("bundle");
    std::fs::create_dir_all(work).unwrap();
    let mut c = Command::new("skopeo");
    // Recompressed to gzip: umoci cannot read zstd layers.
    c.args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-compress",
        "--dest-compress-format",
        "gzip",
    ]);
    if let Some((os, arch)) = platform {
        c.args(["--override-os", os, "--override-arch", arch]);
    }
    c.arg(format!("docker://{image}"))
        .arg(format!("oci:{}:ref", layout.display()));
    crate::common::run_ok(&mut c);
    crate::common::run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:ref", layout.display()))
            .arg(&bundle),
    );
    bundle.join("rootfs")
}

/// Paths under `dir` (recursive), relative.
pub fn list_all(dir: &Path) -> Vec<PathBuf> {
    tree(dir)
        .into_keys()
        .filter(|p| !p.as_os_str().is_empty())
        .collect()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
