//! Thin, checked wrappers over the system calls the runtime needs and
//! that nix does not cover (openat2, pidfd_open, close_range).
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;

use crate::error::{Context, Error, Result};

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

fn cstr(p: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("path {} contains a NUL byte", p.display())))
}

/// openat2 with RESOLVE_IN_ROOT: `path` is resolved as if `root` were `/`,
/// so `..` and absolute symlinks cannot leave it (CVE-2021-30465 class).
pub fn open_in_root(root: RawFd, path: &Path, flags: i32, mode: u32) -> nix::Result<OwnedFd> {
    let bytes = path.as_os_str().as_encoded_bytes();
    let c = CString::new(if bytes.is_empty() { b"." } else { bytes }).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: all pointers are valid for the call; the kernel copies `how`.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r >= 0 {
            // SAFETY: the kernel returned a new descriptor we now own.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        let e = Errno::last();
        if e != Errno::EAGAIN && e != Errno::EINTR {
            return Err(e);
        }
    }
}

/// Opens a plain directory path on the host (O_PATH|O_DIRECTORY|O_CLOEXEC).
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    let c = cstr(path)?;
    // SAFETY: valid NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Errno::last()).ctx(|| format!("open {}", path.display()));
    }
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Normalises a container path to its components below `/` (no `..` escapes:
/// they are resolved lexically, then again by RESOLVE_IN_ROOT at open time).
pub fn rel_in_root(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// What to create at the end of a path that does not exist yet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    Dir,
    File,
}

/// Opens `path` inside `root` as O_PATH, creating missing directories (and
/// the leaf as `leaf`) on the way. Symlinks met on the way, dangling ones
/// included, are resolved by hand inside the root, so nothing is created
/// outside it.
pub fn mkdir_all_in_root(root: RawFd, path: &Path, leaf: Leaf) -> Result<OwnedFd> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    let rel = rel_in_root(path);
    if let Ok(fd) = open_in_root(root, &rel, libc::O_PATH, 0) {
        return Ok(fd);
    }
    // Usually only the last component is missing: when the parent resolves
    // (inside the root) to a directory and the leaf is not there at all (not
    // even a dangling symlink), make it right there.
    if let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) {
        if let Ok(dir) = open_in_root(root, parent, libc::O_PATH | libc::O_DIRECTORY, 0) {
            if nix::fcntl::readlinkat(&dir, name) == Err(Errno::ENOENT) {
                make_leaf(&dir, name, leaf)
                    .ctx(|| format!("create {} in rootfs", rel.display()))?;
                return open_in_root(root, &rel, libc::O_PATH, 0)
                    .ctx(|| format!("open {} in rootfs", rel.display()));
            }
        }
    }
    let mut todo: VecDeque<OsString> = rel.components().map(|c| c.as_os_str().to_owned()).collect();
    let mut cur = PathBuf::new();
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            cur.pop();
            continue;
        }
        if name == "." || name.is_empty() {
            continue;
        }
        let dir = open_in_root(root, &cur, libc::O_PATH | libc::O_DIRECTORY, 0)
            .ctx(|| format!("open {} in rootfs", cur.display()))?;
        match nix::fcntl::readlinkat(&dir, name.as_os_str()) {
            Ok(target) => {
                links += 1;
                if links > 40 {
                    return Err(Errno::ELOOP)
                        .ctx(|| format!("resolve {} in rootfs", path.display()));
                }
                let t = PathBuf::from(target);
                if t.is_absolute() {
                    cur = PathBuf::new();
                }
                for c in t.components().rev() {
                    match c {
                        Component::Normal(n) => todo.push_front(n.to_owned()),
                        Component::ParentDir => todo.push_front("..".into()),
                        _ => {}
                    }
                }
                continue;
            }
            Err(Errno::EINVAL) => {}
            Err(Errno::ENOENT) => {
                let kind = if todo.is_empty() { leaf } else { Leaf::Dir };
                make_leaf(&dir, name.as_os_str(), kind)
                    .ctx(|| format!("create {} in rootfs", cur.join(&name).display()))?;
            }
            Err(e) => {
                return Err(e).ctx(|| format!("readlink {} in rootfs", cur.join(&name).display()))
            }
        }
        cur.push(&name);
    }
    open_in_root(root, &cur, libc::O_PATH, 0).ctx(|| format!("open {} in rootfs", cur.display()))
}

