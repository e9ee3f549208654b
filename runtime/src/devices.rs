//! /dev: the default device nodes, the config's devices and the standard
//! symlinks. Nodes are created relative to a /dev fd resolved inside the
//! rootfs, never through a symlink.
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use crate::error::{Context, Error, Result};
use crate::sys::{self, Leaf};

/// A device node to create.
pub struct Node {
    pub path: String,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// The devices every container gets (runtime-spec "Default Devices").
pub fn defaults() -> Vec<Node> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .iter()
    .map(|(n, ma, mi)| Node {
        path: format!("/dev/{n}"),
        kind: SFlag::S_IFCHR,
        major: *ma,
        minor: *mi,
        mode: 0o666,
        uid: Some(0),
        gid: Some(0),
    })
    .collect()
}

/// Converts a config.json device.
pub fn from_config(d: &LinuxDevice) -> Result<Node> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::invalid(format!(
                "device {}: type \"a\" is not a device node type",
                d.path().display()
            )))
        }
    };
    let path = d.path().to_string_lossy().into_owned();
    if !path.starts_with("/dev/") {
        return Err(Error::invalid(format!(
            "device path {path} is not under /dev"
        )));
    }
    Ok(Node {
        path,
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid(),
        gid: d.gid(),
    })
}

/// Creates `nodes` inside the rootfs. In a user namespace, where mknod is not
/// allowed, the host's node is bind-mounted onto an empty file instead.
pub fn create(rootfd: &OwnedFd, nodes: &[Node], in_userns: bool) -> Result<()> {
    for n in nodes {
        let rel = sys::rel_in_root(Path::new(&n.path));
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel
            .file_name()
            .ok_or_else(|| Error::invalid(format!("device path {} has no name", n.path)))?;
        let dir = sys::mkdir_all_in_root(rootfd.as_raw_fd(), parent, Leaf::Dir)?;
        if in_userns {
            let f = sys::mkdir_all_in_root(rootfd.as_raw_fd(), &rel, Leaf::File)?;
            mount(
                Some(n.path.as_str()),
                sys::fd_path(&f).as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .ctx(|| format!("bind mount device {}", n.path))?;
            continue;
        }
        let dev = makedev(n.major, n.minor);
        match mknodat(&dir, name, n.kind, Mode::from_bits_truncate(n.mode), dev) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                // Replace whatever is there (it may be a symlink planted by the image).
                nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
                    .ctx(|| format!("remove existing {}", n.path))?;
                mknodat(&dir, name, n.kind, Mode::from_bits_truncate(n.mode), dev)
                    .ctx(|| format!("mknod {}", n.path))?;
            }
            Err(e) => return Err(e).ctx(|| format!("mknod {}", n.path)),
        }
        if n.uid.is_some() || n.gid.is_some() {
            nix::unistd::fchownat(
                &dir,
                name,
                n.uid.map(nix::unistd::Uid::from_raw),
                n.gid.map(nix::unistd::Gid::from_raw),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .ctx(|| format!("chown {}", n.path))?;
        }
    }
    Ok(())
}

/// The /dev symlinks the runtime-spec requires.
pub fn symlinks(rootfd: &OwnedFd, have_devpts: bool) -> Result<()> {
    let dev = sys::mkdir_all_in_root(rootfd.as_raw_fd(), Path::new("dev"), Leaf::Dir)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    if have_devpts {
        links.push(("pts/ptmx", "ptmx"));
    }
    for (target, name) in links {
        match nix::unistd::symlinkat(target, &dev, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("symlink /dev/{name} -> {target}")),
        }
    }
    Ok(())
}
