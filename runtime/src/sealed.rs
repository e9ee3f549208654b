//! CVE-2019-5736: a container process must never be able to write the
//! runtime binary through /proc/<pid>/exe. Commands that put a process into
//! a container first re-execute the runtime from a private read-only bind
//! mount of itself (a detached mount no path reaches: writes through the
//! magic link get EROFS), or, where mounts are not allowed, from a sealed
//! memfd copy. The bind mount costs no copy of the binary.
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use crate::error::{Context, Error, Result};

const SEALS: i32 = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// True when this process already runs from a read-only or sealed binary.
pub fn is_sealed() -> bool {
    let Ok(exe) = File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: fcntl query on an fd we own.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & SEALS == SEALS {
        return true;
    }
    // SAFETY: fstatvfs fills the zeroed struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above, on an fd we own.
    unsafe { libc::fstatvfs(exe.as_raw_fd(), &mut st) == 0 && st.f_flag & libc::ST_RDONLY != 0 }
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached, read-only bind mount of the file at `path` (open_tree +
/// mount_setattr): no path reaches it, and it goes with the last fd.
/// A caller that runs the runtime through `/proc/self/fd/N` of it spares
/// the runtime its re-execution ([`is_sealed`] holds from the start).
pub fn readonly_bind(path: &std::ffi::CStr) -> nix::Result<OwnedFd> {
    const OPEN_TREE_CLONE: u32 = 1;
    const MOUNT_ATTR_RDONLY: u64 = 1;
    // SAFETY: path is a valid C string; flags are integers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as u32,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fresh descriptor.
    let tree = unsafe { OwnedFd::from_raw_fd(r as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the kernel reads `attr` of the given size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(tree)
}

/// Re-executes from a sealed memfd unless already sealed. Only returns on error.
pub fn ensure() -> Result<()> {
    if is_sealed() {
        return Ok(());
    }
    let (args, env) = argv_env()?;
    if let Ok(tree) = readonly_bind(c"/proc/self/exe") {
        // Only returns on failure.
        let e = nix::unistd::execveat(&tree, c"", &args, &env, nix::fcntl::AtFlags::AT_EMPTY_PATH)
            .err()
            .unwrap_or(Errno::EINVAL);
        crate::log::debug(&format!(
            "exec from read-only bind mount failed ({e}); using a memfd copy"
        ));
    }
    let exe = File::open("/proc/self/exe").ctx(|| "open /proc/self/exe")?;
    let name = c"krun-runtime";
    // SAFETY: valid name; flags are plain integers.
    let raw =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if raw < 0 {
        return Err(Errno::last()).ctx(|| "memfd_create for sealed binary");
    }
    // SAFETY: fresh descriptor.
    let memfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let len = exe.metadata().ctx(|| "stat /proc/self/exe")?.len() as usize;
    let mut left = len;
    while left > 0 {
        // SAFETY: both fds are open; the kernel copies between them.
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                std::ptr::null_mut(),
                left,
            )
        };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e).ctx(|| "copy binary into memfd");
        }
        if n == 0 {
            break;
        }
        left -= n as usize;
    }
    // SAFETY: fcntl on our memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(Errno::last()).ctx(|| "seal memfd binary");
    }
    let e = nix::unistd::fexecve(&memfd, &args, &env)
        .err()
        .unwrap_or(Errno::EINVAL);
    Err(e).ctx(|| "re-exec sealed binary")
}

fn argv_env() -> Result<(Vec<CString>, Vec<CString>)> {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_encoded_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::invalid("argument contains NUL"))?;
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut b = k.into_encoded_bytes();
            b.push(b'=');
            b.extend(v.into_encoded_bytes());
            CString::new(b).ok()
        })
        .collect();
    Ok((args, env))
}
