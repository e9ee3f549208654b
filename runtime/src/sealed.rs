//! CVE-2019-5736: a container process must never be able to write the
//! runtime binary through /proc/<pid>/exe. Commands that put a process into
//! a container first re-execute the runtime from a sealed memfd copy.
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use crate::error::{Context, Error, Result};

const SEALS: i32 = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// True when this process already runs from a sealed copy.
pub fn is_sealed() -> bool {
    let Ok(exe) = File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: fcntl query on an fd we own.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// Re-executes from a sealed memfd unless already sealed. Only returns on error.
pub fn ensure() -> Result<()> {
    if is_sealed() {
        return Ok(());
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
    let e = nix::unistd::fexecve(&memfd, &args, &env)
        .err()
        .unwrap_or(Errno::EINVAL);
    Err(e).ctx(|| "re-exec sealed binary")
}
