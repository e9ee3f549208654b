//! The few mount operations volumes need on the node: tmpfs for memory
//! volumes, bind by fd for subPaths, and unmounting everything below a
//! directory (read from /proc/self/mountinfo, deepest first).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const TMPFS_MAGIC: i64 = 0x0102_1994;

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True when `dir` is the root of a tmpfs.
pub fn is_tmpfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir).is_ok_and(|s| s.filesystem_type().0 == TMPFS_MAGIC)
        && mount_points_under(dir).iter().any(|m| m == dir)
}

/// Mounts a tmpfs of `size` bytes on `dir`.
pub fn mount_tmpfs(dir: &Path, size: Option<u64>) -> io::Result<()> {
    let target = cstr(dir)?;
    let data = size.map(|s| CString::new(format!("size={s}")).unwrap_or_default());
    let fs = CString::new("tmpfs").unwrap_or_default();
    // SAFETY: every pointer is a valid NUL-terminated string or null.
    check(unsafe {
        libc::mount(
            fs.as_ptr(),
            target.as_ptr(),
            fs.as_ptr(),
            0,
            data.as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    })
}

/// Bind-mounts what `fd` names onto `target` (the path is never followed
/// again: the mount is of the inode already resolved).
pub fn bind_fd(fd: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
    let source = cstr(Path::new(&format!("/proc/self/fd/{}", fd.as_raw_fd())))?;
    let target = cstr(target)?;
    // SAFETY: valid strings; MS_BIND ignores the type and data.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    })
}

fn unmount(p: &Path) -> io::Result<()> {
    let t = cstr(p)?;
    // SAFETY: a valid path string.
    check(unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

/// Mount points at or below `dir`, deepest (latest) first.
pub fn mount_points_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .filter(|p| p.starts_with(dir))
        .collect();
    out.reverse();
    out
}

/// The mount holding `path` (the longest mount point above it) and its
/// optional fields ("shared:N", "master:N"...).
pub fn mount_of(path: &Path) -> Option<(PathBuf, Vec<String>)> {
    let path = std::fs::canonicalize(path).ok()?;
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(PathBuf, Vec<String>)> = None;
    for l in text.lines() {
        let fields: Vec<&str> = l.split(' ').collect();
        let Some(mp) = fields.get(4).map(|f| unescape(f)) else {
            continue;
        };
        if !path.starts_with(&mp) {
            continue;
        }
        let optional: Vec<String> = fields
            .iter()
            .skip(6)
            .take_while(|f| **f != "-")
            .map(|f| f.to_string())
            .collect();
        // later lines are mounted on top of earlier ones at the same place
        if best
            .as_ref()
            .is_none_or(|(b, _)| mp.components().count() >= b.components().count())
        {
            best = Some((mp, optional));
        }
    }
    best
}

/// Unmounts every mount at or below `dir`; what is still mounted after.
pub fn unmount_all_under(dir: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    for p in mount_points_under(dir) {
        if let Err(e) = unmount(&p) {
            if e.raw_os_error() != Some(libc::EINVAL) && e.raw_os_error() != Some(libc::ENOENT) {
                errors.push(format!("unmount {}: {e}", p.display()));
            }
        }
    }
    let left = mount_points_under(dir);
    if left.is_empty() {
        return Vec::new();
    }
    if errors.is_empty() {
        errors = left
            .iter()
            .map(|p| format!("{} is still mounted", p.display()))
            .collect();
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/a\\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape("/plain"), PathBuf::from("/plain"));
        assert_eq!(unescape("/x\\134y"), PathBuf::from("/x\\y"));
    }
}
