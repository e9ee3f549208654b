//! fsGroup on a volume, as the kubelet's SetVolumeOwnership applies it:
//! every entry's group becomes fsGroup (symlinks with lchown, their mode
//! untouched); files gain rw for the group (r for read-only volumes),
//! directories also x and setgid, so what the pod creates there is the
//! group's too. With fsGroupChangePolicy OnRootMismatch a root that is
//! already right is left alone.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const RW: u32 = 0o660;
const RO: u32 = 0o440;
const EXEC: u32 = 0o110;
const SETGID: u32 = 0o2000;

/// The mode an entry gets.
pub fn mode_for(mode: u32, is_dir: bool, read_only: bool) -> u32 {
    let mut mask = if read_only { RO } else { RW };
    if is_dir {
        mask |= SETGID | EXEC;
    }
    (mode & 0o7777) | mask
}

fn root_matches(root: &Path, gid: u32, read_only: bool) -> bool {
    fs::metadata(root).is_ok_and(|m| {
        let want = mode_for(m.mode(), true, read_only);
        m.gid() == gid && m.mode() & 0o7777 == want
    })
}

/// Applies `gid` below `root` (root included).
pub fn apply(root: &Path, gid: u32, read_only: bool, on_root_mismatch: bool) -> Result<(), String> {
    if on_root_mismatch && root_matches(root, gid, read_only) {
        return Ok(());
    }
    walk(root, gid, read_only)
}

fn walk(p: &Path, gid: u32, read_only: bool) -> Result<(), String> {
    let meta = fs::symlink_metadata(p).map_err(|e| format!("stat {}: {e}", p.display()))?;
    std::os::unix::fs::lchown(p, None, Some(gid))
        .map_err(|e| format!("chown {}: {e}", p.display()))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let want = mode_for(meta.mode(), meta.is_dir(), read_only);
    fs::set_permissions(p, fs::Permissions::from_mode(want))
        .map_err(|e| format!("chmod {}: {e}", p.display()))?;
    if meta.is_dir() {
        let rd = fs::read_dir(p).map_err(|e| format!("read {}: {e}", p.display()))?;
        for e in rd {
            let e = e.map_err(|e| format!("read {}: {e}", p.display()))?;
            // a mount below (another volume) is not this volume's
            if e.metadata().is_ok_and(|m| m.dev() != meta.dev()) {
                continue;
            }
            walk(&e.path(), gid, read_only)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(mode_for(0o777, true, false), 0o2777);
        assert_eq!(mode_for(0o644, false, false), 0o664);
        assert_eq!(mode_for(0o400, false, true), 0o440);
        assert_eq!(mode_for(0o755, true, true), 0o2755);
        assert_eq!(mode_for(0o1777, true, false), 0o3777);
    }

    #[test]
    fn applies_below_root() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        fs::write(d.path().join("sub/f"), "x").unwrap();
        fs::set_permissions(d.path().join("sub/f"), fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("sub/f", d.path().join("link")).unwrap();
        apply(d.path(), 4321, false, false).unwrap();
        let m = fs::metadata(d.path().join("sub/f")).unwrap();
        assert_eq!((m.gid(), m.mode() & 0o7777), (4321, 0o660));
        let s = fs::metadata(d.path().join("sub")).unwrap();
        assert_eq!(s.mode() & 0o2000, 0o2000);
        assert_eq!(
            fs::symlink_metadata(d.path().join("link")).unwrap().gid(),
            4321
        );
    }
}
