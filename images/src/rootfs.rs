//! A container's root filesystem: overlayfs with the image's layers as
//! lowers and an upper/work pair of its own.
//!
//! Layers go to the kernel one `lowerdir+` at a time through fsconfig, so
//! their number is not bounded by the size of a mount-option page; kernels
//! without `lowerdir+` (before 6.8) get the classic mount(2) option string.
use crate::error::{Error, Result};
use crate::store::{ImageRecord, Store};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

/// Where a mounted root keeps its writable layer.
#[derive(Debug, Clone)]
pub struct RootfsDirs {
    pub upper: PathBuf,
    pub work: PathBuf,
}

impl RootfsDirs {
    /// `<state_dir>/upper` and `<state_dir>/work`.
    pub fn under(state_dir: &Path) -> RootfsDirs {
        RootfsDirs {
            upper: state_dir.join("upper"),
            work: state_dir.join("work"),
        }
    }
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::Mount {
        target: p.to_path_buf(),
        reason: "path contains a NUL byte".into(),
    })
}

/// Mounts the root of container `id` on `target`: the image's layers
/// (top-most first) under `<state_dir>/upper`. Records a lease so prune
/// keeps the layers while the container exists.
pub fn mount(
    store: &Store,
    image: &ImageRecord,
    id: &str,
    state_dir: &Path,
    target: &Path,
) -> Result<()> {
    let mut lowers = Vec::new();
    for l in image.layers.iter().rev() {
        let p = store.layer_path(&l.chain_id);
        if !p.is_dir() {
            return Err(Error::Mount {
                target: target.to_path_buf(),
                reason: format!(
                    "layer {} of {} is missing from the store (pull again)",
                    l.digest, image.reference
                ),
            });
        }
        lowers.push(p);
    }
    let chain: Vec<_> = image.layers.iter().map(|l| l.chain_id.clone()).collect();
    store.add_lease(id, &chain)?;
    let dirs = RootfsDirs::under(state_dir);
    for d in [&dirs.upper, &dirs.work] {
        std::fs::create_dir_all(d).map_err(|e| Error::io("creating overlay directory", d, e))?;
    }
    let r = mount_overlay(&lowers, &dirs, target);
    if r.is_err() {
        let _ = store.remove_lease(id);
    }
    r
}

/// Unmounts the root of container `id`, removes its upper/work and lease.
pub fn unmount(store: &Store, id: &str, state_dir: &Path, target: &Path) -> Result<()> {
    let c = cpath(target)?;
    // SAFETY: plain syscall on a NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = std::io::Error::last_os_error();
        // Not mounted (already gone) is fine: removal is idempotent.
        if e.raw_os_error() != Some(libc::EINVAL) && e.raw_os_error() != Some(libc::ENOENT) {
            return Err(Error::Mount {
                target: target.to_path_buf(),
                reason: format!("unmounting: {e}"),
            });
        }
    }
    let dirs = RootfsDirs::under(state_dir);
    for d in [&dirs.upper, &dirs.work] {
        match std::fs::remove_dir_all(d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("removing overlay directory", d, e))
            }
            _ => {}
        }
    }
    store.remove_lease(id)
}

/// Mounts overlayfs with these lowers (top-most first) on `target`.
pub fn mount_overlay(lowers: &[PathBuf], dirs: &RootfsDirs, target: &Path) -> Result<()> {
    match mount_fsconfig(lowers, dirs, target) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)
            ) =>
        {
            tracing::info!(error = %e, "fsconfig lowerdir+ unavailable, using mount(2)");
            mount_legacy(lowers, dirs, target)
        }
        Err(e) => Err(Error::Mount {
            target: target.to_path_buf(),
            reason: format!("overlayfs: {e}"),
        }),
    }
}

fn mount_fsconfig(lowers: &[PathBuf], dirs: &RootfsDirs, target: &Path) -> std::io::Result<()> {
    let set = |fd: &OwnedFd, key: &std::ffi::CStr, val: &CString| -> std::io::Result<()> {
        // SAFETY: fsconfig with a string key/value on an fs context fd.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fd.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                val.as_ptr(),
                0,
            )
        };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    let bad = |_| std::io::Error::from_raw_os_error(libc::EINVAL);
    // SAFETY: fsopen with a NUL-terminated fs name.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd owned here.
    let fs = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    set(&fs, c"source", &CString::new("krun").map_err(bad)?)?;
    for l in lowers {
        set(
            &fs,
            c"lowerdir+",
            &CString::new(l.as_os_str().as_bytes()).map_err(bad)?,
        )?;
    }
    set(
        &fs,
        c"upperdir",
        &CString::new(dirs.upper.as_os_str().as_bytes()).map_err(bad)?,
    )?;
    set(
        &fs,
        c"workdir",
        &CString::new(dirs.work.as_os_str().as_bytes()).map_err(bad)?,
    )?;
    // SAFETY: fsconfig command without key/value.
    if unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    } < 0
    {
        let e = std::io::Error::last_os_error();
        // Creation errors are real errors (bad layer dirs), not "old kernel".
        return Err(std::io::Error::other(format!("creating overlay: {e}")));
    }
    // SAFETY: fsmount on a created context.
    let m = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
    if m < 0 {
        return Err(std::io::Error::other(format!(
            "fsmount: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: a new fd owned here.
    let mnt = unsafe { OwnedFd::from_raw_fd(m as i32) };
    let t = CString::new(target.as_os_str().as_bytes()).map_err(bad)?;
    // SAFETY: move_mount of the detached mount onto target.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(std::io::Error::other(format!(
            "move_mount: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn escape(p: &Path) -> String {
    let s = p.to_string_lossy();
    s.replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

fn mount_legacy(lowers: &[PathBuf], dirs: &RootfsDirs, target: &Path) -> Result<()> {
    let lower = lowers
        .iter()
        .map(|p| escape(p))
        .collect::<Vec<_>>()
        .join(":");
    let opts = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        escape(&dirs.upper),
        escape(&dirs.work)
    );
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    if opts.len() >= page {
        return Err(Error::Mount {
            target: target.to_path_buf(),
            reason: format!(
                "{} layers need {} bytes of mount options, over this kernel's {page}-byte limit (needs lowerdir+, Linux 6.8)",
                lowers.len(),
                opts.len()
            ),
        });
    }
    let t = cpath(target)?;
    let o = CString::new(opts).map_err(|_| Error::Mount {
        target: target.to_path_buf(),
        reason: "mount options contain NUL".into(),
    })?;
    // SAFETY: NUL-terminated strings.
    let r = unsafe {
        libc::mount(
            c"krun".as_ptr(),
            t.as_ptr(),
            c"overlay".as_ptr(),
            0,
            o.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(Error::Mount {
            target: target.to_path_buf(),
            reason: format!("overlayfs: {}", std::io::Error::last_os_error()),
        });
    }
    Ok(())
}
