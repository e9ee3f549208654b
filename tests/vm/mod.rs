//! A throwaway Linux VM for tests that need a kernel setup this host does
//! not have (pure cgroup v2): Debian's kernel under qemu with TCG, an
//! initramfs built from a staging directory, results read from the serial
//! console. Everything the VM runs is in the initramfs, so no disk image
//! and no network are involved.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const QEMU: &str = "/usr/bin/qemu-system-x86_64";

/// The newest /boot/vmlinuz-* (linux-image-amd64), if installed.
pub fn kernel() -> Option<PathBuf> {
    let mut k: Vec<PathBuf> = fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    k.sort();
    k.pop()
}

/// Why the VM cannot run here, or None when kernel and qemu are present.
pub fn missing() -> Option<String> {
    if kernel().is_none() {
        return Some("no /boot/vmlinuz-*: apt-get install linux-image-amd64".into());
    }
    if !Path::new(QEMU).exists() {
        return Some(format!("no {QEMU}: apt-get install qemu-system-x86"));
    }
    None
}

/// Copies an executable into the staging tree at `dest` together with the
/// shared libraries ldd lists for it, at their own paths.
pub fn install_binary(staging: &Path, bin: &Path, dest: &str) {
    let target = staging.join(dest.trim_start_matches('/'));
    copy_file(bin, &target, 0o755);
    // Debug info only slows the guest down (a debug build is ~90 MB to
    // load and copy under TCG); strip it from the copy when binutils is here.
    if Path::new("/usr/bin/strip").exists() {
        let _ = Command::new("/usr/bin/strip")
            .arg("--strip-debug")
            .arg(&target)
            .status();
    }
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .unwrap_or_else(|e| panic!("ldd {}: {e}", bin.display()));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            copy_file(
                Path::new(p),
                &staging.join(p.trim_start_matches('/')),
                0o755,
            );
        }
    }
}

fn copy_file(from: &Path, to: &Path, mode: u32) {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", from.display(), to.display()));
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", to.display()));
}

/// Writes an executable script into the staging tree.
pub fn write_script(staging: &Path, dest: &str, text: &str) {
    let to = staging.join(dest.trim_start_matches('/'));
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    fs::write(&to, text).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
    fs::set_permissions(&to, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", to.display()));
}

/// The first stage every VM boots: busybox, a tmpfs root (pivot_root does
/// not work from the initramfs itself), then `/stage2` from the staging tree.
pub const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox mount -t tmpfs -o size=700m tmpfs /newroot
for d in /*; do
  case $d in /proc|/sys|/dev|/newroot|/init) ;; *) /bin/busybox cp -a $d /newroot/ ;; esac
done
/bin/busybox umount /dev
exec /bin/busybox switch_root /newroot /stage2
"#;

/// Packs the staging tree (plus /init and busybox) as a newc cpio archive.
pub fn build_initramfs(staging: &Path, out: &Path) {
    copy_file(
        Path::new("/bin/busybox"),
        &staging.join("bin/busybox"),
        0o755,
    );
    write_script(staging, "/init", INIT);
    let file = fs::File::create(out).unwrap_or_else(|e| panic!("create {}: {e}", out.display()));
    let mut find = Command::new("find")
        .arg(".")
        .current_dir(staging)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run find");
    let status = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(staging)
        .stdin(find.stdout.take().expect("find stdout"))
        .stdout(file)
        .status()
        .expect("run cpio (apt-get install cpio)");
    assert!(status.success(), "cpio failed: {status}");
    assert!(
        find.wait().map(|s| s.success()).unwrap_or(false),
        "find failed"
    );
}

/// What the VM printed on its serial console, and whether it finished.
pub struct Boot {
    pub serial: String,
    pub finished: bool,
    pub took: Duration,
}

/// Boots the kernel with this initramfs and returns the serial output once
/// qemu exits (the guest powers off) or the timeout passes.
pub fn boot(initrd: &Path, serial_log: &Path, timeout: Duration) -> Boot {
    let kernel = kernel().expect("kernel present (checked by missing())");
    let log = fs::File::create(serial_log)
        .unwrap_or_else(|e| panic!("create {}: {e}", serial_log.display()));
    let start = Instant::now();
    let mut child = Command::new(QEMU)
        .args([
            "-accel",
            "tcg",
            "-m",
            "1024",
            "-smp",
            "1",
            "-nographic",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
        ])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init",
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {QEMU}: {e}"));
    let finished = loop {
        match child.try_wait() {
            Ok(Some(_)) => break true,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("waiting for qemu: {e}"),
        }
    };
    let serial =
        String::from_utf8_lossy(&fs::read(serial_log).unwrap_or_default()).replace('\r', "");
    Boot {
        serial,
        finished,
        took: start.elapsed(),
    }
}
