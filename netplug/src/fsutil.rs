//! Small file helpers: atomic writes and an exclusive lock file.
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// How much a write must survive.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// The node's configuration: fsynced before the rename, so a power loss
    /// leaves the old file or the new one.
    Durable,
    /// Records of kernel objects (veths, addresses in a netns, the CNI
    /// cache) that a reboot removes anyway: atomic against crashed
    /// processes and concurrent readers, not synced (a pod start pays no
    /// disk flush for them).
    Volatile,
}

/// Writes `data` to `path` through a temp file and a rename, so readers
/// never see half a file.
pub(crate) fn write_atomic(path: &Path, data: &[u8], durability: Durability) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_CLOEXEC)
        .mode(0o644)
        .open(&tmp)
        .map_err(Error::io("create temp file", &tmp))?;
    f.write_all(data).map_err(Error::io("write", &tmp))?;
    if durability == Durability::Durable {
        f.sync_all().map_err(Error::io("fsync", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(Error::io("rename into place", path))
}

/// Removes a file; a missing file is not an error.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path)(e)),
        _ => Ok(()),
    }
}

/// An exclusive flock held until drop; shared by every process that opens
/// the same path.
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    pub(crate) fn acquire(path: &Path) -> Result<FileLock> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_CLOEXEC)
            .mode(0o600)
            .open(path)
            .map_err(Error::io("open lock file", path))?;
        loop {
            // SAFETY: flock on an fd we own.
            let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
            if rc == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io("lock", PathBuf::from(path))(err));
            }
        }
        Ok(FileLock { _file: file })
    }
}
