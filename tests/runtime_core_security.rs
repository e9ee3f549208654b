//! Attacks from inside a container against krun-runtime, one per class of
//! runtime CVE: each test plants the hostile rootfs or config and checks the
//! host is untouched and the container got the confined result.
mod common;
mod runtime_core_support;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use runtime_core_support::{rootfs, Bundle};
use serde_json::json;

/// A host directory unique to this test, removed on drop.
struct HostDir(PathBuf);

impl HostDir {
    fn new(name: &str) -> HostDir {
        let p = std::env::temp_dir().join(common::unique(name));
        std::fs::create_dir_all(&p).unwrap();
        HostDir(p)
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(b: &Bundle, id: &str) -> std::process::Output {
    common::run(b.rt().args(["run", id]))
}

/// CVE-2019-5736: a process in the container keeps a handle on the
/// runtime's /proc/1/exe (taken while the init is still the runtime) and
/// reopens it for writing once no runtime process runs. The runtime runs
/// from a read-only private mount of itself (or a sealed memfd), so the
/// write fails and the host binary stays intact. The test attacks a copy
/// of the binary, so a regression cannot damage the build.
#[test]
fn cve_2019_5736_runtime_binary_is_not_writable() {
    if !common::require_root("cve_2019_5736_runtime_binary_is_not_writable") {
        return;
    }
    let host = HostDir::new("krt-5736-bin");
    let bin = host.0.join("krun-runtime");
    std::fs::copy(common::bin("krun-runtime"), &bin).unwrap();
    let before = std::fs::read(&bin).unwrap();
    let b = Bundle::new("krt-5736", &["sleep", "3"]);
    // A startContainer hook runs inside the container while the init (pid 1
    // there) is still the runtime; it opens the runtime binary before it
    // returns (the init waits for it, so pid 1 has not exec'd yet) and
    // leaves a writer behind.
    let attack = "exec 3</proc/1/exe; (sleep 1; \
                  if echo pwned 2>/tmp/err >/proc/self/fd/3; then echo WROTE; else echo DENIED; fi > /tmp/result) &";
    b.edit(|c| {
        c["hooks"] = json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", attack]}]});
        c["root"]["readonly"] = json!(false);
    });
    let id = common::unique("c5736");
    let rt = |args: &[&str]| {
        let mut c = std::process::Command::new(&bin);
        c.arg("--root").arg(b.root()).args(args).current_dir(&b.dir);
        c.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c.status().unwrap()
    };
    assert!(rt(&["create", &id]).success());
    assert!(rt(&["start", &id]).success());
    let result = rootfs(&b).join("tmp/result");
    for _ in 0..100 {
        if result.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = rt(&["delete", "--force", &id]);
    assert_eq!(std::fs::read_to_string(&result).unwrap().trim(), "DENIED");
    let err = std::fs::read_to_string(rootfs(&b).join("tmp/err")).unwrap();
    assert!(
        err.contains("Read-only file system") || err.contains("Operation not permitted"),
        "write refused for the wrong reason: {err:?}"
    );
    assert!(
        std::fs::read(&bin).unwrap() == before,
        "host binary changed"
    );
}

/// CVE-2024-21626: a host directory fd leaked into the init and a cwd of
/// /proc/self/fd/N would start the process outside the container.
#[test]
fn cve_2024_21626_leaked_fd_cwd_refused() {
    if !common::require_root("cve_2024_21626_leaked_fd_cwd_refused") {
        return;
    }
    let host = HostDir::new("krt-21626-host");
    let b = Bundle::new(
        "krt-21626",
        &[
            "sh",
            "-c",
            "echo escaped > ../../../../../pwned; ls /proc/$$/fd",
        ],
    );
    b.edit(|c| c["process"]["cwd"] = json!("/proc/self/fd/7"));
    let dirfd = std::fs::File::open(&host.0).unwrap();
    let raw = dirfd.as_raw_fd();
    let mut cmd = b.rt();
    cmd.args(["run", &common::unique("c21626")]);
    // SAFETY: dup2 in the forked child before exec; fd 7 is the leaked host dir.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = common::run(&mut cmd);
    assert!(
        !out.status.success(),
        "a cwd outside the container was accepted"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outside the container"), "stderr: {err}");
    assert!(!host.0.join("pwned").exists());
    assert!(!Path::new("/pwned").exists());

    // And no fd of the runtime (or the leaked one) reaches the process: its
    // fds are read from the host once it runs (a shell listing its own fds
    // races with its pipes and redirections).
    let b2 = Bundle::new("krt-21626b", &["sleep", "30"]);
    let id = common::unique("c21626b");
    let pidfile = b2.dir.join("pid");
    let mut cmd = b2.rt();
    cmd.args(["create", "--pid-file"])
        .arg(&pidfile)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: as above.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    assert!(cmd.status().unwrap().success());
    common::run_ok(b2.rt().args(["start", &id]));
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    for _ in 0..200 {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "sleep" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect();
    fds.sort();
    let _ = common::run(b2.rt().args(["delete", "--force", &id]));
    assert_eq!(fds, [0, 1, 2], "fds of the container process");
    drop(dirfd);
}

/// CVE-2021-30465 class: a mount destination through a symlink in the image
/// pointing at a host path must land inside the rootfs.
#[test]
fn cve_2021_30465_symlinked_mount_target_stays_in_rootfs() {
    if !common::require_root("cve_2021_30465_symlinked_mount_target_stays_in_rootfs") {
        return;
    }
    let host = HostDir::new("krt-30465-host");
    let b = Bundle::new(
        "krt-30465",
        &[
            "sh",
            "-c",
            "grep -c ' /escape-dst\\| tmpfs-escape' /proc/self/mountinfo; ls /",
        ],
    );
    let rel = host.0.strip_prefix("/").unwrap();
    // /escape -> /../../../<host dir>: outside the rootfs if followed on the host.
    std::os::unix::fs::symlink(
        format!("/../../../../../../../../{}", rel.display()),
        rootfs(&b).join("escape"),
    )
    .unwrap();
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/escape/sub", "type": "tmpfs", "source": "tmpfs-escape"}));
        m.push(json!({"destination": "/escape/bound", "type": "bind", "source": "/etc", "options": ["rbind", "ro"]}));
    });
    let out = run(&b, &common::unique("c30465"));
    assert!(
        out.status.success(),
        "run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !host.0.join("sub").exists(),
        "mount target created on the host"
    );
    assert!(
        !host.0.join("bound").exists(),
        "bind target created on the host"
    );
    assert!(
        rootfs(&b).join(rel).join("sub").is_dir(),
        "target created inside the rootfs"
    );
    assert!(rootfs(&b).join(rel).join("bound").is_dir());
}

/// /dev entries planted as symlinks to host files must be replaced, never followed.
#[test]
fn dev_symlinks_are_not_followed() {
    if !common::require_root("dev_symlinks_are_not_followed") {
        return;
    }
    let host = HostDir::new("krt-devlink-host");
    let victim = host.0.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let b = Bundle::new(
        "krt-devlink",
        &[
            "sh",
            "-c",
            "test -c /dev/null && test -c /dev/zero && echo CHAR",
        ],
    );
    std::os::unix::fs::symlink(&victim, rootfs(&b).join("dev/null")).unwrap();
    std::os::unix::fs::symlink(&victim, rootfs(&b).join("dev/zero")).unwrap();
    // No tmpfs on /dev: the runtime creates nodes in the image's own /dev.
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    });
    let out = run(&b, &common::unique("cdevlink"));
    assert!(
        out.status.success(),
        "run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "CHAR");
    let md = std::fs::symlink_metadata(&victim).unwrap();
    assert!(md.is_file(), "victim replaced");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

/// Masked paths read as empty, read-only paths refuse writes, even for root.
#[test]
fn masked_and_readonly_paths_hold() {
    if !common::require_root("masked_and_readonly_paths_hold") {
        return;
    }
    let script =
        "wc -c < /proc/keys; wc -c < /proc/timer_list; ls /sys/firmware 2>/dev/null | wc -l; \
                  echo krt 2>&1 > /proc/sys/kernel/domainname; \
                  if umount /proc/keys 2>/dev/null; then echo UNMASKED; else echo KEPT; fi";
    let b = Bundle::new("krt-mask", &["sh", "-c", script]);
    for a in ["wc", "umount"] {
        std::os::unix::fs::symlink("busybox", rootfs(&b).join("bin").join(a)).unwrap();
    }
    let out = run(&b, &common::unique("cmask"));
    assert!(
        out.status.success(),
        "run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    assert_eq!(
        lines[..3],
        ["0", "0", "0"],
        "masked paths read empty: {lines:?}"
    );
    assert!(
        lines[3].contains("Read-only file system"),
        "readonly /proc/sys: {lines:?}"
    );
    assert_eq!(lines[4], "KEPT");
}

/// --console-socket: the pty master arrives over SCM_RIGHTS and the process
/// has the slave as its controlling terminal.
#[test]
fn console_socket_receives_pty_master() {
    if !common::require_root("console_socket_receives_pty_master") {
        return;
    }
    let b = Bundle::new("krt-console", &["sh", "-c", "tty; echo via-pty"]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let sock = b.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let reader = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let master = recv_fd(conn.as_raw_fd());
        let mut f = std::fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once the last slave fd closes.
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    let out = common::run(
        b.rt()
            .args(["run", "--console-socket"])
            .arg(&sock)
            .arg(common::unique("ccons")),
    );
    assert!(
        out.status.success(),
        "run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = reader.join().unwrap();
    assert!(text.contains("/dev/pts/0"), "pty output: {text:?}");
    assert!(text.contains("via-pty"), "pty output: {text:?}");
}

fn recv_fd(sock: i32) -> OwnedFd {
    let mut data = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = [0u8; 64];
    // SAFETY: a zeroed msghdr pointing at live buffers; recvmsg fills them.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = cbuf.len();
        assert!(libc::recvmsg(sock, &mut msg, 0) > 0, "recvmsg");
        let c = libc::CMSG_FIRSTHDR(&msg);
        assert!(
            !c.is_null() && (*c).cmsg_type == libc::SCM_RIGHTS,
            "no fd received"
        );
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const i32);
        OwnedFd::from_raw_fd(fd)
    }
}
