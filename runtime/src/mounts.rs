//! Mount option parsing and the mounts of config.json, each placed by fd on
//! a target resolved inside the rootfs (CVE-2021-30465 class).
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;

use crate::error::{Context, Error, Result};
use crate::sys::{self, Leaf};

/// Parsed mount options: flags to set, flags to clear, propagation and fs data.
#[derive(Debug, PartialEq)]
pub struct Options {
    pub flags: MsFlags,
    pub clear: MsFlags,
    pub propagation: MsFlags,
    pub data: Vec<String>,
    /// tmpfs only: copy the directory's existing contents into the new tmpfs.
    pub copyup: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flags: MsFlags::empty(),
            clear: MsFlags::empty(),
            propagation: MsFlags::empty(),
            data: Vec::new(),
            copyup: false,
        }
    }
}

const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// Splits OCI mount options into mount(2) flags and filesystem data.
pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options::default();
    for opt in opts {
        let (set, clr, prop) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty(), MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty(), MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID, MsFlags::empty()),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty(), MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV, MsFlags::empty()),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty(), MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty(), MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty(), MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty(), MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty(), MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty(), MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty(), MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty(), MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty(), MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty(), MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty(), MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT, MsFlags::empty()),
            "iversion" => (MsFlags::MS_I_VERSION, MsFlags::empty(), MsFlags::empty()),
            "noiversion" => (MsFlags::empty(), MsFlags::MS_I_VERSION, MsFlags::empty()),
            "nosymfollow" => (MS_NOSYMFOLLOW, MsFlags::empty(), MsFlags::empty()),
            "symfollow" => (MsFlags::empty(), MS_NOSYMFOLLOW, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty(), MsFlags::empty()),
            "rbind" => (
                MsFlags::MS_BIND | MsFlags::MS_REC,
                MsFlags::empty(),
                MsFlags::empty(),
            ),
            "private" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_PRIVATE),
            "rprivate" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            ),
            "shared" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_SHARED),
            "rshared" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_SHARED | MsFlags::MS_REC,
            ),
            "slave" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_SLAVE),
            "rslave" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
            ),
            "unbindable" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_UNBINDABLE),
            "runbindable" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
            ),
            "tmpcopyup" => {
                o.copyup = true;
                continue;
            }
            "defaults" => continue,
            other => {
                o.data.push(other.to_string());
                continue;
            }
        };
        o.flags |= set;
        o.flags &= !clr;
        o.clear |= clr;
        o.propagation |= prop;
    }
    o
}

/// Parses a propagation keyword (rootfsPropagation).
pub fn propagation(s: &str) -> Result<MsFlags> {
    let o = parse_options(&[s.to_string()]);
    if o.propagation.is_empty() {
        return Err(Error::invalid(format!("unknown rootfsPropagation {s:?}")));
    }
    Ok(o.propagation)
}