/// Creates `name` in `dir` as a directory or an empty file; one that
/// appeared meanwhile is fine (it is opened afterwards by the caller).
fn make_leaf(dir: &OwnedFd, name: &std::ffi::OsStr, leaf: Leaf) -> nix::Result<()> {
    let r = if leaf == Leaf::File {
        nix::fcntl::openat(
            dir,
            name,
            nix::fcntl::OFlag::O_CREAT
                | nix::fcntl::OFlag::O_WRONLY
                | nix::fcntl::OFlag::O_CLOEXEC
                | nix::fcntl::OFlag::O_NOFOLLOW,
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .map(drop)
    } else {
        nix::sys::stat::mkdirat(dir, name, nix::sys::stat::Mode::from_bits_truncate(0o755))
    };
    match r {
        Err(Errno::EEXIST) => Ok(()),
        r => r,
    }
}

/// The magic-link path through which a mount can target an fd.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Parses `/proc/<pid>/stat`: (start time in ticks, state letter).
pub fn proc_start_and_state(pid: i32) -> Option<(u64, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let mut it = after.split(' ');
    let state = it.next()?.chars().next()?;
    // Fields after the state: ppid is #4 overall; starttime is #22 overall,
    // i.e. the 20th field after the state.
    let start = it.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// pidfd_open(2): a descriptor that becomes readable when `pid` exits.
pub fn pidfd_open(pid: i32) -> nix::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Marks every fd from `first` on close-on-exec (CVE-2024-21626: nothing the
/// runtime holds may reach the container's process).
pub fn cloexec_from(first: u32) -> nix::Result<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Clears close-on-exec on one fd (for --preserve-fds and the console).
pub fn clear_cloexec(fd: RawFd) -> nix::Result<()> {
    // SAFETY: fcntl on an integer fd.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Writes a string to a file that must already exist (procfs, sysfs, cgroupfs).
pub fn write_file(path: &Path, data: &str) -> Result<()> {
    std::fs::write(path, data).ctx(|| format!("write {:?} to {}", data, path.display()))
}

/// The raw clone(2) syscall with fork semantics (no new stack): the child
/// continues here with a copy of the address space. Only called while the
/// process is single-threaded.
pub fn clone_fork(flags: u64) -> nix::Result<i32> {
    // SAFETY: with a NULL stack the kernel duplicates the caller's stack, like
    // fork(); the process has one thread, so no lock can be held by another.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::SIGCHLD as u64,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(r as i32)
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Like [`clone_fork`], but the child is born in the cgroup v2 directory
/// `cgroup` (clone3 CLONE_INTO_CGROUP), so no migration is needed. Returns
/// the pid and whether the child was placed: kernels or seccomp profiles
/// without clone3 (ENOSYS) get a plain clone and the caller moves the child.
pub fn clone_into(flags: u64, cgroup: Option<&OwnedFd>) -> nix::Result<(i32, bool)> {
    let Some(cg) = cgroup else {
        return clone_fork(flags).map(|p| (p, false));
    };
    let args = CloneArgs {
        flags: flags | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cg.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: clone3 with a zero stack duplicates the caller's stack, like
    // fork(); the process has one thread, so no lock can be held by another.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r < 0 {
        let e = Errno::last();
        if e == Errno::ENOSYS {
            return clone_fork(flags).map(|p| (p, false));
        }
        return Err(e);
    }
    Ok((r as i32, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rel_strips_dotdot() {
        assert_eq!(
            rel_in_root(Path::new("/../../etc/x")),
            PathBuf::from("etc/x")
        );
        assert_eq!(rel_in_root(Path::new("a/./b/../c")), PathBuf::from("a/c"));
    }

    #[test]
    fn own_stat() {
        let (start, st) = proc_start_and_state(std::process::id() as i32).unwrap();
        assert!(start > 0);
        assert!("RS".contains(st));
    }

    #[test]
    fn open_in_root_stays_inside() {
        let dir = std::env::temp_dir().join(format!("krt-sys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::os::unix::fs::symlink("/../../../", dir.join("a/up")).unwrap();
        let root = open_dir(&dir).unwrap();
        let fd =
            mkdir_all_in_root(root.as_raw_fd(), Path::new("a/up/etc/made"), Leaf::Dir).unwrap();
        drop(fd);
        // The symlink resolved to the root itself, so the directory lands inside.
        assert!(dir.join("etc/made").is_dir());
        // A parent reached through an absolute symlink: the leaf is made in
        // the directory it names inside the root, and a file leaf too.
        std::os::unix::fs::symlink("/a", dir.join("link")).unwrap();
        drop(mkdir_all_in_root(root.as_raw_fd(), Path::new("link/made"), Leaf::Dir).unwrap());
        assert!(dir.join("a/made").is_dir());
        drop(mkdir_all_in_root(root.as_raw_fd(), Path::new("link/file"), Leaf::File).unwrap());
        assert!(dir.join("a/file").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
