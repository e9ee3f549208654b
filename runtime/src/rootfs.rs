//! The container's root filesystem: propagation, the config's mounts and
//! devices, pivot_root (or chroot), masked and read-only paths.
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::Spec;

use crate::error::{Context, Error, Result};
use crate::mounts::{self, MountCtx};
use crate::{devices, sys};

/// Mounts everything config.json asks for below `rootfs` (still on the host
/// view, before pivot_root). Returns an O_PATH fd of the rootfs.
pub fn prepare(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    cgroupns: bool,
    in_userns: bool,
) -> Result<OwnedFd> {
    let linux = spec.linux().as_ref();
    let prop = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        Some(p) => mounts::propagation(p)?,
        None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    // The whole tree gets the asked propagation, as runc's prepareRoot:
    // slave by default (host events reach us, ours never reach the host);
    // shared keeps the host's peer groups, so a bind of a shared host
    // directory is a peer of it and mounts made in the container under it
    // reach the host (Kubernetes' Bidirectional).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        prop | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| "set the propagation of / in the container")?;
    if prop.contains(MsFlags::MS_SHARED) {
        // ... but the rootfs bind below must not propagate back, and
        // pivot_root refuses a shared parent: make the mount holding the
        // rootfs private (runc's rootfsParentMountPrivate).
        parent_mount_private(rootfs)?;
    }
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind mount rootfs {}", rootfs.display()))?;
    let rootfd = sys::open_dir(rootfs)?;
    let cx = MountCtx {
        rootfd: &rootfd,
        bundle,
        cgroupns,
        in_userns,
    };
    let mut dev_bound = false;
    let mut have_devpts = false;
    for m in spec.mounts().as_deref().unwrap_or(&[]) {
        mounts::mount_one(&cx, m)?;
        let dest = m.destination();
        if dest == Path::new("/dev") && m.typ().as_deref() != Some("tmpfs") {
            dev_bound = true;
        }
        if dest == Path::new("/dev/pts") {
            have_devpts = true;
        }
    }
    let mut nodes = if dev_bound {
        Vec::new()
    } else {
        devices::defaults()
    };
    for d in linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]) {
        nodes.push(devices::from_config(d)?);
    }
    devices::create(&rootfd, &nodes, in_userns)?;
    if !dev_bound {
        devices::symlinks(&rootfd, have_devpts)?;
    }
    Ok(rootfd)
}

/// Makes the mount that holds `path` private: the nearest mount point at
/// or above it (EINVAL means "not a mount point": go up).
fn parent_mount_private(path: &Path) -> Result<()> {
    let mut p = path.to_path_buf();
    loop {
        match mount(
            None::<&str>,
            &p,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            Err(Errno::EINVAL) if p.parent().is_some() => {
                p = p.parent().map(Path::to_path_buf).unwrap_or_default();
            }
            Err(e) => {
                return Err(e).ctx(|| format!("make the mount holding {} private", path.display()))
            }
        }
    }
}

/// Makes `rootfs` the root: pivot_root, or with `no_pivot` a move + chroot.
pub fn enter(rootfs: &Path, no_pivot: bool) -> Result<()> {
    let old_root = sys::open_dir(Path::new("/"))?;
    nix::unistd::chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    if no_pivot {
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .ctx(|| format!("move {} to /", rootfs.display()))?;
        nix::unistd::chroot(".").ctx(|| format!("chroot {}", rootfs.display()))?;
    } else {
        nix::unistd::pivot_root(".", ".").ctx(|| format!("pivot_root {}", rootfs.display()))?;
        // The old root is now stacked on top of the new one. Step onto it and
        // make it a slave, so detaching it cannot reach the host, without
        // touching the propagation of the container's own mounts.
        nix::unistd::fchdir(&old_root).ctx(|| "enter old root")?;
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| "make old root a slave")?;
        umount2(".", MntFlags::MNT_DETACH).ctx(|| "unmount old root")?;
    }
    nix::unistd::chdir("/").ctx(|| "chdir /")
}

/// Applies rootfsPropagation to the new root when it asks for shared mounts.
pub fn root_propagation(spec: &Spec) -> Result<()> {
    if let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        let flags = mounts::propagation(p)?;
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .ctx(|| format!("set rootfsPropagation {p} on /"))?;
    }
    Ok(())
}

/// After pivot_root: read-only paths, masked paths and the read-only root.
pub fn finish(spec: &Spec) -> Result<()> {
    let root = sys::open_dir(Path::new("/"))?;
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or(&[])
    {
        readonly_path(&root, p)?;
    }
    if let Some(masked) = linux.and_then(|l| l.masked_paths().as_deref()) {
        if !masked.is_empty() {
            let null = dev_null(&root)?;
            for p in masked {
                mask_path(&root, &null, p)?;
            }
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let fd = sys::open_dir(Path::new("/"))?;
        mounts::remount_bind(&fd, MsFlags::MS_RDONLY, MsFlags::empty(), Path::new("/"))?;
    }
    Ok(())
}

/// The container's /dev/null, checked to really be the null device: an image
/// could plant a symlink or another node there to redirect masking.
fn dev_null(root: &OwnedFd) -> Result<OwnedFd> {
    let fd = sys::open_in_root(
        root.as_raw_fd(),
        Path::new("dev/null"),
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
    )
    .ctx(|| "open /dev/null in container")?;
    let st = nix::sys::stat::fstat(&fd).ctx(|| "stat /dev/null")?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != nix::sys::stat::makedev(1, 3) {
        return Err(Error::invalid(
            "/dev/null in the container is not the null device (1:3)",
        ));
    }
    Ok(fd)
}

fn mask_path(root: &OwnedFd, null: &OwnedFd, p: &str) -> Result<()> {
    let rel = sys::rel_in_root(Path::new(p));
    let fd = match sys::open_in_root(root.as_raw_fd(), &rel, libc::O_PATH | libc::O_NOFOLLOW, 0) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("open masked path {p}")),
    };
    let st = nix::sys::stat::fstat(&fd).ctx(|| format!("stat masked path {p}"))?;
    let target = sys::fd_path(&fd);
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        mount(
            Some("tmpfs"),
            target.as_str(),
            Some("tmpfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("size=0,mode=0"),
        )
        .ctx(|| format!("mask {p} with tmpfs"))
    } else {
        mount(
            Some(sys::fd_path(null).as_str()),
            target.as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("mask {p} with /dev/null"))
    }
}

fn readonly_path(root: &OwnedFd, p: &str) -> Result<()> {
    let rel = sys::rel_in_root(Path::new(p));
    let fd = match sys::open_in_root(root.as_raw_fd(), &rel, libc::O_PATH | libc::O_NOFOLLOW, 0) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("open read-only path {p}")),
    };
    let t = sys::fd_path(&fd);
    mount(
        Some(t.as_str()),
        t.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind mount read-only path {p}"))?;
    let mounted = sys::open_in_root(root.as_raw_fd(), &rel, libc::O_PATH | libc::O_NOFOLLOW, 0)
        .ctx(|| format!("open read-only path {p}"))?;
    mounts::remount_bind(&mounted, MsFlags::MS_RDONLY, MsFlags::empty(), Path::new(p))
}