/// The flags of the mount holding `fd` that an unprivileged remount must keep.
pub fn locked_flags(fd: RawFd) -> MsFlags {
    let mut flags = MsFlags::empty();
    // SAFETY: fstatvfs writes into the zeroed struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatvfs(fd, &mut st) } == 0 {
        let f = st.f_flag;
        for (bit, fl) in [
            (libc::ST_NOSUID, MsFlags::MS_NOSUID),
            (libc::ST_NODEV, MsFlags::MS_NODEV),
            (libc::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (libc::ST_RDONLY, MsFlags::MS_RDONLY),
            (libc::ST_NOATIME, MsFlags::MS_NOATIME),
            (libc::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (libc::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f & bit != 0 {
                flags |= fl;
            }
        }
    }
    flags
}

/// Remounts a bind mount (by fd) with `flags`, keeping locked flags.
pub fn remount_bind(fd: &OwnedFd, flags: MsFlags, clear: MsFlags, what: &Path) -> Result<()> {
    let keep = locked_flags(fd.as_raw_fd()) & !(MsFlags::MS_RDONLY);
    let want =
        (flags | keep) & !clear & !(MsFlags::MS_REC | MsFlags::MS_BIND | MsFlags::MS_REMOUNT);
    let target = sys::fd_path(fd);
    let r = mount(
        None::<&str>,
        target.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | want,
        None::<&str>,
    );
    match r {
        // A filesystem whose atime flags are locked by an outer user namespace.
        Err(Errno::EPERM) => mount(
            None::<&str>,
            target.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | want | locked_flags(fd.as_raw_fd()),
            None::<&str>,
        ),
        r => r,
    }
    .ctx(|| format!("remount {} with {:?}", what.display(), want))
}

/// Sets propagation on the mount at fd.
fn set_propagation(fd: &OwnedFd, prop: MsFlags, what: &Path) -> Result<()> {
    if prop.is_empty() {
        return Ok(());
    }
    mount(
        None::<&str>,
        sys::fd_path(fd).as_str(),
        None::<&str>,
        prop,
        None::<&str>,
    )
    .ctx(|| format!("set propagation {:?} on {}", prop, what.display()))
}

/// Context the mounts need: the rootfs, the bundle (relative bind sources)
/// and whether the container has its own cgroup namespace.
pub struct MountCtx<'a> {
    pub rootfd: &'a OwnedFd,
    pub bundle: &'a Path,
    pub cgroupns: bool,
    pub in_userns: bool,
}

/// Performs one config.json mount.
pub fn mount_one(cx: &MountCtx<'_>, m: &Mount) -> Result<()> {
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(Error::invalid(format!(
            "mount destination {} is not absolute",
            dest.display()
        )));
    }
    let typ = m.typ().as_deref().unwrap_or("");
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let is_bind = opts.flags.contains(MsFlags::MS_BIND) || typ == "bind";
    let rel = sys::rel_in_root(dest);
    if is_bind {
        return bind_mount(cx, m, &opts, &rel);
    }
    if typ == "cgroup" || typ == "cgroup2" {
        return crate::cgroupfs::mount_cgroup(cx, dest, &opts);
    }
    // proc and sysfs must land on a real directory, never through a symlink.
    if matches!(typ, "proc" | "sysfs") {
        refuse_symlink(cx.rootfd, &rel, dest)?;
    }
    let target = sys::mkdir_all_in_root(cx.rootfd.as_raw_fd(), &rel, Leaf::Dir)?;
    if opts.copyup {
        return tmpfs_copyup(cx, m, &opts, &target, dest);
    }
    let src = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| typ.to_string());
    let flags = opts.flags & !MsFlags::MS_REMOUNT;
    let data = opts.data.join(",");
    let tpath = sys::fd_path(&target);
    let mut r = mount(
        Some(src.as_str()),
        tpath.as_str(),
        Some(typ),
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    );
    if r == Err(Errno::EINVAL) && typ == "devpts" && data.contains("gid=") {
        // The tty group may be unmapped in a user namespace: retry without it.
        let d: Vec<_> = opts
            .data
            .iter()
            .filter(|o| !o.starts_with("gid="))
            .cloned()
            .collect();
        let d = d.join(",");
        r = mount(
            Some(src.as_str()),
            tpath.as_str(),
            Some(typ),
            flags,
            Some(d.as_str()),
        );
    }
    if r == Err(Errno::EPERM) && typ == "sysfs" {
        // Without its own network namespace sysfs cannot be mounted: bind the host's.
        r = mount(
            Some("/sys"),
            tpath.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        );
        if r.is_ok() {
            let t = sys::open_in_root(cx.rootfd.as_raw_fd(), &rel, libc::O_PATH, 0)
                .ctx(|| format!("open {}", dest.display()))?;
            remount_bind(&t, flags, opts.clear, dest)?;
        }
    }
    r.ctx(|| format!("mount {typ} on {}", dest.display()))?;
    if !opts.propagation.is_empty() {
        let t = sys::open_in_root(cx.rootfd.as_raw_fd(), &rel, libc::O_PATH, 0)
            .ctx(|| format!("open {}", dest.display()))?;
        set_propagation(&t, opts.propagation, dest)?;
    }
    Ok(())
}

fn refuse_symlink(rootfd: &OwnedFd, rel: &Path, dest: &Path) -> Result<()> {
    if let Ok(fd) = sys::open_in_root(rootfd.as_raw_fd(), rel, libc::O_PATH | libc::O_NOFOLLOW, 0) {
        let st = nix::sys::stat::fstat(&fd).ctx(|| format!("stat {}", dest.display()))?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(Error::invalid(format!(
                "mount destination {} is a symlink, refusing to mount over it",
                dest.display()
            )));
        }
    }
    Ok(())
}

