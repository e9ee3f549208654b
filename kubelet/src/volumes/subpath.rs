//! subPath mounts, safe against the symlink attack (CVE-2017-1002101): a
//! container may leave a symlink in a shared volume that a later subPath
//! would follow out of the volume onto the host. The path is resolved by
//! the kernel with openat2(RESOLVE_BENEATH): symlinks that stay inside the
//! volume are followed, as the kubelet allows, anything that would leave
//! it fails; missing directories are made one by one below their parent's
//! fd. The result is bind-mounted by its fd (/proc/self/fd/N) onto a
//! directory of the pod's own (`volume-subpaths/<volume>/<container>/<n>`,
//! the kubelet's layout), which the container then mounts: nothing the
//! container does to the volume afterwards changes what was mounted.

use std::fs::{self, File};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use super::host_mounts;

fn resolve() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

fn open_beneath(root: &OwnedFd, rel: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(resolve());
    openat2(root, if rel.is_empty() { "." } else { rel }, how)
}

/// Creates the missing directories of `rel` below `root`, each with
/// `mode`, each below the fd of its parent.
fn make_dirs(root: &OwnedFd, rel: &str, mode: u32) -> Result<(), String> {
    let mut done = String::new();
    for part in rel.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let parent = open_beneath(root, &done, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(|e| format!("open {done:?}: {e}"))?;
        let created = match nix::sys::stat::mkdirat(&parent, part, Mode::from_bits_truncate(mode)) {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(e) => return Err(format!("mkdir {part:?}: {e}")),
        };
        if !done.is_empty() {
            done.push('/');
        }
        done.push_str(part);
        if created {
            // mkdirat honours the umask: set the mode through the new fd
            let made = open_beneath(root, &done, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                .map_err(|e| format!("open {done:?}: {e}"))?;
            File::from(made)
                .set_permissions(fs::Permissions::from_mode(mode & 0o7777))
                .map_err(|e| format!("chmod {done:?}: {e}"))?;
        }
    }
    Ok(())
}

/// Opens `sub` inside the volume at `volume` (O_PATH), making it as a
/// directory with the volume root's mode when it does not exist.
pub fn open(volume: &Path, sub: &str) -> Result<OwnedFd, String> {
    let root: OwnedFd = File::open(volume)
        .map_err(|e| format!("open {}: {e}", volume.display()))?
        .into();
    match open_beneath(&root, sub, OFlag::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(format!("{sub:?} in {}: {e}", volume.display())),
    }
    let mode = fs::metadata(volume).map_err(|e| e.to_string())?.mode() & 0o7777;
    make_dirs(&root, sub, mode)?;
    open_beneath(&root, sub, OFlag::O_PATH).map_err(|e| format!("{sub:?}: {e}"))
}

/// Binds what `fd` names onto `target` (a fresh file or directory of its
/// type), replacing an earlier bind there.
pub fn bind(fd: &OwnedFd, target: &Path) -> Result<(), String> {
    let _ = host_mounts::unmount_all_under(target);
    let is_dir = nix::sys::stat::fstat(fd)
        .map(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .map_err(|e| e.to_string())?;
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
    }
    let exists = fs::symlink_metadata(target).ok();
    match exists {
        Some(m) if m.is_dir() == is_dir && !m.file_type().is_symlink() => {}
        Some(m) => {
            if m.is_dir() {
                fs::remove_dir(target)
            } else {
                fs::remove_file(target)
            }
            .map_err(|e| format!("remove {}: {e}", target.display()))?;
            make_target(target, is_dir)?;
        }
        None => make_target(target, is_dir)?,
    }
    host_mounts::bind_fd(fd.as_fd(), target)
        .map_err(|e| format!("bind mount onto {}: {e}", target.display()))
}

fn make_target(target: &Path, is_dir: bool) -> Result<(), String> {
    let r = if is_dir {
        fs::create_dir(target)
    } else {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(target)
            .map(drop)
    };
    r.map_err(|e| format!("create {}: {e}", target.display()))
}

/// Where a container's subPath mount of a volume is pinned.
pub fn pin_path(state: &Path, volume: &str, container: &str, index: usize) -> PathBuf {
    state
        .join("volume-subpaths")
        .join(volume)
        .join(container)
        .join(index.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_out_of_the_volume_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("vol");
        fs::create_dir(&vol).unwrap();
        fs::write(d.path().join("host-secret"), "host").unwrap();
        fs::create_dir(vol.join("real")).unwrap();
        symlink("/", vol.join("abs")).unwrap();
        symlink("../", vol.join("up")).unwrap();
        symlink("real", vol.join("inside")).unwrap();
        for bad in [
            "abs",
            "up/host-secret",
            "abs/etc",
            "inside/../../host-secret",
        ] {
            let e = open(&vol, bad).unwrap_err();
            assert!(
                e.contains("EXDEV") || e.contains("cross-device"),
                "{bad}: {e}"
            );
        }
        assert!(
            open(&vol, "inside").is_ok(),
            "a link inside the volume is followed"
        );
        // missing directories are made, with the volume's mode
        fs::set_permissions(&vol, fs::Permissions::from_mode(0o777)).unwrap();
        open(&vol, "new/deeper").unwrap();
        let m = fs::metadata(vol.join("new/deeper")).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.mode() & 0o777, 0o777);
        // ... but never through a link that leaves
        assert!(open(&vol, "abs/tmp/made-by-krun").is_err());
        assert!(!Path::new("/tmp/made-by-krun").exists());
    }
}