fn bind_mount(cx: &MountCtx<'_>, m: &Mount, opts: &Options, rel: &Path) -> Result<()> {
    let dest = m.destination();
    let src = m
        .source()
        .as_ref()
        .ok_or_else(|| Error::invalid(format!("bind mount on {} has no source", dest.display())))?;
    let src: PathBuf = if src.is_absolute() {
        src.clone()
    } else {
        cx.bundle.join(src)
    };
    let st = nix::sys::stat::stat(&src).ctx(|| format!("stat bind source {}", src.display()))?;
    let leaf = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        Leaf::Dir
    } else {
        Leaf::File
    };
    let target = sys::mkdir_all_in_root(cx.rootfd.as_raw_fd(), rel, leaf)?;
    let tpath = sys::fd_path(&target);
    mount(
        Some(&src),
        tpath.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC),
        None::<&str>,
    )
    .ctx(|| format!("bind mount {} on {}", src.display(), dest.display()))?;
    // Reopen: the fd still names the covered directory, not the new mount.
    let mounted = sys::open_in_root(cx.rootfd.as_raw_fd(), rel, libc::O_PATH, 0)
        .ctx(|| format!("open {}", dest.display()))?;
    let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() || !opts.clear.is_empty() {
        remount_bind(&mounted, extra, opts.clear, dest)?;
    }
    set_propagation(&mounted, opts.propagation, dest)
}

/// tmpfs with `tmpcopyup`: the directory's current contents are copied in.
fn tmpfs_copyup(
    cx: &MountCtx<'_>,
    m: &Mount,
    opts: &Options,
    target: &OwnedFd,
    dest: &Path,
) -> Result<()> {
    // Mount the tmpfs on a private staging dir, copy, then move it over the target.
    let stage = std::env::temp_dir().join(format!("krun-copyup-{}", std::process::id()));
    std::fs::create_dir_all(&stage).ctx(|| format!("mkdir {}", stage.display()))?;
    let data = opts.data.join(",");
    let typ = m.typ().as_deref().unwrap_or("tmpfs");
    mount(
        Some("tmpfs"),
        &stage,
        Some(typ),
        opts.flags & !MsFlags::MS_RDONLY,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .ctx(|| format!("mount {typ} on {}", dest.display()))?;
    let from = sys::fd_path(target);
    if let Err(e) = copy_tree(Path::new(&from), &stage) {
        let _ = nix::mount::umount2(&stage, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&stage);
        return Err(e);
    }
    mount(
        Some(&stage),
        from.as_str(),
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .ctx(|| format!("move tmpfs onto {}", dest.display()))?;
    let _ = std::fs::remove_dir(&stage);
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let rel = sys::rel_in_root(dest);
        let t = sys::open_in_root(cx.rootfd.as_raw_fd(), &rel, libc::O_PATH, 0)
            .ctx(|| format!("open {}", dest.display()))?;
        remount_bind(&t, MsFlags::MS_RDONLY, MsFlags::empty(), dest)?;
    }
    Ok(())
}

/// Copies a directory tree (files, dirs, symlinks; modes and owners) for tmpcopyup.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let rd = std::fs::read_dir(from).ctx(|| format!("read {}", from.display()))?;
    for ent in rd {
        let ent = ent.ctx(|| format!("read {}", from.display()))?;
        let src = ent.path();
        let dst = to.join(ent.file_name());
        let md = std::fs::symlink_metadata(&src).ctx(|| format!("stat {}", src.display()))?;
        let ft = md.file_type();
        if ft.is_symlink() {
            let t = std::fs::read_link(&src).ctx(|| format!("readlink {}", src.display()))?;
            std::os::unix::fs::symlink(&t, &dst).ctx(|| format!("symlink {}", dst.display()))?;
        } else if ft.is_dir() {
            std::fs::create_dir(&dst).ctx(|| format!("mkdir {}", dst.display()))?;
            copy_tree(&src, &dst)?;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst).ctx(|| format!("copy {}", src.display()))?;
        } else {
            continue;
        }
        let _ = std::os::unix::fs::lchown(&dst, Some(md.uid()), Some(md.gid()));
        if !ft.is_symlink() {
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))
                .ctx(|| format!("chmod {}", dst.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options_split() {
        let o = parse_options(&s(&[
            "nosuid",
            "ro",
            "mode=755",
            "size=65536k",
            "rslave",
            "rw",
        ]));
        assert_eq!(o.flags, MsFlags::MS_NOSUID);
        assert!(o.clear.contains(MsFlags::MS_RDONLY));
        assert_eq!(o.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert_eq!(o.data, s(&["mode=755", "size=65536k"]));
        let b = parse_options(&s(&["rbind", "ro"]));
        assert!(b
            .flags
            .contains(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY));
    }

    #[test]
    fn propagation_keywords() {
        assert_eq!(
            propagation("rprivate").unwrap(),
            MsFlags::MS_PRIVATE | MsFlags::MS_REC
        );
        assert!(propagation("sideways").is_err());
    }
}
